"""What the engine tells its callers: a `FileResult` per recording and progress via a `Reporter`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recfetch.errors import RecfetchError

__all__ = ["FileResult", "NullReporter", "Reporter"]


class Reporter(Protocol):
    """Progress sink; `recfetch.output` draws bars, tests record calls."""

    def file_planned(self, key: str, size: int | None) -> None:
        """The batch will fetch this recording (sent as the listing streams: totals grow)."""

    def file_started(self, key: str, name: str, total: int | None, completed: int) -> None: ...

    def file_advance(self, key: str, n: int) -> None: ...

    def file_reset(self, key: str, completed: int, total: int | None) -> None: ...

    def file_finished(self, key: str, ok: bool) -> None: ...


class NullReporter:
    """A Reporter that reports nothing."""

    def file_planned(self, key: str, size: int | None) -> None:
        pass

    def file_started(self, key: str, name: str, total: int | None, completed: int) -> None:
        pass

    def file_advance(self, key: str, n: int) -> None:
        pass

    def file_reset(self, key: str, completed: int, total: int | None) -> None:
        pass

    def file_finished(self, key: str, ok: bool) -> None:
        pass


@dataclass(frozen=True)
class FileResult:
    """What happened to one recording (SPEC §4 download event)."""

    ref: str
    outcome: str
    """``downloaded``, ``skipped`` or ``failed``."""
    reason: str | None
    path: Path | None
    bytes: int
    sha256: str | None
    error: RecfetchError | None
    mints: int = 0
    """How many download URLs were minted for this file."""
    media_type: str | None = None
    """The Content-Type the recording's bytes arrived with (downloads only)."""
