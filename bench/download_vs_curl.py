"""Benchmark: recfetch's download engine against curl on a large loopback download.

Run by hand (not by pytest):

    python bench/download_vs_curl.py                 # 1 GiB through the storage stand-in
    python bench/download_vs_curl.py --server plain  # through a bare sendfile() server
    python bench/download_vs_curl.py --out-dir /dev/shm --size-mib 256 --runs 5

The server runs in a child process so that its CPU and memory are not counted
against recfetch. Each recfetch download runs in a fresh interpreter, so its
``ru_maxrss`` is the peak RSS of recfetch alone (imports included).
recfetch also fsyncs the file before renaming it into place (curl does not)
and hashes it with sha256 while downloading.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MIB = 1 << 20

_STAND_IN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from recfetch.sandbox.storage import Storage
    storage = Storage()
    storage.put_file("bench/big.bin", Path(sys.argv[1]))
    url, _ = storage.presign("bench/big.bin", expires_in=24 * 3600)
    print(json.dumps({"url": url}), flush=True)
    sys.stdin.read()
    """
)

_PLAIN = textwrap.dedent(
    """
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    PATH = sys.argv[1]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            size = os.path.getsize(PATH)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(PATH, "rb") as f:
                offset = 0
                while offset < size:
                    sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, size - offset)
                    if not sent:
                        break
                    offset += sent

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_port}/big.bin"}), flush=True)
    import threading
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    """
)


def make_source(path: Path, size: int) -> str:
    """Random content (incompressible), reused between runs; returns its sha256."""
    digest = hashlib.sha256()
    if path.exists() and path.stat().st_size == size:
        with path.open("rb") as f:
            while chunk := f.read(8 * MIB):
                digest.update(chunk)
        return digest.hexdigest()
    with path.open("wb") as f:
        remaining = size
        while remaining:
            chunk = os.urandom(min(8 * MIB, remaining))
            digest.update(chunk)
            f.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def start_server(kind: str, source: Path) -> tuple[subprocess.Popen[str], str]:
    script = _STAND_IN if kind == "stand-in" else _PLAIN
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(source)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, json.loads(line)["url"]


def drop(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".part"), path.with_name(path.name + ".part.meta")):
        p.unlink(missing_ok=True)
    os.sync()


