"""Archive rows committed in groups: one transaction per 64 verified files or per second.

Decisions (also in the README's archive section):
- A row is handed over only after its file is final and verified and its manifest
  line and sidecar are written; the group's transaction is the last step, so the
  archive still never records a file before its manifest line and sidecar.
- Before each group's transaction the earlier sinks make what they wrote durable
  (the manifest is fsynced once per group instead of once per line).
- A group is committed when it holds `MAX_ROWS` rows, when its oldest row is
  `MAX_AGE` seconds old, and always when asked (`flush`): at the end of every batch
  (so before an incremental watermark moves, and after SIGINT/SIGTERM stopped the
  run) and before `--delete-after` deletes a recording.
- Rows not yet committed are covered by their journal entries (`jobs.journal`): a
  run killed before the group commits is finished by the next run that opens the
  archive. Once a group is committed its entries are marked done.
- A failed commit (full disk) is raised to the next caller, and later rows are
  refused with the same error; their files stay journaled for the next run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from recfetch.errors import RecfetchError
from recfetch.jobs.journal import Journal
from recfetch.state import Archive, ArchiveRow

MAX_ROWS = 64
MAX_AGE = 1.0
"""Seconds a verified file's row may wait for its group."""


class GroupCommit:
    """Buffer archive rows from the batch's worker threads and commit them together."""

    def __init__(
        self,
        archive: Archive,
        journal: Journal | None = None,
        *,
        before: Callable[[], None] | None = None,
        max_rows: int = MAX_ROWS,
        max_age: float = MAX_AGE,
    ) -> None:
        self.archive = archive
        self.journal = journal
        self.before = before
        """Called before each group's transaction (the manifest's fsync)."""
        self.max_rows = max_rows
        self.max_age = max_age
        self._rows: list[ArchiveRow] = []
        self._oldest = 0.0
        self._error: RecfetchError | None = None
        self._closed = False
        self._buffer = threading.Condition()
        """Guards the buffer; the timer thread waits on it."""
        self._committing = threading.Lock()
        """One group at a time, so `flush` returns only after every earlier row is committed."""
        self._timer: threading.Thread | None = None

    def add(self, row: ArchiveRow) -> None:
        """Queue a verified file's row (committing the group when it is full)."""
        with self._buffer:
            if self._error is not None:
                raise self._error
            if not self._rows:
                self._oldest = time.monotonic()
                self._buffer.notify()
            self._rows.append(row)
            full = len(self._rows) >= self.max_rows
            if self._timer is None:
                self._timer = threading.Thread(target=self._tick, name="recfetch-archive", daemon=True)
                self._timer.start()
        if full:
            self.flush()

    def flush(self) -> None:
        """Commit every row added so far; raises the error of a commit that failed."""
        with self._committing:
            with self._buffer:
                rows, self._rows = self._rows, []
            if rows and self._error is None:
                self._commit(rows)
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        """Stop the timer; rows still buffered are committed by the caller's last `flush`."""
        with self._buffer:
            self._closed = True
            self._buffer.notify()
        if self._timer is not None:
            self._timer.join()

    def _commit(self, rows: list[ArchiveRow]) -> None:
        try:
            if self.before is not None:
                self.before()
            self.archive.add_rows(rows)
            if self.journal is not None:
                self.journal.done(row.key for row in rows)
        except RecfetchError as exc:
            with self._buffer:
                self._error = exc

    def _tick(self) -> None:
        """Commit a group whose oldest row has waited `max_age` seconds."""
        while True:
            with self._buffer:
                if self._closed:
                    return
                if not self._rows:
                    self._buffer.wait()
                    continue
                left = self._oldest + self.max_age - time.monotonic()
                if left > 0:
                    self._buffer.wait(left)
                    continue
            try:
                self.flush()
            except RecfetchError:
                return  # kept for the next add or flush, which raise it
