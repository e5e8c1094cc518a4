"""The download engine: .part files, Range resume, just-in-time URL minting, retries, verification.

One `Downloader` is shared by the `--jobs` threads of a run. Each `fetch` moves
one recording from a freshly minted URL into place and reports what happened
as a `FileResult`; per-file failures are returned, never raised.

Failure handling inside one fetch:

    rejected URL (400/401/403, expiry)  -> mint a new URL, resume; no retry spent
    error page instead of media         -> mint once more, then IntegrityError
    429 / 5xx / network error / stall   -> back off (Retry-After), resume; spends a retry
    inconsistent resume (RFC 9110 §14.4) -> discard the .part and start over
    size or checksum mismatch           -> IntegrityError, nothing renamed into place
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import select
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from recfetch import backoff
from recfetch.errors import (
    IntegrityError,
    InterruptedError_,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RecfetchError,
    TransferError,
)
from recfetch.providers._http import USER_AGENT
from recfetch.providers.base import DownloadTarget, Recording, origin_of
from recfetch.redact import SENSITIVE_HEADERS, redact_url

__all__ = [
    "Downloader",
    "FileResult",
    "LocalWriteError",
    "NullReporter",
    "Reporter",
    "make_client",
]

log = logging.getLogger("recfetch.download")

DEFAULT_READ_SIZE = 1 << 20
"""Socket read size. httpcore reads 64 KiB at a time; 1 MiB reads make a 1 GiB
loopback download about twice as fast (bench/download_vs_curl.py)."""

REMINT_MARGIN = 30.0
"""Mint a new URL when the current one expires within this many seconds."""

MAX_REMINTS_WITHOUT_PROGRESS = 3
MAX_RESTARTS = 3
MAX_REDIRECTS = 5
SNIFF_BYTES = 64
CONNECT_TIMEOUT = 15.0
WRITE_TIMEOUT = 30.0
POOL_TIMEOUT = 600.0
STOP_POLL = 0.25
"""How often a blocked socket read looks at the stop event."""

WRITEBACK_EVERY = 32 << 20
"""Start disk writeback after this many new bytes (0: leave it all to the final fsync)."""

STAGE_QUEUE_CHUNKS = 2
"""Chunks queued for the writing and for the hashing thread: bounds memory to a few reads."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_REJECTED_STATUSES = frozenset({400, 401, 403})
_ERROR_MEDIA_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "application/json",
        "application/problem+json",
        "application/xml",
        "text/xml",
    }
)
_ERROR_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"<error>", b'{"')
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)
_XML_CODE = re.compile(rb"<Code>\s*([A-Za-z0-9._-]{1,64})\s*</Code>")
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


# ---------------------------------------------------------------------------
# public interface


class Reporter(Protocol):
    """Progress sink; `recfetch.output` draws bars, tests record calls."""

    def file_started(self, key: str, name: str, total: int | None, completed: int) -> None: ...

    def file_advance(self, key: str, n: int) -> None: ...

    def file_reset(self, key: str, completed: int, total: int | None) -> None: ...

    def file_finished(self, key: str, ok: bool) -> None: ...


class NullReporter:
    """A Reporter that reports nothing."""

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


class LocalWriteError(TransferError):
    """The recording could not be written to the local disk (full disk, permissions)."""

    retryable = False


def make_client(
    *,
    read_size: int = DEFAULT_READ_SIZE,
    stop: threading.Event | None = None,
    max_connections: int = 64,
) -> httpx.Client:
    """An httpx client for storage hosts: no credentials, no cookies, no redirects, big reads.

    Security: presigned storage URLs carry their own authorization in the
    query string. This client has no default auth, keeps no cookies and never
    follows redirects by itself, so provider credentials can only ever be
    attached per request by `Downloader` while the URL is on the provider's
    own origin.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    client = httpx.Client(
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT),
        limits=limits,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )
    _tune_transports(client, read_size=read_size, stop=stop)
    return client


class Downloader:
    """Moves recordings from just-in-time minted URLs to verified local files.

    Thread-safe: ``fetch`` may run in many threads at once; the threads share
    one connection pool. Two fetches of the same path never run at once.
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
    ) -> None:
        self.retries = max(0, retries)
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
        _tune_allocator()
        self._guard = threading.Lock()
        self._path_locks: dict[str, list[Any]] = {}

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
            present = self._already_present(recording, path)
            if present is not None:
                return present
            return _Job(self, recording, path, mint).run()

    # ------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# one fetch


class _Stopped(Exception):
    """The stop event was set."""