def run_curl(url: str, out: Path, *, hashed: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `curl -s -o`, or with ``hashed`` of
    `curl | tee FILE | sha256sum` (the same guarantee as recfetch: a file and its sha256)."""
    drop(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if hashed:
        subprocess.run(
            f"set -o pipefail; curl -s -f '{url}' | tee '{out}' | sha256sum >/dev/null",
            shell=True, check=True, executable="/bin/bash",
        )
    else:
        subprocess.run(["curl", "-s", "-f", "-o", str(out), url], check=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.stat().st_size == 0:
        raise SystemExit("curl wrote nothing")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


_RECFETCH = textwrap.dedent(
    """
    import json, os, resource, sys, time
    from pathlib import Path
    from recfetch.download import Downloader, partfile
    from recfetch.providers.base import DownloadTarget, Recording
    url, out, size, read_size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if sys.argv[5] == "no-sha256":  # diagnostic only: how much of the time is hashing?
        class NoHash:
            def __init__(self, extra, budget):
                self.budget = budget
                self.queued = 0
            def update(self, data):
                self.queued += 1
            def wait_hashed(self, count):
                pass
            def absorb(self, data):
                pass
            def finish(self):
                return {"sha256": "skipped"}
            def close(self):
                pass
        partfile.Hasher = NoHash
    recording = Recording(provider="bench", profile="bench", ref="bench", id="bench",
                          size_bytes=size)
    with Downloader(retries=0, read_size=read_size) as downloader:
        cpu_before = os.times()
        start = time.perf_counter()
        result = downloader.fetch(recording, out, lambda: DownloadTarget(url=url))
        elapsed = time.perf_counter() - start
        cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    print(json.dumps({
        "seconds": elapsed, "cpu": cpu, "outcome": result.outcome, "sha256": result.sha256,
        "error": str(result.error) if result.error else None,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))
    """
)


def run_recfetch(
    url: str, out: Path, size: int, expected_sha: str, read_size: int, variant: str = "normal"
) -> tuple[float, float, int]:
    """One download in a fresh interpreter, so its peak RSS is recfetch's alone.

    Returns (wall seconds, CPU seconds, peak RSS KiB).
    """
    drop(out)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if variant == "malloc-tuned":  # glibc's own knob, instead of mallopt() inside recfetch
        env["GLIBC_TUNABLES"] = (
            "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=16777216"
        )
    completed = subprocess.run(
        [sys.executable, "-c", _RECFETCH, url, str(out), str(size), str(read_size), variant],
        check=True, capture_output=True, text=True, env=env,
    )
    report = json.loads(completed.stdout)
    if report["outcome"] != "downloaded" or (
        variant == "normal" and report["sha256"] != expected_sha
    ):
        raise SystemExit(f"recfetch failed: {report}")
    return report["seconds"], report["cpu"], report["peak_rss_kib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server", choices=("stand-in", "plain"), default="stand-in")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the source file lives")
    parser.add_argument("--out-dir", type=Path, default=None, help="where downloads are written")
    parser.add_argument("--read-size-kib", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    parser.add_argument(
        "--diagnose", action="store_true",
        help="also time recfetch with sha256 hashing switched off (diagnostic only)",
    )
    parser.add_argument(
        "--malloc-tuned", action="store_true",
        help="also time recfetch under GLIBC_TUNABLES mmap/trim thresholds of 4/16 MiB",
    )
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed")

    size = args.size_mib * MIB
    work = args.work_dir or Path(tempfile.gettempdir()) / "recfetch-bench"
    work.mkdir(parents=True, exist_ok=True)
    out_dir = args.out_dir or work
    out_dir.mkdir(parents=True, exist_ok=True)
    source = work / f"source-{args.size_mib}MiB.bin"
    print(f"preparing {args.size_mib} MiB source in {source} ...", flush=True)
    expected_sha = make_source(source, size)

    proc, url = start_server(args.server, source)
    read_size = args.read_size_kib * 1024
    variants = ["normal"] + ["no-sha256"] * args.diagnose + ["malloc-tuned"] * args.malloc_tuned
    curls = ["curl", "curl|tee|sha256sum"]
    wall: dict[str, list[float]] = {name: [] for name in [*curls, *variants]}
    cpu: dict[str, list[float]] = {name: [] for name in [*curls, *variants]}
    peaks: dict[str, list[int]] = {name: [] for name in variants}
    curl_out, rf_out = out_dir / "curl.bin", out_dir / "recfetch.bin"
    try:
        for _ in range(args.warmup):
            run_curl(url, curl_out)
            run_recfetch(url, rf_out, size, expected_sha, read_size)
        for run in range(1, args.runs + 1):
            line = f"run {run}:"
            for name in curls:
                seconds, used = run_curl(url, curl_out, hashed=name != "curl")
                wall[name].append(seconds)
                cpu[name].append(used)
                line += f" {name} {seconds:.2f}s "
            for variant in variants:
                seconds, used, peak = run_recfetch(
                    url, rf_out, size, expected_sha, read_size, variant
                )
                wall[variant].append(seconds)
                cpu[variant].append(used)
                peaks[variant].append(peak)
                line += f"  recfetch[{variant}] {seconds:.2f}s"
            print(line, flush=True)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        for path in (curl_out, rf_out):
            drop(path)
    print()
    print(f"server: {args.server}; size: {args.size_mib} MiB; runs: {args.runs}; out: {out_dir}")
    for name in wall:
        label = name if name in curls else f"recfetch{'' if name == 'normal' else ' ' + name}"
        median = statistics.median(wall[name])
        print(f"{label:20s} median {median:6.2f}s  {size / median / 1e6:8.1f} MB/s  "
              f"CPU {statistics.median(cpu[name]):5.2f}s  "
              f"(runs: {', '.join(f'{t:.2f}' for t in wall[name])})")
    curl_median = statistics.median(wall["curl"])
    tee_median = statistics.median(wall["curl|tee|sha256sum"])
    for name in variants:
        median = statistics.median(wall[name])
        print(f"recfetch {name}: {median / curl_median:.2f}x curl, "
              f"{median / tee_median:.2f}x curl|tee|sha256sum, "
              f"peak RSS {max(peaks[name]) / 1024:.1f} MiB (whole interpreter, max of runs)")


if __name__ == "__main__":
    main()
