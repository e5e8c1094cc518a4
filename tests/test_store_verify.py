"""`recfetch verify` re-reads s3:// objects a manifest lists (SPEC §3 Destinations, §7), against SeaweedFS."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from s3 import S3Store


def _line(s3_store: S3Store, key: str, data: bytes) -> dict[str, Any]:
    return {"provider": "kazoo", "profile": "default", "ref": f"kazoo:a/{key}",
            "path": f"s3://{s3_store.bucket}/{key}", "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "provider_size": len(data),
            "retrieved_at": "2026-11-25T00:00:00Z"}


def test_verify_reads_objects_and_names_a_changed_or_missing_one(
    cli: Any, s3_store: S3Store, s3_env: dict[str, str], tmp_path: Path
) -> None:
    prefix = f"verify-{uuid.uuid4().hex[:8]}"
    one, two = os.urandom(5000), os.urandom(7000)
    s3_store.put(f"{prefix}/one.mp3", one)
    s3_store.put(f"{prefix}/two.mp3", two)
    manifest = tmp_path / "manifest.jsonl"
    lines = [_line(s3_store, f"{prefix}/one.mp3", one), _line(s3_store, f"{prefix}/two.mp3", two)]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))

    ok = cli("verify", str(manifest), "--json")
    assert ok.exit_code == 0, ok.output
    assert [i["status"] for i in ok.json()["items"]] == ["ok", "ok"]

    s3_store.put(f"{prefix}/one.mp3", one[:-1] + b"X")  # changed behind recfetch's back
    s3_store.client().delete_object(Bucket=s3_store.bucket, Key=f"{prefix}/two.mp3")
    bad = cli("verify", str(manifest))
    assert bad.exit_code == 8
    assert f"CHANGED  s3://{s3_store.bucket}/{prefix}/one.mp3" in bad.output
    assert f"MISSING  s3://{s3_store.bucket}/{prefix}/two.mp3" in bad.output


def test_verify_with_wrong_store_credentials_is_exit_10(
    cli: Any, s3_store: S3Store, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps(_line(s3_store, "x/one.mp3", b"abc")) + "\n")
    result = cli("verify", str(manifest))
    assert result.exit_code == 10, result.output
    assert "credentials" in result.output and f"s3://{s3_store.bucket}" in result.output
    assert "not-the-secret" not in result.output
