"""The ``.part`` file: 0600, exclusively locked, written and hashed as bytes arrive.

The receiving thread writes each chunk itself (``os.write`` releases the GIL and
a slow disk then slows the sender through TCP flow control). A transfer running
alone hashes on a helper thread, so sha256 overlaps with receiving and writing;
the chunks queued for it are counted against a `Budget` shared by every transfer
of a run, so memory stays bounded. Such a transfer can also receive straight into
the part's own ring of buffers (`PartFile.receive_buffer`): a buffer comes back
only once the helper has hashed what was last written from it. A transfer running
beside others hashes inline: hashlib releases the GIL, so the other transfers
keep the cores busy meanwhile, and a batch saves a thread, a queue hand-off per
chunk and the memory of both per file.
``<final>.part.meta`` remembers the validator (ETag) and total of the object the
bytes came from, never the URL (it is a credential).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from recfetch.fsutil import fsync_dir

__all__ = ["Budget", "Hasher", "PartFile", "extra_algorithm", "read_meta", "write_meta"]

WRITEBACK_EVERY = 32 << 20
"""Start disk writeback after this many new bytes (0: leave it all to the final fsync)."""

HASH_QUEUE_CHUNKS = 2
"""Chunks queued for the hashing thread of one transfer."""

RING_BUFFERS = HASH_QUEUE_CHUNKS + 2
"""Receive buffers of a part hashed on a helper: queued ones, the one being hashed,
the one being filled."""


class Budget:
    """Bytes received but not yet written and hashed, shared by every transfer of a run.

    A transfer takes a chunk's size before queueing it and the pipeline gives it
    back once the chunk is hashed (or dropped), so memory in flight stays under
    ``limit`` at any ``--jobs``: a transfer that finds the budget spent waits,
    and TCP flow control slows its sender.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = limit
        self._cond = threading.Condition()

    def take(self, n: int) -> None:
        n = min(n, self.limit)
        with self._cond:
            while self._free < n:
                self._cond.wait()
            self._free -= n

    def give(self, n: int) -> None:
        with self._cond:
            self._free += min(n, self.limit)
            self._cond.notify_all()


