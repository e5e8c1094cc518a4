"""The committed shell completions: fresh, valid in their shells, and really completing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMPLETIONS = REPO / "completions"
FILES = {"bash": "recfetch.bash", "zsh": "_recfetch", "fish": "recfetch.fish"}
REGENERATE = "python -m recfetch completions --output-dir completions"


def test_committed_completion_scripts_match_a_fresh_generation(cli, tmp_path: Path) -> None:
    result = cli("completions", "--output-dir", str(tmp_path / "fresh"))
    assert result.exit_code == 0, result.output
    for filename in FILES.values():
        fresh = (tmp_path / "fresh" / filename).read_text("utf-8")
        committed = COMPLETIONS / filename
        assert committed.is_file(), f"completions/{filename} is missing; run `{REGENERATE}`"
        assert committed.read_text("utf-8") == fresh, f"completions/{filename} is stale; run `{REGENERATE}`"


@pytest.mark.parametrize("shell", sorted(FILES))
def test_completion_script_is_printed_for_one_shell(cli, shell: str) -> None:
    result = cli("completions", shell)
    assert result.exit_code == 0, result.output
    assert result.stdout == (COMPLETIONS / FILES[shell]).read_text("utf-8")
    assert "_RECFETCH_COMPLETE=complete_" + shell in result.stdout


def test_completions_of_an_unknown_shell_is_a_usage_error(cli) -> None:
    result = cli("completions", "tcsh")
    assert result.exit_code == 2
    assert "bash, zsh, fish" in result.stderr


def test_zsh_script_keeps_compdef_as_its_first_line() -> None:
    # compinit only autoloads files from $fpath whose first line is `#compdef NAME`.
    first = (COMPLETIONS / "_recfetch").read_text("utf-8").splitlines()[0]
    assert first == "#compdef recfetch"


@pytest.mark.parametrize("shell", sorted(FILES))
def test_completion_script_is_valid_syntax_in_its_shell(shell: str) -> None:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")
    proc = subprocess.run(
        [exe, "-n", str(COMPLETIONS / FILES[shell])], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr


def _bin_with_recfetch(tmp_path: Path) -> Path:
    """A PATH entry whose `recfetch` is this checkout, as the scripts call `recfetch` by name."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "recfetch"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m recfetch "$@"\n')
    exe.chmod(0o755)
    return bindir


def _bash_complete(tmp_path: Path, line: str) -> list[str]:
    """Source the bash script and run its completion function as bash would for ``line<TAB>``."""
    words = line.split(" ")
    script = (
        f"source {COMPLETIONS / FILES['bash']}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_recfetch_completion recfetch\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{_bin_with_recfetch(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completion_completes_a_provider_name(tmp_path: Path) -> None:
    assert _bash_complete(tmp_path, "recfetch kaz") == ["kazoo"]
    assert _bash_complete(tmp_path, "recfetch -p work kis") == ["kismet"]


def test_bash_completion_completes_verbs_and_options(tmp_path: Path) -> None:
    assert "config" in _bash_complete(tmp_path, "recfetch con")
    assert _bash_complete(tmp_path, "recfetch config sh") == ["show"]
    assert "--no-progress" in _bash_complete(tmp_path, "recfetch --no-p")
    assert _bash_complete(tmp_path, "recfetch kazoo ta") == ["tag"]
    assert "--since" in _bash_complete(tmp_path, "recfetch bird list --si")


def test_fish_completion_completes_a_provider_and_its_verbs(tmp_path: Path) -> None:
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("fish is not installed (.ci/run installs it)")
    env = {**os.environ, "PATH": f"{_bin_with_recfetch(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    script = (
        f"source {COMPLETIONS / FILES['fish']}; "
        "complete -C 'recfetch kaz'; echo ---; complete -C 'recfetch kazoo t'"
    )
    proc = subprocess.run([fish, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    providers, verbs = proc.stdout.split("---\n")
    assert [line.split("\t")[0] for line in providers.splitlines()] == ["kazoo"]
    assert [line.split("\t")[0] for line in verbs.splitlines()] == ["tag"]
