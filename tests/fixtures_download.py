"""Fixtures for the download-engine tests: the storage stand-in, an API origin, minting helpers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from recfetch import backoff
from recfetch.download import Downloader, FileResult
from recfetch.providers.base import DownloadTarget, Recording
from recfetch.sandbox.httpserver import LoggedRequest, Server
from recfetch.sandbox.storage import Storage

CREDENTIAL_HEADERS = {
    "Authorization": "Bearer api-token-must-not-leak",
    "X-Auth-Token": "kazoo-token-must-not-leak",
    "api-key": "kaleyra-key-must-not-leak",
    "X-Client-Secret": "kismet-secret-must-not-leak",
}


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exponential backoff in milliseconds; Retry-After is still honoured in full."""
    monkeypatch.setattr(backoff, "BASE_DELAY", 0.01)


@pytest.fixture
def storage() -> Iterator[Storage]:
    store = Storage()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def api_server() -> Iterator[Server]:
    """A second origin standing in for a provider's API host."""
    server = Server("api").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def downloaders() -> Iterator[Callable[..., Downloader]]:
    """Make Downloaders that are closed after the test."""
    made: list[Downloader] = []

    def make(**kwargs: Any) -> Downloader:
        downloader = Downloader(**kwargs)
        made.append(downloader)
        return downloader

    yield make
    for downloader in made:
        downloader.close()


def recording(key: str, size: int | None, **changes: Any) -> Recording:
    return Recording(
        provider="kismet", profile="test", ref=f"user/call/{key}", id=key,
        status="ready", downloadable=True, size_bytes=size, **changes,
    )


class Minter:
    """A provider's `mint` for the storage stand-in: presigns on every call and counts calls."""

    def __init__(
        self,
        storage: Storage,
        key: str,
        *,
        expires_in: float = 900,
        headers: Mapping[str, str] | None = None,
        credential_origin: tuple[str, str, int] | None = None,
        report_expiry: bool = True,
        after: Callable[[int], None] | None = None,
    ) -> None:
        self.storage = storage
        self.key = key
        self.expires_in = expires_in
        self.headers = dict(headers or {})
        self.credential_origin = credential_origin
        self.report_expiry = report_expiry
        self.after = after
        self.calls = 0
        self.urls: list[str] = []

    def __call__(self) -> DownloadTarget:
        self.calls += 1
        url, expires_at = self.storage.presign(self.key, expires_in=self.expires_in)
        self.urls.append(url)
        if self.after is not None:
            self.after(self.calls)
        return DownloadTarget(
            url=url,
            expires_at=expires_at if self.report_expiry else None,
            headers=self.headers,
            credential_origin=self.credential_origin,
        )


class EventReporter:
    """A Reporter that records every call; ``on_advance`` lets a test act mid-transfer."""

    def __init__(self, on_advance: Callable[[int, int], None] | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.advanced = 0
        self.on_advance = on_advance
        self.planned: list[tuple[str, int | None]] = []
        self._lock = threading.Lock()

    def file_planned(self, key: str, size: int | None) -> None:
        with self._lock:
            self.planned.append((key, size))

    def file_started(self, key: str, name: str, total: int | None, completed: int) -> None:
        with self._lock:
            self.events.append(("started", key, name, total, completed))

    def file_advance(self, key: str, n: int) -> None:
        with self._lock:
            self.events.append(("advance", key, n))
            self.advanced += n
            advanced = self.advanced
        if self.on_advance is not None:
            self.on_advance(n, advanced)

    def file_reset(self, key: str, completed: int, total: int | None) -> None:
        with self._lock:
            self.events.append(("reset", key, completed, total))

    def file_finished(self, key: str, ok: bool) -> None:
        with self._lock:
            self.events.append(("finished", key, ok))

    def kinds(self) -> list[str]:
        return [event[0] for event in self.events]

    def chunk_sizes(self) -> list[int]:
        return [event[2] for event in self.events if event[0] == "advance"]


def object_gets(server: Server) -> list[LoggedRequest]:
    return [r for r in server.requests(method="GET") if r.path.startswith("/recfetch-sandbox/")]


def ranges(server: Server) -> list[str | None]:
    return [r.headers.get("range") for r in object_gets(server)]


def part_of(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def meta_of(path: Path) -> Path:
    return path.with_name(path.name + ".part.meta")


def assert_complete(result: FileResult, path: Path, storage: Storage, key: str) -> None:
    assert result.outcome == "downloaded", result.error
    assert result.path == path
    assert path.read_bytes() == storage.content(key)
    assert result.bytes == storage.size(key)
    assert result.sha256 == storage.sha256(key)
    assert not part_of(path).exists()
    assert not meta_of(path).exists()


def http_date_in(seconds: float) -> str:
    import email.utils
    import time

    return email.utils.formatdate(time.time() + seconds, usegmt=True)
