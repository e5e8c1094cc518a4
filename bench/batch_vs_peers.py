"""Benchmark: a batch pull by recfetch, a `curl | jq | xargs -P8` pipeline and `aria2c -j8`, side by side.

Run by hand (not by pytest), on a machine with curl, jq and aria2c:

    python bench/batch_vs_peers.py                  # 200 x 2 MiB, -j 8, then recfetch at -j 8/16/32
    python bench/batch_vs_peers.py --rounds 3       # interleaved rounds, median (min-max)
    python bench/batch_vs_peers.py --files 50 --first-byte 0 --connect 0

The RealtimeKit stand-in and the storage host run in a child process on
127.0.0.1 (their CPU and memory are not counted). The storage host answers every
request ``--first-byte`` s late and the first request of each new connection
``--connect`` s later still (a TCP+TLS handshake on a real network), so clients
that reuse connections are credited; the provider API answers ``--api-latency``
s late. Every client lists the same pages (100 per page, oldest first) and
downloads every file; each run starts with an empty output folder (recfetch:
and an empty archive). Peak RSS is the sum over the client's whole process tree
(curl, jq, xargs, bash included). A run fails (exit 1) if any client exits
non-zero or leaves a file missing or of the wrong size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import benchlib

PER_PAGE = 100

_LIST = r"""
set -u -o pipefail
list() {
  page=1
  while :; do
    body=$(curl -sS --fail --noproxy '*' -H "Authorization: Bearer $TOKEN" \
      "$LISTING?sort_by=invokedTime&sort_order=ASC&page_no=$page&per_page=$PER_PAGE") || return 1
    printf '%s' "$body" | jq -r "$FILTER" || return 1
    [ "$(printf '%s' "$body" | jq '.data | length')" -lt "$PER_PAGE" ] && return 0
    page=$((page + 1))
  done
}
"""

CURL = (
    _LIST
    + r"""
FILTER='.data[] | select(.download_url != null) | "\(.id).mp4 \(.download_url)"'
cd "$OUT" && list | xargs -P "$JOBS" -L 1 curl -sS --fail --noproxy '*' -o
"""
)

ARIA2 = (
    _LIST
    + r"""
FILTER='.data[] | select(.download_url != null) | "\(.download_url)\n  out=\(.id).mp4"'
list | aria2c --no-conf -q -i - -j "$JOBS" -d "$OUT" --allow-overwrite=true \
  --auto-file-renaming=false --all-proxy='' --summary-interval=0
