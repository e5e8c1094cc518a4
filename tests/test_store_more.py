"""More of SPEC §3 Destinations and §9 against SeaweedFS: sidecars in the bucket, `download -` by shard,
store settings from the profile's destination table."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from s3 import ACCESS_KEY, SECRET_KEY, S3Store

from recfetch.sandbox import Sandbox

NAME = "bird"


@pytest.fixture
def dest(s3_store: S3Store, s3_env: dict[str, str]) -> str:
    return f"s3://{s3_store.bucket}/more-{uuid.uuid4().hex[:10]}"


def _get(s3_store: S3Store, url: str) -> bytes:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bytes(s3_store.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def _downloaded(res: Any) -> list[dict[str, Any]]:
    return [e for e in res.jsonl() if e.get("type") == "file" and e["outcome"] == "downloaded"]


def test_write_metadata_puts_the_record_beside_each_object(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str, tmp_path: Path
) -> None:
    res = cli(NAME, "pull", "-o", dest, "--write-metadata", "--jsonl")
    assert res.exit_code == 0, res.output
    downloaded = _downloaded(res)
    assert downloaded
    for event in downloaded:
        record = json.loads(_get(s3_store, event["path"] + ".json"))
        assert record["ref"] == event["ref"] and record["provider"] == NAME
    assert not list(tmp_path.rglob("*.json"))  # nothing was written locally


def test_download_from_stdin_takes_only_its_shard(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, dest: str
) -> None:
    refs = [r["ref"] for r in cli(NAME, "list", "--jsonl").jsonl() if r.get("downloadable")]
    assert len(refs) >= 4
    listed = cli(NAME, "list", "--shard", "1/2", "--jsonl").jsonl()
    wanted = {r["ref"] for r in listed if r.get("downloadable")}
    res = cli(NAME, "download", "-", "--shard", "1/2", "-o", dest, "--jsonl", input="\n".join(refs) + "\n")
    assert res.exit_code == 0, res.output
    assert {e["ref"] for e in _downloaded(res)} == wanted and 0 < len(wanted) < len(refs)


def test_store_settings_come_from_the_profiles_destination_table(
    cli: Any, sandbox_profile: Sandbox, s3_store: S3Store, config_file: Path,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    with config_file.open("a") as fh:
        fh.write(
            "\n[profiles.sandbox.destination]\n"
            f'aws_access_key_id = "{ACCESS_KEY}"\n'
            f'aws_secret_access_key_cmd = "printf %s {SECRET_KEY}"\n'
            f'aws_endpoint_url = "{s3_store.endpoint}"\n'
            'aws_region = "us-east-1"\n'
        )
    dest = f"s3://{s3_store.bucket}/table-{uuid.uuid4().hex[:8]}"
    res = cli(NAME, "pull", "-o", dest, "--jsonl", "--max-files", "1")
    assert res.exit_code == 0, res.output
    (event,) = _downloaded(res)
    assert event["path"].startswith(dest + "/")
    # The environment wins, key by key: a wrong secret there overrides the table's command.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-wins-and-is-wrong")
    wrong = cli(NAME, "pull", "-o", dest)
    assert wrong.exit_code == 10 and "credentials" in wrong.stderr
