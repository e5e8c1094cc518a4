"""README, config.example.toml, --help and the code agree with each other."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO

from recfetch.errors import ExitCode
from recfetch.providers import REGISTRY

README = (REPO / "README.md").read_text(encoding="utf-8")


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands_install_demo_and_tests() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert "pip install" in commands[0] and commands[0].endswith("recfetch demo")
    assert 'pip install -e ".[test]"' in commands[1] and "pytest" in commands[1]
    for command in commands:  # an ordinary user can run both: a virtualenv, no root
        assert "python3 -m venv" in command and "sudo" not in command and "apt-get" not in command


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert _quick_start_commands()[1] in ci.splitlines()


def test_config_example_documents_every_setting_of_every_provider() -> None:
    data = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    tables = data["profiles"]["work"]
    for name, cls in REGISTRY.items():
        keys = {s.key for s in cls.settings} | {"base_url"}
        assert set(tables[name]) == keys, name


def test_readme_exit_code_table_matches_the_error_tree() -> None:
    table = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert {int(code) for code in ExitCode} <= documented


def test_readme_names_every_provider_verb(cli) -> None:
    for name, cls in REGISTRY.items():
        result = cli(name, "--help")
        assert result.exit_code == 0
        for verb in ("login", "list", "show", "url", "download", "pull", *cls.extra_verbs):
            assert verb in result.stdout, (name, verb)
            if verb not in {"login", "list", "show", "url", "download", "pull"}:
                assert re.search(rf"`{name} [^`]*\b{verb}\b", README), (name, verb)


# ---------------------------------------------------------------------------
# every README example works when pasted against `recfetch sandbox` (issue 9 #10)

PLACEHOLDER = re.compile(r"\b(REF\d?|FILE|DIR|NAME|PATH|P)\b|…")


def readme_examples() -> list[str]:
    """Commands a reader would paste: fenced sh/cron blocks and inline `recfetch -p sandbox …` spans."""
    out: list[str] = []
    for kind, body in re.findall(r"^ *```(sh|cron)\n(.*?)\n *```", README, flags=re.S | re.M):
        text = body.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip()
            if kind == "cron":
                if line.startswith("#") or not line:
                    continue
                line = line.split(None, 5)[5].replace("\\%", "%")
            if line.startswith(("recfetch", "jq", "RECFETCH_")) and "[GLOBAL OPTIONS]" not in line:
                out.append(line)
    out += [m for m in re.findall(r"`(recfetch -p sandbox [^`]+)`", README) if not PLACEHOLDER.search(m)]
    return out


def test_readme_examples_are_found() -> None:
    examples = readme_examples()
    assert len(examples) >= 15
    assert "recfetch verify /tmp/rehearsal/manifest.jsonl" in examples
    assert any("kaleyra pull --from-report sandbox-kaleyra-report.csv" in e for e in examples)


def test_every_readme_example_works_pasted_against_recfetch_sandbox(tmp_path: Path, isolated: Path) -> None:
    from recfetch import config

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "recfetch").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m recfetch "$@"\n')
    (bindir / "recfetch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    assert shutil.which("jq", path=env["PATH"]), "jq is needed (the README's test set-up installs it)"
    work = tmp_path / "work"
    work.mkdir()
    sandbox = subprocess.Popen(
        ["recfetch", "sandbox", "--port", "0"], cwd=work, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert sandbox.stdout is not None
        lines = [sandbox.stdout.readline() for _ in range(7)]
        assert lines[-1].startswith("kaleyra csv"), lines
        # The cron examples use a `work` profile: the reader's would point at their accounts.
        config_file = config.config_path()
        data = config.load(config_file)
        data["profiles"]["work"] = data["profiles"]["sandbox"]
        config.save(config_file, data)
        for example in readme_examples():
            if example.startswith("recfetch sandbox"):
                continue  # running above
            command = example.replace("/srv/", f"{tmp_path}/srv/").replace("/var/log/", f"{tmp_path}/log/")
            command = command.replace("/tmp/rehearsal", f"{tmp_path}/rehearsal")
            proc = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, (example, proc.stdout[-2000:], proc.stderr[-2000:])
        # The rehearsal pull has its own state: it saved every kazoo recording with a file,
        # including those the examples before it had already pulled with the profile.
        listed = subprocess.run(
            ["recfetch", "-p", "sandbox", "kazoo", "list", "--jsonl"],
            cwd=work, env=env, capture_output=True, text=True, timeout=120, check=True,
        )
        downloadable = {r["ref"] for r in map(json.loads, listed.stdout.splitlines()) if r["downloadable"]}
        manifest = (tmp_path / "rehearsal" / "manifest.jsonl").read_text().splitlines()
        assert downloadable and {json.loads(line)["ref"] for line in manifest} == downloadable
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


def test_readme_download_options_table_states_the_cli_defaults() -> None:
    import typer

    from recfetch.cli._app import app

    root = typer.main.get_command(app)
    kazoo = root.get_command(typer.Context(root), "kazoo")  # type: ignore[attr-defined]
    pull = kazoo.get_command(typer.Context(kazoo), "pull")
    defaults = {opt: p.default for p in pull.params for opt in p.opts}
    table = README.split("### Download and pull options", 1)[1].split("\n\n", 2)[1]
    checked = 0
    for flags, default in re.findall(r"^\| `([^`]+)`[^|]* \| `?([^|`]+?)`? \|", table, flags=re.M):
        opt = flags.split("/")[0].split()[0]
        if opt in defaults and " " not in default and default not in {"off", "—"}:
            assert str(defaults[opt]) == default, (opt, default, defaults[opt])
            checked += 1
    assert checked >= 4
