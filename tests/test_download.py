"""The download engine against real servers on 127.0.0.1: the storage stand-in and SeaweedFS."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import httpx
import pytest

from recfetch import download, naming
from recfetch.download import Downloader, FileResult
from recfetch.errors import (
    AuthError,
    ExitCode,
    IntegrityError,
    InterruptedError_,
    LocalIOError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    TransferError,
    UsageError,
)
from recfetch.providers.base import DownloadTarget, origin_of
from recfetch.sandbox.httpserver import Response, Server
from recfetch.sandbox.storage import BUCKET, Storage

# Helpers come from these modules too: let pytest rewrite their asserts before importing.
pytest.register_assert_rewrite("fixtures_download", "s3")

from fixtures_download import (  # noqa: E402
    CREDENTIAL_HEADERS,
    EventReporter,
    Minter,
    assert_complete,
    http_date_in,
    meta_of,
    object_gets,
    part_of,
    ranges,
    recording,
)
from s3 import DropProxy, S3Store  # noqa: E402

pytestmark = pytest.mark.usefixtures("fast_backoff", "body_path")

MiB = 1 << 20
KEY = "org/user/call/egress-1.mp3"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out" / "rec.mp3"


@pytest.fixture(params=["through-httpx", "direct"])
def body_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: bodies read through h11/httpx, and (a transfer running alone) read
    straight from the socket into the .part's buffers, which big files take (receive.py)."""
    if request.param == "direct":
        monkeypatch.setattr(download.receive, "DIRECT_BODY_MIN", 0)
    return str(request.param)


# ---------------------------------------------------------------------------
# the happy path


def test_download_is_byte_exact_with_sha256_and_one_mint(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=3 * MiB + 12345)
    mint = Minter(storage, KEY)
    reporter = EventReporter()

    result = downloaders(reporter=reporter).fetch(recording("e1", 3 * MiB + 12345), out, mint)

    assert_complete(result, out, storage, KEY)
    assert result.mints == mint.calls == 1
    assert result.reason is None and result.error is None
    assert reporter.kinds()[0] == "started" and reporter.kinds()[-1] == "finished"
    assert reporter.events[-1] == ("finished", "user/call/e1", True)
    assert sum(reporter.chunk_sizes()) == 3 * MiB + 12345
    (request,) = object_gets(storage.server)
    assert request.headers.get("accept-encoding") == "identity"
    assert "range" not in request.headers


