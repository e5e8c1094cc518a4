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
