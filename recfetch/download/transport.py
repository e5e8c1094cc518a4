"""The storage client: an httpx client over an httpcore pool whose sockets read in large gulps.

Built through public APIs only: httpcore's ``ConnectionPool(network_backend=...)``
and httpx's ``Client(transport=...)`` with a small `httpx.BaseTransport`.

httpcore asks the socket for 64 KiB per read, and every read then travels
through h11, httpcore and httpx, so per-read overhead dominates a fast
download. `_TunedStream` asks for up to ``read_size`` and coalesces what is
already buffered (TLS hands out one 16 KiB record per read). It receives into
one reused buffer per connection and hands on an exact-size copy, so a large
read does not leave a large, mostly freed block in the malloc arena of every
thread that ran one. It also wakes up when the run is stopped instead of
sitting out a whole stall timeout in recv().
"""

from __future__ import annotations

import ipaddress
import re
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, TypeVar
from urllib.request import (  # type: ignore[attr-defined]  # typeshed lacks proxy_bypass_environment
    getproxies_environment,
    proxy_bypass_environment,
)

import httpcore
import httpx

from recfetch.download.http_rules import content_length
from recfetch.providers._http import USER_AGENT
from recfetch.tls import shared_ssl_context

__all__ = [
    "DEFAULT_READ_SIZE",
    "DirectBody",
    "StorageTransport",
    "direct_body",
    "make_client",
    "proxy_for",
]

DEFAULT_READ_SIZE = 1 << 20
"""Largest socket read. httpcore reads 64 KiB at a time; 1 MiB reads make a 1 GiB
loopback download about twice as fast (bench/download_vs_curl.py)."""

READ_BUDGET = 1 << 20
"""Socket reads of one connection open alone: a big file reads 1 MiB at a time."""

SHARED_READ_BUDGET = 768 << 10
"""Socket reads of several open connections together: each read is
``SHARED_READ_BUDGET / open connections`` (MIN_READ_SIZE to ``read_size``), so 8
parallel transfers read 96 KiB at a time and 32 of them 32 KiB: the bytes passing
through memory at once do not grow with --jobs, and neither does peak RSS, at the
same CPU per byte (bench/batch_vs_peers.py)."""

MIN_READ_SIZE = 32 << 10

HEAD_END = re.compile(rb"\n\r?\n")
"""The blank line that ends a response head (h11 accepts a bare LF too)."""

INFORMATIONAL = re.compile(rb"HTTP/\d\.\d 1\d\d")

CONNECT_TIMEOUT = 15.0
STOP_POLL = 0.25
"""How often a blocked socket read looks at the stop event."""

_T = TypeVar("_T")

_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    # Most specific first: the first match wins.
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)

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
    attached per request by the engine while the URL is on the provider's
    own origin.
    """
    pool = httpcore.ConnectionPool(
        ssl_context=shared_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        network_backend=_TunedBackend(httpcore.SyncBackend(), read_size, stop),
    )
    return httpx.Client(
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        transport=StorageTransport(pool, max_connections=max_connections),
    )


def proxy_for(url: httpx.URL, environ: dict[str, str] | None = None) -> str | None:
    """The proxy a storage request goes through (``http_proxy``/``https_proxy``/``all_proxy``
    from the environment, minus ``no_proxy``), or None for a direct connection.

    Loopback hosts are always direct: a local server never goes through a proxy.
    """
    host = url.host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            return None
    proxies = getproxies_environment() if environ is None else {
        k.lower().removesuffix("_proxy"): v
        for k, v in environ.items()
        if k.lower().endswith("_proxy") and v
    }
    if proxy_bypass_environment(host, proxies):
        return None
    return proxies.get(url.scheme) or proxies.get("all")


class StorageTransport(httpx.BaseTransport):
    """httpx's side of an httpcore pool: requests in, streamed responses out.

    A request for a host behind a proxy (`proxy_for`) goes through httpx's own
    proxy transport instead (plain reads; the proxy is the slow part anyway).
    """

    def __init__(self, pool: httpcore.ConnectionPool, *, max_connections: int = 64) -> None:
        self.pool = pool
        self._max_connections = max_connections
        self._proxied: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def _through(self, proxy: str) -> httpx.HTTPTransport:
        with self._lock:
            transport = self._proxied.get(proxy)
            if transport is None:
                limits = httpx.Limits(max_connections=self._max_connections)
                transport = httpx.HTTPTransport(
                    proxy=proxy, verify=shared_ssl_context(), limits=limits
                )
                self._proxied[proxy] = transport
            return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        proxy = proxy_for(request.url)
        if proxy is not None:
            return self._through(proxy).handle_request(request)
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_errors(request):
            response = self.pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.pool.close()
        with self._lock:
            for transport in self._proxied.values():
                transport.close()


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_errors(self._request):
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


@contextmanager
def _mapped_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions as the httpx ones callers of an httpx client expect."""
    try:
        yield
    except Exception as exc:
        for core, mapped in _EXCEPTIONS:
            if isinstance(exc, core):
                raise mapped(str(exc), request=request) from exc
        raise


