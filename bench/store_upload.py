"""Benchmark: one large recording streamed from a storage host into an S3 bucket.

Run by hand (not by pytest), with the test extras installed (SeaweedFS, boto3):

    python bench/store_upload.py                    # 1 GiB, 2 runs
    python bench/store_upload.py --size-mib 256 --runs 1
    python bench/store_upload.py --aws /path/to/venv/bin/aws   # compare `curl | aws s3 cp -`
    python bench/store_upload.py --batch            # `pull` of 32 x 16 MiB at -j 8, 16, 32
    python bench/store_upload.py --batch --files 64 --size-mib 4 --jobs 16

A SeaweedFS S3 server and the storage stand-in (synthetic bytes, no disk) run
on 127.0.0.1 in child processes, so their CPU and memory are not counted.
recfetch's side runs in a fresh interpreter: the download engine with its
object-store seam (`Downloader(store=...)`: 6 MiB parts spooled to anonymous files, SHA-256 while
streaming, staged then copied into place with its metadata), so
``ru_maxrss`` is recfetch's peak RSS alone, imports included. The comparison is `curl -s URL | aws s3 cp
- s3://...` (awscli from PyPI) when ``--aws`` names an `aws` executable.

``--batch`` runs the real CLI instead: `recfetch bird pull -o s3://...` of
``--files`` recordings of ``--size-mib`` each from the Bird stand-in, once per
``--jobs`` value, each into a fresh prefix; wall and CPU seconds and the peak
RSS of recfetch's whole process tree (`benchlib.measure`). A run fails (exit 1)
unless every object arrived with its size and `sha256` metadata, no multipart
upload is left and the spool folder is empty.
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

import benchlib

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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": elapsed, "sha256": result.sha256, "cpu": usage.ru_utime + usage.ru_stime,
                      "peak_rss_kib": usage.ru_maxrss}))
    """
)


_BIRD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from recfetch.sandbox import Sandbox
    config, files, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with Sandbox(recordings=0, providers=["bird"]) as box:
        for _ in range(files):
            box["bird"].add_recording(size=size)
        box.write_profile(config, "bench")
        print("ready", flush=True)
        sys.stdin.read()
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


