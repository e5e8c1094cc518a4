"""One request of a transfer: open the URL (following redirects by hand), then take the body.

Functions of the running job (`engine._Job`): they read and update its URL,
validator, totals and .part, and signal the loop with `failures` exceptions.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx

from recfetch.download import http_rules as rules
from recfetch.download.decoding import DECODABLE, Decoder, EncodingCutOff
from recfetch.download.failures import Fail, Rejected, Restart, Retry, Stopped, status_failure
from recfetch.download.partfile import PartFile
from recfetch.download.transport import DirectBody, direct_body
from recfetch.errors import IntegrityError, ProviderError, TransferError
from recfetch.providers.base import DownloadTarget, origin_of
from recfetch.redact import SENSITIVE_HEADERS
from recfetch.urls import redact_url

if TYPE_CHECKING:
    from recfetch.download.engine import _Job

__all__ = ["open_following", "receive"]

log = logging.getLogger("recfetch.download")

MAX_REDIRECTS = 5
SNIFF_BYTES = 64
ERROR_BODY_LIMIT = 16 * 1024
Chunk = bytes | memoryview
"""Body bytes as received: through httpx, or in a .part's receive buffer (`_received`)."""

DIRECT_BODY_MIN = 16 << 20
"""A body at least this long, for a transfer running alone, goes from the socket straight
into the .part's buffers (`transport.DirectBody`); its connection is not reused."""


def open_following(job: _Job, target: DownloadTarget, headers: dict[str, str]) -> httpx.Response:
    """GET the target, following redirects by hand so credentials never leave their origin."""
    client = job.engine.client
    url = target.url
    credentials = dict(target.headers)
    for _ in range(MAX_REDIRECTS + 1):
        job.url = url
        on_origin = bool(credentials) and origin_of(url) == job.credential_origin
        request = client.build_request(
            "GET", url, headers={**headers, **(credentials if on_origin else {})},
            timeout=job.engine.timeout,
        )
        if not on_origin:
            # Security: a storage host (or whatever a redirect points at) must
            # never see the provider's API key, token or session cookie. Once a
            # redirect leaves the credential origin they are dropped for good.
            credentials = {}
            for name in list(request.headers.keys()):
                if name.lower() in SENSITIVE_HEADERS:
                    del request.headers[name]
        response = client.send(request, stream=True, auth=None, follow_redirects=False)
        location = response.headers.get("location")
        kind = rules.classify_status(response.status_code)
        if kind is not rules.StatusClass.REDIRECT or not location:
            return response
        response.close()
        next_url = urljoin(url, location.strip())
        next_scheme = urlsplit(next_url).scheme.lower()
        if next_scheme not in ("http", "https") or (
            urlsplit(url).scheme.lower() == "https" and next_scheme == "http"
        ):
            raise Fail(
                ProviderError(
                    f"refusing to follow a redirect from {redact_url(url)} "
                    f"to {redact_url(next_url)}",
                    provider=job.provider,
                ),
                "unsafe redirect",
            )
        if origin_of(next_url) != origin_of(url):
            credentials = {}
        url = next_url
    raise Fail(
        ProviderError(
            f"more than {MAX_REDIRECTS} redirects from {redact_url(target.url)}",
            provider=job.provider,
        ),
        "too many redirects",
    )


def receive(job: _Job, response: httpx.Response, offset: int) -> bool:
    """Take one response into the .part; True when the .part now holds the whole recording."""
    kind = rules.classify_status(response.status_code)
    if kind is rules.StatusClass.UNSATISFIABLE:
        try:
            job.total = rules.range_not_satisfiable(
                response.headers.get("content-range"), offset=offset, expected=job.expected
            )
        except rules.ResumeMismatch as exc:
            raise Restart(str(exc)) from None
        return True
    if kind is not rules.StatusClass.BODY:
        raise status_failure(
            response.status_code,
            code=_error_code(response),
            where=redact_url(job.url),
            key=job.key,
            provider=job.provider,
            retry_after=response.headers.get("retry-after"),
        )
    media_type = rules.media_essence(response.headers.get("content-type"))
    if rules.is_error_media_type(media_type):
        raise Rejected(f"HTTP {response.status_code} with Content-Type {media_type}", page=True)
    if media_type and media_type != "application/octet-stream":
        job.media_type = media_type
    coding = _coding(job, response)
    chunks: Iterable[Chunk]
    end: int | None = None
    if response.status_code == 206:
        if coding:
            # A Range counts encoded bytes; the .part holds decoded ones.
            raise Restart(f"the storage host sent a {coding}-encoded partial body")
        end = _accept_partial(job, response, offset)
        chunks, framed = _raw_body(job, response), True
    else:
        with _decoding_errors(job, coding):
            chunks, framed = _accept_whole(job, response, offset, coding)
    job.remember_validator(response.headers.get("etag"))
    if job.total is not None and job.total != job.reported_total:
        job.reported_total = job.total
        assert job.part is not None
        job.reporter.file_reset(job.key, job.part.size, job.total)
    with _decoding_errors(job, coding):
        size = _write_body(job, chunks)
    # The body ended cleanly: h11 has checked it against Content-Length or
    # the chunked framing (or, encoded, zlib against the stream's own trailer).
    if end is not None and size != end + 1:
        raise Retry(TransferError, "the storage host sent less than its Content-Range")
    if job.total is None and job.expected is not None and size < job.expected and not coding:
        # No length was promised, so a short body is a cut connection, not a
        # different recording: keep the .part and ask for the rest.
        raise Retry(
            TransferError,
            f"the storage host ended the body after {size} of {job.expected} bytes",
        )
    if job.total is not None:
        return size >= job.total
    if framed or job.expected is not None:
        return True
    raise Fail(
        IntegrityError(
            "the storage host neither said how long the recording is nor framed the body, "
            "so a cut-off transfer cannot be told from a complete one",
            provider=job.provider,
        ),
        "unverifiable length",
        discard=True,
    )


