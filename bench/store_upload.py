"""Benchmark: one large recording streamed from a storage host into an S3 bucket.

Run by hand (not by pytest), with the test extras installed (SeaweedFS, boto3):

    python bench/store_upload.py                    # 1 GiB, 2 runs
    python bench/store_upload.py --size-mib 256 --runs 1
    python bench/store_upload.py --aws /path/to/venv/bin/aws   # compare `curl | aws s3 cp -`

A SeaweedFS S3 server and the storage stand-in (synthetic bytes, no disk) run
on 127.0.0.1 in child processes, so their CPU and memory are not counted.
recfetch's side runs in a fresh interpreter: the download engine with its
object-store seam (`Downloader(store=...)`: 8 MiB parts, SHA-256 while
streaming, staged then copied into place with its metadata), so
``ru_maxrss`` is recfetch's peak RSS alone, imports included. The comparison is `curl -s URL | aws s3 cp
- s3://...` (awscli from PyPI) when ``--aws`` names an `aws` executable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

MIB = 1 << 20

_SOURCE = textwrap.dedent(
    """
    import json, sys
    from recfetch.sandbox.storage import Storage
    storage = Storage()
    storage.put("bench/big.bin", size=int(sys.argv[1]), seed="bench")
    url, _ = storage.presign("bench/big.bin", expires_in=24 * 3600)
    print(json.dumps({"url": url}), flush=True)
    sys.stdin.read()
    """
)

_RECFETCH = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from recfetch.destinations import ObjectStore, StoreSettings, StoreURL
    from recfetch.download import Downloader
    from recfetch.providers.base import DownloadTarget, Recording
    url, dest, size, endpoint, key_id, secret = sys.argv[1:7]
    store = ObjectStore(StoreURL.parse(dest), StoreSettings(
        access_key_id=key_id, secret_access_key=secret, region="us-east-1", endpoint_url=endpoint))
    recording = Recording(provider="bench", profile="bench", ref="bench:1", id="1", size_bytes=int(size))
    start = time.perf_counter()
    store.check()
    with Downloader(retries=0, store=store) as downloader:
        result = downloader.fetch(recording, Path("big.bin"), lambda: DownloadTarget(url=url))
    elapsed = time.perf_counter() - start
    if result.outcome != "downloaded":
        raise SystemExit(f"recfetch failed: {result.error}")
    print(json.dumps({"seconds": elapsed, "sha256": result.sha256,
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    """
)


def start_source(size: int) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _SOURCE, str(size)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())["url"]


def run_recfetch(url: str, store: object, prefix: str, size: int) -> dict[str, float]:
    from s3 import ACCESS_KEY, SECRET_KEY

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    dest = f"s3://{store.bucket}/{prefix}"  # type: ignore[attr-defined]
    done = subprocess.run(
        [sys.executable, "-c", _RECFETCH, url, dest, str(size), store.endpoint,  # type: ignore[attr-defined]
         ACCESS_KEY, SECRET_KEY],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(done.stdout)


def run_aws(aws: str, url: str, store: object, key: str) -> tuple[float, int]:
    """`curl | aws s3 cp -`: (wall seconds, peak RSS KiB of the biggest process in the pipe)."""
    from s3 import ACCESS_KEY, SECRET_KEY

    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1")
    bucket, endpoint = store.bucket, store.endpoint  # type: ignore[attr-defined]
    command = (f"curl -s -f '{url}' | '{aws}' s3 cp - 's3://{bucket}/{key}' "
               f"--endpoint-url '{endpoint}' --no-progress")
    start = time.perf_counter()
    subprocess.run(["sh", "-c", command], check=True, env=env)
    elapsed = time.perf_counter() - start
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--aws", default=shutil.which("aws"), help="an `aws` executable (awscli)")
    args = parser.parse_args()
    size = args.size_mib * MIB

    from s3 import _start, _stop

    work = Path(tempfile.mkdtemp(prefix="recfetch-bench-s3-"))
    store = _start(work, volume_mb=1024, volumes=16)
    source, url = start_source(size)
    try:
        for run in range(args.runs):
            report = run_recfetch(url, store, f"bench/recfetch-{run}", size)
            head = store.client().head_object(Bucket=store.bucket, Key=f"bench/recfetch-{run}/big.bin")
            assert head["ContentLength"] == size and head["Metadata"]["sha256"] == report["sha256"]
            print(f"recfetch  {args.size_mib} MiB: {report['seconds']:.1f} s "
                  "(streamed, verified, completed and copied into place with its metadata), "
                  f"peak RSS {report['peak_rss_kib'] / 1024:.0f} MiB, "
                  f"{args.size_mib / report['seconds']:.0f} MiB/s")
        if args.aws:
            for run in range(args.runs):
                seconds, rss = run_aws(args.aws, url, store, f"bench/aws-{run}/big.bin")
                print(f"curl | aws s3 cp -: {seconds:.1f} s, peak RSS (largest process) "
                      f"{rss / 1024:.0f} MiB, {args.size_mib / seconds:.0f} MiB/s")
        else:
            print("awscli not found: pass --aws PATH to compare with `curl | aws s3 cp -`")
    finally:
        if source.stdin:
            source.stdin.close()
        source.wait(timeout=10)
        _stop(store.process)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