def test_files_are_0600_and_created_directories_0700(
    storage: Storage, downloaders: Callable[..., Downloader], tmp_path: Path
) -> None:
    storage.put(KEY, size=1000)
    path = tmp_path / "a" / "b" / "rec.mp3"
    old_umask = os.umask(0)  # even a permissive umask must not widen the modes
    try:
        result = downloaders().fetch(recording("e1", 1000), path, Minter(storage, KEY))
    finally:
        os.umask(old_umask)
    assert result.outcome == "downloaded"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_existing_file_is_skipped_without_minting(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    out.parent.mkdir(parents=True)
    out.write_bytes(b"x" * 1000)

    def mint() -> DownloadTarget:
        raise AssertionError("mint must not be called for a file that is already present")

    result = downloaders().fetch(recording("e1", 1000), out, mint)

    assert result == FileResult(
        ref="user/call/e1", outcome="skipped", reason="already present", path=out,
        bytes=1000, sha256=None, error=None, mints=0,
    )
    assert storage.server.requests() == []


def test_existing_file_of_wrong_size_is_downloaded_again(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=5000)
    out.parent.mkdir(parents=True)
    out.write_bytes(b"short")
    result = downloaders().fetch(recording("e1", 5000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)


def test_overwrite_downloads_even_when_present(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=5000)
    out.parent.mkdir(parents=True)
    out.write_bytes(b"z" * 5000)
    result = downloaders(overwrite=True).fetch(recording("e1", 5000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)


def test_concurrent_fetches_share_one_downloader(
    storage: Storage, downloaders: Callable[..., Downloader], tmp_path: Path
) -> None:
    downloader = downloaders()
    sizes = [MiB + i * 7919 for i in range(8)]
    for i, size in enumerate(sizes):
        storage.put(f"k{i}", size=size)
    results: dict[int, FileResult] = {}

    def work(i: int) -> None:
        path = tmp_path / f"f{i}.mp3"
        results[i] = downloader.fetch(recording(f"e{i}", sizes[i]), path, Minter(storage, f"k{i}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        assert_complete(results[i], tmp_path / f"f{i}.mp3", storage, f"k{i}")


def test_same_path_twice_at_once_downloads_once_and_skips_once(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=2 * MiB)
    storage.throttle(8 * MiB)
    downloader = downloaders()
    results: list[FileResult] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                downloader.fetch(recording("e1", 2 * MiB), out, Minter(storage, KEY))
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["downloaded", "skipped"]
    assert out.read_bytes() == storage.content(KEY)


def test_engine_client_reads_in_large_chunks(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=8 * MiB)
    reporter = EventReporter()
    downloader = downloaders(reporter=reporter)
    assert downloader.fetch(recording("e1", 8 * MiB), out, Minter(storage, KEY)).outcome == (
        "downloaded"
    )
    # httpcore on its own never hands over more than 64 KiB per read.
    assert max(reporter.chunk_sizes()) > 64 * 1024


def test_memory_stays_bounded_whatever_the_size(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    import tracemalloc

    storage.put(KEY, size=48 * MiB)
    downloader = downloaders()
    tracemalloc.start()
    try:
        result = downloader.fetch(recording("e1", 48 * MiB), out, Minter(storage, KEY))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.outcome == "downloaded"
    # A few 1 MiB reads in flight (socket, h11, write and hash queues) plus the
    # stand-in's own 1 MiB chunks: nowhere near the object's size.
    assert peak < 24 * MiB


def test_engine_client_carries_no_credentials_or_cookies(
    downloaders: Callable[..., Downloader],
) -> None:
    client = downloaders().client
    assert client.auth is None
    assert {k.lower() for k in client.headers} & {"authorization", "cookie"} == set()
    assert client.follow_redirects is False
    client.cookies.extract_cookies(
        httpx.Response(
            200, headers={"set-cookie": "session=abc; Path=/"},
            request=httpx.Request("GET", "http://127.0.0.1/"),
        )
    )
    assert len(client.cookies) == 0


# ---------------------------------------------------------------------------
# .part files and resuming


def test_failure_leaves_no_final_file_and_keeps_the_part(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=2 * MiB)
    storage.drop_next(700_000, times=None)

    result = downloaders(retries=0).fetch(recording("e1", 2 * MiB), out, Minter(storage, KEY))

    assert result.outcome == "failed"
    assert isinstance(result.error, TransferError)
    assert result.error.exit_code == ExitCode.TRANSFER
    assert result.path is None and result.bytes == 0 and result.sha256 is None
    assert not out.exists()
    part = part_of(out)
    assert 0 < part.stat().st_size <= 700_000
    assert part.read_bytes() == storage.content(KEY)[: part.stat().st_size]
    assert stat.S_IMODE(part.stat().st_mode) == 0o600
    meta = json.loads(meta_of(out).read_text())
    assert set(meta) == {"etag", "total"}
    assert meta == {"etag": storage.etag(KEY), "total": 2 * MiB}


def test_dropped_connection_resumes_from_part_with_range(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=3 * MiB)
    storage.drop_next(1_000_000)
    mint = Minter(storage, KEY)

    result = downloaders(retries=1).fetch(recording("e1", 3 * MiB), out, mint)

    assert_complete(result, out, storage, KEY)
    first, second = object_gets(storage.server)
    assert "range" not in first.headers
    offset = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 1_000_000
    assert second.headers["if-range"] == storage.etag(KEY)
    assert second.headers["accept-encoding"] == "identity"
    assert mint.calls == 1


def test_part_from_an_earlier_run_is_resumed_and_hashed_whole(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=2 * MiB)
    out.parent.mkdir(parents=True)
    part_of(out).write_bytes(storage.content(KEY)[:777_777])
    reporter = EventReporter()

    result = downloaders(reporter=reporter).fetch(
        recording("e1", 2 * MiB), out, Minter(storage, KEY)
    )

    assert_complete(result, out, storage, KEY)
    assert result.reason == "resumed"
    assert ranges(storage.server) == ["bytes=777777-"]
    assert reporter.events[0] == ("started", "user/call/e1", "rec.mp3", 2 * MiB, 777_777)


def test_200_instead_of_206_restarts_cleanly(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=MiB)
    out.parent.mkdir(parents=True)
    # Garbage in the .part proves the 200 body replaced it instead of being appended.
    part_of(out).write_bytes(b"\xff" * 300_000)
    storage.ignore_range_next()
    reporter = EventReporter()

    result = downloaders(reporter=reporter).fetch(recording("e1", MiB), out, Minter(storage, KEY))

    assert_complete(result, out, storage, KEY)
    assert ranges(storage.server) == ["bytes=300000-"]  # one request: the 200 body is used
    assert ("reset", "user/call/e1", 0, MiB) in reporter.events


def test_bad_content_range_discards_part_and_restarts(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=MiB)
    out.parent.mkdir(parents=True)
    part_of(out).write_bytes(storage.content(KEY)[:400_000])
    storage.bad_range_next(shift=1)

    result = downloaders(retries=0).fetch(recording("e1", MiB), out, Minter(storage, KEY))

    assert_complete(result, out, storage, KEY)
    assert ranges(storage.server) == ["bytes=400000-", None]


def test_changed_object_is_detected_by_if_range_and_restarted(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=MiB, seed="old")
    downloader = downloaders(retries=0)
    storage.drop_next(300_000)
    first = downloader.fetch(recording("e1", MiB), out, Minter(storage, KEY))
    assert first.outcome == "failed" and part_of(out).exists()
    storage.put(KEY, size=MiB, seed="new")  # same size, new content and ETag

    result = downloader.fetch(recording("e1", MiB), out, Minter(storage, KEY))

    assert_complete(result, out, storage, KEY)
    last = object_gets(storage.server)[-1]
    assert last.headers["if-range"] != storage.etag(KEY)


def test_416_with_a_whole_part_completes_without_a_body(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=MiB + 1)
    out.parent.mkdir(parents=True)
    part_of(out).write_bytes(storage.content(KEY))

    result = downloaders().fetch(recording("e1", MiB + 1), out, Minter(storage, KEY))

    assert_complete(result, out, storage, KEY)
    assert ranges(storage.server) == [f"bytes={MiB + 1}-"]


def test_part_longer_than_the_recording_is_discarded(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    out.parent.mkdir(parents=True)
    part_of(out).write_bytes(b"q" * 5000)
    result = downloaders().fetch(recording("e1", 1000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert ranges(storage.server) == [None]


def test_stalled_transfer_is_retried_and_resumed(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=MiB)
    content = storage.content(KEY)
    from recfetch.sandbox.httpserver import Fault

    def stalling(request: object) -> Response:
        def body() -> Iterator[bytes]:
            yield content[:200_000]
            time.sleep(3)  # no byte for longer than the stall timeout
            yield content[200_000:]

        return Response(200, body(), {"Content-Type": "audio/mpeg"}, length=len(content))

    storage.server.add_fault(Fault(lambda r: r.path.startswith(f"/{BUCKET}/"), stalling))
    started = time.monotonic()

    result = downloaders(retries=1, stall_timeout=0.5).fetch(
        recording("e1", MiB), out, Minter(storage, KEY)
    )

    assert_complete(result, out, storage, KEY)
    assert time.monotonic() - started < 2.5
    assert ranges(storage.server)[1] == "bytes=200000-"


# ---------------------------------------------------------------------------
# retries


def test_429_retry_after_seconds_is_honoured(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=100_000)
    storage.fail_next(429, retry_after=1)
    started = time.monotonic()
    result = downloaders(retries=1).fetch(recording("e1", 100_000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert time.monotonic() - started >= 1.0
    assert len(object_gets(storage.server)) == 2


def test_503_retry_after_http_date_is_honoured(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=100_000)
    storage.fail_next(503, retry_after=http_date_in(2))
    started = time.monotonic()
    result = downloaders(retries=1).fetch(recording("e1", 100_000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert time.monotonic() - started >= 1.0  # the date has one-second resolution


def test_429_after_all_retries_is_rate_limited(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    storage.fail_next(429, times=None, retry_after=0)
    result = downloaders(retries=2).fetch(recording("e1", 1000), out, Minter(storage, KEY))
    assert result.outcome == "failed" and result.reason == "retries exhausted"
    assert isinstance(result.error, RateLimitedError)
    assert result.error.exit_code == ExitCode.RATE_LIMITED
    assert "gave up after 2 retries" in result.error.message
    assert len(object_gets(storage.server)) == 3
    assert not out.exists()


def test_5xx_after_all_retries_is_a_transfer_failure(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    storage.fail_next(503, times=None)
    result = downloaders(retries=1).fetch(recording("e1", 1000), out, Minter(storage, KEY))
    assert isinstance(result.error, ProviderError)
    assert result.error.exit_code == ExitCode.TRANSFER
    assert result.error.http_status == 503
    assert len(object_gets(storage.server)) == 2


def test_network_errors_after_all_retries_fail_with_transfer_error(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    storage.drop_next(0, times=None)
    result = downloaders(retries=2).fetch(recording("e1", 1000), out, Minter(storage, KEY))
    assert type(result.error) is TransferError
    assert result.error.code == "NETWORK"
    assert len(object_gets(storage.server)) == 3


def test_server_ignoring_range_and_dropping_every_connection_runs_out_of_retries(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=MiB)
    storage.drop_next(300_000, times=None, ignore_range=True)
    result = downloaders(retries=3).fetch(recording("e1", MiB), out, Minter(storage, KEY))
    assert type(result.error) is TransferError
    # Each attempt restarts at byte 0 and never gets past the first one's 300 kB, so
    # no attempt counts as progress: the first try plus three retries, then give up.
    assert len(object_gets(storage.server)) == 4
    assert not out.exists()


def test_retry_after_too_long_is_reported_not_slept(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    storage.fail_next(429, retry_after=3600)
    started = time.monotonic()
    result = downloaders(retries=5).fetch(recording("e1", 1000), out, Minter(storage, KEY))
    assert isinstance(result.error, RateLimitedError)
    assert "3600" in result.error.message
    assert time.monotonic() - started < 1


# ---------------------------------------------------------------------------
# expiring and rejected URLs


def test_expired_url_is_reminted_and_resumes_from_part_without_spending_a_retry(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    """A run is interrupted mid-transfer; the next run's URL is already dead at the host."""
    storage.put(KEY, size=2 * MiB)
    storage.throttle(4 * MiB)
    stop = threading.Event()
    interrupted = downloaders(
        stop=stop, reporter=EventReporter(on_advance=lambda n, total: stop.set())
    ).fetch(recording("e1", 2 * MiB), out, Minter(storage, KEY))
    assert isinstance(interrupted.error, InterruptedError_)
    offset = part_of(out).stat().st_size
    assert offset > 0
    storage.throttle(None)
    storage.server.clear()

    # The first URL the provider hands out has expired at the storage host by the
    # time it is used (clock skew, slow queue); its expires_at still looks fine.
    mint = Minter(storage, KEY, after=lambda calls: storage.expire_all() if calls == 1 else None)
    result = downloaders(retries=0).fetch(recording("e1", 2 * MiB), out, mint)

    assert_complete(result, out, storage, KEY)
    assert result.mints == mint.calls == 2
    assert ranges(storage.server) == [f"bytes={offset}-", f"bytes={offset}-"]
    first, second = object_gets(storage.server)
    assert first.query["X-Signature"] != second.query["X-Signature"]


def test_url_expiring_mid_transfer_is_rejected_reminted_and_resumed(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    """One fetch: the connection drops, and meanwhile the URL expired (403) -> re-mint."""
    storage.put(KEY, size=2 * MiB)
    storage.drop_next(900_000)
    expired = threading.Event()

    def expire_once(n: int, total: int) -> None:
        if not expired.is_set():
            expired.set()
            storage.expire_all()

    mint = Minter(storage, KEY, report_expiry=False)  # the provider does not say when
    # retries=1 is spent by the dropped connection; the 403 must not spend another.
    result = downloaders(retries=1, reporter=EventReporter(on_advance=expire_once)).fetch(
        recording("e1", 2 * MiB), out, mint
    )

    assert_complete(result, out, storage, KEY)
    assert mint.calls == 2
    first, rejected, resumed = ranges(storage.server)
    assert first is None and rejected == resumed and rejected != "bytes=0-"


def test_url_past_its_expiry_is_reminted_before_the_request(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=600_000)
    storage.throttle(500_000)  # ~1.2 s to the drop, longer than the URL's validity
    storage.drop_next(600_000 - 1)
    mint = Minter(storage, KEY, expires_in=1)

    result = downloaders(retries=1).fetch(recording("e1", 600_000), out, mint)

    assert_complete(result, out, storage, KEY)
    assert mint.calls == 2
    assert len(object_gets(storage.server)) == 2  # no request with the stale URL


def test_already_expired_url_from_the_provider_is_never_used(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    calls = 0

    def mint() -> DownloadTarget:
        nonlocal calls
        calls += 1
        url, expires_at = storage.presign(KEY)
        if calls == 1:
            expires_at = datetime.now(UTC) - timedelta(seconds=5)
        return DownloadTarget(url=url, expires_at=expires_at)

    result = downloaders().fetch(recording("e1", 1000), out, mint)
    assert_complete(result, out, storage, KEY)
    assert calls == result.mints == 2
    assert len(object_gets(storage.server)) == 1


def test_storage_rejecting_every_fresh_url_gives_up(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    storage.fail_next(403, times=None)
    mint = Minter(storage, KEY)
    result = downloaders(retries=5).fetch(recording("e1", 1000), out, mint)
    assert type(result.error) is TransferError
    assert "keeps rejecting" in result.error.message
    assert mint.calls == 4  # the first URL and three re-mints
    assert not out.exists()


def test_mint_auth_error_is_returned_not_raised(
    downloaders: Callable[..., Downloader], out: Path
) -> None:
    def mint() -> DownloadTarget:
        raise AuthError("kismet rejected the credentials (HTTP 401)", provider="kismet")

    result = downloaders().fetch(recording("e1", 1000), out, mint)
    assert result.outcome == "failed"
    assert isinstance(result.error, AuthError)
    assert not part_of(out).exists()  # nothing to resume, nothing left behind


def test_missing_object_is_not_found(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=10)
    mint = Minter(storage, KEY)
    storage.delete(KEY)
    result = downloaders().fetch(recording("e1", 10), out, mint)
    assert isinstance(result.error, NotFoundError)
    assert "NoSuchKey" in result.error.message


# ---------------------------------------------------------------------------
# what is never saved


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "audio/mpeg"])
def test_html_page_is_never_saved(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path, content_type: str
) -> None:
    storage.put(KEY, size=1000)
    storage.html_next(times=None, content_type=content_type)
    mint = Minter(storage, KEY)

    result = downloaders().fetch(recording("e1", None), out, mint)

    assert isinstance(result.error, IntegrityError)
    assert "HTML" in result.error.message
    assert mint.calls == 2  # one fresh URL was tried
    assert not out.exists()
    assert not part_of(out).exists() or b"html" not in part_of(out).read_bytes().lower()


def test_html_page_once_then_media_recovers_with_a_fresh_url(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=5000)
    storage.html_next()
    result = downloaders(retries=0).fetch(recording("e1", 5000), out, Minter(storage, KEY))
    assert_complete(result, out, storage, KEY)
    assert result.mints == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"error": "token expired"}', "application/json"),
        (b"<Error><Code>AccessDenied</Code></Error>", "application/xml"),
        (b'{"error": "token expired"}', "application/octet-stream"),
    ],
)
def test_json_or_xml_error_body_with_200_is_never_saved(
    storage: Storage,
    downloaders: Callable[..., Downloader],
    out: Path,
    body: bytes,
    content_type: str,
) -> None:
    storage.put(KEY, size=1000)
    storage.fail_next(200, times=None, body=body, content_type=content_type)
    result = downloaders().fetch(recording("e1", None), out, Minter(storage, KEY))
    assert isinstance(result.error, IntegrityError)
    assert not out.exists()


def test_html_page_to_a_resume_request_keeps_the_part(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=MiB)
    out.parent.mkdir(parents=True)
    prefix = storage.content(KEY)[:100_000]
    part_of(out).write_bytes(prefix)
    storage.html_next(times=None, content_type="application/octet-stream")
    result = downloaders().fetch(recording("e1", MiB), out, Minter(storage, KEY))
    assert isinstance(result.error, IntegrityError)
    assert part_of(out).read_bytes() == prefix


def test_size_mismatch_is_an_integrity_error(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    result = downloaders().fetch(recording("e1", 1001), out, Minter(storage, KEY))
    assert isinstance(result.error, IntegrityError)
    assert "1000" in result.error.message and "1001" in result.error.message
    assert not out.exists()


def test_checksum_mismatch_is_an_integrity_error_and_nothing_is_kept(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    rec = recording("e1", 1000, checksum="sha256:" + "0" * 64)
    result = downloaders().fetch(rec, out, Minter(storage, KEY))
    assert isinstance(result.error, IntegrityError)
    assert result.reason == "checksum mismatch"
    assert not out.exists() and not part_of(out).exists()


def test_md5_checksum_from_the_provider_is_verified(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    import hashlib

    storage.put(KEY, size=3000)
    md5 = hashlib.md5(storage.content(KEY), usedforsecurity=False).hexdigest()
    result = downloaders().fetch(
        recording("e1", 3000, checksum=f"md5:{md5.upper()}"), out, Minter(storage, KEY)
    )
    assert_complete(result, out, storage, KEY)


def test_unframed_body_of_unknown_length_is_not_trusted(
    api_server: Server, downloaders: Callable[..., Downloader], out: Path
) -> None:
    @api_server.route("GET", "/media")
    def media(request: object) -> Response:
        return Response(200, iter([b"ID3" + b"\0" * 997]),
                        {"Content-Type": "audio/mpeg", "Connection": "close"})

    mint = lambda: DownloadTarget(url=f"{api_server.url}/media")  # noqa: E731
    result = downloaders().fetch(recording("e1", None), out, mint)
    assert isinstance(result.error, IntegrityError) and not out.exists()
    # With the provider's size, the same body can be verified and saved.
    result = downloaders().fetch(recording("e1", 1000), out, mint)
    assert result.outcome == "downloaded" and out.stat().st_size == 1000


# ---------------------------------------------------------------------------
# credentials


def _sensitive(headers: dict[str, str]) -> set[str]:
    return {k for k in headers if k.lower() in {h.lower() for h in CREDENTIAL_HEADERS}} | (
        {"cookie"} & set(headers)
    )


@pytest.mark.parametrize("status", [302, 307])
def test_credentials_reach_the_api_but_never_the_storage_host_across_a_redirect(
    storage: Storage,
    api_server: Server,
    downloaders: Callable[..., Downloader],
    out: Path,
    status: int,
) -> None:
    storage.put(KEY, size=50_000)

    @api_server.route("GET", "/v1/recordings/(?P<rid>[^/]+)/media")
    def media(request: object) -> Response:
        url, _ = storage.presign(KEY)
        return Response(status, b"", {"Location": url})

    target = DownloadTarget(
        url=f"{api_server.url}/v1/recordings/e1/media",
        headers=CREDENTIAL_HEADERS,
        credential_origin=origin_of(api_server.url),
    )
    result = downloaders().fetch(recording("e1", 50_000), out, lambda: target)

    assert_complete(result, out, storage, KEY)
    (api_request,) = api_server.requests("/media")
    for name, value in CREDENTIAL_HEADERS.items():
        assert api_request.headers[name.lower()] == value
    for request in storage.server.requests():
        assert _sensitive(request.headers) == set()


def test_credentials_are_not_sent_when_the_url_is_on_another_origin(
    storage: Storage, api_server: Server, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    mint = Minter(storage, KEY, headers=CREDENTIAL_HEADERS,
                  credential_origin=origin_of(api_server.url))
    result = downloaders().fetch(recording("e1", 1000), out, mint)
    assert_complete(result, out, storage, KEY)
    (request,) = storage.server.requests()
    assert _sensitive(request.headers) == set()


def test_credentials_go_to_the_api_origin_that_serves_media_itself(
    api_server: Server, downloaders: Callable[..., Downloader], out: Path
) -> None:
    body = b"\x00ID3" + os.urandom(20_000)

    @api_server.route("GET", "/media")
    def media(request: object) -> Response:
        return Response(200, body, {"Content-Type": "audio/mpeg"})

    target = DownloadTarget(url=f"{api_server.url}/media", headers={"X-Auth-Token": "tok"})
    result = downloaders().fetch(recording("e1", len(body)), out, lambda: target)
    assert result.outcome == "downloaded" and out.read_bytes() == body
    assert api_server.requests("/media")[0].headers["x-auth-token"] == "tok"


def test_redirect_back_to_the_api_origin_does_not_regain_credentials(
    storage: Storage, api_server: Server, downloaders: Callable[..., Downloader], out: Path
) -> None:
    body = b"\x00" * 1000
    other = Server("cdn").start()
    try:
        @api_server.route("GET", "/start")
        def start(request: object) -> Response:
            return Response(302, b"", {"Location": f"{other.url}/hop"})

        @other.route("GET", "/hop")
        def hop(request: object) -> Response:
            return Response(302, b"", {"Location": f"{api_server.url}/final"})

        @api_server.route("GET", "/final")
        def final(request: object) -> Response:
            return Response(200, body, {"Content-Type": "audio/mpeg"})

        target = DownloadTarget(url=f"{api_server.url}/start", headers=CREDENTIAL_HEADERS)
        result = downloaders().fetch(recording("e1", 1000), out, lambda: target)
        assert result.outcome == "downloaded"
        assert _sensitive(other.requests()[0].headers) == set()
        assert _sensitive(api_server.requests("/final")[0].headers) == set()
    finally:
        other.stop()


def test_redirect_loop_fails_cleanly(
    api_server: Server, downloaders: Callable[..., Downloader], out: Path
) -> None:
    @api_server.route("GET", "/loop")
    def loop(request: object) -> Response:
        return Response(302, b"", {"Location": "/loop?X-Signature=secret"})

    result = downloaders().fetch(
        recording("e1", 10), out, lambda: DownloadTarget(url=f"{api_server.url}/loop")
    )
    assert isinstance(result.error, ProviderError)
    assert "redirects" in result.error.message
    assert "secret" not in result.error.one_line()


def test_error_messages_never_carry_the_presigned_query(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=1000)
    messages = []
    for fault in (
        lambda: storage.fail_next(503, times=None),
        lambda: storage.fail_next(403, times=None),
        lambda: storage.drop_next(0, times=None),
        lambda: storage.fail_next(404, times=None),
    ):
        storage.server.clear()
        fault()
        mint = Minter(storage, KEY)
        result = downloaders(retries=1).fetch(recording("e1", 1000), out, mint)
        assert result.error is not None
        messages.append(result.error.one_line() + json.dumps(result.error.to_json()))
    for text in messages:
        assert "X-Signature" not in text and "X-Expires" not in text
        assert "?<redacted>" in text or "HTTP" in text


# ---------------------------------------------------------------------------
# stopping and local failures


def test_stop_event_interrupts_promptly_and_keeps_the_part(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    storage.put(KEY, size=8 * MiB)
    storage.throttle(2 * MiB)  # would take four seconds
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    started = time.monotonic()

    result = downloaders(stop=stop).fetch(recording("e1", 8 * MiB), out, Minter(storage, KEY))

    # Well before the server would send more (60 s) or the stall timeout (30 s) would fire,
    # with room for a loaded machine.
    assert time.monotonic() - started < 10
    assert isinstance(result.error, InterruptedError_)
    assert result.reason == "interrupted"
    assert result.error.exit_code == ExitCode.INTERRUPTED
    assert not out.exists()
    size = part_of(out).stat().st_size
    assert 0 < size < 8 * MiB
    assert part_of(out).read_bytes() == storage.content(KEY)[:size]


def test_stop_set_before_fetch_mints_nothing(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    stop = threading.Event()
    stop.set()
    mint = Minter(storage, KEY)
    result = downloaders(stop=stop).fetch(recording("e1", 10), out, mint)
    assert isinstance(result.error, InterruptedError_) and mint.calls == 0


def test_stalled_server_does_not_delay_a_stop(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path
) -> None:
    from recfetch.sandbox.httpserver import Fault

    def hang(request: object) -> Response:
        def body() -> Iterator[bytes]:
            yield b"\0" * 1000
            time.sleep(60)

        return Response(200, body(), {"Content-Type": "audio/mpeg"}, length=10_000)

    storage.put(KEY, size=10_000)
    storage.server.add_fault(Fault(lambda r: True, hang))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    result = downloaders(stop=stop, stall_timeout=30).fetch(
        recording("e1", 10_000), out, Minter(storage, KEY)
    )
    assert isinstance(result.error, InterruptedError_)
    # Well before the server would send more (60 s) or the stall timeout (30 s) would fire,
    # with room for a loaded machine.
    assert time.monotonic() - started < 10
    assert part_of(out).stat().st_size == 1000


def test_full_disk_fails_clearly_and_keeps_the_part(
    storage: Storage,
    downloaders: Callable[..., Downloader],
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage.put(KEY, size=4 * MiB)
    real_write = os.write
    written = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal written
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
            if written >= 1_000_000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n = real_write(fd, data)
            written += n
            return n
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    result = downloaders(retries=3).fetch(recording("e1", 4 * MiB), out, Minter(storage, KEY))
    monkeypatch.undo()

    assert isinstance(result.error, LocalIOError)
    assert result.error.exit_code == ExitCode.LOCAL_IO == 10
    assert not isinstance(result.error, TransferError)
    assert "free some space" in result.error.message
    assert str(out.parent) in result.error.message
    assert len(object_gets(storage.server)) == 1  # a full disk is not retried
    assert not out.exists()
    assert part_of(out).stat().st_size == written > 0
    assert part_of(out).read_bytes() == storage.content(KEY)[:written]


def test_part_path_that_is_a_symlink_is_refused(
    storage: Storage, downloaders: Callable[..., Downloader], out: Path, tmp_path: Path
) -> None:
    storage.put(KEY, size=1000)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out.parent.mkdir(parents=True)
    part_of(out).symlink_to(victim)
    result = downloaders().fetch(recording("e1", 1000), out, Minter(storage, KEY))
    assert isinstance(result.error, LocalIOError)
    assert victim.read_bytes() == b"precious"


# ---------------------------------------------------------------------------
# the storage stand-in itself


def test_storage_signed_urls_ranges_and_errors(storage: Storage) -> None:
    storage.put_bytes("a/b c.mp3", b"0123456789")
    url, expires_at = storage.presign("a/b c.mp3", expires_in=60)
    assert expires_at > datetime.now(UTC)
    with httpx.Client() as client:
        whole = client.get(url)
        assert whole.status_code == 200 and whole.content == b"0123456789"
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["etag"].startswith('"')
        assert whole.headers["content-type"] == "audio/mpeg"
        etag = whole.headers["etag"]

        def get(**headers: str) -> httpx.Response:
            return client.get(url, headers=headers)

        assert get(Range="bytes=3-").content == b"3456789"
        assert get(Range="bytes=3-").headers["content-range"] == "bytes 3-9/10"
        assert get(Range="bytes=2-4").content == b"234"
        assert get(Range="bytes=-3").content == b"789"
        unsatisfiable = get(Range="bytes=10-")
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["content-range"] == "bytes */10"
        assert get(Range="bytes=3-", **{"If-Range": etag}).status_code == 206
        assert get(Range="bytes=3-", **{"If-Range": '"other"'}).status_code == 200
        assert client.head(url).headers["content-length"] == "10"

        tampered = client.get(url.replace("X-Signature=", "X-Signature=0"))
        assert tampered.status_code == 403 and b"SignatureDoesNotMatch" in tampered.content
        storage.expire_all()
        expired = client.get(url)
        assert expired.status_code == 403
        assert expired.headers["content-type"] == "application/xml"
        assert b"<Code>AccessDenied</Code><Message>Request has expired</Message>" in (
            expired.content
        )
        assert client.get(storage.presign("a/b c.mp3")[0]).status_code == 200
        missing = client.get(storage.presign("nope")[0])
        assert missing.status_code == 404 and b"NoSuchKey" in missing.content


def test_storage_synthetic_objects_are_deterministic_and_lazy(storage: Storage) -> None:
    storage.put("big", size=1 << 30, seed="s")
    storage.put("same", size=3 * MiB + 5, seed="s")
    assert storage.size("big") == 1 << 30
    assert storage.content("same") == storage.content("same")
    assert len(storage.content("same")) == 3 * MiB + 5
    url, _ = storage.presign("big")
    with httpx.Client() as client:
        tail = client.get(url, headers={"Range": f"bytes={(1 << 30) - 100}-"})
    assert tail.status_code == 206 and len(tail.content) == 100
    # Blocks differ, so a resume at a wrong block boundary could not go unnoticed.
    content = storage.content("same")
    assert content[: 64 * 1024] != content[64 * 1024 : 128 * 1024]


def test_storage_put_file_serves_from_disk(
    storage: Storage, downloaders: Callable[..., Downloader], tmp_path: Path
) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(3 * MiB + 1))
    storage.put_file("f", source)
    assert storage.content("f") == source.read_bytes()
    url, _ = storage.presign("f")
    assert httpx.get(url, headers={"Range": "bytes=5-9"}).content == source.read_bytes()[5:10]
    storage.drop_next(MiB)  # faults work with sendfile() bodies too
    out = tmp_path / "copy.bin"
    result = downloaders(retries=1).fetch(recording("f", 3 * MiB + 1), out, Minter(storage, "f"))
    assert_complete(result, out, storage, "f")
    assert ranges(storage.server)[-1] == f"bytes={MiB}-"


# ---------------------------------------------------------------------------
# file names


def test_sanitize_component_rules() -> None:
    s = naming.sanitize_component
    assert s("a/b\\c") == "a_b_c"
    assert s("..") == "_" and s(".") == "_" and s("") == "_" and s("   ") == "_"
    assert s("../../etc/passwd") == "_.._etc_passwd"
    assert s(".hidden") == "hidden"
    assert s("a\x00b\x1bc\u202egpj.exe") == "abcgpj.exe"
    assert s("a  \t\n b") == "a b"
    assert s('x:*?"<>|y') == "x_______y"
    long = "é" * 300 + ".mp3"
    cut = s(long)
    assert len(cut.encode()) <= 255 and cut.endswith(".mp3")
    cut.encode().decode("utf-8")  # never half a character
    assert len(s("x" * 300).encode()) == 255


def test_render_default_template_and_fields() -> None:
    rec = recording(
        "e9", 10,
        started_at=datetime(2025, 11, 20, 14, 3, 11, tzinfo=UTC),
        filename="Weekly sync: 11/20.MP3",
        direction="inbound",
    )
    assert naming.render(naming.DEFAULT_TEMPLATE, rec, ext=".mp3") == PurePosixPath(
        "2025-11-20_kismet_e9.mp3"
    )
    path = naming.render("{started_at:%Y/%m}/{ref}/{time}_{name}_{direction}_{to}{ext}",
                         rec, ext=".mp3")
    assert path == PurePosixPath(
        "2025/11/user_call_e9/140311_Weekly sync_ 11_20_inbound_unknown.mp3"
    )
    assert naming.render("{year}-{month}-{day}/{id:.2}{ext}", rec, ext=".x") == PurePosixPath(
        "2025-11-20/e9.x"
    )


def test_render_missing_values_and_hostile_templates() -> None:
    rec = recording("e9", 10)
    assert naming.render(naming.DEFAULT_TEMPLATE, rec, ext=".bin") == PurePosixPath(
        "unknown_kismet_e9.bin"
    )
    hostile = naming.render("/../../{ref}/../x{ext}", rec.replace(ref="../../etc"), ext=".mp3")
    assert not hostile.is_absolute() and ".." not in hostile.parts
    dotfile = naming.render("{name}{ext}", rec.replace(filename="../../.bashrc"), ext="")
    assert len(dotfile.parts) == 1 and not dotfile.name.startswith(".")
    assert naming.render("{name}", rec.replace(filename="x.mp3"), ext="") == PurePosixPath("x")


@pytest.mark.parametrize("template", ["{nope}", "{id!r}", "{started_at:%Y", "{}", "{0}", "/"])
def test_render_rejects_bad_templates_naming_the_fields(template: str) -> None:
    with pytest.raises(UsageError) as info:
        naming.render(template, recording("e9", 10), ext=".mp3")
    assert "{started_at}" in str(info.value) and "\n" not in str(info.value)


def test_extension_for() -> None:
    assert naming.extension_for(recording("e", 1, filename="a.WAV")) == ".wav"
    assert naming.extension_for(recording("e", 1, filename="a.tar.gz;rm")) == ".bin"
    assert naming.extension_for(recording("e", 1), "audio/mpeg; charset=x") == ".mp3"
    assert naming.extension_for(recording("e", 1, media_type="video/webm")) == ".webm"
    assert naming.extension_for(recording("e", 1), "audio/x-wav") == ".wav"
    assert naming.extension_for(recording("e", 1), "audio/mp4") == ".m4a"
    assert naming.extension_for(recording("e", 1), "video/mp4") == ".mp4"
    assert naming.extension_for(recording("e", 1), "audio/ogg") == ".ogg"
    assert naming.extension_for(recording("e", 1), "text/html") == ".bin"


# ---------------------------------------------------------------------------
# a real S3-compatible store


S3_KEY = "org/user/call egress.mp3"


@pytest.fixture
def s3_object(s3_store: S3Store) -> bytes:
    data = os.urandom(2 * MiB + 3)
    s3_store.put(S3_KEY, data)
    return data


def test_s3_presigned_url_downloads_byte_exact(
    s3_store: S3Store, s3_object: bytes, downloaders: Callable[..., Downloader], out: Path
) -> None:
    url = s3_store.presign(S3_KEY, expires_in=60)
    result = downloaders().fetch(
        recording("s3", len(s3_object)), out, lambda: DownloadTarget(url=url)
    )
    assert result.outcome == "downloaded" and out.read_bytes() == s3_object
    import hashlib

    assert result.sha256 == hashlib.sha256(s3_object).hexdigest()


def test_s3_transfer_outliving_its_url_is_reminted_and_resumed(
    s3_store: S3Store,
    s3_object: bytes,
    drop_proxy: DropProxy,
    downloaders: Callable[..., Downloader],
    out: Path,
) -> None:
    urls: list[str] = []
    minted_at: list[float] = []

    def mint() -> DownloadTarget:
        # SigV4 signs the Host header, so sign for the proxy the client talks to.
        urls.append(s3_store.presign(S3_KEY, expires_in=2, endpoint=drop_proxy.url))
        minted_at.append(time.monotonic())
        return DownloadTarget(url=urls[-1])  # expiry unknown to recfetch: learn it from a 403

    def read_slowly(n: int, total: int) -> None:
        if len(minted_at) == 1:  # stay on the first URL until well past its 2 s
            time.sleep(max(0.0, minted_at[0] + 3.0 - time.monotonic()))

    drop_proxy.drop_next(600_000)  # the connection dies after the URL has expired
    result = downloaders(retries=1, read_size=64 * 1024,
                         reporter=EventReporter(on_advance=read_slowly)).fetch(
        recording("s3", len(s3_object)), out, mint
    )

    assert result.outcome == "downloaded", result.error
    assert out.read_bytes() == s3_object
    assert result.mints == len(urls) == 2
    (_, first), (_, rejected), (_, resumed) = drop_proxy.log.requests
    assert first is None
    assert rejected == resumed and rejected is not None and rejected != "bytes=0-"
    assert drop_proxy.log.statuses == [200, 403, 206]


def test_s3_expired_url_is_reminted_before_first_use(
    s3_store: S3Store,
    s3_object: bytes,
    drop_proxy: DropProxy,
    downloaders: Callable[..., Downloader],
    out: Path,
) -> None:
    stale = s3_store.presign(S3_KEY, expires_in=1, endpoint=drop_proxy.url)
    stale_expiry = datetime.now(UTC) + timedelta(seconds=1)
    time.sleep(1.2)
    targets = iter(
        [
            DownloadTarget(url=stale, expires_at=stale_expiry),
            DownloadTarget(
                url=s3_store.presign(S3_KEY, expires_in=60, endpoint=drop_proxy.url),
                expires_at=datetime.now(UTC) + timedelta(seconds=60),
            ),
        ]
    )
    result = downloaders().fetch(recording("s3", len(s3_object)), out, lambda: next(targets))
    assert result.outcome == "downloaded" and out.read_bytes() == s3_object
    assert result.mints == 2
    assert drop_proxy.log.statuses == [200]


def test_download_module_imports_no_ui_libraries() -> None:
    import ast

    modules = sorted(Path(download.__file__).parent.glob("*.py"))
    assert len(modules) > 1
    for module in modules:
        tree = ast.parse(module.read_text())
        imported = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        } | {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert not imported & {"rich", "typer"}, module.name
