"""The object-store destination module against a real SeaweedFS on 127.0.0.1 (SPEC §3 Destinations)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3 import ACCESS_KEY, READONLY_ACCESS_KEY, READONLY_SECRET_KEY, SECRET_KEY, S3Store

from recfetch.destinations import ObjectStore, StoreSettings, StoreURL, is_store_url
from recfetch.destinations.settings import describe, resolve
from recfetch.destinations.upload import MIB, PART_SIZE, part_size_for
from recfetch.errors import ConfigError, ExitCode, IntegrityError, LocalIOError, UsageError


def _settings(store: S3Store, **overrides: str) -> StoreSettings:
    values = {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
              "region": "us-east-1", "endpoint_url": store.endpoint, **overrides}
    return StoreSettings(**values)


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store(s3_store: S3Store, prefix: str) -> ObjectStore:
    return ObjectStore(StoreURL.parse(f"s3://{s3_store.bucket}/{prefix}/calls"), _settings(s3_store))


def _uploads(s3_store: S3Store, prefix: str) -> list[str]:
    listing = s3_store.client().list_multipart_uploads(Bucket=s3_store.bucket, Prefix=prefix)
    return [u["Key"] for u in listing.get("Uploads") or []]


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_url_parsing() -> None:
    assert StoreURL.parse("s3://b/a//b/") == StoreURL("b", "a/b/")
    assert StoreURL.parse("s3://b") == StoreURL("b", "")
    assert StoreURL.parse("s3://b/p").url("p/x.mp3") == "s3://b/p/x.mp3"
    assert is_store_url("s3://b/p") and is_store_url("gs://b") and not is_store_url("./s3:/x")
    for bad in ("gs://bucket/p", "az://c/p", "s3:///p", "s3://b/../x"):
        with pytest.raises(UsageError):
            StoreURL.parse(bad)


def test_part_size_stays_under_the_part_limit() -> None:
    assert part_size_for(None) == PART_SIZE == part_size_for(10 * 1024 * MIB)
    huge = 200 * 1024 * 1024 * MIB
    assert huge / part_size_for(huge) <= 9_000 and part_size_for(huge) % MIB == 0


def test_small_recording_is_one_put_with_metadata(store: ObjectStore, s3_store: S3Store) -> None:
    data = os.urandom(300_000)
    upload = store.upload("rec-small", size_hint=len(data), content_type="audio/mpeg")
    for chunk in _chunks(data):
        upload.write(chunk)
    key = store.key("2026/a.mp3")
    upload.commit(key, {"provider": "kazoo", "ref": "kazoo:a/1"}, expected_size=len(data))
    head = s3_store.client().head_object(Bucket=s3_store.bucket, Key=key)
    assert head["Metadata"] == {"provider": "kazoo", "ref": "kazoo:a/1", "size": str(len(data)),
                                "sha256": hashlib.sha256(data).hexdigest()}
    assert head["ContentType"] == "audio/mpeg"
    assert b"".join(store.read(key)) == data
    proof = store.head(key)
    assert proof is not None and proof.proves("kazoo:a/1", len(data), hashlib.sha256(data).hexdigest())
    assert not proof.proves("kazoo:a/2", len(data))
    assert not proof.proves("kazoo:a/1", len(data) + 1)
    assert not proof.proves("kazoo:a/1", len(data), "0" * 64)


def test_large_recording_multipart_is_invisible_until_commit(
    store: ObjectStore, s3_store: S3Store, prefix: str
) -> None:
    data = os.urandom(2 * PART_SIZE + 12345)
    key = store.key("big.wav")
    upload = store.upload("rec-big", size_hint=len(data))
    for chunk in _chunks(data):
        upload.write(chunk)
    assert upload.parts_uploaded == 2
    assert store.head(key) is None  # nothing at the final key before commit
    assert _uploads(s3_store, prefix)  # parts live in an incomplete upload under .recfetch/
    upload.commit(key, {"provider": "bird", "ref": "bird:w/9"}, expected_size=len(data))
    proof = store.head(key)
    assert proof is not None and proof.length == len(data)
    assert proof.proves("bird:w/9", len(data), hashlib.sha256(data).hexdigest())
    assert b"".join(store.read(key)) == data
    assert _uploads(s3_store, prefix) == []
    assert store.head(upload.stage_key) is None  # the staging copy is gone


def test_mismatch_never_becomes_visible_and_abort_leaves_nothing(
    store: ObjectStore, s3_store: S3Store, prefix: str
) -> None:
    data = os.urandom(PART_SIZE + 1000)
    key = store.key("short.wav")
    upload = store.upload("rec-short")
    for chunk in _chunks(data):
        upload.write(chunk)
    with pytest.raises(IntegrityError):
        upload.commit(key, {"provider": "bird", "ref": "bird:w/1"}, expected_size=len(data) + 1)
    with pytest.raises(IntegrityError):
        upload.commit(key, {"provider": "bird", "ref": "bird:w/1", "sha256": "ab" * 32})
    upload.abort()
    assert store.head(key) is None
    assert _uploads(s3_store, prefix) == []


def test_restart_after_a_killed_run_clears_its_leftover_upload(
    store: ObjectStore, s3_store: S3Store, prefix: str
) -> None:
    first = store.upload("rec-killed")
    first.write(os.urandom(PART_SIZE))  # one part sent, then the process "dies" (no abort)
    assert _uploads(s3_store, prefix) == [first.stage_key]
    data = os.urandom(PART_SIZE + 5)
    second = store.upload("rec-killed")
    for chunk in _chunks(data):
        second.write(chunk)
    second.commit(store.key("k.wav"), {"provider": "p", "ref": "r"})
    assert _uploads(s3_store, prefix) == []
    assert b"".join(store.read(store.key("k.wav"))) == data


def test_truncate_starts_over(store: ObjectStore) -> None:
    upload = store.upload("rec-trunc")
    upload.write(os.urandom(PART_SIZE + 10))
    upload.truncate()
    assert upload.size == 0
    upload.write(b"fresh bytes")
    upload.commit(store.key("t.bin"), {"provider": "p", "ref": "r"})
    assert b"".join(store.read(store.key("t.bin"))) == b"fresh bytes"


def test_state_files_round_trip(store: ObjectStore, s3_store: S3Store, prefix: str) -> None:
    assert store.read_state("watermarks/default/kazoo.json") is None
    store.write_state("watermarks/default/kazoo.json", b'{"at": 1}')
    assert store.read_state("watermarks/default/kazoo.json") == b'{"at": 1}'
    key = f"{prefix}/calls/.recfetch/watermarks/default/kazoo.json"
    assert s3_store.client().get_object(Bucket=s3_store.bucket, Key=key)["Body"].read() == b'{"at": 1}'


def test_check_passes_for_a_writable_bucket_and_leaves_no_upload(
    store: ObjectStore, s3_store: S3Store, prefix: str
) -> None:
    store.check()
    assert _uploads(s3_store, prefix) == []


def test_wrong_credentials_are_exit_10_naming_the_store(s3_store: S3Store) -> None:
    url = StoreURL.parse(f"s3://{s3_store.bucket}/x")
    bad = ObjectStore(url, _settings(s3_store, secret_access_key="nope"))
    with pytest.raises(LocalIOError) as info:
        bad.check()
    assert info.value.exit_code == ExitCode.LOCAL_IO == 10
    assert f"s3://{s3_store.bucket}/x/" in str(info.value) and "credentials" in str(info.value)
    assert "AWS_SECRET_ACCESS_KEY" in (info.value.hint or "")


def test_missing_bucket_is_exit_10_and_never_created(s3_store: S3Store) -> None:
    name = f"missing-{uuid.uuid4().hex[:8]}"
    missing = ObjectStore(StoreURL.parse(f"s3://{name}/p"), _settings(s3_store))
    with pytest.raises(LocalIOError) as info:
        missing.check()
    assert name in str(info.value) and "never creates" in str(info.value)
    buckets = [b["Name"] for b in s3_store.client().list_buckets()["Buckets"]]
    assert name not in buckets


def test_read_only_key_is_exit_10_before_any_upload(s3_store: S3Store) -> None:
    readonly = ObjectStore(
        StoreURL.parse(f"s3://{s3_store.bucket}/ro"),
        _settings(s3_store, access_key_id=READONLY_ACCESS_KEY, secret_access_key=READONLY_SECRET_KEY),
    )
    with pytest.raises(LocalIOError) as info:
        readonly.check()
    assert "refused" in str(info.value) and "s3:PutObject" in (info.value.hint or "")


def test_settings_env_wins_over_the_profile_table_and_secrets_are_registered() -> None:
    data = {"profiles": {"work": {"destination": {
        "aws_access_key_id": "AKIDFILE", "aws_secret_access_key": "file-secret-value",
        "aws_endpoint_url": "http://127.0.0.1:1", "aws_region": "eu-west-1"}}}}
    env = {"AWS_REGION": "us-east-2", "AWS_SECRET_ACCESS_KEY": "env-secret-value"}
    shown = describe(data, "work", env)
    assert shown["aws_region"].source == "env" and shown["aws_access_key_id"].source == "file"
    assert shown["aws_session_token"].source == "unset"
    settings = resolve(data, "work", env)
    assert settings == StoreSettings("AKIDFILE", "env-secret-value", None, "us-east-2", "http://127.0.0.1:1")
    from recfetch.redact import scrub

    assert "env-secret-value" not in scrub("oops env-secret-value")


def test_missing_boto3_names_the_pip_command(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from recfetch.destinations import ObjectStore, StoreSettings, StoreURL\n"
        "from recfetch.errors import ConfigError\n"
        "try:\n    ObjectStore(StoreURL.parse('s3://b/p'), StoreSettings()).check()\n"
        "except ConfigError as e:\n    print(e.exit_code, e.one_line())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("5 ") and "pip install 'recfetch[s3]'" in out
    assert ConfigError.exit_code == 5
