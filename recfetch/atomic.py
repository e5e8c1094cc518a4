"""Writing a private file so that readers see the old content or the whole new one, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def open_append_private(path: Path) -> int:
    """An O_APPEND descriptor on ``path``, created 0600 (a missing folder is created 0700).

    One ``os.write`` of a whole line on such a descriptor is never interleaved
    with another writer's line.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def write_private(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` as a 0600 file: temp file beside it, fsync, rename.

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
