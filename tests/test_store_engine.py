"""The download engine with an s3:// destination: the same loop, bytes into a verified upload.

Real servers on 127.0.0.1: the storage stand-in (the provider's storage host)
and SeaweedFS (the destination bucket).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures_download import EventReporter, Minter, recording
from s3 import ACCESS_KEY, SECRET_KEY, S3Store

from recfetch.destinations import ObjectStore, StoreSettings, StoreURL
from recfetch.destinations.upload import PART_SIZE
from recfetch.download import Downloader
from recfetch.download.objectpart import stage_id
from recfetch.errors import ExitCode
from recfetch.sandbox.storage import Storage

KEY = "calls/rec.mp3"


@pytest.fixture
def bucket(s3_store: S3Store) -> ObjectStore:
    url = StoreURL.parse(f"s3://{s3_store.bucket}/eng-{uuid.uuid4().hex[:10]}")
    return ObjectStore(url, StoreSettings(ACCESS_KEY, SECRET_KEY, None, "us-east-1", s3_store.endpoint))


def _uploads(s3_store: S3Store, store: ObjectStore) -> list[str]:
    listing = s3_store.client().list_multipart_uploads(Bucket=s3_store.bucket, Prefix=store.url.prefix)
    return [u["Key"] for u in listing.get("Uploads") or []]


def _object(s3_store: S3Store, store: ObjectStore, name: str) -> tuple[bytes, dict[str, str]]:
    answer = s3_store.client().get_object(Bucket=s3_store.bucket, Key=store.key(name))
    return answer["Body"].read(), answer["Metadata"]


def test_fetch_into_the_store_is_byte_exact_with_metadata_then_skipped_without_minting(
    storage: Storage, downloaders: Callable[..., Downloader], bucket: ObjectStore, s3_store: S3Store
) -> None:
    size = 2 * PART_SIZE + 4321
    storage.put(KEY, size=size)
    rec = recording("s1", size)
    mint = Minter(storage, KEY)
    result = downloaders(store=bucket).fetch(rec, Path("2026/rec.mp3"), mint)
    assert result.outcome == "downloaded", result.error
    assert result.sha256 == storage.sha256(KEY) and result.bytes == size and mint.calls == 1
    body, meta = _object(s3_store, bucket, "2026/rec.mp3")
    assert body == storage.content(KEY)
    assert meta == {"sha256": storage.sha256(KEY), "size": str(size), "provider": "kismet", "ref": rec.ref}
    assert _uploads(s3_store, bucket) == []

    again = downloaders(store=bucket).fetch(rec, Path("2026/rec.mp3"), mint)
    assert (again.outcome, again.reason, again.mints, mint.calls) == ("skipped", "already present", 0, 1)
    assert again.sha256 == storage.sha256(KEY)


def test_an_object_of_another_recording_or_without_proof_is_never_done(
    storage: Storage, downloaders: Callable[..., Downloader], bucket: ObjectStore, s3_store: S3Store
) -> None:
    storage.put(KEY, size=1000)
    s3_store.put(bucket.key("x.mp3"), b"\0" * 1000)  # same size, but no recfetch metadata
    rec = recording("s2", 1000)
    mint = Minter(storage, KEY)
    result = downloaders(store=bucket).fetch(rec, Path("x.mp3"), mint)
    assert result.outcome == "downloaded" and mint.calls == 1
    assert result.path == Path("x_s2.mp3")  # the foreign object is kept as it was
    assert _object(s3_store, bucket, "x.mp3")[0] == b"\0" * 1000
    assert _object(s3_store, bucket, "x_s2.mp3")[0] == storage.content(KEY)
    # The same recording next time: found under its _<id> key, nothing minted.
    again = downloaders(store=bucket).fetch(rec, Path("x.mp3"), mint)
    assert (again.outcome, again.path, mint.calls) == ("skipped", Path("x_s2.mp3"), 1)


def test_interrupt_mid_multipart_leaves_no_object_and_no_upload_then_the_next_run_completes(
    storage: Storage, downloaders: Callable[..., Downloader], bucket: ObjectStore, s3_store: S3Store
) -> None:
    size = 3 * PART_SIZE
    storage.put(KEY, size=size)
    stop = threading.Event()
    seen: dict[str, int] = {}

    def halfway(_n: int, done: int) -> None:
        if done > PART_SIZE + 1024 * 1024:
            seen.setdefault("uploads", len(_uploads(s3_store, bucket)))
            stop.set()

    rec = recording("s3", size)
    result = downloaders(store=bucket, stop=stop, reporter=EventReporter(halfway)).fetch(
        rec, Path("big.mp3"), Minter(storage, KEY)
    )
    assert result.outcome == "failed" and result.error is not None
    assert result.error.exit_code == ExitCode.INTERRUPTED
    assert seen["uploads"] == 1  # a part had really been uploaded when the signal came
    assert bucket.head(bucket.key("big.mp3")) is None
    assert _uploads(s3_store, bucket) == []
    assert bucket.head(bucket.key(f".recfetch/uploads/{stage_id(rec.ref)}")) is None

    mint = Minter(storage, KEY)
    again = downloaders(store=bucket).fetch(rec, Path("big.mp3"), mint)
    assert again.outcome == "downloaded" and again.reason is None  # restarted, not resumed
    assert _object(s3_store, bucket, "big.mp3")[0] == storage.content(KEY)


def test_size_mismatch_never_becomes_visible(
    storage: Storage, downloaders: Callable[..., Downloader], bucket: ObjectStore, s3_store: S3Store
) -> None:
    storage.put(KEY, size=PART_SIZE + 10)
    rec = recording("s4", PART_SIZE + 11)  # the provider reports one byte more than arrives
    result = downloaders(store=bucket, retries=0).fetch(rec, Path("short.mp3"), Minter(storage, KEY))
    assert result.outcome == "failed" and result.error is not None
    assert result.error.exit_code == ExitCode.TRANSFER
    assert bucket.head(bucket.key("short.mp3")) is None
    assert _uploads(s3_store, bucket) == []
