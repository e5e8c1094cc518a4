"""What a job needs from whoever runs it (the CLI, `demo`, a test): stop flag, messages, progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from recfetch.destinations.settings import StoreSettings
from recfetch.destinations.settings import resolve as resolve_store
from recfetch.download import NullReporter, Reporter
from recfetch.errors import UsageError


class Notifier(Protocol):
    """Human messages on stderr (the CLI's `Ui` is one)."""

    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...


class Silent:
    """A notifier that says nothing (tests, library use)."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def debug(self, message: str) -> None:
        pass


def confirm_with_yes(provider: str, what: list[str], *, yes: bool) -> bool:
    """Without anyone to ask, deleting needs ``yes`` (the CLI asks on a terminal instead)."""
    if not yes:
        raise UsageError(
            f"refusing to delete {len(what)} {provider} recording(s) without confirmation",
            hint="pass --yes to delete when not running on a terminal",
        )
    return True


def _ignore(event: dict[str, Any]) -> None:
    pass


def _store_environment() -> StoreSettings:
    return resolve_store({}, "")


@dataclass
class JobContext:
    stop: threading.Event = field(default_factory=threading.Event)
    """Set by SIGINT/SIGTERM (or a run-level error): no new work starts, transfers end cleanly."""
    notify: Notifier = field(default_factory=Silent)
    progress: Callable[[], AbstractContextManager[Reporter]] = lambda: nullcontext(NullReporter())
    """Opens the progress display around the transfers (the CLI's bars); entered only for the batch."""
    on_event: Callable[[dict[str, Any]], None] = _ignore
    """Each SPEC §4 file event, as it happens (after the log file has it)."""
    confirm_delete: Callable[..., bool] = confirm_with_yes
    """``(provider, what, *, yes) -> bool``: may `pull --delete-after` go ahead?"""
    store_settings: Callable[[], StoreSettings] = _store_environment
    """The object store's settings for ``-o s3://...`` (the CLI adds the profile's destination table)."""
