"""The README's Kubernetes CronJob is a valid manifest (kubernetes-validate's bundled schemas, offline)
and runs N indexed shards into a bucket as SPEC §9 describes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _section() -> str:
    return README.split("## Into a bucket, across machines", 1)[1].split("\n## ", 1)[0]


def _cronjob() -> dict[str, Any]:
    (block,) = re.findall(r"```yaml\n(.*?)```", _section(), flags=re.S)
    doc = yaml.safe_load(block)
    assert isinstance(doc, dict)
    return doc


def test_cronjob_validates_strictly_against_the_kubernetes_schema() -> None:
    kubernetes_validate.validate(_cronjob(), "1.33.0", strict=True)


def test_the_validator_would_catch_a_broken_manifest() -> None:
    broken = _cronjob()
    broken["spec"]["jobTemplate"]["spec"]["completionMode"] = {"Indexed": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33.0", strict=True)


def test_cronjob_runs_n_indexed_shards_into_a_bucket() -> None:
    job = _cronjob()["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    n = job["completions"]
    assert job["parallelism"] == n > 1
    (container,) = job["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--shard") + 1] == f"auto/{n}"
    assert args[args.index("-o") + 1].startswith("s3://")
    env = {e["name"]: e for e in container["env"]}
    assert "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]
    assert env["RECFETCH_CONFIG"]["value"].startswith("/etc/recfetch/")


def test_container_command_uses_python_slim_and_the_s3_extra() -> None:
    section = _section()
    assert "python:3.12-slim" in section and "[s3]" in section
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        assert var in section
