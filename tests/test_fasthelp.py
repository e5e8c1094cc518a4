"""`<command> --help` answered from the help Typer rendered at build time: the same bytes, no Typer.

The shipped texts (`recfetch/cli/help_texts.json`) must equal Typer's live rendering for every
command path and help flag; `main` prints one only for exactly a command path and one help
flag at the width they were rendered at, and hands everything else to Typer.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from recfetch.cli import _fasthelp

REGENERATE = "python -m recfetch completions --output-dir completions"
MODULES = ("typer", "pydantic", "rich", "httpx")
# `main` (the console script), reporting on stderr which of MODULES it loaded.
VIA_MAIN = (
    "import atexit, sys\n"
    f"mods = {MODULES!r}\n"
    "atexit.register(lambda: sys.stderr.write('LOADED ' + repr(sorted({m.split('.')[0] for m in "
    "sys.modules if m.split('.')[0] in mods})) + '\\n'))\n"
    "from recfetch.cli import main\n"
    "main()\n"
)
VIA_TYPER = "from recfetch.cli._app import app\napp(prog_name='recfetch')\n"


def _run(code: str, args: list[str], **env: str) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # stdout is a pipe: Click's 80
    return subprocess.run(
        [sys.executable, "-c", code, *args], env={**base, **env}, capture_output=True, timeout=60
    )


def _loaded(proc: subprocess.CompletedProcess[bytes]) -> list[str]:
    line = next(x for x in proc.stderr.decode().splitlines() if x.startswith("LOADED "))
    return ast.literal_eval(line.removeprefix("LOADED "))


def _stored(path: list[str]) -> str:
    node = _fasthelp.load_texts()["tree"]
    for word in path:
        node = node["commands"][word]
    text: str = node["help"]
    return text


def test_every_shipped_help_is_what_typer_renders_now() -> None:
    paths = _fasthelp.command_paths()
    assert ["kazoo", "pull"] in paths and ["cloudflare", "start"] in paths and ["config", "set"] in paths
    assert _fasthelp.load_texts()["width"] == _fasthelp.WIDTH
    for path in paths:
        for flag in _fasthelp.HELP_NAMES:
            code, text = _fasthelp.render([*path, flag])
            assert code == 0 and text.startswith("Usage: recfetch"), (path, flag)
            assert _stored(path) == text, f"help of `recfetch {' '.join(path)}` is stale; run `{REGENERATE}`"


@pytest.mark.parametrize("words", [["kazoo", "--help"], ["realtimekit", "pull", "--help"], ["config", "-h"]])
def test_a_help_is_typers_bytes_without_importing_typer_or_pydantic(words: list[str]) -> None:
    fast = _run(VIA_MAIN, words, NO_COLOR="1", TERM="dumb", RECFETCH_PROFILE="work")
    typer_ = _run(VIA_TYPER, words)
    assert fast.returncode == typer_.returncode == 0, fast.stderr
    assert fast.stdout == typer_.stdout and fast.stdout.startswith(b"Usage: recfetch " + words[0].encode())
    assert _loaded(fast) == [], fast.stderr


@pytest.mark.parametrize(
    ("words", "env"),
    [
        (["kazoo", "--help"], {"COLUMNS": "60"}),  # Click wraps at 58: not the stored width
        (["kazoo", "pull", "--help", "-q"], {}),
        (["-q", "kazoo", "--help"], {}),
        (["kazoo", "--help", "--help"], {}),
    ],
)
def test_anything_else_is_answered_by_typer(words: list[str], env: dict[str, str]) -> None:
    proc = _run(VIA_MAIN, words, **env)
    typer_ = _run(VIA_TYPER, words, **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == typer_.stdout and proc.stdout.startswith(b"Usage: recfetch kazoo")
    assert "typer" in _loaded(proc)
    if env:
        assert max(len(line) for line in proc.stdout.decode().splitlines()) <= 58
        assert proc.stdout.decode() != _stored(["kazoo"])


def test_an_unknown_command_or_a_completion_request_goes_to_typer() -> None:
    unknown = _run(VIA_MAIN, ["kazoo", "nosuch", "--help"])
    assert unknown.returncode == 2 and b"No such command 'nosuch'" in unknown.stderr
    script = _run(VIA_MAIN, ["kazoo", "--help"], _RECFETCH_COMPLETE="source_bash")
    assert script.returncode == 0 and b"complete " in script.stdout and b"Usage:" not in script.stdout
