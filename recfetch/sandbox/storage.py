"""The sandbox storage host: an S3-like object store that hands out expiring signed URLs."""

from __future__ import annotations

import dataclasses
import email.utils
import gzip
import hashlib
import hmac
import math
import os
import random
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

from recfetch.sandbox.httpserver import Fault, FileBody, Request, Response, Server

__all__ = ["BUCKET", "Storage"]

BUCKET = "recfetch-sandbox"
"""The bucket-like first path segment of every object URL."""

SEND_CHUNK = 1 << 20
"""Body chunk size: large writes keep a 1 GiB loopback transfer fast."""

THROTTLED_CHUNK = 16 * 1024
"""Body chunk size while throttled, so the pacing is smooth."""

_BLOCK = 64 * 1024

Reader = Callable[[int, int], Iterator[bytes]]
"""(start, length) -> the object's bytes in that window, in chunks."""


@dataclass
class _Object:
    size: int
    media_type: str
    etag: str
    last_modified: str
    read: Reader
    sha256: str | None = None
    path: Path | None = None
    """Set for `put_file` objects, which are sent with sendfile()."""


class _Synthetic:
    """Deterministic pseudo-random bytes, generated on demand (1 GiB needs no 1 GiB of RAM).

    Every 64 KiB block starts with its index and is a different rotation of a
    seeded random block, so a resume at a wrong offset never looks right.
    """

    def __init__(self, seed: str) -> None:
        base = random.Random(seed).randbytes(_BLOCK)
        self._doubled = base + base

    def block(self, index: int) -> bytes:
        rotation = (index * 40503 + 7) % _BLOCK
        return index.to_bytes(8, "big") + self._doubled[rotation + 8 : rotation + _BLOCK]

    def read(self, start: int, length: int) -> Iterator[bytes]:
        end = start + length
        position = start
        while position < end:
            chunk_end = min(end, position + SEND_CHUNK)
            parts = []
            while position < chunk_end:
                index, within = divmod(position, _BLOCK)
                take = min(_BLOCK - within, chunk_end - position)
                parts.append(self.block(index)[within : within + take])
                position += take
            yield b"".join(parts)


def _bytes_reader(data: bytes) -> Reader:
    def read(start: int, length: int) -> Iterator[bytes]:
        view = memoryview(data)
        for offset in range(start, start + length, SEND_CHUNK):
            yield bytes(view[offset : min(start + length, offset + SEND_CHUNK)])

    return read


def _file_reader(path: Path) -> Reader:
    def read(start: int, length: int) -> Iterator[bytes]:
        fd = os.open(path, os.O_RDONLY)
        try:
            position, end = start, start + length
            while position < end:
                chunk = os.pread(fd, min(SEND_CHUNK, end - position), position)
                if not chunk:
                    return
                position += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    return read


def _error_xml(code: str, message: str, key: str | None = None) -> bytes:
    key_part = f"<Key>{_xml_escape(key)}</Key>" if key is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{key_part}"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
    ).encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_response(status: int, code: str, message: str, key: str | None = None) -> Response:
    return Response(status, _error_xml(code, message, key), {"Content-Type": "application/xml"})


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_IGNORE = "ignore"
UNSATISFIABLE = "unsatisfiable"


def parse_range(value: str, size: int) -> tuple[int, int] | str:
    """One byte range (RFC 9110 §14.1.2), or why it is ignored / unsatisfiable.

    A server may ignore a Range it does not support (§14.2): we ignore multiple
    ranges and malformed ones and answer 200 with the whole object.
    """
    match = _RANGE.fullmatch(value)
    if not match:
        return _IGNORE
    first, last = match.groups()
    if not first and not last:
        return _IGNORE
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return _IGNORE
    if start >= size:
        return UNSATISFIABLE
    return start, min(end, size - 1)