def _batch_ok(store: object, prefix: str, files: int, size: int) -> str | None:
    """Why the batch's bucket content is wrong, or None."""
    client, bucket = store.client(), store.bucket  # type: ignore[attr-defined]
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        found += [o for o in page.get("Contents") or [] if "/.recfetch/" not in o["Key"]]
    if len(found) != files or any(o["Size"] != size for o in found):
        return f"{len(found)}/{files} objects of the right size"
    for obj in found[:: max(1, files // 4)]:
        meta = client.head_object(Bucket=bucket, Key=obj["Key"])["Metadata"]
        if len(meta.get("sha256", "")) != 64 or meta.get("size") != str(size):
            return f"{obj['Key']} lacks its sha256/size metadata"
    if client.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/").get("Uploads"):
        return "multipart uploads were left behind"
    return None


def _folder_row(args: argparse.Namespace, env: dict[str, str], work: Path, jobs: int) -> tuple[str, ...]:
    """The same pull into a local folder: what the store path adds to the engine's own cost."""
    shutil.rmtree(work / "state", ignore_errors=True)
    shutil.rmtree(work / "folder", ignore_errors=True)
    cmd = [*benchlib.recfetch_cmd(), "--quiet", "bird", "pull", "-o", str(work / "folder"),
           "-j", str(jobs), "--jsonl"]
    result = benchlib.measure(cmd, env=env, logs=work / "logs", timeout=args.timeout)
    mib = args.files * args.size_mib
    return (f"(into a folder) -j {jobs}", f"{result.wall:.1f}", f"{result.cpu:.1f}",
            f"{mib / result.wall:.0f}", f"{result.peak_mib:.0f}", f"exit {result.code}")


def run_batch(args: argparse.Namespace, store: object, work: Path) -> int:
    """`recfetch bird pull -o s3://...` of a batch at each --jobs: wall, CPU, peak RSS of the tree."""
    from s3 import ACCESS_KEY, SECRET_KEY

    size = args.size_mib * MIB
    env = benchlib.clean_env(
        work, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=store.endpoint,  # type: ignore[attr-defined]
        AWS_CONFIG_FILE=str(work / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(work / "no-aws-creds"),
    )
    source = subprocess.Popen(
        [sys.executable, "-c", _BIRD, env["RECFETCH_CONFIG"], str(args.files), str(size)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    rows, failed = [], False
    try:
        assert source.stdout is not None
        source.stdout.readline()
        for jobs in args.jobs:
            if args.folder:
                rows.append(_folder_row(args, env, work, jobs))
            for run in range(args.runs):
                prefix = f"batch/j{jobs}-{run}"
                dest = f"s3://{store.bucket}/{prefix}"  # type: ignore[attr-defined]
                shutil.rmtree(work / "state", ignore_errors=True)
                cmd = [*benchlib.recfetch_cmd(), "--quiet", "bird", "pull", "-o", dest,
                       "-j", str(jobs), "--jsonl"]
                result = benchlib.measure(cmd, env=env, logs=work / "logs", timeout=args.timeout)
                spool = work / "state" / "spool"
                wrong = (f"exit {result.code}: {result.err_tail()}" if result.code else
                         _batch_ok(store, prefix, args.files, size) or
                         (f"{spool} is not empty" if spool.exists() and any(spool.iterdir()) else None))
                if wrong:
                    failed = True
                    print(f"-j {jobs}: {wrong}", file=sys.stderr)
                mib = args.files * args.size_mib
                rows.append((f"recfetch pull -j {jobs}", f"{result.wall:.1f}", f"{result.cpu:.1f}",
                             f"{mib / result.wall:.0f}", f"{result.peak_mib:.0f}",
                             "FAILED" if wrong else "ok"))
    finally:
        if source.stdin:
            source.stdin.close()
        source.wait(timeout=30)
    print(f"{args.files} x {args.size_mib} MiB from the Bird stand-in into s3://{store.bucket}/batch/...")  # type: ignore[attr-defined]
    print(benchlib.table(("client", "wall s", "CPU s", "MiB/s", "peak RSS MiB", "objects"), rows))
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=None, help="per recording (1024; --batch: 16)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each (2; --batch: 1)")
    parser.add_argument("--aws", default=shutil.which("aws"), help="an `aws` executable (awscli)")
    parser.add_argument("--batch", action="store_true", help="a `pull` of many recordings at several --jobs")
    parser.add_argument("--files", type=int, default=32, help="--batch: recordings")
    parser.add_argument("--jobs", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32],
                        help="--batch: comma-separated --jobs values")
    parser.add_argument("--folder", action="store_true", help="--batch: also pull into a local folder")
    parser.add_argument("--timeout", type=float, default=300, help="--batch: seconds per run")
    args = parser.parse_args()
    args.size_mib = args.size_mib or (16 if args.batch else 1024)
    args.runs = args.runs or (1 if args.batch else 2)
    size = args.size_mib * MIB

    from s3 import _start, _stop

    work = Path(tempfile.mkdtemp(prefix="recfetch-bench-s3-"))
    store = _start(work, volume_mb=1024, volumes=16)
    if args.batch:
        try:
            raise SystemExit(run_batch(args, store, work))
        finally:
            _stop(store.process)
            shutil.rmtree(work, ignore_errors=True)
    source, url = start_source(size)
    try:
        for run in range(args.runs):
            report = run_recfetch(url, store, f"bench/recfetch-{run}", size)
            head = store.client().head_object(Bucket=store.bucket, Key=f"bench/recfetch-{run}/big.bin")
            assert head["ContentLength"] == size and head["Metadata"]["sha256"] == report["sha256"]
            print(f"recfetch  {args.size_mib} MiB: {report['seconds']:.1f} s "
                  "(streamed, verified, completed and copied into place with its metadata), "
                  f"CPU {report['cpu']:.1f} s, peak RSS {report['peak_rss_kib'] / 1024:.0f} MiB, "
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
