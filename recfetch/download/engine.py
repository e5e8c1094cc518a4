"""The engine loop: one `Downloader` shared by a run's threads, one `_Job` per recording.

Failure handling inside one fetch:

    rejected URL (400/401/403, expiry)  -> mint a new URL, resume; no retry spent
    error page instead of media         -> mint once more, then IntegrityError
    429 / 5xx / network error / stall   -> back off (Retry-After), resume; spends a retry
    inconsistent resume (RFC 9110 §14.4) -> discard the .part and start over
    size or checksum mismatch           -> IntegrityError, nothing renamed into place
    local write failure / full disk     -> LocalIOError, .part kept, never retried
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import httpx

from recfetch import backoff
from recfetch.download import http_rules as rules
from recfetch.download.failures import (
    Fail,
    Rejected,
    Restart,
    Retry,
    Stopped,
    exhausted_error,
    local_io_error,
    rejected_error,
    transport_signal,
)
from recfetch.download.objectpart import ObjectPart, proven
from recfetch.download.partfile import Budget, PartFile, extra_algorithm, read_meta, write_meta
from recfetch.download.receive import open_following, receive
from recfetch.download.report import FileResult, NullReporter, Reporter
from recfetch.download.transport import CONNECT_TIMEOUT, DEFAULT_READ_SIZE, STOP_POLL, make_client
from recfetch.errors import (
    IntegrityError,
    InterruptedError_,
    ProviderError,
    RecfetchError,
    TransferError,
)
from recfetch.fsutil import private_dir
from recfetch.providers.base import DownloadTarget, Recording, origin_of

if TYPE_CHECKING:
    from recfetch.destinations import ObjectStore

__all__ = ["Downloader"]

log = logging.getLogger("recfetch.download")

REMINT_MARGIN = 30.0
"""Mint a new URL when the current one expires within this many seconds."""

MAX_REMINTS_WITHOUT_PROGRESS = 3
MAX_RESTARTS = 3
WRITE_TIMEOUT = 30.0
POOL_TIMEOUT = 600.0
BUFFER_BUDGET = 4 << 20
"""Bytes received but not yet written and hashed, across every transfer of a Downloader."""


class Downloader:
    """Moves recordings from just-in-time minted URLs to verified local files.

    Thread-safe: ``fetch`` may run in many threads at once; the threads share
    one connection pool. Two fetches of the same path never run at once.

    ``transfers``: at most this many fetches request and receive bytes at once
    (None: as many as call ``fetch``); opening the .part and minting the URL
    before, and verifying, fsyncing and renaming after, happen outside the
    limit, so a caller with a few more threads than ``transfers`` keeps every
    transfer slot busy while URLs are minted and files made durable.

    ``stall_timeout``: seconds without a byte before an attempt counts as a
    network error. Stalls spend retries even when the .part grew, so a host that
    keeps stalling costs one file at most ``(retries + 1) * (stall_timeout +
    CONNECT_TIMEOUT)`` plus ``retries * backoff.MAX_DELAY`` before it fails.
    """

    def __init__(
        self,
        *,
        retries: int = 5,
        reporter: Reporter | None = None,
        stop: threading.Event | None = None,
        overwrite: bool = False,
        read_size: int = DEFAULT_READ_SIZE,
        stall_timeout: float = 60.0,
        client: httpx.Client | None = None,
        store: ObjectStore | None = None,
        transfers: int | None = None,
    ) -> None:
        self.retries = max(0, retries)
        self.store = store
        """An object-store destination: paths are then keys under its prefix (see objectpart)."""
        self.reporter: Reporter = reporter or NullReporter()
        self.stop = stop
        self.overwrite = overwrite
        self.read_size = max(64 * 1024, read_size)
        self.stall_timeout = stall_timeout
        self.timeout = httpx.Timeout(
            connect=CONNECT_TIMEOUT, read=stall_timeout, write=WRITE_TIMEOUT, pool=POOL_TIMEOUT
        )
        self._own_client = client is None
        self.client = client or make_client(read_size=self.read_size, stop=stop)
        self.budget = Budget(max(BUFFER_BUDGET, 2 * self.read_size))
        self._guard = threading.Lock()
        self._path_locks: dict[str, list[Any]] = {}
        self._slots = threading.BoundedSemaphore(transfers) if transfers else None
        self._fetching = 0

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(
        self, recording: Recording, path: Path, mint: Callable[[], DownloadTarget]
    ) -> FileResult:
        """Download ``recording`` to ``path`` (via ``<path>.part``); never raises per-file errors.

        ``mint`` is called only when bytes must really be transferred, and again
        whenever the URL expires or the storage host rejects it.
        """
        path = Path(path)
        with self._path_lock(path):
            if self.store is not None:
                path, present = self._in_store(recording, path)
            else:
                present = self._already_present(recording, path)
            if present is not None:
                return present
            with self._running() as others:
                return _Job(self, recording, path, mint, alone=not others).run()

    def _already_present(self, recording: Recording, path: Path) -> FileResult | None:
        if self.overwrite:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        if recording.size_bytes is not None and st.st_size != recording.size_bytes:
            return None
        return FileResult(
            ref=recording.ref, outcome="skipped", reason="already present", path=path,
            bytes=st.st_size, sha256=None, error=None, mints=0,
        )

    def _in_store(self, recording: Recording, path: Path) -> tuple[Path, FileResult | None]:
        """HEAD the key: the object proves this recording (skip, nothing minted), is free, or is
        another recording's or not recfetch's (then this one goes to a `_<id>` key, SPEC §3)."""
        assert self.store is not None
        candidates = (path, path.with_name(f"{path.stem}_{recording.id}{path.suffix}"))
        for candidate in candidates:
            try:
                proof, proves = proven(self.store, recording, PurePosixPath(candidate))
            except RecfetchError as exc:
                return candidate, FileResult(
                    ref=recording.ref, outcome="failed", reason="store unreadable", path=None,
                    bytes=0, sha256=None, error=exc, mints=0,
                )
            if proves and not self.overwrite:
                assert proof is not None
                return candidate, FileResult(
                    ref=recording.ref, outcome="skipped", reason="already present", path=candidate,
                    bytes=proof.length, sha256=proof.sha256, error=None, mints=0,
                )
            if proof is None or proof.ref == recording.ref:
                return candidate, None  # free, or this recording's own object (replaced)
        error = IntegrityError(
            f"{self.store.object_url(self.store.key(path.as_posix()))} and its _{recording.id} "
            "variant both hold other objects; nothing was overwritten",
            hint="choose another --name template or prefix",
        )
        return path, FileResult(
            ref=recording.ref, outcome="failed", reason="key taken", path=None,
            bytes=0, sha256=None, error=error, mints=0,
        )

    @contextmanager
    def transfer_slot(self, check_stop: Callable[[], None]) -> Iterator[None]:
        """Hold one of the ``transfers`` slots while bytes are requested and received.

        Waiting for a slot looks at the stop event (``check_stop`` raises) every STOP_POLL s.
        """
        slots = self._slots
        while slots is not None and not slots.acquire(timeout=STOP_POLL):
            check_stop()
        try:
            yield
        finally:
            if slots is not None:
                slots.release()

    @contextmanager
    def _running(self) -> Iterator[int]:
        """Count a fetch that transfers; yields how many others do at this moment."""
        with self._guard:
            others, self._fetching = self._fetching, self._fetching + 1
        try:
            yield others
        finally:
            with self._guard:
                self._fetching -= 1

    @contextmanager
    def _path_lock(self, path: Path) -> Iterator[None]:
        key = os.path.abspath(path)
        with self._guard:
            entry = self._path_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._path_locks[key]


class _Job:
    """One fetch: its .part, its current URL, and the counters that bound its retries."""

    def __init__(
        self,
        engine: Downloader,
        recording: Recording,
        path: Path,
        mint: Callable[[], DownloadTarget],
        *,
        alone: bool = True,
    ) -> None:
        self.engine = engine
        self.alone = alone  # no other fetch runs beside this one: hash on a helper thread
        self.recording = recording
        self.provider = recording.provider
        self.key = recording.ref
        self.path = path
        self.part_path = path.with_name(path.name + ".part")
        self.meta_path = path.with_name(path.name + ".part.meta")
        self.mint_fn = mint
        self.reporter = engine.reporter
        self.stop = engine.stop
        self.mints = 0
        self.target: DownloadTarget | None = None
        self.validity = 0.0
        self.credential_origin: tuple[str, str, int] | None = None
        self.url = ""
        self.expected = recording.size_bytes
        self.total: int | None = None
        self.etag: str | None = None
        self.media_type: str | None = None
        self.meta_total: int | None = None
        self.high_water = 0
        self.reported_total: int | None = None
        self.resumed_from = 0
        self.part: PartFile | ObjectPart | None = None

    # -- driver ---------------------------------------------------------
    def run(self) -> FileResult:
        started = ok = False
        try:
            self._open_part(hash_on_thread=self.alone)
            self.reported_total = self.expected
            self.reporter.file_started(self.key, self.path.name, self.expected, self._part.size)
            started = True
            # Minted before a transfer slot is taken: a provider's API call for this
            # file overlaps the others' transfers instead of holding one of the slots.
            self._ensure_target()
            with self.engine.transfer_slot(self._check_stop):
                self._loop()
            # Verified, made durable and renamed outside the transfer limit: the next
            # transfer already receives while this file's fsyncs wait for the disk.
            result = self._complete()
            ok = True
            return result
        except Stopped:
            kept = self.part is not None and self.part.size > 0
            if self.engine.store is not None:
                kept = False  # the upload is aborted in `finally`; the next run starts it over
            return self._failed(
                InterruptedError_(
                    f"interrupted; {self.part_path.name} is kept and the next run resumes it"
                    if kept else "interrupted; nothing was kept" if self.engine.store is not None
                    else "interrupted before any byte arrived",
                    provider=self.provider,
                ),
                "interrupted",
            )
        except Fail as fail:
            if fail.discard:
                self._discard()
            return self._failed(fail.error, fail.reason)
        finally:
            if self.part is not None:
                if self.part.size == 0 and self.part.fd >= 0 and not self.part.committed:
                    # Nothing to resume: leave no empty .part behind (still locked here).
                    for leftover in (self.part_path, self.meta_path):
                        with suppress(OSError):
                            leftover.unlink(missing_ok=True)
                self.part.close()
            if started:
                self.reporter.file_finished(self.key, ok)

    @property
    def _part(self) -> PartFile | ObjectPart:
        assert self.part is not None
        return self.part

    def _loop(self) -> None:
        """Request until the .part holds the whole recording (retries, re-mints, restarts)."""
        failures = rejections = pages = restarts = stalls = 0
        while True:
            self._check_stop()
            self._ensure_target()
            mark = max(self.high_water, self._part.size)
            try:
                if self._attempt():
                    return
                failures = rejections = 0  # a short 206: progress, ask for the rest
            except Rejected as rejected:
                if self._progressed(mark):
                    rejections = 0
                if rejected.page:
                    pages += 1
                    if pages > 1:
                        raise Fail(
                            IntegrityError(
                                "the storage host sent an HTML or JSON page instead of the "
                                f"recording ({rejected.detail}); nothing was saved",
                                hint="the provider may be failing; try again later",
                                provider=self.provider,
                            ),
                            "error page instead of recording",
                        ) from None
                else:
                    rejections += 1
                    if rejections > MAX_REMINTS_WITHOUT_PROGRESS:
                        on_origin = self.credential_origin is not None and (
                            origin_of(self.url) == self.credential_origin
                        )
                        raise Fail(
                            rejected_error(
                                rejected, provider=self.provider, on_credential_origin=on_origin
                            ),
                            "url rejected",
                        ) from None
                log.debug("%s: %s; minting a new URL", self.key, rejected.detail)
                self.target = None  # a fresh URL; not a retry (SPEC §3)
            except Restart as restart:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise Fail(
                        IntegrityError(
                            f"the storage host keeps answering resumes inconsistently ({restart})",
                            provider=self.provider,
                        ),
                        "inconsistent resume",
                        discard=True,
                    ) from None
                log.debug("%s: %s; starting over", self.key, restart)
                self.start_over()
            except Retry as retry:
                # Progress means the .part grew past its best size: a server that
                # ignores Range and drops every connection must still run out of retries.
                failures = 1 if self._progressed(mark) else failures + 1
                # Stalls are counted even with progress, so a host that sends a
                # little and then stops costs at most `stall_budget()` per file.
                stalls += retry.stall
                if max(failures, stalls) > self.engine.retries:
                    error = exhausted_error(
                        retry, retries=self.engine.retries, provider=self.provider
                    )
                    raise Fail(error, "retries exhausted") from None
                delay = backoff.delay_for(failures, retry.retry_after)
                log.debug("%s: %s; retrying in %.1fs", self.key, retry.detail, delay)
                if not backoff.sleep(delay, self.stop):
                    raise Stopped from None

    def _progressed(self, mark: int) -> bool:
        size = self._part.size
        self.high_water = max(self.high_water, size)
        return size > mark

    def _attempt(self) -> bool:
        """One request; True when the .part now holds the whole recording."""
        offset = self._part.size
        assert self.target is not None
        try:
            response = open_following(self, self.target, rules.resume_headers(offset, self.etag))
            try:
                return receive(self, response, offset)
            finally:
                response.close()
        except httpx.TransportError as exc:
            self._check_stop()
            raise transport_signal(exc, self.url, stall_timeout=self.engine.stall_timeout) from None

    # -- URLs -----------------------------------------------------------
    def _ensure_target(self) -> None:
        if self.target is not None and not self._expiring(self.target):
            return
        for _ in range(MAX_REMINTS_WITHOUT_PROGRESS + 1):
            target = self._mint()
            left = _seconds_left(target)
            if left is None or left > 0:
                self.target = target
                return
            log.debug("%s: the provider handed out an expired URL; minting again", self.key)
        raise Fail(
            TransferError(
                "the provider keeps handing out download URLs that have already expired",
                hint="check this computer's clock",
                provider=self.provider,
            ),
            "url expired",
        )

    def _expiring(self, target: DownloadTarget) -> bool:
        left = _seconds_left(target)
        if left is None:
            return False
        # A URL valid for only a few seconds is still used, not re-minted in a loop.
        return left <= min(REMINT_MARGIN, self.validity / 2)

    def _mint(self) -> DownloadTarget:
        self._check_stop()
        try:
            target = self.mint_fn()
        except RecfetchError as exc:
            raise Fail(exc, "could not get a download URL") from None
        self.mints += 1
        scheme = urlsplit(target.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise Fail(
                ProviderError(
                    f"the provider gave an unsupported download URL ({scheme or 'no'} scheme)",
                    provider=self.provider,
                ),
                "bad url",
            )
        self.validity = _seconds_left(target) or 0.0
        # Credentials belong to one origin; a target that does not name it may
        # only send them to the origin of its own URL.
        self.credential_origin = None
        if target.headers:
            self.credential_origin = target.credential_origin or origin_of(target.url)
        if target.size_bytes is not None:
            if self.expected is None:
                self.expected = target.size_bytes
            elif target.size_bytes != self.expected:
                raise Fail(
                    IntegrityError(
                        f"the provider reports two sizes for {self.key}: "
                        f"{self.expected} and {target.size_bytes} bytes",
                        provider=self.provider,
                    ),
                    "size mismatch",
                )
        return target

    # -- the .part file ---------------------------------------------------
    def _open_part(self, *, hash_on_thread: bool = True) -> None:
        if self.engine.store is not None:
            self.part = ObjectPart(self.engine.store, self.recording, self)
            return
        try:
            private_dir(self.path.parent)
            self.part = PartFile(
                self.part_path,
                self.engine.read_size,
                extra_algorithm(self.recording.checksum),
                self.engine.budget,
                hash_on_thread=hash_on_thread,
            )
        except BlockingIOError:
            raise Fail(
                TransferError(
                    f"another recfetch is already downloading {self.path}",
                    hint="wait for it to finish",
                    retryable=False,
                ),
                "busy",
            ) from None
        except OSError as exc:
            self.write_failed(exc)
        self.etag, self.meta_total = read_meta(self.meta_path) if self._part.size else (None, None)
        stale = (
            self.expected is not None and self._part.size > self.expected
        ) or (
            self.expected is not None
            and self.meta_total is not None
            and self.meta_total != self.expected
        )
        if stale:
            self.start_over(report=False)
        self.resumed_from = self._part.size

    def start_over(self, total: int | None = None, *, report: bool = True) -> None:
        """Empty the .part: the next byte received is byte 0 of the recording."""
        try:
            self._part.truncate()
        except OSError as exc:
            self.write_failed(exc)
        self.etag = None
        self.meta_total = None
        self.total = None
        self.resumed_from = 0
        if self.engine.store is not None:
            return
        with suppress(OSError):
            self.meta_path.unlink(missing_ok=True)
        if report:
            self.reported_total = total if total is not None else self.expected
            self.reporter.file_reset(self.key, 0, self.reported_total)

    def remember_validator(self, etag: str | None) -> None:
        """Keep the ETag and total beside the .part, so a later run can resume safely."""
        if etag == self.etag and self.total == self.meta_total:
            return
        self.etag = etag
        self.meta_total = self.total
        if self.engine.store is not None:
            return  # an upload is not resumed across runs: nothing to remember
        with suppress(OSError):
            write_meta(self.meta_path, etag, self.total)

    def write_failed(self, exc: OSError) -> NoReturn:
        """A local write failed: stop this recording with exit 10 (never retried)."""
        raise Fail(local_io_error(exc, self.path, provider=self.provider), "local write failed")

    def _complete(self) -> FileResult:
        part = self._part
        size = part.size
        for who, expected in (("the storage host", self.total), ("the provider", self.expected)):
            if expected is not None and size != expected:
                raise Fail(
                    IntegrityError(
                        f"size mismatch for {self.key}: received {size} bytes but {who} "
                        f"reports {expected}; the partial file was discarded",
                        provider=self.provider,
                    ),
                    "size mismatch",
                    discard=True,
                )
        try:
            digests = part.digests()
        except OSError as exc:
            self.write_failed(exc)
        checksum = self.recording.checksum
        if checksum and ":" in checksum:
            algo, _, want = checksum.partition(":")
            got = digests.get(algo.lower())
            if got is not None and got.lower() != want.strip().lower():
                raise Fail(
                    IntegrityError(
                        f"checksum mismatch for {self.key}: {algo} is {got}, the provider "
                        f"reports {want}; the partial file was discarded",
                        provider=self.provider,
                    ),
                    "checksum mismatch",
                    discard=True,
                )
        try:
            part.commit(self.path)
        except OSError as exc:
            self.write_failed(exc)
        if self.engine.store is None:
            with suppress(OSError):
                self.meta_path.unlink(missing_ok=True)
        return FileResult(
            ref=self.key, outcome="downloaded", reason="resumed" if self.resumed_from else None,
            path=self.path, bytes=size, sha256=digests["sha256"], error=None, mints=self.mints,
            media_type=self.media_type,
        )

    def _discard(self) -> None:
        if self.part is not None:
            self.part.close()
        if self.engine.store is not None:
            return
        for p in (self.part_path, self.meta_path):
            with suppress(OSError):
                p.unlink(missing_ok=True)

    def _failed(self, error: RecfetchError, reason: str) -> FileResult:
        if error.provider is None:
            error.provider = self.provider
        return FileResult(
            ref=self.key, outcome="failed", reason=reason, path=None, bytes=0,
            sha256=None, error=error, mints=self.mints,
        )

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Stopped


def _seconds_left(target: DownloadTarget) -> float | None:
    if target.expires_at is None:
        return None
    expires = target.expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return (expires - datetime.now(UTC)).total_seconds()
