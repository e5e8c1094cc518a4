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


def test_generating_into_another_folder_leaves_the_packaged_spec_alone(cli, tmp_path: Path) -> None:
    from recfetch.cli import misc
    from recfetch.cli._fasthelp import HELP_FILE

    packaged = [Path(misc.__file__).with_name(name) for name in (misc.SPEC_FILE, HELP_FILE)]
    before = [path.stat().st_mtime_ns for path in packaged]
    result = cli("completions", "--output-dir", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0, result.output
    assert [path.stat().st_mtime_ns for path in packaged] == before
    assert not any(str(path) in result.output for path in packaged)


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


# ---------------------------------------------------------------------------
# a TAB is answered from the command tree kept as data (fast, no Typer/Rich/httpx)

HEAVY = ("typer", "rich", "httpx", "httpcore", "recfetch.providers", "recfetch.download")
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write(repr(sorted({m for m in sys.modules "
    f"if m.startswith({HEAVY!r})}})) + '\\n'))\n"
    "from recfetch.cli import main\n"
    "main()\n"
)


def _run(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_committed_completion_spec_matches_the_app() -> None:
    import json

    from recfetch.cli import misc
    from recfetch.cli._fastcomplete import load_spec

    assert load_spec() == json.loads(json.dumps(misc.completion_spec())), f"stale; run `{REGENERATE}`"


def test_a_tab_and_version_import_no_typer_rich_httpx_or_provider() -> None:
    tab = _run(
        PROBE,
        {"_RECFETCH_COMPLETE": "complete_bash", "COMP_WORDS": "recfetch kazoo pull --j", "COMP_CWORD": "3"},
    )
    assert tab.returncode == 0 and tab.stdout.split() == ["--jobs", "--json", "--jsonl"]
    assert tab.stderr.strip() == "[]", tab.stderr
    version = _run(PROBE.replace("main()", "sys.argv[1:] = ['--version']; main()"), {})
    assert version.stdout.startswith("recfetch ") and version.stderr.strip() == "[]", version.stderr


LINES = [
    "recfetch ",
    "recfetch k",
    "recfetch kazoo ",
    "recfetch kazoo pull --",
    "recfetch kazoo pull -j 4 --",
    "recfetch -p sandbox kismet list --format ",
    "recfetch kazoo list --color a",
    "recfetch config set bird.",
    "recfetch config ",
    "recfetch kismet ",
    "recfetch c",
    "recfetch bird list --direction ",
    "recfetch kazoo pull -q --",
]


@pytest.mark.parametrize("line", LINES)
def test_the_fast_answer_is_what_click_itself_would_offer(line: str, config_file: Path, sandbox) -> None:
    sandbox.write_profile(config_file, "sandbox")
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {"_RECFETCH_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    fast = _run("from recfetch.cli import main; main()", env)
    typer_app = _run("from recfetch.cli._app import app; app(prog_name='recfetch')", env)
    assert fast.returncode == typer_app.returncode == 0, (fast.stderr, typer_app.stderr)
    assert set(fast.stdout.split()) == set(typer_app.stdout.split())
    assert fast.stdout.split(), line


def test_config_set_completes_the_cmd_form_of_every_secret(config_file: Path) -> None:
    line = "recfetch config set kazoo."
    env = {"_RECFETCH_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": "3"}
    offered = set(_run("from recfetch.cli import main; main()", env).stdout.split())
    assert {"kazoo.api_key", "kazoo.api_key_cmd", "kazoo.password_cmd"} <= offered
    assert "kazoo.base_url_cmd" not in offered  # only secrets take a command


def test_profile_names_complete_after_p_anywhere(config_file: Path, sandbox) -> None:
    sandbox.write_profile(config_file, "sandbox")
    for line in ("recfetch -p ", "recfetch kazoo pull -p ", "recfetch config show --profile "):
        words = line.split()
        env = {"_RECFETCH_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words))}
        assert _run("from recfetch.cli import main; main()", env).stdout.split() == ["sandbox"], line


def _zsh_complete(tmp_path: Path, line: str) -> str:
    """Run the zsh completer as compinit would for ``line<TAB>``, with `_arguments` printing its spec."""
    zsh = shutil.which("zsh")
    assert zsh is not None, "zsh is needed (.ci/run installs it)"
    words = line.split(" ")
    script = (
        "compdef() { : }\n"
        '_arguments() { print -r -- "$@" }\n'
        "_files() { print -r -- _files }\n"
        f"source {COMPLETIONS / FILES['zsh']}\n"
        f"words=({' '.join(repr(w) for w in words)})\n"
        f"CURRENT={len(words)}\n"
        "_recfetch_completion\n"
    )
    env = {**os.environ, "PATH": f"{_bin_with_recfetch(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([zsh, "-f", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_zsh_completion_offers_providers_verbs_and_the_alias(tmp_path: Path) -> None:
    providers = _zsh_complete(tmp_path, "recfetch k")
    assert '"kazoo"' in providers and '"kismet"' in providers and '"kaleyra"' in providers
    assert '"cloudflare"' in _zsh_complete(tmp_path, "recfetch cl")
    assert '"tag"' in _zsh_complete(tmp_path, "recfetch kazoo t")
    assert "--no-progress" in _zsh_complete(tmp_path, "recfetch kazoo pull --no-p")


@pytest.mark.parametrize(
    ("shell", "place"),
    [
        ("bash", ".local/share/bash-completion/completions/recfetch"),
        ("zsh", ".zfunc/_recfetch"),
        ("fish", ".config/fish/completions/recfetch.fish"),
    ],
)
def test_install_completion_installs_the_named_shells_script(tmp_path: Path, shell: str, place: str) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}  # the parent shell does not decide
    proc = subprocess.run(
        [sys.executable, "-m", "recfetch", "--install-completion", shell],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / place).read_text("utf-8") == (COMPLETIONS / FILES[shell]).read_text("utf-8")
    assert f"installed {shell} completion in {tmp_path / place}" in proc.stderr


def test_profile_names_complete_in_zsh_and_fish(tmp_path: Path, config_file: Path, sandbox) -> None:
    sandbox.write_profile(config_file, "sandbox")
    assert '"sandbox"' in _zsh_complete(tmp_path, "recfetch kazoo pull -p ")
    fish = shutil.which("fish")
    assert fish is not None, "fish is needed (.ci/run installs it)"
    env = {**os.environ, "PATH": f"{_bin_with_recfetch(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    script = f"source {COMPLETIONS / FILES['fish']}; complete -C 'recfetch kazoo pull -p '"
    proc = subprocess.run([fish, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == ["sandbox"]
