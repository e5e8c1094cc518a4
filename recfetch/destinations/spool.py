"""Where an upload's bytes wait: anonymous temporary files, and one process-wide lane of sends.

Memory must not grow with ``--jobs`` or with a recording's size, but an S3 part
is at least 5 MiB and its length must be known before it is sent. So the bytes
of each part (or of a whole small recording) go to a `Spooled` file: created
unlinked (``O_TMPFILE`` where the kernel has it), ``0600``, in the private
``0700`` folder `spool_dir` under recfetch's state directory; a crash leaves
nothing behind, and the page cache that holds it is not the process's memory.
boto3 reads a part back from its file in `SPOOL_READ` pieces, and rewinds it to
retry a send.

`LANE` bounds the sends of the whole process: at most `SENDS_AT_ONCE` parts or
single PUTs are being uploaded or waiting for a thread, whatever the number of
transfers; a transfer that would exceed it waits (its source pauses).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from recfetch.config import state_dir
from recfetch.errors import LocalIOError
from recfetch.fsutil import private_dir

T = TypeVar("T")

SPOOL_READ = 64 * 1024
"""The most one read of a spooled part returns (boto3 asks for 1 MiB to sign a payload)."""
SENDS_AT_ONCE = 8
"""Uploads of parts (or whole small recordings) at once in the process."""


def spool_dir(base: Path | None = None) -> Path:
    """The private folder spooled parts live in (``STATE_DIR/spool``), created ``0700``."""
    directory = base if base is not None else state_dir() / "spool"
    try:
        return private_dir(directory, tighten=True)
    except OSError as exc:
        raise spool_error(exc, directory) from None


def spool_error(exc: OSError, directory: Path) -> LocalIOError:
    """A spool write failed (disk full, folder not writable): exit 10 naming the folder."""
    reason = exc.strerror or type(exc).__name__
    return LocalIOError(
        f"could not stage an upload in {directory} ({reason})",
        hint="free some space there, or point RECFETCH_STATE_DIR at a writable folder with room "
        "for (--jobs + 8) parts of 6 MiB",
    )


class Spooled:
    """The bytes of one part in an anonymous temporary file; a seekable body for boto3.

    The file is reused for a later part of the same upload (`reset`):
    overwriting pages the kernel already holds costs less than new ones. Its
    content is the first `length` bytes; reads and seeks never go past them.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            self._file = tempfile.TemporaryFile(dir=directory, buffering=0)  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise spool_error(exc, directory) from None
        self.length = 0

    def reset(self) -> None:
        """Empty again (the bytes of the previous part are overwritten, never read)."""
        self._file.seek(0)
        self.length = 0

    def write(self, data: memoryview | bytes) -> None:
        """Append (writes always follow the last byte written)."""
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view) or 0
                view = view[written:]
                self.length += written
        except OSError as exc:
            raise spool_error(exc, self.directory) from None

    def read(self, size: int = -1) -> bytes:
        """At most `SPOOL_READ` bytes and never past `length`: a short read, as a raw file may give."""
        left = self.length - self._file.tell()
        if left <= 0:
            return b""
        wanted = SPOOL_READ if size is None or size < 0 else min(size, SPOOL_READ)
        return self._file.read(min(wanted, left)) or b""

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            return self._file.seek(self.length + offset)
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed


class UploadLane:
    """At most ``limit`` sends at once in the process, each on its own short-lived thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._count = threading.Lock()
        self._busy = 0
        self.busiest = 0
        """The most sends ever at once (a bound the tests and benchmarks check)."""

    def _enter(self) -> None:
        self._slots.acquire()
        with self._count:
            self._busy += 1
            self.busiest = max(self.busiest, self._busy)

    def _leave(self) -> None:
        with self._count:
            self._busy -= 1
        self._slots.release()

    def submit(self, send: Callable[[], T], cleanup: Callable[[], None]) -> Future[T]:
        """Wait for a slot, then run ``send`` on a new thread; ``cleanup`` runs after it, always."""
        try:
            self._enter()
        except BaseException:
            cleanup()
            raise
        future: Future[T] = Future()
        future.set_running_or_notify_cancel()

        def finish() -> None:
            try:
                cleanup()
            finally:
                self._leave()

        def run() -> None:
            # `cleanup` runs and the slot is free before the future says done, so a
            # caller that waited for it finds both.
            try:
                outcome = send()
            except BaseException as exc:
                finish()
                future.set_exception(exc)
            else:
                finish()
                future.set_result(outcome)

        try:
            threading.Thread(target=run, name="recfetch-upload", daemon=True).start()
        except BaseException:
            cleanup()
            self._leave()
            raise
        return future

    def call(self, send: Callable[[], T]) -> T:
        """Run ``send`` on this thread once a slot is free."""
        self._enter()
        try:
            return send()
        finally:
            self._leave()


LANE = UploadLane(SENDS_AT_ONCE)
"""The one lane of the process: every `ObjectUpload` of every store sends through it."""