class PartFile:
    """One ``.part`` file and the running digests of its bytes.

    Bytes already on disk from an earlier attempt or run are hashed only when
    needed (before the first new byte, or at completion).
    """

    def __init__(
        self,
        path: Path,
        read_size: int,
        extra: str | None,
        budget: Budget | None = None,
        *,
        hash_on_thread: bool = True,
    ) -> None:
        self.path = path
        self.read_size = read_size
        self.extra = extra
        self.budget = budget or Budget(4 * read_size)
        self.hash_on_thread = hash_on_thread
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(path, flags, 0o600)
        try:
            # Another process (or a duplicate ref in this run) writing the same
            # .part would interleave bytes; the lock makes that impossible.
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(self.fd, 0o600)
            self.size = os.fstat(self.fd).st_size
            os.lseek(self.fd, 0, os.SEEK_END)
        except BaseException:
            os.close(self.fd)
            raise
        self.hasher = self._new_hasher()
        self.hashed = 0 if self.size == 0 else -1
        """How many leading bytes the hasher has seen (-1: it must re-read the file)."""
        self.committed = False
        self._advised = self.size
        self._ring: list[bytearray] = []
        self._marks: list[int] = []
        """Per ring buffer: how many chunks the hasher must have hashed before it is reused."""
        self._next = 0
        self._filling: int | None = None

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` and queue it for hashing; raises OSError (the bytes that made it
        to disk are kept and counted)."""
        if self.hashed != self.size:
            self._rehash()
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done:])
        except OSError:
            self.size += done
            self.hashed = -1
            raise
        self.size += done
        self.hasher.update(data)
        self.hashed = self.size
        if self._filling is not None:
            self._marks[self._filling] = self.hasher.queued
            self._filling = None
        if WRITEBACK_EVERY and self.size - self._advised >= WRITEBACK_EVERY:
            self._start_writeback()

    def receive_buffer(self) -> memoryview:
        """A buffer of ``read_size`` bytes to receive the next chunk into, then `write`.

        Without a hashing helper one buffer serves every chunk; with one, a ring
        of them, each reused once the helper has hashed the chunk last written
        from it (waiting for that, so a slow hash slows the download).
        """
        slot = self._next
        if slot == len(self._ring):
            self._ring.append(bytearray(self.read_size))
            self._marks.append(0)
        self._next = (slot + 1) % (RING_BUFFERS if self.hash_on_thread else 1)
        self.hasher.wait_hashed(self._marks[slot])
        self._filling = slot
        return memoryview(self._ring[slot])

    def _start_writeback(self) -> None:
        """Start writing dirty pages to disk now, so the fsync before the rename is short.

        On Linux, POSIX_FADV_DONTNEED starts writeback of dirty pages without
        waiting for it, and drops pages that are already clean, so a big
        download also does not flush the page cache. Advice only: failures are
        ignored.
        """
        self._advised = self.size
        with suppress(OSError, AttributeError):
            os.posix_fadvise(self.fd, 0, self.size, os.POSIX_FADV_DONTNEED)

    def truncate(self) -> None:
        """Drop every byte: the next one written is byte 0 of the recording."""
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.size = 0
        self._replace_hasher()
        self.hashed = 0

    def digests(self) -> dict[str, str]:
        """``{algorithm: hexdigest}`` of the whole file (sha256 always)."""
        if self.hashed != self.size:
            self._rehash()
        return self.hasher.finish()

    def commit(self, final: Path) -> None:
        """Rename into place. Durable before visible: the final name must never point at
        bytes that a crash could still lose."""
        os.fsync(self.fd)
        os.replace(self.path, final)
        self.committed = True
        fsync_dir(final.parent)

    def close(self) -> None:
        self.hasher.close()
        if self.fd >= 0:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def _new_hasher(self) -> Hasher:
        return Hasher(self.extra, self.budget if self.hash_on_thread else None)

    def _replace_hasher(self) -> None:
        """A fresh hasher; the old one is closed first, so no ring buffer is still in use."""
        self.hasher.close()
        self.hasher = self._new_hasher()
        self._marks = [0] * len(self._marks)

    def _rehash(self) -> None:
        """Hash the bytes already on disk (a resumed .part), here and now."""
        self._replace_hasher()
        position = 0
        while position < self.size:
            chunk = os.pread(self.fd, min(self.read_size, self.size - position), position)
            if not chunk:
                break
            self.hasher.absorb(chunk)
            position += len(chunk)
        self.size = position
        os.lseek(self.fd, position, os.SEEK_SET)
        self.hashed = position


class _Stage:
    """One helper thread applying ``work`` to queued chunks in order.

    The queue is bounded, so a slow hash slows the download instead of
    buffering it in memory. The first exception stops the work (later chunks
    are drained and dropped) and is returned by ``close``.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[bytes | memoryview], None],
        drop: Callable[[bytes | memoryview], None],
    ) -> None:
        self._name = name
        self._work = work
        self._drop = drop
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(HASH_QUEUE_CHUNKS)
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def put(self, data: bytes | memoryview) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(data)

    def close(self) -> BaseException | None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return self.error

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self.error is not None:
                self._drop(data)
                continue
            try:
                self._work(data)
            except BaseException as exc:  # handed to the fetch by close()
                self.error = exc
                self._drop(data)


class Hasher:
    """sha256 (plus the provider's checksum algorithm), on a helper thread when given a budget.

    On the helper, hashing one chunk overlaps with receiving and writing the next
    ones (hashlib releases the GIL for large buffers); hashing inline costs about
    as much CPU as a whole loopback transfer, which matters when nothing else runs.
    Without a budget every chunk is hashed at once, on the caller's thread.
    """

    def __init__(self, extra: str | None, budget: Budget | None) -> None:
        self.hashes = {"sha256": hashlib.sha256()}
        if extra and extra != "sha256":
            self.hashes[extra] = hashlib.new(extra)
        self.budget = budget
        self.queued = 0
        """Chunks given to `update` so far."""
        self._hashed = 0
        self._done = threading.Condition()
        self._stage: _Stage | None = None
        if budget is not None:
            self._stage = _Stage("recfetch-hash", self._update_now, self._drop)

    def update(self, data: bytes | memoryview) -> None:
        """Hash ``data``: queued for the helper (its budget given back once hashed), or now.

        Queued data must stay unchanged until `wait_hashed` says it is done.
        """
        self.queued += 1
        if self._stage is None or self.budget is None:
            self.absorb(data)
            self._hashed = self.queued
            return
        self.budget.take(len(data))
        self._stage.put(data)

    def wait_hashed(self, count: int) -> None:
        """Return once the first ``count`` chunks given to `update` are hashed (or dropped)."""
        with self._done:
            while self._hashed < count:
                self._done.wait()

    def absorb(self, data: bytes | memoryview) -> None:
        """Hash ``data`` now, on this thread (nothing queued, no budget)."""
        for h in self.hashes.values():
            h.update(data)

    def finish(self) -> dict[str, str]:
        error = self._stage.close() if self._stage is not None else None
        if error is not None:
            raise error
        return {name: h.hexdigest() for name, h in self.hashes.items()}

    def close(self) -> None:
        if self._stage is not None:
            self._stage.close()

    def _update_now(self, data: bytes | memoryview) -> None:
        self.absorb(data)  # if this raises, the stage drops the chunk (and gives it back)
        self._drop(data)

    def _drop(self, data: bytes | memoryview) -> None:
        assert self.budget is not None
        self.budget.give(len(data))
        with self._done:
            self._hashed += 1
            self._done.notify_all()


def extra_algorithm(checksum: str | None) -> str | None:
    """The hashlib name of a provider checksum ``algo:hex``, when hashlib has it."""
    if not checksum or ":" not in checksum:
        return None
    algo = checksum.split(":", 1)[0].strip().lower()
    return algo if algo in hashlib.algorithms_available else None


def read_meta(path: Path) -> tuple[str | None, int | None]:
    """(ETag, total) remembered for a .part; (None, None) when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    etag = data.get("etag") if isinstance(data.get("etag"), str) else None
    total = data.get("total") if isinstance(data.get("total"), int) else None
    return etag, total


def write_meta(path: Path, etag: str | None, total: int | None) -> None:
    """Remember the validator and the total of a .part (0600; never the URL)."""
    payload = json.dumps({"etag": etag, "total": total}).encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, payload)
    finally:
        os.close(fd)
