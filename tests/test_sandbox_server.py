"""The stand-ins' HTTP server: its serving loop never blocks in accept() (recfetch/sandbox/httpserver.py)."""

from __future__ import annotations

import threading
import time

import httpx

from recfetch.sandbox import httpserver
from recfetch.sandbox.httpserver import Server, json_response


def test_accept_with_no_connection_left_gives_up_so_shutdown_cannot_hang() -> None:
    # What the serving loop does when select() saw a connection that was reset before
    # accept() ran: accept() finds nothing. It must give up, not wait for the next client.
    server = Server("accept")
    try:
        started = time.monotonic()
        try:
            server._httpd.get_request()
        except OSError:
            pass
        else:
            raise AssertionError("accept() returned a connection nobody made")
        assert time.monotonic() - started < httpserver.ACCEPT_TIMEOUT + 2
    finally:
        server._httpd.server_close()


def test_a_server_still_answers_and_stops_promptly() -> None:
    server = Server("prompt")
    server.route("GET", "/hello")(lambda request: json_response({"hello": "world"}))
    server.start()
    with httpx.Client() as client:
        for _ in range(3):  # accepted sockets stay blocking: whole answers, kept alive
            assert client.get(server.url + "/hello").json() == {"hello": "world"}
    done = threading.Event()
    threading.Thread(target=lambda: (server.stop(), done.set()), daemon=True).start()
    assert done.wait(5)