def _accept_partial(job: _Job, response: httpx.Response, offset: int) -> int:
    """Check a 206 against what we asked for; returns the last byte it will carry."""
    try:
        window = rules.parse_content_range(
            response.headers.get("content-range"),
            offset=offset,
            expected=job.expected,
            known_total=job.meta_total,
            content_length=rules.content_length(response.headers),
        )
    except rules.ResumeMismatch as exc:
        raise Restart(str(exc)) from None
    etag = response.headers.get("etag")
    if etag and job.etag and etag != job.etag:
        raise Restart("the recording changed on the server (new ETag)")
    job.total = window.total
    return window.last


@contextmanager
def _decoding_errors(job: _Job, coding: str | None) -> Iterator[None]:
    """A cut-off compressed stream is an interruption; a corrupt one is never saved."""
    try:
        yield
    except EncodingCutOff as exc:
        raise Retry(TransferError, str(exc)) from None
    except zlib.error as exc:
        raise Fail(
            IntegrityError(
                f"the storage host sent a corrupt {coding} body ({exc}); nothing was saved",
                provider=job.provider,
            ),
            "corrupt encoding",
            discard=True,
        ) from None


def _coding(job: _Job, response: httpx.Response) -> str | None:
    """The one Content-Encoding we can decode, None for identity; refuses any other."""
    codings = rules.content_codings(response.headers.get("content-encoding"))
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in DECODABLE:
        raise Fail(
            ProviderError(
                f"the storage host sent the recording encoded as {', '.join(codings)}, "
                "which recfetch cannot decode; nothing was saved",
                hint="the storage host should honour Accept-Encoding: identity",
                provider=job.provider,
            ),
            "unsupported encoding",
        )
    return codings[0]


def _accept_whole(
    job: _Job, response: httpx.Response, offset: int, coding: str | None
) -> tuple[Iterator[Chunk], bool]:
    """Check a 200 (the whole object from byte 0); returns its body and whether it is framed.

    An encoded body is decoded as it arrives; its Content-Length counts encoded
    bytes, so the decoded size is checked against the provider's at the end.
    """
    length = None if coding else rules.content_length(response.headers)
    if length is not None and job.expected is not None and length != job.expected:
        raise Fail(
            IntegrityError(
                f"size mismatch: the storage host sends {length} bytes but the "
                f"provider reports {job.expected} bytes for {job.key}",
                provider=job.provider,
            ),
            "size mismatch",
        )
    raw: Iterator[Chunk]
    if coding:
        raw = Decoder(coding, job.engine.read_size).iterate(response.iter_raw())
    else:
        raw = _raw_body(job, response)
    head, rest = _peek(raw, SNIFF_BYTES)
    if rules.looks_like_error_page(bytes(head)):
        raise Rejected("HTTP 200 with an HTML/JSON/XML body", page=True)
    if offset > 0:
        # The server ignored our Range (Kazoo does) or If-Range found the
        # object changed (RFC 9110 §13.1.5): this body starts at byte 0.
        log.debug("%s: got 200 to a resume request; starting over", job.key)
        job.start_over(total=length if length is not None else job.expected)
    job.total = length
    framed = bool(coding) or length is not None or "chunked" in response.headers.get(
        "transfer-encoding", ""
    ).lower()
    return _chain(head, rest), framed


def _raw_body(job: _Job, response: httpx.Response) -> Iterator[Chunk]:
    """The body's bytes as they arrive: straight into the .part's buffers when the
    transfer runs alone and the body is long, else through httpx."""
    part = job.part
    if isinstance(part, PartFile) and part.hash_on_thread:
        body = direct_body(response, min_length=DIRECT_BODY_MIN)
        if body is not None:
            return _received(part, body)
    return response.iter_raw()


def _received(part: PartFile, body: DirectBody) -> Iterator[memoryview]:
    while True:
        view = part.receive_buffer()
        n = body.readinto(view)
        if n == 0:
            return
        yield view[:n]


def _write_body(job: _Job, chunks: Iterable[Chunk]) -> int:
    """Stream ``chunks`` into the .part; returns its size.

    Whatever stops the body, the bytes already received are on disk: the next
    attempt resumes after them. A full disk is reported at once (retrying
    would not help).
    """
    part = job.part
    assert part is not None
    stop = job.stop
    for chunk in chunks:
        if stop is not None and stop.is_set():
            raise Stopped
        try:
            part.write(chunk)
        except OSError as exc:
            job.write_failed(exc)
        job.reporter.file_advance(job.key, len(chunk))
    return part.size


def _peek(chunks: Iterator[Chunk], n: int) -> tuple[Chunk, Iterator[Chunk]]:
    """At least ``n`` leading bytes (fewer at the end of the body) and the rest."""
    parts: list[Chunk] = []
    got = 0
    for chunk in chunks:
        parts.append(chunk)
        got += len(chunk)
        if got >= n:
            break
    return (parts[0] if len(parts) == 1 else b"".join(parts)), chunks


def _chain(head: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    if head:
        yield head
    yield from rest


def _error_code(response: httpx.Response) -> str | None:
    """The error code of an error body, read up to 16 KiB (never shown: it can echo the URL)."""
    body = b""
    try:
        for chunk in response.iter_raw():
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass
    return rules.error_code(body)