class Storage:
    """S3-like objects behind signed, expiring URLs, with fault injection for tests.

    URLs look like ``{url}/recfetch-sandbox/{key}?X-Expires=<unix>&X-Signature=<hex>``
    where the signature is HMAC-SHA256 over the key and the expiry.
    """

    def __init__(self, server: Server | None = None, *, secret: bytes | None = None) -> None:
        self._own_server = server is None
        self.server = server or Server("storage")
        self._secret = secret or secrets.token_bytes(32)
        self._objects: dict[str, _Object] = {}
        self._lock = threading.Lock()
        self._clock_offset = 0.0
        self._latest_expiry = 0.0
        self._rate: float | None = None
        self.server.route("GET", f"/{BUCKET}/(?P<key>.+)")(self._handle)
        self.server.route("HEAD", f"/{BUCKET}/(?P<key>.+)")(self._handle)
        if self._own_server:
            self.server.start()

    @property
    def url(self) -> str:
        """Base URL of the storage host."""
        return self.server.url

    def close(self) -> None:
        """Stop the server this Storage started (a shared server is left running)."""
        if self._own_server:
            self.server.stop()

    # -- objects ------------------------------------------------------------
    def put(
        self, key: str, *, size: int, seed: str | None = None, media_type: str = "audio/mpeg"
    ) -> None:
        """A synthetic object of ``size`` bytes, deterministic for (seed or key)."""
        seed = seed if seed is not None else key
        synthetic = _Synthetic(seed)
        etag = hashlib.sha256(f"{seed}:{size}".encode()).hexdigest()[:32]
        self._store(key, _Object(size, media_type, f'"{etag}"', _http_date(), synthetic.read))

    def put_bytes(self, key: str, data: bytes, media_type: str = "audio/mpeg") -> None:
        data = bytes(data)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        self._store(
            key,
            _Object(
                len(data), media_type, f'"{etag}"', _http_date(), _bytes_reader(data),
                sha256=hashlib.sha256(data).hexdigest(),
            ),
        )

    def put_file(self, key: str, path: Path, media_type: str = "audio/mpeg") -> None:
        """Serve ``path`` from disk (read per request, so it may be large)."""
        path = Path(path)
        stat = path.stat()
        etag = hashlib.sha256(f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        self._store(
            key,
            _Object(
                stat.st_size, media_type, f'"{etag.hexdigest()[:32]}"',
                _http_date(stat.st_mtime), _file_reader(path), path=path,
            ),
        )

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def size(self, key: str) -> int:
        return self._get(key).size

    def content(self, key: str) -> bytes:
        """The whole object (for byte-exact comparisons of small objects)."""
        obj = self._get(key)
        return b"".join(obj.read(0, obj.size))

    def sha256(self, key: str) -> str:
        obj = self._get(key)
        if obj.sha256 is None:
            digest = hashlib.sha256()
            for chunk in obj.read(0, obj.size):
                digest.update(chunk)
            obj.sha256 = digest.hexdigest()
        return obj.sha256

    def etag(self, key: str) -> str:
        return self._get(key).etag

    def _store(self, key: str, obj: _Object) -> None:
        with self._lock:
            self._objects[key] = obj

    def _get(self, key: str) -> _Object:
        with self._lock:
            return self._objects[key]

    # -- signing ------------------------------------------------------------
    def now(self) -> float:
        """The storage host's clock (shifted by `expire_all`)."""
        return time.time() + self._clock_offset

    def presign(self, key: str, *, expires_in: float = 900) -> tuple[str, datetime]:
        """A signed GET URL for ``key`` and the UTC time it stops working."""
        expires = math.ceil(self.now() + expires_in)
        with self._lock:
            self._latest_expiry = max(self._latest_expiry, expires)
        signature = self._sign(key, expires)
        url = f"{self.url}/{BUCKET}/{quote(key, safe='/')}?X-Expires={expires}&X-Signature={signature}"
        expires_at = datetime.fromtimestamp(expires - self._clock_offset, UTC)
        return url, expires_at

    def _sign(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def expire_all(self) -> None:
        """Every URL handed out so far stops working; new ones work."""
        with self._lock:
            self._clock_offset = max(self._clock_offset, self._latest_expiry - time.time() + 1)

    def throttle(self, bytes_per_sec: float | None) -> None:
        """Pace every body at ``bytes_per_sec`` (None: full speed)."""
        self._rate = bytes_per_sec

    # -- faults -------------------------------------------------------------
    def _object_request(self, request: Request) -> bool:
        return request.method in ("GET", "HEAD") and request.path.startswith(f"/{BUCKET}/")

    def _fault(self, respond: Callable[[Request], Response] | Response, times: int | None) -> Fault:
        return self.server.add_fault(Fault(self._object_request, respond, times))

    def fail_next(
        self,
        status: int,
        *,
        times: int | None = 1,
        retry_after: str | float | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Fault:
        """Answer the next object request(s) with ``status`` (an S3-style XML error by default)."""
        headers = {"Content-Type": content_type or "application/xml"}
        if retry_after is not None:
            headers["Retry-After"] = (
                str(int(retry_after)) if isinstance(retry_after, int | float) else retry_after
            )
        if body is None:
            code = {429: "SlowDown", 500: "InternalError", 503: "SlowDown"}.get(status, "Error")
            body = _error_xml(code, f"sandbox fault {status}")
        return self._fault(Response(status, body, headers), times)

    def drop_next(
        self, after_bytes: int, times: int | None = 1, *, ignore_range: bool = False
    ) -> Fault:
        """Serve the next request(s) normally but cut the connection after ``after_bytes``.

        ``ignore_range`` also answers 200 with the whole object, as a server
        without Range support does.
        """

        def respond(request: Request) -> Response:
            if ignore_range:
                request = without_range(request)
            return dataclasses.replace(self._handle(request), drop_after=after_bytes)

        return self._fault(respond, times)

    def html_next(
        self, times: int | None = 1, *, content_type: str = "text/html; charset=utf-8"
    ) -> Fault:
        """Answer 200 with a login page, as a misconfigured CDN or captive portal does."""
        page = (
            b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
            b"<body><form>Session expired, please sign in.</form></body></html>\n"
        )
        return self._fault(Response(200, page, {"Content-Type": content_type}), times)

    def ignore_range_next(self, *, times: int | None = 1) -> Fault:
        """Answer 200 with the whole object even when a Range was asked for (as Kazoo does)."""

        def respond(request: Request) -> Response:
            return self._handle(without_range(request))

        return self._fault(respond, times)

    def bad_range_next(self, *, shift: int = 1, times: int | None = 1) -> Fault:
        """Answer a Range request with 206 for a window starting ``shift`` bytes late."""

        def respond(request: Request) -> Response:
            match = _RANGE.fullmatch(request.header("range") or "")
            if not match or not match.group(1):
                return self._handle(request)
            start = int(match.group(1)) + shift
            headers = dict(request.headers, range=f"bytes={start}-")
            return self._handle(dataclasses.replace(request, headers=headers))

        return self._fault(respond, times)

    def unframed_next(self, after_bytes: int | None = None, *, times: int | None = 1) -> Fault:
        """Send the next body(ies) without Content-Length, ended by closing the connection
        (after ``after_bytes`` bytes when given): a cut that looks like a clean end."""

        def respond(request: Request) -> Response:
            response = self._handle(request)
            if response.status not in (200, 206):
                return response
            body = response.body
            if isinstance(body, FileBody):
                body = _file_reader(Path(body.path))(body.offset, body.length)
            sent = int(response.headers["Content-Length"])
            headers = {k: v for k, v in response.headers.items() if k != "Content-Length"}
            cut = sent if after_bytes is None else min(after_bytes, sent)
            return Response(response.status, body, headers, length=None, drop_after=cut)

        return self._fault(respond, times)

    def stall_next(self, after_bytes: int, *, seconds: float, times: int | None = 1) -> Fault:
        """Serve the next request(s) normally for ``after_bytes`` body bytes, then send nothing
        for ``seconds`` (a host that stops mid-transfer), then give up on the connection."""

        def respond(request: Request) -> Response:
            response = self._handle(request)
            if response.status not in (200, 206):
                return response
            body = response.body
            if isinstance(body, FileBody):
                body = _file_reader(Path(body.path))(body.offset, body.length)
            if isinstance(body, bytes | bytearray):
                body = [bytes(body)]

            def stalled() -> Iterator[bytes]:
                sent = 0
                for chunk in body:
                    piece = chunk[: after_bytes - sent]
                    if piece:
                        yield piece
                        sent += len(piece)
                    if sent >= after_bytes:
                        break
                time.sleep(seconds)

            return dataclasses.replace(response, body=stalled())

        return self._fault(respond, times)

    def encode_next(
        self, coding: str = "gzip", *, times: int | None = 1, cut: int | None = None
    ) -> Fault:
        """Answer with the whole object compressed as ``coding`` (``gzip`` or ``deflate``; any
        other name labels the plain bytes), whatever Range and Accept-Encoding asked for.
        ``cut`` sends only that many bytes of the compressed body, with a matching
        Content-Length (a server that truncates what it compresses)."""

        def respond(request: Request) -> Response:
            response = self._handle(without_range(request))
            if response.status != 200:
                return response
            key = unquote(request.path.removeprefix(f"/{BUCKET}/"))
            data = self.content(key)
            if coding in ("gzip", "x-gzip"):
                data = gzip.compress(data)
            elif coding == "deflate":
                data = zlib.compress(data)
            if cut is not None:
                data = data[:cut]
            headers = {k: v for k, v in response.headers.items() if k != "Content-Length"}
            headers["Content-Encoding"] = coding
            return Response(200, data, headers)

        return self._fault(respond, times)

    # -- serving ------------------------------------------------------------
    def _handle(self, request: Request) -> Response:
        # Faults answer before routing, so take the key from the path, not the route.
        key = unquote(request.path.removeprefix(f"/{BUCKET}/"))
        denied = self._check_signature(request, key)
        if denied is not None:
            return denied
        with self._lock:
            obj = self._objects.get(key)
        if obj is None:
            return _xml_response(404, "NoSuchKey", "The specified key does not exist.", key)
        return self._serve(request, obj)

    def _check_signature(self, request: Request, key: str) -> Response | None:
        expires_text = request.arg("X-Expires")
        signature = request.arg("X-Signature")
        if not expires_text or not signature or not expires_text.isdigit():
            return _xml_response(
                403, "AccessDenied",
                "Query-string authentication requires the X-Signature and X-Expires parameters",
            )
        if not hmac.compare_digest(self._sign(key, int(expires_text)), signature):
            return _xml_response(
                403, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if self.now() > int(expires_text):
            return _xml_response(403, "AccessDenied", "Request has expired")
        return None

    def _serve(self, request: Request, obj: _Object) -> Response:
        headers = {
            "Content-Type": obj.media_type,
            "ETag": obj.etag,
            "Last-Modified": obj.last_modified,
            "Accept-Ranges": "bytes",
        }
        window: tuple[int, int] | str = _IGNORE
        range_header = request.header("range")
        if range_header is not None and self._if_range_holds(request, obj):
            window = parse_range(range_header, obj.size)
        if window == UNSATISFIABLE:
            # RFC 9110 §15.5.17: 416 names the current length in Content-Range.
            headers["Content-Range"] = f"bytes */{obj.size}"
            body = _error_xml("InvalidRange", "The requested range is not satisfiable")
            headers["Content-Type"] = "application/xml"
            return Response(416, body, headers)
        if isinstance(window, tuple):
            start, end = window
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"  # RFC 9110 §14.4
        else:
            start, end, status = 0, obj.size - 1, 200
        length = end - start + 1
        headers["Content-Length"] = str(length)
        if obj.path is not None and not self._rate:
            return Response(status, FileBody(str(obj.path), start, length), headers, length=length)
        chunks = obj.read(start, length)
        if self._rate:
            chunks = _paced(chunks, self._rate)
        return Response(status, chunks, headers, length=length)

    @staticmethod
    def _if_range_holds(request: Request, obj: _Object) -> bool:
        """RFC 9110 §13.1.5: honour Range only if the validator still matches."""
        validator = request.header("if-range")
        if validator is None:
            return True
        validator = validator.strip()
        if validator.startswith(('"', "W/")):
            return not validator.startswith("W/") and validator == obj.etag
        return validator == obj.last_modified


def without_range(request: Request) -> Request:
    """The request as a server that ignores Range sees it."""
    headers = {k: v for k, v in request.headers.items() if k not in ("range", "if-range")}
    return dataclasses.replace(request, headers=headers)


def _paced(chunks: Iterator[bytes], rate: float) -> Iterator[bytes]:
    for chunk in chunks:
        for offset in range(0, len(chunk), THROTTLED_CHUNK):
            piece = chunk[offset : offset + THROTTLED_CHUNK]
            time.sleep(len(piece) / rate)
            yield piece


def _http_date(timestamp: float | None = None) -> str:
    return email.utils.formatdate(timestamp if timestamp is not None else time.time(), usegmt=True)
