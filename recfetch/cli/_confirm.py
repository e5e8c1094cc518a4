"""Confirmation before destructive actions: a prompt on a terminal, `--yes` otherwise."""

from __future__ import annotations

import sys

import typer

from recfetch.errors import UsageError


def confirm_delete(provider: str, refs: list[str], *, yes: bool) -> bool:
    """True when deleting ``refs`` at ``provider`` is confirmed.

    Without a terminal there is nobody to ask, so `--yes` is required; a
    declined prompt returns False (the caller deletes nothing and exits 0).
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to delete {len(refs)} {provider} recording(s) without confirmation",
            hint="pass --yes to delete when not running on a terminal",
        )
    shown = ", ".join(refs[:5]) + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
    return typer.confirm(f"Delete {shown} at {provider}? This cannot be undone", default=False)
