"""Every verb against an independent mock generated from each provider's published spec.

Stoplight Prism (npm `@stoplight/prism-cli`, installed by .ci/run) serves the spec
extracts in tests/specs on 127.0.0.1 and validates every request it receives
(path, query, headers, security, body) against them. A request Prism flags, a
request to a route the spec does not have, or a crash of recfetch fails the test.
Prism answers with data generated from the schemas, so recfetch must also cope
with whatever a spec-conforming server may send (exit codes 0, 4-8 are all fine;
1 — an internal error — is not).

Kismet and Kaleyra publish no machine-readable spec, so they have no mock here.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SPECS = Path(__file__).parent / "specs"
PRISM_PACKAGE = "@stoplight/prism-cli@5.16.0"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

ACCOUNT = "c0ffee00c0ffee00c0ffee00c0ffee00"
APP = "2a95132c15732412d22c1476fa83f27a"
UUID = "497f6eca-6276-4993-bfeb-53cbbbba6f08"
KAZOO_RECORDING = "202511-" + "ab" * 16


def _prism() -> str:
    found = shutil.which("prism")
    if found is None:
        pytest.fail(f"Stoplight Prism is not installed: run `npm install -g {PRISM_PACKAGE}` (.ci/run does)")
    return found


def _document(name: str) -> dict[str, Any]:
    """The spec extract as a standalone document Prism can serve (our provenance keys dropped)."""
    spec = json.loads((SPECS / f"{name}.json").read_text())
    doc = {k: v for k, v in spec.items() if not k.startswith("x-") and k != "call_recordings"}
    if doc.get("swagger") == "2.0":
        # Prism routes Swagger 2 paths from the root: fold basePath (/v2) into the paths.
        base = doc.pop("basePath", "")
        doc["paths"] = {base + path: item for path, item in doc["paths"].items()}
        doc.setdefault("info", {"title": name, "version": "extract"})
        # Kazoo's generated schemas describe the request's `data`; crossbar reads it from the
        # request envelope {"data": ...} (doc/basics.md), which the generator leaves out.
        for item in doc["paths"].values():
            for operation in item.values():
                for param in operation.get("parameters", ()):
                    if param.get("in") == "body":
                        inner = param["schema"]
                        param["schema"] = {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": inner},
                        }
    return doc


VIDEO = json.dumps(
    {
        "codec": "VP8",
        "width": 640,
        "height": 480,
        "watermark": {"url": "https://example.com/w.png", "position": "left bottom", "size": {"width": 10}},
    }
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prism:
    """One `prism mock` process on 127.0.0.1 and the log of what it validated."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.spec_path = workdir / f"{name}.json"
        self.spec_path.write_text(json.dumps(_document(name)))
        self.log_path = workdir / f"{name}.prism.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [_prism(), "mock", "-h", "127.0.0.1", "-p", str(self.port), str(self.spec_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while "Prism is listening" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"prism mock did not start:\n{self.log()[-2000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def received(self) -> list[str]:
        return re.findall(r"\[HTTP SERVER\] (\w+ \S+) ℹ\s+info\s+Request received", self.log())

    def problems(self) -> list[str]:
        """Every validation error and unknown route Prism reported."""
        lines = self.log().splitlines()
        out = []
        for index, line in enumerate(lines):
            if "NO_PATH_MATCHED" in line or "NO_METHOD_MATCHED" in line:
                out.append(line)
            elif "[VALIDATOR]" in line and "✖" in line:
                request = next((lines[i] for i in range(index, -1, -1) if "Request received" in lines[i]), "")
                out.append(
                    f"{request.split('[HTTP SERVER]')[-1].strip()}: {line.split('error', 1)[-1].strip()}"
                )
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back-off waits (the mock's answers are often refusals) are skipped, not slept."""
    monkeypatch.setattr("recfetch.backoff.sleep", lambda seconds, stop=None: True)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Mock data names hosts such as example.com: no lookup or connection may leave this machine."""
    refused: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        if str(host) not in LOOPBACK:
            refused.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "blocked by the test: not loopback")
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return refused


def _profile(config_file: Path, provider: str, settings: dict[str, str]) -> None:
    body = "".join(f'{key} = "{value}"\n' for key, value in settings.items())
    config_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_file.write_text(f"[profiles.default.{provider}]\n{body}")
    config_file.chmod(0o600)


def _run_all(cli: Any, provider: str, runs: list[tuple[str, ...]]) -> list[tuple[tuple[str, ...], int]]:
    codes = []
    for args in runs:
        result = cli(provider, *args)
        crashed = result.exit_code == 1 or "internal error" in result.stderr or "Traceback" in result.output
        assert not crashed, (args, result.exit_code, result.stderr[-2000:])
        assert result.exit_code in (0, 2, 3, 4, 5, 6, 7, 8, 9), (args, result.exit_code, result.stderr)
        codes.append((args, result.exit_code))
    return codes


@pytest.fixture
def prism_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Prism] = []

    def start(name: str) -> Prism:
        mock = Prism(name, tmp_path)
        started.append(mock)
        return mock

    yield start
    for mock in started:
        mock.close()


def test_realtimekit_verbs_against_a_mock_of_its_published_spec(
    cli: Any, config_file: Path, tmp_path: Path, prism_for: Any, loopback_only: list[str]
) -> None:
    mock = prism_for("realtimekit")
    _profile(
        config_file,
        "realtimekit",
        {"account_id": ACCOUNT, "app_id": APP, "api_token": "t" * 40, "base_url": mock.url},
    )
    storage = tmp_path / "storage.json"
    storage.write_text(
        json.dumps({"type": "aws", "bucket": "b", "region": "eu-west-1", "secret": "s", "access_key": "a"})
    )
    out = str(tmp_path / "out")
    runs: list[tuple[str, ...]] = [
        ("list", "--jsonl"),
        (
            "list",
            "--jsonl",
            "--meeting",
            UUID,
            "--status",
            "uploaded",
            "--status",
            "errored",
            "--search",
            "x",
        ),
        ("list", "--jsonl", "--expired", "--since", "2020-01-01", "--until", "2030-01-01"),
        ("list", "--jsonl", "--no-expired", "--limit", "1"),
        ("show", UUID, "--json"),
        ("url", UUID, "--json"),
        ("download", UUID, "-o", out),
        ("download", UUID, "--audio", "-o", out),
        ("pull", "-o", out, "--since", "7d"),
        ("active", UUID, "--json"),
        ("start", "--meeting", UUID, "--json"),
        (
            "start",
            "--meeting",
            UUID,
            "--max-seconds",
            "600",
            "--file-name-prefix",
            "p",
            "--audio-codec",
            "mp3",
            "--audio-channel",
            "mono",
            "--allow-multiple",
            "--storage-config",
            str(storage),
            "--no-realtimekit-bucket",
            "--video-config",
            VIDEO,
            "--interactive",
            "--rtmp-url",
            "rtmp://live.example.com/app/k",
            "--url",
            "https://example.com/v",
            "--json",
        ),
        ("start-tracks", "--meeting", UUID, "--json"),
        (
            "start-tracks",
            "--meeting",
            UUID,
            "--max-seconds",
            "60",
            "--file-name-prefix",
            "t",
            "--storage-config",
            str(storage),
        ),
        ("stop", UUID, "--json"),
        ("pause", UUID, "--json"),
        ("resume", UUID, "--json"),
    ]

    _run_all(cli, "realtimekit", runs)

    assert mock.problems() == []
    received = mock.received()
    for operation in ("get", "post", "put"):
        assert any(r.startswith(operation) for r in received), received
    assert any(r.endswith("/recordings/track") for r in received)
    assert any(f"/active-recording/{UUID}" in r for r in received)


def test_bird_verbs_against_a_mock_of_its_published_spec(
    cli: Any, config_file: Path, tmp_path: Path, prism_for: Any, loopback_only: list[str]
) -> None:
    mock = prism_for("bird")
    _profile(config_file, "bird", {"workspace_id": UUID, "access_key": "k" * 32, "base_url": mock.url})
    out = str(tmp_path / "out")
    runs: list[tuple[str, ...]] = [
        ("list", "--jsonl"),
        (
            "list",
            "--jsonl",
            "--channel",
            UUID,
            "--call",
            UUID,
            "--direction",
            "incoming",
            "--since",
            "2020-01-01",
            "--until",
            "2030-01-01",
        ),
        ("list", "--jsonl", "--status", "available", "--limit", "3"),
        ("show", UUID, "--json"),
        ("url", UUID, "--json"),
        ("download", UUID, "-o", out),
        ("pull", "-o", out, "--since", "7d"),
        ("delete", UUID, "--yes"),
    ]

    _run_all(cli, "bird", runs)

    assert mock.problems() == []
    received = mock.received()
    assert any(r.startswith("get") and r.endswith("/recordings") for r in received), received
    assert any(r.startswith("delete") for r in received), received


def test_kazoo_verbs_against_a_mock_of_its_published_spec(
    cli: Any, config_file: Path, tmp_path: Path, prism_for: Any, loopback_only: list[str]
) -> None:
    """Kazoo's generated spec declares 200 answers without bodies, so the mock hands out no
    auth token: what it can check is every login request, with an api_key and with a user."""
    mock = prism_for("kazoo")
    out = str(tmp_path / "out")
    verbs: list[tuple[str, ...]] = [
        ("list", "--jsonl", "--since", "60d"),
        ("show", KAZOO_RECORDING, "--json"),
        ("url", KAZOO_RECORDING),
        ("download", KAZOO_RECORDING, "-o", out),
        ("pull", "-o", out, "--since", "7d"),
        ("delete", KAZOO_RECORDING, "--yes"),
    ]
    _profile(config_file, "kazoo", {"account_id": ACCOUNT, "api_key": "a" * 64, "base_url": mock.url})
    _run_all(cli, "kazoo", verbs)
    _profile(
        config_file,
        "kazoo",
        {
            "account_id": ACCOUNT,
            "username": "ops",
            "password": "pw",
            "account_name": "acme",
            "base_url": mock.url,
        },
    )
    _run_all(cli, "kazoo", verbs[:2])

    assert mock.problems() == []
    received = mock.received()
    assert any(r == "put /v2/api_auth" for r in received), received
    assert any(r == "put /v2/user_auth" for r in received), received
