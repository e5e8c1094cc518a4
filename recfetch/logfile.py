"""`--log-file PATH`: JSON lines for cron jobs, with secrets and presigned URLs redacted."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from recfetch.errors import UsageError
from recfetch.fsutil import open_append_private, utc_stamp_ms
from recfetch.redact import scrub

LEVELS = ("debug", "info", "warning", "error")


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


class LogFile:
    """Appends `{time, level, msg, provider, ref, event}` lines to a 0600 file.

    Every string goes through `redact.scrub` (registered secrets, URL query
    strings), so a presigned URL or a key that slips into a message never
    reaches the file. Writes are whole lines under a lock, in append mode.
    """

    def __init__(self, path: Path, *, provider: str | None = None) -> None:
        self.path = path
        self.provider = provider
        try:
            self._fd = open_append_private(path)
        except OSError as exc:
            raise UsageError(
                f"cannot open the log file {path}: {exc.strerror}", hint="pass a writable --log-file path"
            ) from None
        self._lock = threading.Lock()
        self._handler: logging.Handler | None = None

    def write(
        self,
        level: str,
        msg: str,
        *,
        ref: str | None = None,
        event: dict[str, Any] | None = None,
        provider: str | None = None,
        **extra: Any,
    ) -> None:
        record: dict[str, Any] = {
            "time": utc_stamp_ms(),
            "level": level,
            "msg": scrub(msg),
            "provider": provider or self.provider,
            "ref": ref,
            "event": _scrub_value(event) if event is not None else None,
        }
        record.update({k: _scrub_value(v) for k, v in extra.items()})
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd < 0:
                return
            with contextlib.suppress(OSError):  # a full disk must not fail a download
                os.write(self._fd, line)

    def info(self, msg: str, **kw: Any) -> None:
        self.write("info", msg, **kw)

    def warning(self, msg: str, **kw: Any) -> None:
        self.write("warning", msg, **kw)

    def error(self, msg: str, **kw: Any) -> None:
        self.write("error", msg, **kw)

    def file_event(self, event: dict[str, Any]) -> None:
        """One download event (SPEC §4 `file`), at a level matching its outcome."""
        outcome = event.get("outcome")
        ref = event.get("ref")
        if outcome == "failed":
            err = event.get("error") or {}
            self.write(
                "error", f"failed {ref}: {err.get('message') or event.get('reason')}", ref=ref, event=event
            )
        elif outcome == "downloaded":
            self.write("info", f"downloaded {ref} to {event.get('path')}", ref=ref, event=event)
        else:
            self.write("info", f"skipped {ref}: {event.get('reason')}", ref=ref, event=event)

    def attach(self, logger_name: str = "recfetch") -> None:
        """Also copy the library's warnings (and debug lines with -v) into the file."""
        handler = _Handler(self)
        handler.setLevel(logging.DEBUG)
        logging.getLogger(logger_name).addHandler(handler)
        self._handler = handler

    def close(self) -> None:
        if self._handler is not None:
            logging.getLogger("recfetch").removeHandler(self._handler)
            self._handler = None
        with self._lock:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = -1


class _Handler(logging.Handler):
    def __init__(self, target: LogFile) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname.lower()
            self.target.write(level if level in LEVELS else "info", record.getMessage(), logger=record.name)
        except Exception:  # logging must never break a download
            self.handleError(record)
