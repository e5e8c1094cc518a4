"""Uploads into a bucket in constant memory (issue #10 item 4): parts spool to anonymous files.

Real servers on 127.0.0.1: the Bird stand-in and its storage host as the
provider, SeaweedFS as the bucket. A part never sits in memory: it fills an
unlinked temporary file in ``STATE_DIR/spool`` (0700) and is sent from there;
the sends of the whole process share one bounded lane.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from s3 import ACCESS_KEY, SECRET_KEY, S3Store

from recfetch.destinations import ObjectStore, StoreSettings, StoreURL
from recfetch.destinations.spool import SENDS_AT_ONCE
from recfetch.destinations.upload import PART_SIZE
from recfetch.errors import ExitCode, LocalIOError, TransferError
from recfetch.sandbox import Sandbox

NAME = "bird"
BIG = 2 * PART_SIZE + 4321
"""Three parts: two full, one short."""


def _spool() -> Path:
    return Path(os.environ["RECFETCH_STATE_DIR"]) / "spool"


def _fds_into(directory: Path) -> list[str]:
    """Open files of this process that live (or lived, unlinked) in ``directory``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/"):
            found.append(target)
    return found


def _under(s3_store: S3Store, prefix: str) -> dict[str, int]:
    client = s3_store.client()
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_store.bucket, Prefix=prefix):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents") or []})
    return found


def _uploads(s3_store: S3Store, prefix: str) -> list[str]:
    listing = s3_store.client().list_multipart_uploads(Bucket=s3_store.bucket, Prefix=prefix)
    return [u["Key"] for u in listing.get("Uploads") or []]


@pytest.fixture
def dest(s3_store: S3Store, s3_env: dict[str, str]) -> str:
    return f"s3://{s3_store.bucket}/spool-{uuid.uuid4().hex[:10]}/calls"


@pytest.fixture
def store(s3_store: S3Store, tmp_path: Path) -> ObjectStore:
    url = StoreURL.parse(f"s3://{s3_store.bucket}/lane-{uuid.uuid4().hex[:10]}")
    settings = StoreSettings(ACCESS_KEY, SECRET_KEY, None, "us-east-1", s3_store.endpoint)
    return ObjectStore(url, settings, jobs=16, spool=tmp_path / "spool")


def test_multipart_recordings_at_j4_arrive_verified_and_leave_no_upload_staging_or_spool(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str
) -> None:
    bird = sandbox_profile[NAME]
    big = {bird.add_recording(size=BIG + n) for n in range(2)}
    res = cli(NAME, "pull", "-o", dest, "-j", "4", "--jsonl")
    assert res.exit_code == 0, res.output
    events = {e["ref"].rsplit("/", 1)[-1]: e for e in res.jsonl()
              if e.get("type") == "file" and e["outcome"] == "downloaded"}
    assert big <= set(events)
    client = s3_store.client()
    for rid in big:
        key = events[rid]["path"].removeprefix(f"s3://{s3_store.bucket}/")
        answer = client.get_object(Bucket=s3_store.bucket, Key=key)
        body = answer["Body"].read()
        assert body == bird.content(rid) and len(body) > 2 * PART_SIZE
        assert answer["Metadata"] == {"sha256": hashlib.sha256(body).hexdigest(), "size": str(len(body)),
                                      "provider": NAME, "ref": events[rid]["ref"]}
    prefix = dest.split("/", 3)[3] + "/"
    assert _uploads(s3_store, prefix) == []
    assert [k for k in _under(s3_store, prefix) if "/.recfetch/uploads/" in k] == []
    spool = _spool()
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert list(spool.iterdir()) == []  # the parts were never visible, and are gone
    assert _fds_into(spool) == []


def test_a_failure_mid_upload_leaves_no_object_no_upload_and_no_spooled_part(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str
) -> None:
    bird = sandbox_profile[NAME]
    rid = bird.add_recording(size=2 * PART_SIZE)
    # Every request for the media is cut after one part's worth, and answered from byte 0.
    sandbox_profile.storage.drop_next(PART_SIZE + 1000, times=None, ignore_range=True)
    res = cli(NAME, "pull", "-o", dest, "-j", "4", "--retries", "1", "--jsonl")
    assert res.exit_code != 0
    failed = [e for e in res.jsonl() if e.get("type") == "file" and e["outcome"] == "failed"]
    assert rid in {e["ref"].rsplit("/", 1)[-1] for e in failed}
    prefix = dest.split("/", 3)[3] + "/"
    assert [k for k in _under(s3_store, prefix) if rid in k] == []
    assert [k for k in _under(s3_store, prefix) if "/.recfetch/uploads/" in k] == []
    assert _uploads(s3_store, prefix) == []
    assert list(_spool().iterdir()) == [] and _fds_into(_spool()) == []