class _TunedStream(httpcore.NetworkStream):
    """A socket stream that reads in large gulps and wakes up when the run is stopped.

    It hands h11 a response head on its own (the bytes after the blank line wait
    in ``_pending``), so h11 never holds body bytes and `DirectBody` can take the
    body from here instead. h11 sees the same bytes in the same order either way.
    """

    def __init__(self, inner: httpcore.NetworkStream, backend: _TunedBackend) -> None:
        self._inner = inner
        self._backend = backend
        self._stop = backend.stop
        self._eof = False
        self._closed = False
        backend.opened()
        self._poll: Any = None
        sock = inner.get_extra_info("socket")
        if sock is not None and hasattr(select, "poll"):
            with suppress(OSError, ValueError):
                self._poll = select.poll()
                self._poll.register(sock, select.POLLIN)
        self._sock = sock
        self._buffer: bytearray | None = None
        self._pending = b""
        self._head_start: bytes | None = None
        """While a response head is awaited, its first bytes (None: no head awaited)."""
        self._head_tail = b""
        """The last two bytes of the head so far: a blank line can straddle two reads."""

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._gulp(timeout)
        if self._head_start is not None and data:
            data = self._cut_head(data)
        return data

    def readinto(self, view: memoryview, timeout: float | None) -> int:
        """Bytes straight into ``view`` (no copy through h11); 0 at the end of the stream."""
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        if self._eof:
            return 0
        return self._fill(view, timeout)

    @property
    def has_socket(self) -> bool:
        return self._sock is not None

    def _gulp(self, timeout: float | None) -> bytes:
        """Up to this moment's read size, received into this connection's reused buffer and
        handed on as an exact-size copy."""
        if self._eof:
            return b""
        # Fewer bytes than httpcore's 64 KiB when many connections share the budget.
        want = self._backend.read_size_now()
        if self._sock is None:
            data = self._patiently(lambda slice_: self._inner.read(want, slice_), timeout)
            self._eof = not data
            return data
        buffer = self._buffer
        if buffer is None or len(buffer) < want or len(buffer) > 2 * want:
            # More connections share the budget now (a smaller one), or fewer (a bigger one).
            buffer = self._buffer = bytearray(want)
        with memoryview(buffer) as view:
            n = self._fill(view[:want], timeout)
            return view[:n].tobytes()

    def _fill(self, view: memoryview, timeout: float | None) -> int:
        """One recv() into ``view``, then what TLS has already decrypted, up to its length;
        0 at the end of the stream."""
        n = self._patiently(lambda slice_: self._recv_into(view, slice_), timeout)
        if n == 0:
            self._eof = True
            return 0
        while n < len(view) and self._ready():
            try:
                more = self._recv_into(view[n:], timeout)
            except (httpcore.ReadError, httpcore.ReadTimeout):
                break  # hand over what arrived; the next read reports the failure
            if not more:
                self._eof = True
                break
            n += more
        return n

    def _cut_head(self, data: bytes) -> bytes:
        """``data`` up to the end of the awaited response head; the rest waits in _pending."""
        start, tail = self._head_start or b"", self._head_tail
        end = -1
        if tail:
            match = HEAD_END.search(tail + data[:2])
            if match:
                end = match.end() - len(tail)
        if end < 0:
            match = HEAD_END.search(data)
            if match:
                end = match.end()
        if len(start) < 16:
            start = (start + data[:16])[:16]
        if end < 0:
            self._head_start, self._head_tail = start, (tail + data[-2:])[-2:]
            return data
        # After a 1xx head (103 Early Hints) the real one follows.
        self._head_start = b"" if INFORMATIONAL.match(start) else None
        self._head_tail = b""
        if end < len(data):
            self._pending = data[end:]
            return data[:end]
        return data

    def _ready(self) -> bool:
        """More bytes can be read at once: only asked of TLS, whose reads stop at a 16 KiB
        record; a plain socket's read already took everything that had arrived."""
        pending = getattr(self._sock, "pending", None)
        if pending is None:
            return False
        with suppress(OSError, ValueError):
            if pending() > 0:
                return True
        if self._poll is None:
            return False
        try:
            return bool(self._poll.poll(0))
        except (OSError, ValueError):
            return False

    def _recv_into(self, view: memoryview, timeout: float | None) -> int:
        sock = self._sock
        try:
            if sock.gettimeout() != timeout:
                sock.settimeout(timeout)  # a system call (and a GIL hand-off): only on a change
            return int(sock.recv_into(view, len(view)))
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def _patiently(self, receive: Callable[[float | None], _T], timeout: float | None) -> _T:
        if self._stop is None:
            return receive(timeout)
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
                return receive(slice_)
            except httpcore.ReadTimeout:
                if self._stop.is_set() or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # A request goes out: the next bytes in are a response head.
        self._head_start, self._head_tail = b"", b""
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.closed()
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        if not self._closed:  # the TLS stream replaces this one on the same connection
            self._closed = True
            self._backend.closed()
        return _TunedStream(inner, self._backend)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._pending:
            return True  # bytes nobody asked for: the pool must not reuse this connection
        return self._inner.get_extra_info(info)


