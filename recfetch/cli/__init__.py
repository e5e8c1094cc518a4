"""recfetch's command line.

`main` is the console-script entry point. It answers `--version` before importing Typer,
Rich, httpx or any provider, so the cheapest question stays cheap; everything else goes to
the Typer app in `recfetch.cli._app` (also reachable as ``recfetch.cli.app``).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        from recfetch import __version__

        sys.stdout.write(f"recfetch {__version__}\n")
        return
    from recfetch.cli._app import app

    app(prog_name="recfetch")


def __getattr__(name: str) -> Any:
    if name == "app":
        from recfetch.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