"""
)


def serve(args: argparse.Namespace) -> int:
    """Child process: storage with latency + RealtimeKit stand-in; stdin 'counts' reports connections."""
    from recfetch.sandbox import realtimekit
    from recfetch.sandbox.storage import Storage

    server = benchlib.LatentServer("storage", first_byte=args.first_byte, connect=args.connect)
    storage = Storage(server)
    standin = realtimekit.create(storage, recordings=0)
    standin.max_per_page = PER_PAGE
    now = datetime.now(UTC)
    for index in range(args.files):
        standin.add_recording(
            invoked_time=now - timedelta(days=3) + timedelta(minutes=index), size=args.size_mib << 20
        )
    benchlib.delay_routes(standin.server, args.api_latency)
    server.start()
    standin.server.start()
    print(json.dumps({"profile": standin.profile(), "listing": benchlib.listing_url(standin)}), flush=True)
    for line in sys.stdin:
        if line.strip() == "counts":
            print(json.dumps(server.take_counts()), flush=True)
    standin.server.stop()
    server.stop()
    return 0


def _files_ok(out: Path, size: int) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file() and p.suffix == ".mp4" and p.stat().st_size == size)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-mib", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=8, help="parallel transfers of every client")
    parser.add_argument("--rss-jobs", default="8,16,32", help="recfetch --jobs values for the RSS table")
    parser.add_argument("--first-byte", type=float, default=0.08, help="storage first-byte latency, s")
    parser.add_argument("--connect", type=float, default=0.1, help="set-up per new connection, s")
    parser.add_argument("--api-latency", type=float, default=0.05, help="provider API latency, s")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=240, help="per client run, s")
    parser.add_argument("--out-dir", type=Path, default=None, help="where to download (default: a temp dir)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)
    missing = [tool for tool in ("curl", "jq", "aria2c", "bash") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (e.g. apt-get install {' '.join(missing)})", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="recfetch-batch-", dir=args.out_dir))
    forwarded = [
        f"--{k.replace('_', '-')}={getattr(args, k)}"
        for k in ("files", "size_mib", "first_byte", "connect", "api_latency")
    ]
    server = benchlib.ServedStandIn(__file__, ["--serve", *forwarded], work)
    try:
        hello = server.hello()

        def counts() -> dict[str, int]:
            return server.ask("counts")  # type: ignore[no-any-return]

        jobs = [int(j) for j in args.rss_jobs.split(",")]
        plan = [("recfetch", args.jobs), ("curl|jq|xargs", args.jobs), ("aria2c", args.jobs)]
        plan += [("recfetch", j) for j in jobs if j != args.jobs]
        results: dict[tuple[str, int], list[dict[str, float]]] = {key: [] for key in plan}
        failed = False
        for round_no in range(args.rounds):
            for tool, j in plan:
                tag = f"{tool.split('|')[0]}-{j}-{round_no}"
                out = work / "out" / tag
                out.mkdir(parents=True)
                env = benchlib.clean_env(
                    work,
                    RECFETCH_STATE_DIR=str(work / "state" / tag),
                    LISTING=hello["listing"],
                    TOKEN=hello["profile"]["api_token"],
                    OUT=str(out),
                    JOBS=str(j),
                    PER_PAGE=str(PER_PAGE),
                )
                if tool == "recfetch":
                    cmd = [
                        *benchlib.recfetch_cmd(),
                        "--quiet",
                        "realtimekit",
                        "pull",
                        "-o",
                        str(out),
                        "-j",
                        str(j),
                        "--jsonl",
                    ]
                else:
                    cmd = ["bash", "-c", CURL if tool.startswith("curl") else ARIA2]
                counts()  # reset
                run = benchlib.measure(cmd, env=env, logs=work / "logs", timeout=args.timeout)
                seen = counts()
                ok = _files_ok(out, args.size_mib << 20)
                if run.code != 0 or ok != args.files:
                    failed = True
                    print(
                        f"{tool} -j {j}: exit {run.code}, {ok}/{args.files} files\n{run.err_tail()}",
                        file=sys.stderr,
                    )
                results[(tool, j)].append(
                    {"wall": run.wall, "cpu": run.cpu, "rss": run.peak_mib, "ok": ok, **seen}
                )
                shutil.rmtree(out, ignore_errors=True)
    finally:
        server.close(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{args.files} x {args.size_mib} MiB, storage first byte {args.first_byte * 1000:.0f} ms + "
        f"{args.connect * 1000:.0f} ms per new connection, API latency {args.api_latency * 1000:.0f} ms, "
        f"{args.rounds} round(s), median (min-max); wall, CPU and peak RSS of the whole process tree; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    base = benchlib.median(r["wall"] for r in results[("recfetch", args.jobs)])
    rows = []
    for tool, j in plan[:3]:
        runs = results[(tool, j)]
        wall = benchlib.median(r["wall"] for r in runs)
        rows.append(
            (
                f"{tool} -j{j}",
                benchlib.spread([r["wall"] for r in runs]),
                f"{base / wall:.2f}x",
                benchlib.spread([r["cpu"] for r in runs]),
                benchlib.spread([r["rss"] for r in runs], "{:.0f}"),
                f"{runs[-1]['ok']:.0f}",
                f"{runs[-1]['connections']:.0f}",
                f"{runs[-1]['requests']:.0f}",
            )
        )
    print(
        benchlib.table(
            (
                "client",
                "wall s",
                "recfetch/this",
                "CPU s",
                "peak RSS MiB",
                "files ok",
                "storage conns",
                "storage reqs",
            ),
            rows,
        )
    )
    print()
    rows = []
    for j in jobs:
        runs = results[("recfetch", j)]
        rows.append(
            (
                f"recfetch -j {j}",
                benchlib.spread([r["wall"] for r in runs]),
                benchlib.spread([r["cpu"] for r in runs]),
                benchlib.spread([r["rss"] for r in runs], "{:.0f}"),
            )
        )
    print(benchlib.table(("recfetch", "wall s", "CPU s", "peak RSS MiB"), rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
