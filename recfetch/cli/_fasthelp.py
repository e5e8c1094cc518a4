"""Answering `recfetch <command> --help` without Typer, which alone costs ~130 ms (its option
parsing loads pydantic).

The help of every command is rendered by Typer itself when the completions are regenerated
(`recfetch completions --output-dir completions`), at the width Click uses on any terminal of
80 columns or more and for a pipe, and shipped as `help_texts.json`; a staleness test renders it
live again. `answer` prints a stored text only when Typer's output is certain to be the same
bytes: the line is exactly a command path and one help flag, no completion is being asked for,
Click's width (``max(min(columns, 80) - 2, 50)``) is the stored one, and a text that is not
ASCII goes to a UTF-8 stdout. Anything else, the
caller hands to Typer.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

HELP_FILE = "help_texts.json"
WIDTH = 78
"""Click's help width for 80 or more columns, and for a pipe (its fallback is 80 columns)."""
HELP_NAMES = ("--help", "-h")
Node = dict[str, Any]
"""{"help": text (absent when not stored), "commands": {name: Node}}"""


def click_width() -> int:
    """The width Click's `HelpFormatter` would wrap at here (COLUMNS, else the terminal, else 80)."""
    import shutil

    return max(min(shutil.get_terminal_size().columns, 80) - 2, 50)


def load_texts() -> dict[str, Any]:
    from importlib import resources

    texts: dict[str, Any] = json.loads(resources.files("recfetch.cli").joinpath(HELP_FILE).read_text("utf-8"))
    return texts


def answer(argv: list[str]) -> bool:
    """Print the stored help for ``argv`` and say True, or say False (Typer must answer)."""
    if not argv or argv[-1] not in HELP_NAMES or "_RECFETCH_COMPLETE" in os.environ:
        return False
    if any(word.startswith("-") for word in argv[:-1]) or click_width() != WIDTH:
        return False
    texts = load_texts()
    node: Node | None = texts["tree"]
    for word in argv[:-1]:
        node = node["commands"].get(word) if node is not None else None
    if node is None or "help" not in node or texts["width"] != WIDTH:
        return False
    if not node["help"].isascii() and (sys.stdout.encoding or "").lower() not in ("utf-8", "utf8"):
        return False  # Click re-encodes for an ASCII stream; leave that to it
    sys.stdout.write(node["help"])
    sys.stdout.flush()
    return True


# ---------------------------------------------------------------------------
# build time: Typer renders every command's help


def command_paths() -> list[list[str]]:
    """Every command path of the app (the root, providers and their aliases, verbs, groups)."""
    import typer

    from recfetch.cli._app import app

    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        if hasattr(command, "list_commands"):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def render(args: list[str], width: int = WIDTH) -> tuple[Any, str]:
    """(exit code, stdout) of the app given ``args``, with Click wrapping help at ``width``."""
    import contextlib
    import io

    import typer

    from recfetch.cli._app import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = typer.main.get_command(app).main(
            args=args, prog_name="recfetch", standalone_mode=False, terminal_width=width
        )
    return code, out.getvalue()


def help_texts() -> dict[str, Any]:
    """The shipped data: each command's help where every help flag prints the same text."""
    tree: Node = {"commands": {}}
    for path in command_paths():
        node = tree
        for word in path:
            node = node["commands"].setdefault(word, {"commands": {}})
        answers = {render([*path, flag]) for flag in HELP_NAMES}
        if len(answers) == 1 and next(iter(answers))[0] in (0, None):
            node["help"] = next(iter(answers))[1]
    return {"width": WIDTH, "tree": tree}


def write_help_texts() -> Path:
    """Regenerate the packaged help (with the completion spec, by `completions --output-dir`)."""
    path = Path(__file__).with_name(HELP_FILE)
    path.write_text(json.dumps(help_texts(), indent=0, sort_keys=True) + "\n", encoding="utf-8")
    return path