class DirectBody:
    """The body of a response with a Content-Length, read into the caller's buffers.

    Bytes go from the socket straight into a buffer the caller reuses, instead of
    through h11, httpcore and httpx (three copies of every byte). h11 then never
    sees the end of the body, so closing the response closes the connection
    instead of keeping it for the next request: worth it for a large body only.
    Errors are the ones httpx raises for a body read through it.
    """

    def __init__(
        self, stream: _TunedStream, request: httpx.Request, length: int, timeout: float | None
    ) -> None:
        self._stream = stream
        self._request = request
        self.length = length
        self.received = 0
        self._timeout = timeout

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` with the next bytes of the body (fewer when fewer have arrived);
        0 once the whole body is in."""
        left = self.length - self.received
        if left <= 0:
            return 0
        with _mapped_errors(self._request):
            n = self._stream.readinto(view[:left], self._timeout)
        if n == 0:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                f"(received {self.received} bytes, expected {self.length})",
                request=self._request,
            )
        self.received += n
        return n


def direct_body(response: httpx.Response, *, min_length: int) -> DirectBody | None:
    """A `DirectBody` for ``response`` when it is a plain HTTP/1.1 body of at least
    ``min_length`` bytes from one of this module's connections, else None (read it
    through httpx as usual)."""
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, _TunedStream) or not stream.has_socket:
        return None
    if response.http_version != "HTTP/1.1":
        return None
    headers = response.headers
    if "transfer-encoding" in headers or "content-encoding" in headers:
        return None
    length = content_length(headers)
    if length is None or length < min_length:
        return None
    timeouts = response.request.extensions.get("timeout") or {}
    return DirectBody(stream, response.request, length, timeouts.get("read"))


class _TunedBackend(httpcore.NetworkBackend):
    def __init__(
        self, inner: httpcore.NetworkBackend, read_size: int, stop: threading.Event | None
    ) -> None:
        self.inner = inner
        self.read_size = read_size
        self.stop = stop
        self._open = 0
        self._lock = threading.Lock()

    def opened(self) -> None:
        with self._lock:
            self._open += 1

    def closed(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)

    def read_size_now(self) -> int:
        """This moment's read size: the read budget shared by the open connections."""
        open_now = max(1, self._open)
        share = (READ_BUDGET if open_now == 1 else SHARED_READ_BUDGET) // open_now
        return max(MIN_READ_SIZE, min(self.read_size, share))

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _TunedStream(stream, self)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_unix_socket(path, timeout, socket_options)
        return _TunedStream(stream, self)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)
