"""Benchmark: `recfetch pull` of 1,000+ sandbox recordings across providers, then the nothing-new pull.

Run by hand (not by pytest):

    python bench/pull_1000.py                      # 300 recordings per provider
    python bench/pull_1000.py --recordings 500 --jobs 8
    python bench/pull_1000.py --records             # with --manifest and --write-metadata too

The sandbox runs in a child process so its CPU does not compete with recfetch
inside one interpreter. Each pull is a fresh `python -m recfetch` process timed
by wall clock; its CPU seconds (user + system) and peak RSS come from
`/usr/bin/time -v` when available (else there is no CPU figure and the RSS is
`resource.getrusage(RUSAGE_CHILDREN)`, the largest child so far).
The second pull of each provider finds everything in the archive: it lists,
mints no URL and downloads nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from recfetch.providers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
NAMES = tuple(REGISTRY)

_SANDBOX = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from recfetch.sandbox import Sandbox
    config, report, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    with Sandbox(recordings=count) as box:
        box.write_profile(config, "bench")
        if "kaleyra" in box.standins:
            report.write_text(box["kaleyra"].report_csv())
        print(" ".join(box.standins), flush=True)
        sys.stdin.read()
    """
)


def _rss_mib(stderr: str) -> float | None:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(match.group(1)) / 1024 if match else None


def _cpu_s(stderr: str) -> float | None:
    """User + system CPU seconds from `/usr/bin/time -v`."""
    times = re.findall(r"(?:User|System) time \(seconds\): ([0-9.]+)", stderr)
    return sum(float(t) for t in times) if len(times) == 2 else None


def _pull(name: str, out: Path, env: dict[str, str], extra: list[str]) -> dict[str, object]:
    cmd = [sys.executable, "-m", "recfetch", "--quiet", name, "pull", "-o", str(out), "--jsonl", *extra]
    timer = shutil.which("time") and Path("/usr/bin/time").exists()
    if timer:
        cmd = ["/usr/bin/time", "-v", *cmd]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    summary = next((x for x in lines if x.get("type") == "summary"), {})
    rss = _rss_mib(proc.stderr) if timer else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-5:])
        print(f"{name}: exit {proc.returncode}\n{tail}", file=sys.stderr)
    cpu = _cpu_s(proc.stderr) if timer else None
    return {"wall": wall, "rss": rss, "cpu": cpu, "code": proc.returncode, **summary}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=300, help="synthetic recordings per provider")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--out-dir", type=Path, default=None, help="where to download (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the downloaded files and state")
    parser.add_argument(
        "--records",
        action="store_true",
        help="also write a manifest and sidecars (--manifest, --write-metadata): every per-file record",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recfetch-bench-", dir=args.out_dir))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "RECFETCH_CONFIG": str(work / "config.toml"),
        "RECFETCH_STATE_DIR": str(work / "state"),
        "RECFETCH_PROFILE": "bench",
        "NO_COLOR": "1",
    }
    report = work / "kaleyra.csv"
    server = subprocess.Popen(
        [sys.executable, "-c", _SANDBOX, env["RECFETCH_CONFIG"], str(report), str(args.recordings)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        names = [n for n in server.stdout.readline().split() if n in NAMES]
        rows = []
        for name in names:
            extra = ["--jobs", str(args.jobs)]
            if args.records:
                extra += ["--manifest", str(work / f"{name}.manifest.jsonl"), "--write-metadata"]
            if name == "kaleyra":
                extra += ["--from-report", str(report)]
            first = _pull(name, work / "out" / name, env, extra)
            second = _pull(name, work / "out" / name, env, extra)
            rows.append((name, first, second))
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)

    header = (
        f"{'provider':<12} {'files':>6} {'MB':>8} {'pull s':>8} {'CPU s':>7} {'files/s':>8} "
        f"{'peak RSS MiB':>13} "
        f"{'2nd pull s':>11} {'2nd new':>8} {'exit':>5}"
    )
    print(header)
    print("-" * len(header))
    total_files = total_bytes = 0
    total_wall = total_second = total_cpu = 0.0
    peak = 0.0
    for name, first, second in rows:
        files = int(first.get("downloaded", 0))  # type: ignore[call-overload]
        size = int(first.get("bytes", 0))  # type: ignore[call-overload]
        wall = float(first["wall"])  # type: ignore[arg-type]
        rss = float(first["rss"] or 0)  # type: ignore[arg-type]
        cpu = float(first["cpu"] or 0)  # type: ignore[arg-type]
        total_cpu += cpu
        total_files += files
        total_bytes += size
        total_wall += wall
        total_second += float(second["wall"])  # type: ignore[arg-type]
        peak = max(peak, rss, float(second["rss"] or 0))  # type: ignore[arg-type]
        again = float(second["wall"])  # type: ignore[arg-type]
        codes = f"{first['code']}/{second['code']}"
        print(
            f"{name:<12} {files:>6} {size / 1e6:>8.1f} {wall:>8.2f} {cpu:>7.2f} {files / wall:>8.1f} "
            f"{rss:>13.1f} "
            f"{again:>11.2f} {second.get('downloaded', '?')!s:>8} {codes:>5}"
        )
    print("-" * len(header))
    print(
        f"{'total':<12} {total_files:>6} {total_bytes / 1e6:>8.1f} {total_wall:>8.2f} {total_cpu:>7.2f} "
        f"{total_files / max(total_wall, 1e-9):>8.1f} {peak:>13.1f} {total_second:>11.2f}"
    )
    if args.keep:
        print(f"\n(kept {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(f["code"] == 0 and s["code"] == 0 for _, f, s in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
