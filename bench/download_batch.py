"""Benchmark: the download engine's peak memory and time for a batch of files at several --jobs.

Run by hand (not by pytest):

    python bench/download_batch.py                          # 200 x 2 MiB at --jobs 8, 16, 32
    python bench/download_batch.py --files 500 --size-kib 512 --jobs 16
    python bench/download_batch.py --cli-imports            # count the CLI's imports too

The storage stand-in runs in a child process, so its CPU and memory are not
counted. Each run is a fresh interpreter: one shared `Downloader` fetches every
file from N threads, and its ``ru_maxrss`` is the engine's peak RSS (imports
included; with ``--cli-imports`` also typer, rich and the providers, as in a
real `recfetch pull`, whose peak is this plus its listing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_STORAGE = textwrap.dedent(
    """
    import json, sys
    from recfetch.sandbox.storage import Storage
    files, size = int(sys.argv[1]), int(sys.argv[2])
    storage = Storage()
    urls = []
    for i in range(files):
        storage.put(f"bench/{i}.bin", size=size)
        urls.append(storage.presign(f"bench/{i}.bin", expires_in=24 * 3600)[0])
    print(json.dumps(urls), flush=True)
    sys.stdin.read()
    """
)

_ENGINE = textwrap.dedent(
    """
    import json, resource, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    if sys.argv[4] == "cli":
        import recfetch.cli  # noqa: F401  (typer, rich, every provider)
    from recfetch.download import Downloader
    from recfetch.providers.base import DownloadTarget, Recording
    urls = json.loads(Path(sys.argv[1]).read_text())
    out, jobs = Path(sys.argv[2]), int(sys.argv[3])
    size, read_size = int(sys.argv[5]), int(sys.argv[6])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def fetch(item):
        i, url = item
        rec = Recording(provider="bench", profile="bench", ref=str(i), id=str(i), size_bytes=size)
        return downloader.fetch(rec, out / f"{i}.bin", lambda: DownloadTarget(url=url))

    start = time.perf_counter()
    with Downloader(retries=0, read_size=read_size) as downloader, ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(fetch, enumerate(urls)))
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.outcome != "downloaded"]
    print(json.dumps({
        "seconds": elapsed, "failed": len(bad), "first_error": str(bad[0].error) if bad else None,
        "base_kib": base, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-kib", type=int, default=2048)
    parser.add_argument("--jobs", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--cli-imports", action="store_true")
    parser.add_argument("--read-size-kib", type=int, default=256)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    size = args.size_kib * 1024
    server = subprocess.Popen(
        [sys.executable, "-c", _STORAGE, str(args.files), str(size)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    work = Path(tempfile.mkdtemp(prefix="recfetch-batch-"))
    try:
        assert server.stdout is not None
        urls_file = work / "urls.json"
        urls_file.write_text(server.stdout.readline())
        print(f"{args.files} x {args.size_kib} KiB; engine"
              f"{' + CLI imports' if args.cli_imports else ''}")
        for jobs in args.jobs:
            out = (args.out_dir or work) / f"out-{jobs}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            completed = subprocess.run(
                [sys.executable, "-c", _ENGINE, str(urls_file), str(out), str(jobs),
                 "cli" if args.cli_imports else "engine", str(size),
                 str(args.read_size_kib * 1024)],
                capture_output=True, text=True, env=env, check=True,
            )
            report = json.loads(completed.stdout)
            shutil.rmtree(out, ignore_errors=True)
            print(f"--jobs {jobs:3d}: {report['seconds']:6.2f}s  "
                  f"peak RSS {report['peak_kib'] / 1024:6.1f} MiB "
                  f"(after imports {report['base_kib'] / 1024:5.1f} MiB)  "
                  f"failed {report['failed']} {report['first_error'] or ''}", flush=True)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
