"""Response heads cut from their bodies, and large bodies read past httpx (download/transport.py).

The storage client hands h11 each response head on its own, so that a large body
can go from the socket straight into the .part's buffers. These tests talk to a
raw HTTP/1.1 server that sends its answer in separate segments, split wherever a
test says, to check that no byte is lost, duplicated or misread at the seams.
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from recfetch.download import Downloader, partfile, receive, transport
from recfetch.providers.base import DownloadTarget, Recording

Script = Callable[[bytes], list[bytes]]
"""A request head in, the segments of the answer out (sent with a pause between them);
an empty last segment hangs up after the others."""

EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers each request with scripted segments."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._stopping = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    try:
                        more = conn.recv(65536)
                    except OSError:
                        return
                    if not more:
                        return
                    buffered += more
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                self.requests.append(head)
                segments = self.script(head)
                try:
                    for i, segment in enumerate(segments):
                        if i:
                            time.sleep(0.03)  # its own read on the client's side
                        conn.sendall(segment)
                except OSError:
                    return
                if segments and not segments[-1]:
                    return


@pytest.fixture
def serve() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        server = RawServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def engine() -> Iterator[Downloader]:
    with Downloader(retries=0) as downloader:
        yield downloader


def body_of(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def head_for(body: bytes, *, newline: bytes = b"\r\n") -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: audio/mpeg", b"Content-Length: %d" % len(body)]
    return newline.join(lines) + newline + newline


def fetch(engine: Downloader, url: str, path: Path, size: int) -> Path:
    recording = Recording(
        provider="kismet", profile="test", ref=f"user/call/{path.stem}", id=path.stem,
        status="ready", downloadable=True, size_bytes=size,
    )
    result = engine.fetch(recording, path, lambda: DownloadTarget(url=url))
    assert result.outcome == "downloaded", result.error
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    return path


def cut(data: bytes, *positions: int) -> list[bytes]:
    edges = [0, *positions, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


SPLITS: dict[str, Callable[[bytes, bytes], list[bytes]]] = {
    "head and body together": lambda head, body: [head + body],
    "head alone": lambda head, body: [head, body],
    "blank line cut after CR": lambda head, body: cut(head + body, len(head) - 3),
    "blank line cut after CRLF": lambda head, body: cut(head + body, len(head) - 2),
    "blank line cut before the last LF": lambda head, body: cut(head + body, len(head) - 1),
    "head in three pieces, body in two": lambda head, body: cut(
        head + body, 5, len(head) - 8, len(head) + 100
    ),
    "early hints first, alone": lambda head, body: [EARLY_HINTS, head + body],
    "early hints and the head together": lambda head, body: [EARLY_HINTS + head, body],
    "early hints cut inside its blank line": lambda head, body: cut(
        EARLY_HINTS + head + body, len(EARLY_HINTS) - 1
    ),
}


@pytest.mark.parametrize("direct", [False, True], ids=["through-httpx", "direct"])
@pytest.mark.parametrize("split", list(SPLITS))
def test_a_head_cut_anywhere_leaves_the_body_whole(
    split: str, direct: bool, serve: Callable[[Script], RawServer], engine: Downloader,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if direct:
        monkeypatch.setattr(receive, "DIRECT_BODY_MIN", 0)
    body = body_of(300_000)
    server = serve(lambda request: SPLITS[split](head_for(body), body))
    path = fetch(engine, server.url + "/rec.mp3", tmp_path / "rec.mp3", len(body))
    assert path.read_bytes() == body


def test_bare_lf_heads_are_cut_like_crlf_ones(
    serve: Callable[[Script], RawServer], engine: Downloader, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(receive, "DIRECT_BODY_MIN", 0)
    body = b"\n\n" + body_of(100_000)  # blank lines in the body must not count as a head's end
    head = head_for(body, newline=b"\n")
    server = serve(lambda request: cut(head + body, len(head) - 1))
    assert fetch(engine, server.url + "/a.mp3", tmp_path / "a.mp3", len(body)).read_bytes() == body


def test_small_bodies_still_share_one_kept_alive_connection(
    serve: Callable[[Script], RawServer], engine: Downloader, tmp_path: Path
) -> None:
    bodies = {f"/{n}.mp3".encode(): body_of(50_000 + n, seed=n) for n in range(3)}

    def answer(request: bytes) -> list[bytes]:
        body = bodies[request.split(b" ")[1]]
        return [head_for(body)[:-1], head_for(body)[-1:] + body]  # the head's last LF in the body's read

    server = serve(answer)
    for n in range(3):
        path = fetch(engine, f"{server.url}/{n}.mp3", tmp_path / f"{n}.mp3", 50_000 + n)
        assert path.read_bytes() == bodies[f"/{n}.mp3".encode()]
    assert len(server.requests) == 3
    assert server.connections == 1


def test_a_large_body_alone_is_read_past_httpx_and_its_connection_closed(
    serve: Callable[[Script], RawServer], engine: Downloader, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct_reads = 0
    readinto = transport.DirectBody.readinto

    def counted(self: transport.DirectBody, view: memoryview) -> int:
        nonlocal direct_reads
        direct_reads += 1
        return readinto(self, view)

    monkeypatch.setattr(transport.DirectBody, "readinto", counted)
    body = body_of(receive.DIRECT_BODY_MIN + 12345)
    server = serve(lambda request: [head_for(body) + body[:1000], body[1000:]])
    for name in ("a.mp3", "b.mp3"):
        assert fetch(engine, server.url + "/" + name, tmp_path / name, len(body)).read_bytes() == body
    assert direct_reads >= 2 * 17
    # h11 never saw the end of either body, so neither connection went back to the pool.
    assert server.connections == 2


def test_a_large_body_cut_short_keeps_what_arrived_for_the_next_attempt(
    serve: Callable[[Script], RawServer], engine: Downloader, tmp_path: Path,
) -> None:
    body = body_of(receive.DIRECT_BODY_MIN + 4096)
    sent = receive.DIRECT_BODY_MIN // 2

    def first_half_then_hang_up(request: bytes) -> list[bytes]:
        if b"range:" not in request.lower():
            return [head_for(body) + body[:sent], b""]
        rest = body[sent:]
        return [
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
            b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (len(rest), sent, len(body) - 1, len(body))
            + rest
        ]

    server = serve(first_half_then_hang_up)
    recording = Recording(
        provider="kismet", profile="test", ref="user/call/cut", id="cut", status="ready",
        downloadable=True, size_bytes=len(body),
    )
    path = tmp_path / "cut.mp3"
    result = engine.fetch(recording, path, lambda: DownloadTarget(url=server.url + "/cut.mp3"))
    # retries=0: the cut body fails this run, and what arrived is kept for the next one
    assert result.outcome == "failed"
    assert "closed before the whole body arrived" in str(result.error)
    assert (tmp_path / "cut.mp3.part").read_bytes() == body[:sent]
    with Downloader(retries=0) as second:
        resumed = second.fetch(recording, path, lambda: DownloadTarget(url=server.url + "/cut.mp3"))
    assert resumed.outcome == "downloaded" and resumed.reason == "resumed"
    assert path.read_bytes() == body
    assert b"range: bytes=%d-" % sent in server.requests[-1].lower()


def test_a_buffer_is_not_refilled_before_the_slow_hasher_is_done_with_it(
    serve: Callable[[Script], RawServer], engine: Downloader, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    absorb = partfile.Hasher.absorb

    def slow(self: partfile.Hasher, data: bytes | memoryview) -> None:
        time.sleep(0.01)  # the receiver outruns the hash and must wait for its buffers
        absorb(self, data)

    monkeypatch.setattr(partfile.Hasher, "absorb", slow)
    monkeypatch.setattr(receive, "DIRECT_BODY_MIN", 0)
    body = body_of(12 * engine.read_size + 5)  # three times round the ring of buffers
    server = serve(lambda request: [head_for(body) + body])
    path = fetch(engine, server.url + "/slow.mp3", tmp_path / "slow.mp3", len(body))
    assert path.read_bytes() == body  # and fetch() checked the sha256 against these bytes
