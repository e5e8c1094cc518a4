"""A tiny threaded HTTP server with regex routes, a request log and scripted faults.

Every sandbox stand-in (the five provider APIs and the storage host) is one of
these, bound to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handler = Callable[["Request"], "Response"]

PLANTED_SECRET = "planted-nested-secret-Zq81"
"""Planted by every stand-in in credential-named fields nested inside recordings: never in any output."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    """Named groups of the matched route."""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}


@dataclass(frozen=True)
class FileBody:
    """``length`` bytes of the file at ``path`` from ``offset``, sent with zero-copy sendfile.

    The storage stand-in serves large on-disk objects this way so that a 1 GiB
    benchmark measures the client, not Python copying bytes in the server.
    """

    path: str
    offset: int
    length: int


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] | FileBody = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None
    """Content-Length to announce when ``body`` is an iterable."""
    drop_after: int | None = None
    """Close the connection after sending this many body bytes (fault injection)."""


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(obj).encode()
    return Response(status, payload, {"Content-Type": "application/json", **(headers or {})})


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class Fault:
    """A scripted misbehaviour: when ``match(request)`` holds, answer ``response`` instead.

    ``times`` is how many requests it applies to (None = until removed).
    """

    def __init__(
        self,
        match: Callable[[Request], bool],
        response: Callable[[Request], Response] | Response,
        times: int | None = 1,
    ) -> None:
        self.match = match
        self.response = response
        self.times = times
        self.hits = 0

    def claim(self, request: Request) -> bool:
        """Whether this fault answers ``request`` (counted as a hit); called under the server lock."""
        if self.times is not None and self.hits >= self.times:
            return False
        if not self.match(request):
            return False
        self.hits += 1
        return True

    def respond(self, request: Request) -> Response:
        resp = self.response
        return resp(request) if callable(resp) else resp


class Server:
    """Routes + request log + faults, served from a daemon thread on 127.0.0.1."""

    def __init__(self, name: str, *, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: a server-side context to serve HTTPS instead of HTTP (tests of TLS downloads)."""
        self.name = name
        self.scheme = "https" if tls else "http"
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.log: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(("127.0.0.1", port), _make_handler(self))
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    # -- routing ----------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + pattern + "$")

        def register(fn: Handler) -> Handler:
            self.routes.append((method.upper(), regex, fn))
            return fn

        return register

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def requests(self, path_contains: str = "", method: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            entries = list(self.log)
        return [r for r in entries if path_contains in r.path and (method is None or r.method == method)]

    # -- lifecycle --------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Server:
        # A short poll interval: shutdown() waits for it, once per server and test (0.5 s default).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name=f"sandbox-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- dispatch ---------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        with self._lock:
            self.log.append(
                LoggedRequest(
                    request.method,
                    request.path,
                    request.query,
                    dict(request.headers),
                    request.body,
                )
            )
            faults = list(self.faults)
        for fault in faults:
            with self._lock:
                claimed = fault.claim(request)
            if claimed:  # answered outside the lock: a slow fault must not serialize the server
                return fault.respond(request)
        allowed = False
        for method, regex, fn in self.routes:
            match = regex.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed = True
                continue
            request.params = match.groupdict()
            return fn(request)
        if allowed:
            return json_response({"error": "method not allowed"}, 405)
        return json_response({"error": "not found"}, 404)


ACCEPT_TIMEOUT = 1.0
"""How long the serving loop's accept() waits for a connection select() reported."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_activate(self) -> None:
        super().server_activate()
        # select() can report a connection that is gone (reset) by the time accept() runs;
        # a blocking accept() would then wait for the next client, and shutdown() for it.
        # With a timeout it gives up (an OSError, which serve_forever skips) and the loop
        # goes on. Accepted sockets are still blocking (socket.accept sees to that), and
        # a TLS wrapper keeps the timeout.
        self.socket.settimeout(ACCEPT_TIMEOUT)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-transfer (a stopped download, a resumed
        # one) is normal here, not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _make_handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait
        # ~40 ms per request for the delayed ACK, which made 1,000-recording listings take minutes.
        disable_nagle_algorithm = True
        server_version = f"recfetch-sandbox-{server.name}"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                response = server.dispatch(request)
            except Exception as exc:  # a stand-in bug must show up as a 500, not a hang
                response = json_response({"error": f"sandbox bug: {exc!r}"}, 500)
            self._send(response)

        def _send(self, response: Response) -> None:
            body = response.body
            file_body: FileBody | None = None
            if isinstance(body, FileBody):
                file_body = body
                chunks: Iterable[bytes] = []
                length: int | None = body.length
            elif isinstance(body, bytes | bytearray):
                chunks = [bytes(body)]
                length = len(body)
            else:
                chunks = body
                length = response.length
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if length is not None and "Content-Length" not in response.headers:
                self.send_header("Content-Length", str(length))
            if response.drop_after is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            if file_body is not None:
                self._sendfile(file_body, response.drop_after)
                return
            sent = 0
            try:
                for chunk in chunks:
                    if response.drop_after is not None and sent + len(chunk) >= response.drop_after:
                        self.wfile.write(chunk[: max(0, response.drop_after - sent)])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _sendfile(self, body: FileBody, drop_after: int | None) -> None:
            limit = body.length if drop_after is None else min(body.length, drop_after)
            try:
                with open(body.path, "rb") as source:
                    sent = 0
                    while sent < limit:
                        n = os.sendfile(
                            self.connection.fileno(), source.fileno(), body.offset + sent,
                            limit - sent,
                        )
                        if n == 0:
                            break
                        sent += n
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            if drop_after is not None:
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return _Handler
