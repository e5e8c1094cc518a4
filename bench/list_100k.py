"""Benchmark: `recfetch list` of 10,000 and 100,000 recordings against `curl | jq -c` over the same pages.

Run by hand (not by pytest), on a machine with curl and jq:

    python bench/list_100k.py                      # 10,000 and 100,000 records
    python bench/list_100k.py --sizes 1000,20000   # quicker

A RealtimeKit stand-in with the largest size runs in a child process on
127.0.0.1; its listing pages (100 records each, as recfetch asks for them) are
rendered once before any client runs, so the clients are timed, not the
stand-in (it holds no media: a listing downloads nothing). Smaller sizes are the
first pages of the same listing (`--limit N` for recfetch, the first N/100 pages
for curl, which fetches them in one process over one connection with its URL
globbing). recfetch writes `--jsonl` and its default format (a table, as when
piped) to a file; curl's pages go through one `jq -c '.data[]'`. Peak RSS is the
sum over each client's process tree. A client still running after `--timeout`
is killed and shown as such. Exits 1 if a client fails or prints too few lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import benchlib

PER_PAGE = 100

CURL = r"""
set -u -o pipefail
curl -sS --fail --noproxy '*' -H "Authorization: Bearer $TOKEN" \
  "$LISTING?sort_by=invokedTime&sort_order=ASC&page_no=[1-$PAGES]&per_page=$PER_PAGE" | jq -c '.data[]'
"""


def serve(records: int) -> int:
    """Child process: a RealtimeKit stand-in with ``records`` recordings and pre-rendered pages."""
    from recfetch.sandbox import realtimekit
    from recfetch.sandbox.storage import Storage

    class NoMedia(Storage):
        """Signs URLs but keeps no objects: 100,000 synthetic objects would need gigabytes."""

        def put(
            self, key: str, *, size: int, seed: str | None = None, media_type: str = "audio/mpeg"
        ) -> None:
            del key, size, seed, media_type

    storage = NoMedia()
    standin = realtimekit.create(storage, recordings=records)
    total = benchlib.cache_listing(standin, PER_PAGE)
    standin.server.start()
    print(
        json.dumps({"profile": standin.profile(), "listing": benchlib.listing_url(standin), "total": total}),
        flush=True,
    )
    sys.stdin.read()
    standin.server.stop()
    storage.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="listing sizes, comma-separated")
    parser.add_argument("--timeout", type=float, default=300, help="per client run, s")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    missing = [tool for tool in ("curl", "jq", "bash") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = Path(tempfile.mkdtemp(prefix="recfetch-list-"))
    server = benchlib.ServedStandIn(__file__, [f"--serve={sizes[-1]}"], work)
    rows = []
    failed = False
    try:
        hello = server.hello()
        for size in sizes:
            size = min(size, hello["total"] // PER_PAGE * PER_PAGE)
            pages = size // PER_PAGE
            env = benchlib.clean_env(
                work,
                LISTING=hello["listing"],
                TOKEN=hello["profile"]["api_token"],
                PAGES=str(pages),
                PER_PAGE=str(PER_PAGE),
            )
            recfetch = [*benchlib.recfetch_cmd(), "--quiet", "realtimekit", "list", "--limit", str(size)]
            clients = [
                ("curl | jq -c", ["bash", "-c", CURL], size),
                ("recfetch list --jsonl", [*recfetch, "--jsonl"], size),
                ("recfetch list (table, piped)", recfetch, size),
            ]
            curl_wall = 0.0
            for name, cmd, expect in clients:
                run = benchlib.measure(cmd, env=env, logs=work / "logs", timeout=args.timeout)
                with open(run.stdout, "rb") as fh:
                    lines = sum(1 for _ in fh)
                if run.code != 0 or lines < expect:
                    failed = True
                    print(
                        f"{name} at {size}: exit {run.code}, {lines} lines\n{run.err_tail()}", file=sys.stderr
                    )
                curl_wall = curl_wall or run.wall
                killed = run.wall >= args.timeout
                rows.append(
                    (
                        f"{size:,}",
                        name,
                        f">{args.timeout:.0f} (killed)" if killed else f"{run.wall:.2f}",
                        "-" if killed else f"{size / run.wall:,.0f}",
                        f"{run.wall / curl_wall:.2f}x",
                        f"{run.cpu:.2f}",
                        f"{run.peak_mib:.0f}",
                        f"{lines:,}",
                    )
                )
                run.stdout.unlink()
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"RealtimeKit listing, {PER_PAGE} per page, loopback, no API latency; CPU and peak RSS of the "
        f"process tree; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        benchlib.table(
            ("records", "client", "wall s", "records/s", "vs curl", "CPU s", "peak RSS MiB", "lines out"),
            rows,
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
