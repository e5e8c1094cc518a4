"""Bounded memory and shared resources of the download engine (issue 10)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from recfetch.download import Downloader, engine
from recfetch.download.partfile import Budget
from recfetch.providers.base import DownloadTarget
from recfetch.sandbox.storage import Storage

pytest.register_assert_rewrite("fixtures_download")

from fixtures_download import Minter, assert_complete, recording  # noqa: E402

MiB = 1 << 20


def test_budget_blocks_a_taker_until_bytes_are_given_back() -> None:
    budget = Budget(100)
    budget.take(60)
    taken = threading.Event()

    def take() -> None:
        budget.take(60)
        taken.set()

    threading.Thread(target=take, daemon=True).start()
    assert not taken.wait(0.2)  # 40 left: the second chunk waits
    budget.give(60)
    assert taken.wait(2)
    budget.give(60)
    budget.take(500)  # larger than the whole budget: waits for all of it, never forever
    budget.give(500)


def test_many_transfers_through_a_tiny_budget_all_complete_byte_exact(
    storage: Storage,
    downloaders: Callable[..., Downloader],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "BUFFER_BUDGET", 0)  # the floor: two reads in flight in all
    downloader = downloaders(read_size=64 * 1024)
    keys = [f"k/{i}.mp3" for i in range(12)]
    for key in keys:
        storage.put(key, size=MiB + 7)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(
            lambda key: downloader.fetch(
                recording(key, MiB + 7), tmp_path / key, Minter(storage, key)
            ),
            keys,
        ))
    for key, result in zip(keys, results, strict=True):
        assert_complete(result, tmp_path / key, storage, key)


def test_a_failed_write_gives_its_budget_back(
    storage: Storage, downloaders: Callable[..., Downloader], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno
    import os

    monkeypatch.setattr(engine, "BUFFER_BUDGET", 0)
    downloader = downloaders(read_size=64 * 1024)
    storage.put("a.mp3", size=MiB)
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("a.mp3.part"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    assert downloader.fetch(recording("a", MiB), tmp_path / "a.mp3", Minter(storage, "a.mp3")).error
    monkeypatch.undo()
    # Were the budget leaked, this transfer would wait forever.
    storage.put("b.mp3", size=MiB)
    started = time.monotonic()
    result = downloader.fetch(recording("b", MiB), tmp_path / "b.mp3", Minter(storage, "b.mp3"))
    assert_complete(result, tmp_path / "b.mp3", storage, "b.mp3")
    assert time.monotonic() - started < 10


def test_the_next_transfer_receives_while_a_finished_file_is_made_durable(
    storage: Storage,
    downloaders: Callable[..., Downloader],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One transfer slot: the fsync of file a waits until file b's request has reached the
    storage host, which only happens if a's fsync runs outside the transfer limit."""
    import os

    downloader = downloaders(transfers=1)
    for key in ("a.mp3", "b.mp3"):
        storage.put(key, size=300_000)
    real_fsync = os.fsync
    overlapped = threading.Event()

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("a.mp3.part"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not storage.server.requests("b.mp3"):
                time.sleep(0.01)
            if storage.server.requests("b.mp3"):
                overlapped.set()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(
            downloader.fetch, recording("a", 300_000), tmp_path / "a.mp3", Minter(storage, "a.mp3")
        )
        while not storage.server.requests("a.mp3"):
            time.sleep(0.005)  # a holds the slot before b asks for it
        second = pool.submit(
            downloader.fetch, recording("b", 300_000), tmp_path / "b.mp3", Minter(storage, "b.mp3")
        )
        results = {"a.mp3": first.result(timeout=60), "b.mp3": second.result(timeout=60)}
    assert overlapped.is_set()
    for key, result in results.items():
        assert_complete(result, tmp_path / key, storage, key)


def test_the_next_url_is_minted_while_another_transfer_holds_the_only_slot(
    storage: Storage, downloaders: Callable[..., Downloader], tmp_path: Path
) -> None:
    """A provider's mint (an API call) for file b does not wait for a transfer slot."""
    downloader = downloaders(transfers=1)
    for key in ("a.mp3", "b.mp3"):
        storage.put(key, size=400_000)
    storage.throttle(1_000_000)  # a's body takes ~0.4 s and holds the slot meanwhile
    minted: dict[str, bool] = {}

    def mint_b() -> DownloadTarget:
        part = tmp_path / "a.mp3.part"
        minted["while a receives"] = part.exists() and part.stat().st_size < 400_000
        return Minter(storage, "b.mp3")()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(
            downloader.fetch, recording("a", 400_000), tmp_path / "a.mp3", Minter(storage, "a.mp3")
        )
        while not storage.server.requests("a.mp3"):
            time.sleep(0.005)  # a holds the slot
        second = pool.submit(downloader.fetch, recording("b", 400_000), tmp_path / "b.mp3", mint_b)
        results = {"a.mp3": first.result(timeout=60), "b.mp3": second.result(timeout=60)}
    assert minted == {"while a receives": True}
    for key, result in results.items():
        assert_complete(result, tmp_path / key, storage, key)


def test_one_ssl_context_for_the_storage_and_every_api_client() -> None:
    script = """
import httpx
calls = []
real = httpx.create_ssl_context
httpx.create_ssl_context = lambda *a, **k: calls.append(1) or real(*a, **k)
from recfetch.download import Downloader
from recfetch.providers._http import ApiClient
clients = [Downloader(), Downloader()]
apis = [ApiClient("https://api.invalid/", provider="x"), ApiClient("https://b.invalid/", provider="y")]
print(len(calls))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "1"


# ---------------------------------------------------------------------------
# proxies: honoured for storage hosts, never for loopback


@pytest.mark.parametrize(
    ("url", "env", "proxy"),
    [
        ("https://bucket.s3.example/k", {"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128"),
        ("http://bucket.s3.example/k", {"http_proxy": "http://p:1"}, "http://p:1"),
        ("https://bucket.s3.example/k", {"http_proxy": "http://p:1"}, None),
        ("https://bucket.s3.example/k", {"ALL_PROXY": "http://p:1"}, "http://p:1"),
        ("https://bucket.s3.example/k", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "s3.example"},
         None),
        ("http://127.0.0.1:9000/k", {"HTTP_PROXY": "http://p:1"}, None),
        ("http://[::1]:9000/k", {"HTTP_PROXY": "http://p:1"}, None),
        ("http://localhost:9000/k", {"HTTP_PROXY": "http://p:1"}, None),
        ("https://bucket.s3.example/k", {}, None),
    ],
)
def test_which_storage_requests_go_through_a_proxy(
    url: str, env: dict[str, str], proxy: str | None
) -> None:
    import httpx

    from recfetch.download.transport import proxy_for

    assert proxy_for(httpx.URL(url), env) == proxy


def test_loopback_storage_is_reached_directly_even_with_a_proxy_set(
    storage: Storage,
    downloaders: Callable[..., Downloader],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    storage.put("p.mp3", size=100_000)
    result = downloaders().fetch(recording("p", 100_000), tmp_path / "p.mp3", Minter(storage, "p.mp3"))
    assert_complete(result, tmp_path / "p.mp3", storage, "p.mp3")
