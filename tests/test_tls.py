"""Downloads over HTTPS, as every real presigned URL is: verified, byte-exact, and refused when untrusted.

The storage host of a RealtimeKit stand-in serves TLS with a certificate from a throwaway
CA (trustme); recfetch is told about that CA the way a user behind a private CA would be,
with SSL_CERT_FILE.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from recfetch.download.receive import DIRECT_BODY_MIN
from recfetch.sandbox import realtimekit
from recfetch.sandbox.httpserver import Server
from recfetch.sandbox.storage import Storage

MiB = 1024 * 1024
SIZES = (3 * MiB + 17, 200_000, 1)  # larger than a read budget, a few reads, one byte


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextmanager
def standin_serving(ca: trustme.CA, sizes: tuple[int, ...]) -> Iterator[realtimekit.RealtimeKitStandIn]:
    """A RealtimeKit stand-in with one recording per size, its storage host on HTTPS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    storage = Storage(Server("storage", tls=context).start())
    standin = realtimekit.create(storage, recordings=0)
    for size in sizes:
        standin.add_recording(size=size)
    standin.server.start()
    try:
        yield standin
    finally:
        standin.server.stop()
        storage.server.stop()


@pytest.fixture
def tls_standin(ca: trustme.CA) -> Iterator[realtimekit.RealtimeKitStandIn]:
    with standin_serving(ca, SIZES) as standin:
        yield standin


def recfetch(
    profile: dict[str, str], tmp_path: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """``recfetch -p tls realtimekit ARGS`` with ``profile`` as its only config."""
    config = tmp_path / "config.toml"
    config.write_text("[profiles.tls.realtimekit]\n" + "".join(f'{k} = "{v}"\n' for k, v in profile.items()))
    config.chmod(0o600)
    command = [sys.executable, "-m", "recfetch", "--config", str(config), "-p", "tls", "realtimekit", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def pull(
    standin: realtimekit.RealtimeKitStandIn, tmp_path: Path, env: dict[str, str], jobs: int = 2
) -> subprocess.CompletedProcess[str]:
    out = str(tmp_path / "out")
    return recfetch(
        standin.profile(), tmp_path, env, "pull", "-o", out, "--jsonl", "--no-archive", "-j", str(jobs)
    )


def trusting_env(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return {**os.environ, "SSL_CERT_FILE": str(bundle)}


def assert_saved_byte_exact(
    standin: realtimekit.RealtimeKitStandIn, out: Path, sizes: tuple[int, ...]
) -> None:
    saved = sorted(out.iterdir(), key=lambda p: p.stat().st_size)
    assert [p.stat().st_size for p in saved] == sorted(sizes)
    keys = [rec["key"] for rec in standin.recordings.values()]
    stored = {hashlib.sha256(standin.storage.content(key)).hexdigest() for key in keys}
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in saved} == stored


def untrusting_env() -> dict[str, str]:
    """This environment without a CA bundle of its own: the system's, which knows no test CA."""
    return {key: value for key, value in os.environ.items() if key not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}


def test_recordings_arrive_byte_exact_over_https_from_a_trusted_host(
    tls_standin: realtimekit.RealtimeKitStandIn, ca: trustme.CA, tmp_path: Path
) -> None:
    res = pull(tls_standin, tmp_path, trusting_env(ca, tmp_path))
    assert res.returncode == 0, res.stderr
    assert_saved_byte_exact(tls_standin, tmp_path / "out", SIZES)
    assert tls_standin.storage.server.url.startswith("https://")


def test_a_large_recording_alone_arrives_byte_exact_over_https(ca: trustme.CA, tmp_path: Path) -> None:
    """Alone, a body this long is read from the TLS socket straight into the .part's buffers."""
    sizes = (DIRECT_BODY_MIN + 5 * MiB + 3, 1000)
    with standin_serving(ca, sizes) as standin:
        res = pull(standin, tmp_path, trusting_env(ca, tmp_path), jobs=1)
        assert res.returncode == 0, res.stderr
        assert_saved_byte_exact(standin, tmp_path / "out", sizes)


def test_an_untrusted_certificate_saves_nothing_and_says_why(
    tls_standin: realtimekit.RealtimeKitStandIn, tmp_path: Path
) -> None:
    res = pull(tls_standin, tmp_path, untrusting_env())
    assert res.returncode == 8, res.stderr  # a transfer failure, reported at once: not retried
    out = tmp_path / "out"
    files = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    saved = [p for p in files if not p.name.endswith(".part")]
    assert saved == []
    (failed,) = [json.loads(line) for line in res.stdout.splitlines() if '"outcome": "failed"' in line][:1]
    assert "the TLS certificate of 127.0.0.1:" in failed["error"]["message"], failed
    assert "SSL_CERT_FILE" in res.stdout + res.stderr
    assert tls_standin.storage.server.requests(method="GET") == []  # no request got past the handshake


def test_an_api_host_with_an_untrusted_certificate_is_refused_at_once_naming_the_fix(
    tls_standin: realtimekit.RealtimeKitStandIn, tmp_path: Path
) -> None:
    profile = {**tls_standin.profile(), "base_url": tls_standin.storage.server.url + "/client/v4"}
    res = recfetch(profile, tmp_path, untrusting_env(), "list")
    assert res.returncode == 8, res.stderr
    assert "the TLS certificate of realtimekit at https://127.0.0.1:" in res.stderr
    assert "SSL_CERT_FILE" in res.stderr and res.stdout == ""
    assert profile["api_token"] not in res.stderr