class _Fail(Exception):
    def __init__(self, error: RecfetchError, reason: str, *, discard: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason
        self.discard = discard


class _Rejected(Exception):
    """The storage host refused this URL (or sent an error page): mint a new one."""

    def __init__(self, detail: str, *, page: bool = False, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.page = page
        self.status = status


class _Restart(Exception):
    """The resume cannot be trusted: discard the .part and start from byte 0."""


class _Retry(Exception):
    """A transient failure that spends one retry."""

    def __init__(
        self,
        kind: type[TransferError] | type[RateLimitedError],
        detail: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        self.status = status


class _Job:
    """One fetch: its .part, its current URL, and the counters that bound its retries."""

    def __init__(
        self,
        engine: Downloader,
        recording: Recording,
        path: Path,
        mint: Callable[[], DownloadTarget],
    ) -> None:
        self.engine = engine
        self.recording = recording
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
        self.received = 0
        self.high_water = 0
        self.reported_total: int | None = None
        self.resumed_from = 0
        self.part: _Part | None = None

    # -- driver ---------------------------------------------------------
    def run(self) -> FileResult:
        started = False
        ok = False
        try:
            self._open_part()
            self.reported_total = self.expected
            self.reporter.file_started(self.key, self.path.name, self.expected, self._part.size)
            started = True
            result = self._loop()
            ok = True
            return result
        except _Stopped:
            kept = self._settled_size() > 0
            return self._failed(
                InterruptedError_(
                    f"interrupted; {self.part_path.name} is kept and the next run resumes it"
                    if kept else "interrupted before any byte arrived",
                    provider=self.recording.provider,
                ),
                "interrupted",
            )
        except _Fail as fail:
            if fail.discard:
                self._discard()
            return self._failed(fail.error, fail.reason)
        finally:
            if self.part is not None:
                if self._settled_size() == 0 and self.part.fd >= 0 and not self.part.committed:
                    # Nothing to resume: leave no empty .part behind (still locked here).
                    for leftover in (self.part_path, self.meta_path):
                        with suppress(OSError):
                            leftover.unlink(missing_ok=True)
                self.part.close()
            if started:
                self.reporter.file_finished(self.key, ok)

    def _settled_size(self) -> int:
        """The .part size once any in-flight writes have landed (0 without a .part)."""
        if self.part is None:
            return 0
        with suppress(OSError):
            self.part.flush()
        return self.part.size

    @property
    def _part(self) -> _Part:
        assert self.part is not None
        return self.part

    def _loop(self) -> FileResult:
        failures = 0
        rejections = 0
        pages = 0
        restarts = 0
        while True:
            self._check_stop()
            self._ensure_target()
            self.received = 0
            mark = max(self.high_water, self._part.size)
            try:
                if self._attempt():
                    return self._complete()
                failures = rejections = 0  # a short 206: progress, ask for the rest
            except _Rejected as rejected:
                if self._progressed(mark):
                    rejections = 0
                if rejected.page:
                    pages += 1
                    if pages > 1:
                        raise _Fail(
                            IntegrityError(
                                "the storage host sent an HTML or JSON page instead of the "
                                f"recording ({rejected.detail}); nothing was saved",
                                hint="the provider may be failing; try again later",
                                provider=self.recording.provider,
                            ),
                            "error page instead of recording",
                        ) from None
                else:
                    rejections += 1
                    if rejections > MAX_REMINTS_WITHOUT_PROGRESS:
                        raise _Fail(self._rejected_error(rejected), "url rejected") from None
                log.debug("%s: %s; minting a new URL", self.key, rejected.detail)
                self.target = None  # a fresh URL; not a retry (SPEC §3)
            except _Restart as restart:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise _Fail(
                        IntegrityError(
                            f"the storage host keeps answering resumes inconsistently ({restart})",
                            provider=self.recording.provider,
                        ),
                        "inconsistent resume",
                        discard=True,
                    ) from None
                log.debug("%s: %s; starting over", self.key, restart)
                self._start_over()
            except _Retry as retry:
                # Progress means the .part grew past its best size: a server that
                # ignores Range and drops every connection must still run out of retries.
                failures = 1 if self._progressed(mark) else failures + 1
                if failures > self.engine.retries:
                    raise _Fail(self._exhausted(retry), "retries exhausted") from None
                delay = backoff.delay_for(failures, retry.retry_after)
                log.debug("%s: %s; retrying in %.1fs", self.key, retry.detail, delay)
                if not backoff.sleep(delay, self.stop):
                    raise _Stopped from None

    def _progressed(self, mark: int) -> bool:
        size = self._part.size
        self.high_water = max(self.high_water, size)
        return size > mark

    def _attempt(self) -> bool:
        """One request; True when the .part now holds the whole recording."""
        offset = self._part.size
        headers = {"Accept-Encoding": "identity"}  # the stored bytes, not a re-encoding
        if offset > 0:
            # RFC 9110 §14.2: ask for the rest; §13.1.5: only if the object is unchanged,
            # which needs a strong validator.
            headers["Range"] = f"bytes={offset}-"
            if self.etag and not self.etag.startswith("W/"):
                headers["If-Range"] = self.etag
        try:
            response = self._open(headers)
            try:
                status = response.status_code
                if status in (200, 206):
                    return self._receive(response, offset)
                if status == 416:
                    return self._range_not_satisfiable(response, offset)
                raise self._status_error(response)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            self._check_stop()
            what = "could not connect to" if isinstance(exc, httpx.ConnectTimeout) else (
                f"no data for {self.engine.stall_timeout:g}s from"
            )
            raise _Retry(TransferError, f"{what} {redact_url(self.url)}") from None
        except httpx.UnsupportedProtocol:
            raise _Fail(
                ProviderError(f"unsupported download URL {redact_url(self.url)}"), "bad url"
            ) from None
        except httpx.TransportError as exc:
            self._check_stop()
            raise _Retry(
                TransferError,
                f"connection to {redact_url(self.url)} failed ({_describe(exc)})",
            ) from None

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
        raise _Fail(
            TransferError(
                "the provider keeps handing out download URLs that have already expired",
                hint="check this computer's clock",
                provider=self.recording.provider,
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
            raise _Fail(exc, "could not get a download URL") from None
        self.mints += 1
        scheme = urlsplit(target.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise _Fail(
                ProviderError(
                    f"the provider gave an unsupported download URL ({scheme or 'no'} scheme)",
                    provider=self.recording.provider,
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
                raise _Fail(
                    IntegrityError(
                        f"the provider reports two sizes for {self.key}: "
                        f"{self.expected} and {target.size_bytes} bytes",
                        provider=self.recording.provider,
                    ),
                    "size mismatch",
                )
        return target

    def _open(self, headers: dict[str, str]) -> httpx.Response:
        """GET the target, following redirects by hand so credentials never leave their origin."""
        target = self.target
        assert target is not None
        url = target.url
        credentials = dict(target.headers)
        for _ in range(MAX_REDIRECTS + 1):
            self.url = url
            on_origin = bool(credentials) and origin_of(url) == self.credential_origin
            request = self.engine.client.build_request(
                "GET", url, headers={**headers, **(credentials if on_origin else {})},
                timeout=self.engine.timeout,
            )
            if not on_origin:
                # Security: a storage host (or whatever a redirect points at) must
                # never see the provider's API key, token or session cookie. Once a
                # redirect leaves the credential origin they are dropped for good.
                credentials = {}
                for name in list(request.headers.keys()):
                    if name.lower() in SENSITIVE_HEADERS:
                        del request.headers[name]
            response = self.engine.client.send(
                request, stream=True, auth=None, follow_redirects=False
            )
            location = response.headers.get("location")
            if response.status_code not in _REDIRECT_STATUSES or not location:
                return response
            response.close()
            next_url = urljoin(url, location.strip())
            next_scheme = urlsplit(next_url).scheme.lower()
            if next_scheme not in ("http", "https") or (
                urlsplit(url).scheme.lower() == "https" and next_scheme == "http"
            ):
                raise _Fail(
                    ProviderError(
                        f"refusing to follow a redirect from {redact_url(url)} "
                        f"to {redact_url(next_url)}",
                        provider=self.recording.provider,
                    ),
                    "unsafe redirect",
                )
            if origin_of(next_url) != origin_of(url):
                credentials = {}
            url = next_url
        raise _Fail(
            ProviderError(
                f"more than {MAX_REDIRECTS} redirects from {redact_url(target.url)}",
                provider=self.recording.provider,
            ),
            "too many redirects",
        )

    # -- responses -------------------------------------------------------
    def _receive(self, response: httpx.Response, offset: int) -> bool:
        media_type = _essence(response.headers.get("content-type"))
        if media_type in _ERROR_MEDIA_TYPES or media_type.endswith(("+json", "+xml")):
            raise _Rejected(f"HTTP {response.status_code} with Content-Type {media_type}",
                            page=True)
        if media_type and media_type != "application/octet-stream":
            self.media_type = media_type
        chunks: Iterable[bytes] = response.iter_raw()
        framed = True
        end: int | None = None
        if response.status_code == 206:
            end, total = self._check_content_range(response, offset)
            etag = response.headers.get("etag")
            if etag and self.etag and etag != self.etag:
                raise _Restart("the recording changed on the server (new ETag)")
            self.total = total
        else:
            length = _content_length(response)
            if length is not None and self.expected is not None and length != self.expected:
                raise _Fail(
                    IntegrityError(
                        f"size mismatch: the storage host sends {length} bytes but the "
                        f"provider reports {self.expected} bytes for {self.key}",
                        provider=self.recording.provider,
                    ),
                    "size mismatch",
                )
            head, chunks = _peek(iter(chunks), SNIFF_BYTES)
            if _looks_like_error_page(head):
                raise _Rejected("HTTP 200 with an HTML/JSON/XML body", page=True)
            if offset > 0:
                # The server ignored our Range (Kazoo does) or If-Range found the
                # object changed (RFC 9110 §13.1.5): this body starts at byte 0.
                log.debug("%s: got 200 to a resume request; starting over", self.key)
                self._start_over(total=length if length is not None else self.expected)
            self.total = length
            framed = length is not None or "chunked" in response.headers.get(
                "transfer-encoding", ""
            ).lower()
            chunks = _chain(head, chunks)
        self._remember_validator(response.headers.get("etag"))
        if self.total is not None and self.total != self.reported_total:
            self.reported_total = self.total
            self.reporter.file_reset(self.key, self._part.size, self.total)
        part = self._part
        try:
            for chunk in chunks:
                if self.stop is not None and self.stop.is_set():
                    raise _Stopped
                part.write(chunk, self._write_failed)
                self.received += len(chunk)
                self.reporter.file_advance(self.key, len(chunk))
        except BaseException:
            # Whatever stopped the body, the bytes already received go to disk
            # first: the next attempt resumes after them. A full disk wins over
            # a network error (retrying would not help).
            error = part.flush()
            if error is not None:
                self._write_failed(error)
            raise
        error = part.flush()
        if error is not None:
            self._write_failed(error)
        # The body ended cleanly: h11 has checked it against Content-Length or
        # the chunked framing.
        if end is not None and part.size != end + 1:
            raise _Retry(TransferError, "the storage host sent less than its Content-Range")
        if self.total is not None:
            return part.size >= self.total
        if framed or self.expected is not None:
            return True
        raise _Fail(
            IntegrityError(
                "the storage host neither said how long the recording is nor framed the body, "
                "so a cut-off transfer cannot be told from a complete one",
                provider=self.recording.provider,
            ),
            "unverifiable length",
            discard=True,
        )

    def _check_content_range(self, response: httpx.Response, offset: int) -> tuple[int, int]:
        """RFC 9110 §14.4: the 206 must be exactly the rest of the object we asked for."""
        value = response.headers.get("content-range", "")
        match = _CONTENT_RANGE.fullmatch(value.strip())
        if not match or match.group(3) == "*":
            raise _Restart(f"unusable Content-Range {value!r}")
        start, end = int(match.group(1)), int(match.group(2))
        total = int(match.group(3))
        if start != offset:
            raise _Restart(f"asked to resume at byte {offset} but got bytes from {start}")
        if end < start or end >= total:
            raise _Restart(f"inconsistent Content-Range {value!r}")
        if self.expected is not None and total != self.expected:
            raise _Restart(f"the object is {total} bytes, expected {self.expected}")
        if self.meta_total is not None and total != self.meta_total:
            raise _Restart("the recording changed on the server (new size)")
        length = _content_length(response)
        if length is not None and length != end - start + 1:
            raise _Restart("Content-Length disagrees with Content-Range")
        return end, total

    def _range_not_satisfiable(self, response: httpx.Response, offset: int) -> bool:
        """RFC 9110 §15.5.17: a 416 to ``bytes=<size>-`` means the .part is already whole."""
        match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        total = int(match.group(1)) if match else None
        if offset > 0:
            if total is not None and total == offset and self.expected in (None, total):
                self.total = total
                return True
            if total is None and self.expected == offset:
                self.total = offset
                return True
        raise _Restart("the storage host cannot resume this partial file (HTTP 416)")

    def _status_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        code = _error_code(response)
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        where = redact_url(self.url)
        provider = self.recording.provider
        if status in _REJECTED_STATUSES:
            return _Rejected(f"{where} answered {detail}", status=status)
        if status in (404, 410):
            return _Fail(
                NotFoundError(
                    f"the storage host has no such file ({detail}) at {where}",
                    hint=f"the recording may have been deleted; check `recfetch {provider} "
                    f"show {self.key}`",
                    provider=provider,
                    http_status=status,
                ),
                "not found",
            )
        if status == 429 or status >= 500:
            wait = backoff.retry_after_seconds(response.headers.get("retry-after"))
            kind: type[TransferError] | type[RateLimitedError] = (
                RateLimitedError if status == 429 else ProviderError
            )
            if wait is not None and wait > backoff.MAX_HONOURED_WAIT:
                return _Fail(
                    kind(
                        f"{where} answered {detail} and asks to wait {wait:.0f}s",
                        hint="try again later",
                        provider=provider,
                        http_status=status,
                    ),
                    "rate limited" if status == 429 else "storage host error",
                )
            return _Retry(kind, f"{where} answered {detail}", retry_after=wait, status=status)
        return _Fail(
            ProviderError(
                f"the storage host refused the download ({detail}) at {where}",
                provider=provider,
                http_status=status,
            ),
            "refused",
        )

    def _rejected_error(self, rejected: _Rejected) -> RecfetchError:
        if self.credential_origin is not None and origin_of(self.url) == self.credential_origin:
            from recfetch.errors import AuthError

            return AuthError(
                f"{self.recording.provider} rejected the credentials while downloading "
                f"({rejected.detail})",
                hint=f"run `recfetch {self.recording.provider} login`",
                provider=self.recording.provider,
                http_status=rejected.status,
            )
        return TransferError(
            f"the storage host keeps rejecting freshly minted download URLs ({rejected.detail})",
            hint="check this computer's clock; the provider may be failing",
            provider=self.recording.provider,
            http_status=rejected.status,
            retryable=False,
        )

    def _exhausted(self, retry: _Retry) -> RecfetchError:
        retries = self.engine.retries
        tail = f"; gave up after {retries} retr{'y' if retries == 1 else 'ies'}"
        hint = "run the command again later; the partial file is kept and will be resumed"
        if retry.kind is RateLimitedError:
            hint = "wait a few minutes or lower --jobs; the partial file is kept"
        return retry.kind(
            retry.detail + tail,
            hint=hint,
            provider=self.recording.provider,
            http_status=retry.status,
            retryable=True,
        )

    # -- the .part file ---------------------------------------------------
    def _open_part(self) -> None:
        try:
            _make_dirs(self.path.parent)
            self.part = _Part(self.part_path, self.engine.read_size, _extra_algorithm(
                self.recording.checksum))
        except BlockingIOError:
            raise _Fail(
                TransferError(
                    f"another recfetch is already downloading {self.path}",
                    hint="wait for it to finish",
                    retryable=False,
                ),
                "busy",
            ) from None
        except OSError as exc:
            raise _Fail(self._write_error(exc), "local write failed") from None
        self.etag, self.meta_total = _read_meta(self.meta_path) if self.part.size else (None, None)
        stale = (
            self.expected is not None and self.part.size > self.expected
        ) or (
            self.expected is not None
            and self.meta_total is not None
            and self.meta_total != self.expected
        )
        if stale:
            self._start_over(report=False)
        self.resumed_from = self.part.size

    def _start_over(self, total: int | None = None, *, report: bool = True) -> None:
        try:
            self._part.truncate()
        except OSError as exc:
            raise _Fail(self._write_error(exc), "local write failed") from None
        self.etag = None
        self.meta_total = None
        self.total = None
        self.resumed_from = 0
        with suppress(OSError):
            self.meta_path.unlink(missing_ok=True)
        if report:
            self.reported_total = total if total is not None else self.expected
            self.reporter.file_reset(self.key, 0, self.reported_total)

    def _remember_validator(self, etag: str | None) -> None:
        if etag == self.etag and self.total == self.meta_total:
            return
        self.etag = etag
        self.meta_total = self.total
        # Only the validator and the length: never the URL (it is a credential).
        with suppress(OSError):
            _write_meta(self.meta_path, etag, self.total)

    def _write_failed(self, exc: OSError) -> None:
        raise _Fail(self._write_error(exc), "local write failed")

    def _write_error(self, exc: OSError) -> LocalWriteError:
        directory = self.path.parent
        reason = exc.strerror or type(exc).__name__
        if exc.errno in _NO_SPACE:
            return LocalWriteError(
                f"no space left to write {self.path.name} in {directory} ({reason}): "
                "free some space and run the command again; the partial file is kept "
                "and will be resumed",
                provider=self.recording.provider,
            )
        return LocalWriteError(
            f"could not write {self.path.name} in {directory} ({reason})",
            hint="check that the directory exists and is writable",
            provider=self.recording.provider,
        )

    def _complete(self) -> FileResult:
        part = self._part
        size = part.size
        for who, expected in (
            ("the storage host", self.total),
            ("the provider", self.expected),
        ):
            if expected is not None and size != expected:
                raise _Fail(
                    IntegrityError(
                        f"size mismatch for {self.key}: received {size} bytes but {who} "
                        f"reports {expected}; the partial file was discarded",
                        provider=self.recording.provider,
                    ),
                    "size mismatch",
                    discard=True,
                )
        try:
            digests = part.digests()
        except OSError as exc:
            raise _Fail(self._write_error(exc), "local write failed") from None
        sha256 = digests["sha256"]
        checksum = self.recording.checksum
        if checksum and ":" in checksum:
            algo, _, want = checksum.partition(":")
            got = digests.get(algo.lower())
            if got is not None and got.lower() != want.strip().lower():
                raise _Fail(
                    IntegrityError(
                        f"checksum mismatch for {self.key}: {algo} is {got}, the provider "
                        f"reports {want}; the partial file was discarded",
                        provider=self.recording.provider,
                    ),
                    "checksum mismatch",
                    discard=True,
                )
        try:
            part.commit(self.path)
        except OSError as exc:
            raise _Fail(self._write_error(exc), "local write failed") from None
        with suppress(OSError):
            self.meta_path.unlink(missing_ok=True)
        return FileResult(
            ref=self.key,
            outcome="downloaded",
            reason="resumed" if self.resumed_from else None,
            path=self.path,
            bytes=size,
            sha256=sha256,
            error=None,
            mints=self.mints,
            media_type=self.media_type,
        )

    def _discard(self) -> None:
        if self.part is not None:
            self.part.close()
        for p in (self.part_path, self.meta_path):
            with suppress(OSError):
                p.unlink(missing_ok=True)

    def _failed(self, error: RecfetchError, reason: str) -> FileResult:
        if error.provider is None:
            error.provider = self.recording.provider
        return FileResult(
            ref=self.key, outcome="failed", reason=reason, path=None, bytes=0,
            sha256=None, error=error, mints=self.mints,
        )

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise _Stopped


class _Part:
    """The ``.part`` file: 0600, exclusively locked, written with raw ``os.write``.

    New bytes are written on a helper thread and then hashed on another, so
    receiving, writing and hashing overlap; ``flush`` waits for both and makes
    ``size`` exact again. Bytes already on disk from an earlier attempt or run
    are hashed only when needed (before the first new byte, or at completion).
    """

    def __init__(self, path: Path, read_size: int, extra_algorithm: str | None) -> None:
        self.path = path
        self.read_size = read_size
        self.extra = extra_algorithm
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(path, flags, 0o600)
        try:
            # Another process (or a duplicate ref in this run) writing the same
            # .part would interleave bytes; the lock makes that impossible.
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(self.fd, 0o600)
            self._size = os.fstat(self.fd).st_size
            os.lseek(self.fd, 0, os.SEEK_END)
        except BaseException:
            os.close(self.fd)
            raise
        self.hasher = _Hasher(extra_algorithm)
        self.hashed = 0 if self._size == 0 else -1
        """How many leading bytes the hasher has seen (-1: it must re-read the file)."""
        self.committed = False
        self._writer: _Stage | None = None
        self._on_disk = self._size
        self._advised = self._size

    @property
    def size(self) -> int:
        """Bytes in the file; only known between writes, so `flush` first."""
        if self._writer is not None:
            raise RuntimeError("the .part size is unknown while writes are in flight")
        return self._size

    def write(self, data: bytes, on_error: Callable[[OSError], None]) -> None:
        """Queue ``data`` for writing; a failed earlier write is reported via ``on_error``."""
        if self._writer is None:
            if self.hashed != self.size:
                try:
                    self._rehash()
                except OSError as exc:
                    on_error(exc)
            self._on_disk = self._size
            self._writer = _Stage("recfetch-write", self._write_now)
        elif self._writer.error is not None:
            error = self.flush()
            if error is not None:
                on_error(error)
        self._writer.put(data)

    def flush(self) -> OSError | None:
        """Wait until every queued byte is on disk (or failed); returns the write error."""
        if self._writer is None:
            return None
        error = self._writer.close()
        self._writer = None
        self._size = self._on_disk
        if error is None:
            self.hashed = self._size
            return None
        self.hashed = -1
        if not isinstance(error, OSError):
            raise error
        return error

    def _write_now(self, data: bytes) -> None:  # on the writer thread
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done:])
        finally:
            self._on_disk += done
        self.hasher.update(data)
        if WRITEBACK_EVERY and self._on_disk - self._advised >= WRITEBACK_EVERY:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Start writing dirty pages to disk now, so the fsync before the rename is short.

        On Linux, POSIX_FADV_DONTNEED starts writeback of dirty pages without
        waiting for it, and drops pages that are already clean, so a big
        download also does not flush the page cache. Advice only: failures are
        ignored.
        """
        self._advised = self._on_disk
        with suppress(OSError, AttributeError):
            os.posix_fadvise(self.fd, 0, self._on_disk, os.POSIX_FADV_DONTNEED)

    def truncate(self) -> None:
        self.flush()
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self._size = self._on_disk = 0
        self.hasher.close()
        self.hasher = _Hasher(self.extra)
        self.hashed = 0

    def digests(self) -> dict[str, str]:
        error = self.flush()
        if error is not None:
            raise error
        if self.hashed != self.size:
            self._rehash()
        return self.hasher.finish()

    def commit(self, final: Path) -> None:
        # Durable before visible: the final name must never point at bytes that
        # a crash could still lose.
        os.fsync(self.fd)
        os.replace(self.path, final)
        self.committed = True
        _fsync_dir(final.parent)

    def close(self) -> None:
        with suppress(OSError):
            self.flush()
        self.hasher.close()
        if self.fd >= 0:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def _rehash(self) -> None:
        self.hasher.close()
        self.hasher = _Hasher(self.extra)
        position = 0
        while position < self._size:
            chunk = os.pread(self.fd, min(self.read_size, self._size - position), position)
            if not chunk:
                break
            self.hasher.update(chunk)
            position += len(chunk)
        self._size = position
        os.lseek(self.fd, position, os.SEEK_SET)
        self.hashed = position


class _Stage:
    """One helper thread applying ``work`` to queued chunks in order.

    The queue is bounded, so a slow disk or hash slows the download instead of
    buffering it in memory. The first exception stops the work (later chunks
    are drained and dropped) and is returned by ``close``.
    """

    def __init__(self, name: str, work: Callable[[bytes], None]) -> None:
        self._name = name
        self._work = work
        self._queue: queue.Queue[bytes | None] = queue.Queue(STAGE_QUEUE_CHUNKS)
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def put(self, data: bytes) -> None:
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
            if self.error is None:
                try:
                    self._work(data)
                except BaseException as exc:  # handed to the fetch by close()
                    self.error = exc


class _Hasher:
    """sha256 (plus the provider's checksum algorithm) computed on a helper thread.

    hashlib releases the GIL for large buffers, so hashing one chunk overlaps
    with receiving and writing the next ones; hashing inline costs about as
    much CPU as the whole loopback transfer.
    """

    def __init__(self, extra_algorithm: str | None) -> None:
        self.hashes = {"sha256": hashlib.sha256()}
        if extra_algorithm and extra_algorithm != "sha256":
            self.hashes[extra_algorithm] = hashlib.new(extra_algorithm)
        self._stage = _Stage("recfetch-hash", self._update_now)

    def update(self, data: bytes) -> None:
        self._stage.put(data)

    def finish(self) -> dict[str, str]:
        error = self._stage.close()
        if error is not None:
            raise error
        return {name: h.hexdigest() for name, h in self.hashes.items()}

    def close(self) -> None:
        self._stage.close()

    def _update_now(self, data: bytes) -> None:
        for h in self.hashes.values():
            h.update(data)


# ---------------------------------------------------------------------------
# transport tuning


class _TunedStream(httpcore.NetworkStream):
    """A socket stream that reads in large gulps and wakes up when the run is stopped.

    httpcore asks for 64 KiB per read; every read then travels through h11,
    httpcore and httpx, so per-read overhead dominates a fast download. We ask
    the socket for up to ``read_size`` and coalesce whatever is already
    buffered (TLS hands out one 16 KiB record per read).
    """

    def __init__(
        self, inner: httpcore.NetworkStream, read_size: int, stop: threading.Event | None
    ) -> None:
        self._inner = inner
        self._read_size = read_size
        self._stop = stop
        self._eof = False
        self._poll: Any = None
        sock = inner.get_extra_info("socket")
        if sock is not None and hasattr(select, "poll"):
            with suppress(OSError, ValueError):
                self._poll = select.poll()
                self._poll.register(sock, select.POLLIN)
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._eof:
            return b""
        want = max(max_bytes, self._read_size)
        data = self._read_patiently(want, timeout)
        if not data:
            self._eof = True
            return b""
        if len(data) >= want:
            return data
        parts = [data]
        got = len(data)
        while got < want and self._ready():
            try:
                more = self._inner.read(want - got, timeout)
            except (httpcore.ReadError, httpcore.ReadTimeout):
                break  # hand over what arrived; the next read reports the failure
            if not more:
                self._eof = True
                break
            parts.append(more)
            got += len(more)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _ready(self) -> bool:
        pending = getattr(self._sock, "pending", None)
        if pending is not None:
            with suppress(OSError, ValueError):
                if pending() > 0:
                    return True
        if self._poll is None:
            return False
        try:
            return bool(self._poll.poll(0))
        except (OSError, ValueError):
            return False

    def _read_patiently(self, want: int, timeout: float | None) -> bytes:
        if self._stop is None:
            return self._inner.read(want, timeout)
        # Wait in short slices so that a stopped run does not sit out a whole
        # stall timeout inside recv(); a timed-out recv consumes nothing.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stop.is_set():
                raise httpcore.ReadTimeout("stopped")
            slice_ = STOP_POLL
            if deadline is not None:
                slice_ = max(0.0, min(STOP_POLL, deadline - time.monotonic()))
            try:
                return self._inner.read(want, slice_)
            except httpcore.ReadTimeout:
                if self._stop.is_set() or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _TunedStream(inner, self._read_size, self._stop)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _TunedBackend(httpcore.NetworkBackend):
    def __init__(
        self, inner: httpcore.NetworkBackend, read_size: int, stop: threading.Event | None
    ) -> None:
        self.inner = inner
        self.read_size = read_size
        self.stop = stop

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _TunedStream(stream, self.read_size, self.stop)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_unix_socket(path, timeout, socket_options)
        return _TunedStream(stream, self.read_size, self.stop)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def _tune_transports(client: httpx.Client, *, read_size: int, stop: threading.Event | None) -> int:
    """Install `_TunedBackend` in the client's connection pools; returns how many.

    httpx has no public hook for the network backend, so this reaches into the
    pool; if a future httpx moves it, downloads still work, only slower (a test
    checks that the tuning is in place).
    """
    transports = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    tuned = 0
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(
            backend, _TunedBackend
        ):
            pool._network_backend = _TunedBackend(backend, read_size, stop)  # type: ignore[union-attr]
            tuned += 1
    return tuned


_allocator_tuned = False


def _tune_allocator() -> None:
    """Keep glibc from handing 1 MiB buffers back to the kernel after every chunk.

    Each chunk allocates a few 1 MiB buffers (socket read, h11, httpcore) that
    are freed a moment later, partly on the hashing thread. glibc's adaptive
    thresholds then trim the heap and page-fault the same memory back in: a
    1 GiB download took ~140,000 page faults and ~0.5 s of system time. Serving
    allocations up to 4 MiB from the heap and trimming only past 16 MiB of free
    space cuts that to ~11,000 faults without raising peak RSS (measured with
    bench/download_vs_curl.py). Process-wide, once, glibc only; a no-op elsewhere.
    """
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return
    _allocator_tuned = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's <malloc.h>
    mallopt(m_mmap_threshold, 4 << 20)
    mallopt(m_trim_threshold, 16 << 20)


def is_tuned(client: httpx.Client) -> bool:
    """True when the client's default transport reads in large gulps."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), _TunedBackend)


# ---------------------------------------------------------------------------
# helpers


def _seconds_left(target: DownloadTarget) -> float | None:
    if target.expires_at is None:
        return None
    expires = target.expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return (expires - datetime.now(UTC)).total_seconds()


def _essence(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _looks_like_error_page(head: bytes) -> bool:
    start = head.lstrip(b" \t\r\n\xef\xbb\xbf").lower()
    return start.startswith(_ERROR_PREFIXES)


def _peek(chunks: Iterator[bytes], n: int) -> tuple[bytes, Iterator[bytes]]:
    """At least ``n`` leading bytes (fewer at the end of the body) and the rest."""
    parts: list[bytes] = []
    got = 0
    for chunk in chunks:
        parts.append(chunk)
        got += len(chunk)
        if got >= n:
            break
    return (parts[0] if len(parts) == 1 else b"".join(parts)), chunks


def _chain(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _error_code(response: httpx.Response) -> str | None:
    """The S3-style ``<Code>`` of an error body (never the body itself: it can echo the URL)."""
    body = b""
    try:
        for chunk in response.iter_raw():
            body += chunk
            if len(body) >= 16 * 1024:
                break
    except httpx.HTTPError:
        pass
    match = _XML_CODE.search(body)
    if match:
        return match.group(1).decode("ascii")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(parsed, dict):
        for key in ("code", "error", "Code"):
            value = parsed.get(key)
            if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._ -]{1,64}", value):
                return value
    return None


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed before the whole body arrived"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.ReadError):
        return "read error"
    return type(exc).__name__


def _extra_algorithm(checksum: str | None) -> str | None:
    if not checksum or ":" not in checksum:
        return None
    algo = checksum.split(":", 1)[0].strip().lower()
    return algo if algo in hashlib.algorithms_available else None


def _make_dirs(directory: Path) -> None:
    """Create missing parents with mode 0700 (recordings are private)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)  # mkdir's mode is filtered by umask; be exact


def _fsync_dir(directory: Path) -> None:
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


def _read_meta(path: Path) -> tuple[str | None, int | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    etag = data.get("etag") if isinstance(data.get("etag"), str) else None
    total = data.get("total") if isinstance(data.get("total"), int) else None
    return etag, total


def _write_meta(path: Path, etag: str | None, total: int | None) -> None:
    payload = json.dumps({"etag": etag, "total": total}).encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, payload)
    finally:
        os.close(fd)
