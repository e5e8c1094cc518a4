"""recfetch's command line.

`main` is the console-script entry point. It answers `--version`, a shell's TAB
(`_RECFETCH_COMPLETE=complete_<shell>`, see `_fastcomplete`) and a command's `--help` (see
`_fasthelp`) before importing Typer, Rich, httpx or any provider, so the cheapest questions
stay cheap; everything else goes to the
Typer app in `recfetch.cli._app` (also reachable as ``recfetch.cli.app``).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        from recfetch import __version__

        sys.stdout.write(f"recfetch {__version__}\n")
        return
    instruction = os.environ.get("_RECFETCH_COMPLETE", "")
    if instruction.startswith("complete_"):  # a TAB: answered from the command tree kept as data
        from recfetch.cli._fastcomplete import answer

        sys.exit(answer(instruction.removeprefix("complete_")))
    from recfetch.cli._fasthelp import answer as help_answer

    if help_answer(sys.argv[1:]):  # `<command> --help`, as Typer rendered it at build time
        return
    from recfetch.cli._app import app

    try:
        app(prog_name="recfetch")
    finally:
        # What the command made lives until exit anyway: frozen, it is not traced once
        # more by the interpreter's collections at shutdown (~50 ms after a pull).
        gc.freeze()


def __getattr__(name: str) -> Any:
    if name == "app":
        from recfetch.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
