"""Private files and folders, durable renames and UTC stamps: the one home for these rules.

Recordings, the archive, tokens and logs are private: folders recfetch creates
are 0700 and files 0600, whatever the umask. A file that replaces another is
written beside it, fsynced and renamed, so a reader sees the old content or the
whole new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "fsync_dir",
    "open_append_private",
    "private_dir",
    "utc_stamp",
    "utc_stamp_ms",
    "write_private",
]


def private_dir(directory: Path, *, tighten: bool = False) -> Path:
    """Create ``directory`` and any missing parents with mode 0700 exactly (umask aside).

    An existing folder keeps its mode (``-o ~/Music`` must not chmod the user's
    folder) unless ``tighten`` is set, which makes a folder recfetch owns
    (its state dir) 0700 again when group or others can read it.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    if tighten and not missing:
        with contextlib.suppress(OSError):
            if stat.S_IMODE(directory.stat().st_mode) & 0o077:
                directory.chmod(0o700)
    return directory


def write_private(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` as a 0600 file: temp file beside it, fsync, rename.

    The folder must exist; its mode is left alone.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_append_private(path: Path) -> int:
    """An O_APPEND descriptor on ``path``, created 0600 (a missing folder is created 0700).

    One ``os.write`` of a whole line on such a descriptor is never interleaved
    with another writer's line.
    """
    private_dir(path.parent)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def utc_stamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as RFC 3339 UTC to the second: ``2026-01-31T23:59:59Z``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_stamp_ms(moment: datetime | None = None) -> str:
    """Like `utc_stamp` with milliseconds, for log lines: ``2026-01-31T23:59:59.123Z``."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
