"""Hostile and broken storage hosts (issue 8): encodings, short unframed bodies, endless stalls,
local write failures. Each runs the engine, or the CLI, against the storage stand-in."""

from __future__ import annotations

import gzip
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from recfetch.download import Downloader
from recfetch.errors import (
    ExitCode,
    IntegrityError,
    LocalIOError,
    ProviderError,
    TransferError,
)
from recfetch.sandbox.storage import Storage

pytest.register_assert_rewrite("fixtures_download")

from fixtures_download import (  # noqa: E402
    Minter,
    assert_complete,
    object_gets,
    part_of,
    ranges,
    recording,
)

pytestmark = pytest.mark.usefixtures("fast_backoff")

MiB = 1 << 20
KEY = "org/user/call/egress-7.mp4"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out" / "rec.mp4"


# ---------------------------------------------------------------------------
# Content-Encoding: decoded and verified, or refused; never saved as the recording


@pytest.mark.parametrize("size", [None, 300_000], ids=["size-less provider", "sized provider"])
@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_body_is_decoded_never_saved_raw(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path, coding: str,
    size: int | None,
) -> None:
    storage.put(KEY, size=300_000)
    storage.encode_next(coding)
    result = downloaders().fetch(recording("e1", size), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert object_gets(storage.server)[0].headers["accept-encoding"] == "identity"


def test_unknown_encoding_is_refused_and_nothing_is_kept(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=50_000)
    storage.encode_next("br", times=None)
    result = downloaders().fetch(recording("e1", None), out, Minter(storage, KEY))
    assert isinstance(result.error, ProviderError)
    assert "encoded as br" in result.error.message
    assert not out.exists() and not part_of(out).exists()
    assert len(object_gets(storage.server)) == 1  # refusing is not retried


def test_cut_compressed_body_is_an_interruption_then_completes(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=200_000)
    compressed = len(gzip.compress(storage.content(KEY)))
    storage.encode_next("gzip", cut=compressed // 2)  # framed, but the gzip stream is cut
    result = downloaders().fetch(recording("e1", None), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert len(object_gets(storage.server)) == 2


def test_cut_compressed_body_that_never_completes_is_never_saved(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=200_000)
    compressed = len(gzip.compress(storage.content(KEY)))
    storage.encode_next("gzip", cut=compressed - 4, times=None)  # the length trailer is missing
    result = downloaders(retries=2).fetch(recording("e1", None), out, Minter(storage, KEY))
    assert isinstance(result.error, TransferError)
    assert "gzip stream ended" in result.error.message
    assert not out.exists()


# ---------------------------------------------------------------------------
# a body without Content-Length that stops short is an interruption


def test_unframed_body_stopping_short_keeps_the_part_and_resumes_with_range(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=100_000)
    storage.unframed_next(after_bytes=40_000)
    result = downloaders().fetch(recording("e1", 100_000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert ranges(storage.server) == [None, "bytes=40000-"]


def test_unframed_short_body_without_retries_left_keeps_the_part(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=100_000)
    storage.unframed_next(after_bytes=40_000)
    result = downloaders(retries=0).fetch(recording("e1", 100_000), out, Minter(storage, KEY))
    assert isinstance(result.error, TransferError)
    assert not isinstance(result.error, IntegrityError)
    assert "40000 of 100000" in result.error.message
    assert not out.exists()
    assert part_of(out).read_bytes() == storage.content(KEY)[:40_000]
    # The next run resumes it.
    result = downloaders().fetch(recording("e1", 100_000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert ranges(storage.server)[-1] == "bytes=40000-"


def test_whole_unframed_body_of_the_provider_size_is_saved(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=100_000)
    storage.unframed_next()
    result = downloaders().fetch(recording("e1", 100_000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert ranges(storage.server) == [None]


# ---------------------------------------------------------------------------
# stalls: a host that keeps stopping costs a bounded time


@pytest.mark.timeout(60)
def test_host_that_sends_a_little_then_stalls_every_time_costs_a_bounded_time(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=4 * MiB)
    storage.stall_next(after_bytes=1000, seconds=3, times=None)
    started = time.monotonic()
    result = downloaders(retries=2, stall_timeout=0.3).fetch(
        recording("e1", 4 * MiB), out, Minter(storage, KEY)
    )
    elapsed = time.monotonic() - started
    assert isinstance(result.error, TransferError)
    assert "no data for 0.3s" in result.error.message
    # Every attempt made progress, yet the stalls are counted: retries + 1 of them.
    assert len(object_gets(storage.server)) == 3
    assert elapsed < 3 * (0.3 + 1.0)
    assert part_of(out).read_bytes() == storage.content(KEY)[:3000]


# ---------------------------------------------------------------------------
# local storage failures: exit 10, .part kept


def test_output_folder_that_cannot_be_created_is_a_local_io_error_before_any_mint(
    storage: Storage, downloaders: Callable[..., Downloader], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"x")
    mint = Minter(storage, KEY)
    storage.put(KEY, size=1000)
    result = downloaders().fetch(recording("e1", 1000), blocker / "sub" / "rec.mp4", mint)
    assert isinstance(result.error, LocalIOError)
    assert result.error.exit_code == ExitCode.LOCAL_IO
    assert str(blocker / "sub") in result.error.message
    assert mint.calls == 0


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_stops_the_run_with_exit_10_and_keeps_the_part(
    sandbox_profile, tmp_path: Path
) -> None:
    """A real write failure (the kernel refuses to grow the file), through the real CLI."""
    out_dir = tmp_path / "recordings"
    completed = subprocess.run(
        [sys.executable, "-m", "recfetch", "kismet", "pull", "-o", str(out_dir), "--jobs", "2",
         "--no-archive"],
        capture_output=True, text=True, env=os.environ.copy(),
        preexec_fn=_limit_file_size(2000), timeout=120, check=False,
    )
    assert completed.returncode == 10, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, completed.stderr
    assert "no space left" in errors[0] and str(out_dir) in errors[0]
    parts = list(out_dir.rglob("*.part"))
    assert parts and all(p.stat().st_size == 2000 for p in parts)
    finished = [p for p in out_dir.rglob("*") if p.is_file() and not p.name.endswith((".part", ".meta"))]
    assert finished == []


def test_decoder_bounds_each_piece_and_checks_the_stream_end() -> None:
    import zlib

    from recfetch.download.decoding import Decoder, EncodingCutOff

    bomb = gzip.compress(b"\0" * (16 * MiB))  # ~16 KiB that expands 1000-fold
    pieces = list(Decoder("gzip", 256 * 1024).iterate([bomb[:100], bomb[100:]]))
    assert sum(map(len, pieces)) == 16 * MiB and max(map(len, pieces)) <= 256 * 1024
    with pytest.raises(EncodingCutOff):
        list(Decoder("gzip", 1024).iterate([bomb[:-8]]))
    with pytest.raises(zlib.error):
        list(Decoder("gzip", 1024).iterate([bomb, b"trailing junk"]))
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = raw_deflate.compress(b"abc" * 1000) + raw_deflate.flush()
    assert b"".join(Decoder("deflate", 1024).iterate([body])) == b"abc" * 1000