def test_sends_of_every_transfer_share_one_bounded_lane(store: ObjectStore) -> None:
    sending = {"now": 0, "most": 0}
    guard = threading.Lock()

    def started(**_: Any) -> None:
        with guard:
            sending["now"] += 1
            sending["most"] = max(sending["most"], sending["now"])
        time.sleep(0.05)  # a slow store: sends pile up unless something bounds them

    def finished(**_: Any) -> None:
        with guard:
            sending["now"] -= 1

    events = store.client.meta.events
    for op in ("UploadPart", "PutObject"):
        events.register(f"before-call.s3.{op}", started)
        events.register(f"after-call.s3.{op}", finished)
    data = os.urandom(100_000)
    errors: list[BaseException] = []

    def transfer(n: int) -> None:
        try:
            for i in range(3):
                upload = store.upload(f"lane-{n}-{i}", size_hint=len(data))
                upload.write(data)
                upload.commit(store.key(f"{n}-{i}.bin"), {"provider": "p", "ref": f"r{n}-{i}"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=transfer, args=(n,)) for n in range(3 * SENDS_AT_ONCE // 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 2 <= sending["most"] <= SENDS_AT_ONCE  # 12 transfers, never more than 8 sends at once
    proof = store.head(store.key("0-2.bin"))
    assert proof is not None and proof.proves("r0-2", len(data), hashlib.sha256(data).hexdigest())


def test_multipart_uploads_hold_no_part_in_memory(
    store: ObjectStore, s3_store: S3Store, tmp_path: Path
) -> None:
    assert store.client is not None  # made before measuring: boto3's models are not parts
    block = os.urandom(64 * 1024)
    errors: list[BaseException] = []
    sent: list[int] = []

    def transfer(n: int) -> None:
        upload = store.upload(f"mem-{n}", size_hint=BIG)
        try:
            for _ in range(0, BIG, len(block)):
                upload.write(block)
            sent.append(upload.parts_uploaded)
        except BaseException as exc:
            errors.append(exc)
        finally:
            upload.abort()

    tracemalloc.start()
    try:
        threads = [threading.Thread(target=transfer, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert errors == [] and sent == [2, 2, 2]
    # Three transfers, two 6 MiB parts sent each and a third filling: a fraction of one part held.
    assert peak < PART_SIZE // 2, f"{peak / 2**20:.1f} MiB traced"
    assert _uploads(s3_store, store.url.prefix) == []  # aborted
    assert list((tmp_path / "spool").iterdir()) == [] and _fds_into(tmp_path / "spool") == []


def test_a_store_failure_on_a_part_aborts_the_upload_and_closes_every_spooled_file(
    store: ObjectStore, s3_store: S3Store, tmp_path: Path
) -> None:
    def refuse_part_two(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            raise ConnectionResetError("the store went away")

    store.client.meta.events.register("before-parameter-build.s3.UploadPart", refuse_part_two)
    upload = store.upload("refused", size_hint=BIG)
    block = os.urandom(64 * 1024)
    with pytest.raises(TransferError) as info:
        for _ in range(0, BIG, len(block)):
            upload.write(block)
        upload.commit(store.key("refused.bin"), {"provider": "p", "ref": "r"})
    assert "the store went away" in str(info.value)
    upload.abort()
    assert store.head(store.key("refused.bin")) is None
    assert _uploads(s3_store, store.url.prefix) == []
    assert list((tmp_path / "spool").iterdir()) == [] and _fds_into(tmp_path / "spool") == []


def test_a_spool_folder_that_cannot_be_made_is_exit_10_naming_it(s3_store: S3Store, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    url = StoreURL.parse(f"s3://{s3_store.bucket}/x")
    settings = StoreSettings(ACCESS_KEY, SECRET_KEY, None, "us-east-1", s3_store.endpoint)
    store = ObjectStore(url, settings, spool=blocker / "spool")
    with pytest.raises(LocalIOError) as info:
        store.upload("nowhere")
    assert info.value.exit_code == ExitCode.LOCAL_IO == 10
    assert str(blocker / "spool") in str(info.value) and "RECFETCH_STATE_DIR" in (info.value.hint or "")
