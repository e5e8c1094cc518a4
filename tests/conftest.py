"""Shared fixtures: an isolated config/state per test, the sandbox, and ways to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recfetch.redact import forget_secrets
from recfetch.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent

# The download engine's fixtures (storage stand-in helpers, the SeaweedFS S3 server).
pytest.register_assert_rewrite("fixtures_download", "s3")
pytest_plugins = ("fixtures_download", "s3")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own config file and state dir; no RECFETCH_* leaks in."""
    for key in list(os.environ):
        if key.startswith("RECFETCH_") or key == "NO_COLOR":
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("RECFETCH_CONFIG", str(home / "config" / "config.toml"))
    monkeypatch.setenv("RECFETCH_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("COLUMNS", "200")
    # The tests' own clients (httpx.get of a printed URL, boto3) talk to 127.0.0.1: never via the
    # caller's HTTP(S)_PROXY. recfetch itself bypasses proxies for loopback without this
    # (test_api_lane checks it with NO_PROXY removed).
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost,::1")
    monkeypatch.chdir(tmp_path)
    forget_secrets()  # each test registers its own: none is scrubbed only thanks to an earlier test
    return home


@pytest.fixture
def config_file(isolated: Path) -> Path:
    return isolated / "config" / "config.toml"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def sandbox_profile(sandbox: Sandbox, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox's profile written to the test's config and made active."""
    sandbox.write_profile(config_file, "sandbox")
    monkeypatch.setenv("RECFETCH_PROFILE", "sandbox")
    return sandbox


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def jsonl(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli() -> Any:
    """Run recfetch in-process: cli("kazoo", "list", input=...) -> Result."""
    from recfetch.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        res = runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    return invoke


@pytest.fixture
def cli_proc() -> Any:
    """Run recfetch as a real process: cli_proc("kazoo", "list", input=..., timeout=...)."""

    def invoke(
        *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> Result:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "recfetch", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return invoke


def storage_requests(sandbox: Sandbox) -> list[Any]:
    return sandbox.storage.server.requests()


CREDENTIAL_HEADERS = ("authorization", "x-client-secret", "x-client-id", "x-auth-token", "api-key", "cookie")


def assert_no_credentials_at_storage(sandbox: Sandbox) -> None:
    for request in sandbox.storage.server.requests():
        leaked = [h for h in CREDENTIAL_HEADERS if h in request.headers]
        assert not leaked, f"credential header {leaked} reached the storage host: {request.path}"
