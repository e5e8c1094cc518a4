"""`pull -o s3://BUCKET/PREFIX` end to end (SPEC §3 Destinations, §9): the sandbox's Bird stand-in as the
provider, a real SeaweedFS on 127.0.0.1 as the bucket."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from s3 import READONLY_ACCESS_KEY, READONLY_SECRET_KEY, S3Store

from recfetch.providers import get_provider
from recfetch.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent
NAME = "bird"


@pytest.fixture
def mints(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    cls = get_provider(NAME)
    original = cls.mint

    def counting(self: Any, recording: Any) -> Any:
        counts[NAME] += 1
        return original(self, recording)

    monkeypatch.setattr(cls, "mint", counting)
    return counts


@pytest.fixture
def dest(s3_store: S3Store, s3_env: dict[str, str]) -> str:
    return f"s3://{s3_store.bucket}/pull-{uuid.uuid4().hex[:10]}/calls"


def _key(dest: str) -> str:
    return dest.split("/", 3)[3]


def _files(res: Any, outcome: str | None = None) -> list[dict[str, Any]]:
    events = [e for e in res.jsonl() if e.get("type") == "file"]
    return [e for e in events if outcome is None or e["outcome"] == outcome]


def _object(s3_store: S3Store, url: str) -> tuple[bytes, dict[str, str]]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    answer = s3_store.client().get_object(Bucket=bucket, Key=key)
    return answer["Body"].read(), answer["Metadata"]


def _objects(s3_store: S3Store, dest: str) -> dict[str, Any]:
    listing = s3_store.client().list_objects_v2(Bucket=s3_store.bucket, Prefix=_key(dest) + "/")
    return {o["Key"]: o for o in listing.get("Contents") or []}


def _uploads(s3_store: S3Store, dest: str) -> list[str]:
    listing = s3_store.client().list_multipart_uploads(Bucket=s3_store.bucket, Prefix=_key(dest) + "/")
    return [u["Key"] for u in listing.get("Uploads") or []]


def _proc_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **extra}


def test_pull_into_s3_is_byte_exact_with_metadata_and_a_fresh_machine_uploads_and_mints_nothing(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str, tmp_path: Path,
    mints: collections.Counter[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = tmp_path / "manifest.jsonl"
    res = cli(NAME, "pull", "-o", dest, "--name", "{year}/{id}{ext}", "--manifest", str(manifest), "--jsonl")
    assert res.exit_code == 0, res.output
    downloaded = _files(res, "downloaded")
    assert downloaded and mints[NAME] == len(downloaded)
    bird = sandbox_profile[NAME]
    for event in downloaded:
        assert event["path"].startswith(dest + "/")
        body, meta = _object(s3_store, event["path"])
        rid = event["ref"].rsplit("/", 1)[-1]
        assert body == bird.content(rid)
        assert meta == {"sha256": hashlib.sha256(body).hexdigest(), "size": str(len(body)),
                        "provider": NAME, "ref": event["ref"]}
        assert event["sha256"] == meta["sha256"]
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert sorted(x["path"] for x in lines) == sorted(e["path"] for e in downloaded)
    assert cli("verify", str(manifest)).exit_code == 0
    before = _objects(s3_store, dest)
    assert _uploads(s3_store, dest) == []

    # A fresh pod: no archive, no state at all. The bucket's metadata is the proof.
    mints.clear()
    monkeypatch.setenv("RECFETCH_STATE_DIR", str(tmp_path / "fresh-state"))
    again = cli(NAME, "pull", "-o", dest, "--name", "{year}/{id}{ext}", "--jsonl")
    assert again.exit_code == 0, again.output
    assert mints[NAME] == 0 and _files(again, "downloaded") == []
    assert {e["path"] for e in _files(again, "skipped") if e["reason"] == "already present"} >= {
        e["path"] for e in downloaded
    }
    after = _objects(s3_store, dest)
    assert {k: v["ETag"] for k, v in after.items()} == {k: v["ETag"] for k, v in before.items()}

    # An object changed behind recfetch's back: verify names it (exit 8).
    changed = downloaded[0]["path"]
    bucket_key = changed.removeprefix(f"s3://{s3_store.bucket}/")
    s3_store.put(bucket_key, b"not the recording")
    bad = cli("verify", str(manifest))
    assert bad.exit_code == 8 and f"CHANGED  {changed}" in bad.output


def test_incremental_keeps_its_watermark_in_the_bucket(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str
) -> None:
    res = cli(NAME, "pull", "-o", dest, "--incremental", "--jsonl")
    assert res.exit_code == 0, res.output
    state = Path(os.environ["RECFETCH_STATE_DIR"])
    assert not list(state.glob("watermarks/*"))  # the lock stays local; the watermark does not
    body, _ = _object(s3_store, f"{dest}/.recfetch/watermarks/sandbox.{NAME}.json")
    assert json.loads(body)["until"].endswith("Z")


def test_delete_after_deletes_at_the_provider_only_what_the_bucket_proves(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str
) -> None:
    res = cli(NAME, "pull", "-o", dest, "--delete-after", "--yes", "--jsonl")
    assert res.exit_code == 0, res.output
    downloaded = _files(res, "downloaded")
    deleted = set(sandbox_profile[NAME].deleted)
    assert deleted == {e["ref"].rsplit("/", 1)[-1] for e in downloaded} and deleted
    for event in downloaded:
        assert event["deleted"] is True
        _, meta = _object(s3_store, event["path"])
        assert meta["sha256"] == event["sha256"] and meta["ref"] == event["ref"]


def test_read_only_key_stops_before_listing_minting_or_deleting(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str,
    mints: collections.Counter[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READONLY_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READONLY_SECRET_KEY)
    res = cli(NAME, "pull", "-o", dest, "--delete-after", "--yes")
    assert res.exit_code == 10, res.output
    assert mints[NAME] == 0 and sandbox_profile[NAME].deleted == []
    assert "refused" in res.stderr and "s3:PutObject" in res.stderr
    assert _objects(s3_store, dest) == {}


def test_wrong_credentials_are_exit_10_once_and_mint_nothing(
    cli: Any, sandbox_profile: Sandbox, dest: str, mints: collections.Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-for-the-store")
    res = cli(NAME, "pull", "-o", dest, "--jobs", "4")
    assert res.exit_code == 10, res.output
    assert res.stderr.count("error:") == 1 and "credentials" in res.stderr
    assert dest.split("/")[2] in res.stderr
    assert "wrong-secret-for-the-store" not in res.output
    assert mints[NAME] == 0


def test_missing_bucket_is_exit_10_and_never_created(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, s3_env: dict[str, str]
) -> None:
    bucket = f"absent-{uuid.uuid4().hex[:8]}"
    res = cli(NAME, "pull", "-o", f"s3://{bucket}/calls")
    assert res.exit_code == 10, res.output
    assert bucket in res.stderr and "never creates" in res.stderr
    assert bucket not in [b["Name"] for b in s3_store.client().list_buckets()["Buckets"]]


def test_gs_and_az_say_what_is_supported(cli: Any, sandbox_profile: Sandbox) -> None:
    res = cli(NAME, "pull", "-o", "gs://bucket/calls")
    assert res.exit_code == 2 and "only s3://" in res.stderr


def test_sigint_mid_multipart_upload_leaves_nothing_visible_and_the_next_pull_completes_it(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str, tmp_path: Path
) -> None:
    big = sandbox_profile[NAME].add_recording(size=20 * 1024 * 1024)
    sandbox_profile.storage.throttle(3_000_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "recfetch", NAME, "pull", "-o", dest, "--jobs", "1", "--jsonl"],
        env=_proc_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        staging = f"{_key(dest)}/.recfetch/uploads/"
        while time.monotonic() < deadline:  # (the start-up write check's upload is not the one)
            if any(k.startswith(staging) for k in _uploads(s3_store, dest)):
                break
            time.sleep(0.05)
        assert any(k.startswith(staging) for k in _uploads(s3_store, dest)), "no multipart upload started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert json.loads(out.splitlines()[-1])["exit_code"] == 130
    assert _uploads(s3_store, dest) == []
    visible = [k for k in _objects(s3_store, dest) if big in k]
    assert visible == []

    sandbox_profile.storage.throttle(None)
    res = cli(NAME, "pull", "-o", dest, "--jsonl")
    assert res.exit_code == 0, res.output
    (event,) = [e for e in _files(res, "downloaded") if e["ref"].endswith(big)]
    body, meta = _object(s3_store, event["path"])
    assert body == sandbox_profile[NAME].content(big) and meta["sha256"] == event["sha256"]
    assert _uploads(s3_store, dest) == []


def test_three_concurrent_shards_take_every_recording_exactly_once(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str, tmp_path: Path
) -> None:
    listed = cli(NAME, "list", "--jsonl")
    assert listed.exit_code == 0
    everything = {r["ref"] for r in listed.jsonl() if r.get("downloadable")}
    procs = []
    for index in range(3):
        env = _proc_env(JOB_COMPLETION_INDEX=str(index),
                        RECFETCH_STATE_DIR=str(tmp_path / f"pod-{index}"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "recfetch", NAME, "pull", "--shard", "auto/3", "-o", dest, "--jsonl",
             "--manifest", str(tmp_path / f"manifest-{index}.jsonl")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    taken: list[set[str]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        taken.append({e["ref"] for e in map(json.loads, out.splitlines())
                      if e.get("type") == "file" and e["outcome"] == "downloaded"})
    assert set().union(*taken) == everything
    assert sum(len(t) for t in taken) == len(everything)  # no recording twice
    keys = [k for k in _objects(s3_store, dest) if "/.recfetch/" not in k]
    assert len(keys) == len(everything)


def test_list_shards_partition_the_listing(cli: Any, sandbox_profile: Sandbox) -> None:
    whole = {r["ref"] for r in cli(NAME, "list", "--jsonl").jsonl()}
    parts = [{r["ref"] for r in cli(NAME, "list", "--shard", f"{i}/2", "--jsonl").jsonl()} for i in (0, 1)]
    assert parts[0] | parts[1] == whole and not parts[0] & parts[1] and parts[0] and parts[1]
    bad = cli(NAME, "list", "--shard", "2/2")
    assert bad.exit_code == 2 and "--shard" in bad.stderr


def test_state_dirs_of_shards_are_separate(tmp_path: Path) -> None:
    # Lock, watermark and archive names carry the shard, so shards never wait on each other.
    from recfetch.state import Lock, default_archive_path

    assert default_archive_path(tmp_path, "0of3") != default_archive_path(tmp_path, "1of3")
    with Lock(tmp_path, "p", "bird.shard-0of3") as first, Lock(tmp_path, "p", "bird.shard-1of3") as second:
        assert first.path != second.path and first.holder() == second.holder() == os.getpid()


def test_config_show_lists_the_store_settings_masked_with_their_source(
    cli: Any, config_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key, raising=False)
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(
        '[profiles.default.destination]\naws_secret_access_key = "file-secret-abcd1234"\n'
        'aws_endpoint_url = "http://127.0.0.1:9000"\n'
    )
    config_file.chmod(0o600)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    res = cli("config", "show", "--json")
    assert res.exit_code == 0, res.output
    shown = res.json()["destination"]
    assert shown["aws_secret_access_key"] == {"value": "****1234", "source": "file", "secret": True}
    assert shown["aws_region"]["value"] == "eu-central-1" and shown["aws_region"]["source"] == "env"
    assert shown["aws_endpoint_url"]["value"] == "http://127.0.0.1:9000"
    assert "file-secret-abcd1234" not in cli("config", "show").output
