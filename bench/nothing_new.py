"""Benchmark: a nothing-new `recfetch pull` over an archive of 10,000 recordings (the nightly cron run).

Run by hand (not by pytest):

    python bench/nothing_new.py                    # 10,000 recordings, 3 timed pulls
    python bench/nothing_new.py --recordings 2000 --rounds 5

A RealtimeKit stand-in with ``--recordings`` small recordings runs in a child
process on 127.0.0.1, its unfiltered listing pages rendered once up front so the
stand-in's own per-page cost is not timed. A first, untimed `pull` fills the
archive (on /dev/shm when it exists, so the set-up is quick); then `pull` and
`pull --incremental` run again with nothing new: they list, find everything in
the archive, mint no URL and download nothing. Exits 1 if a timed pull
downloads anything or fails.
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


def serve(records: int) -> int:
    """Child process: RealtimeKit stand-in with ``records`` 1 KiB recordings, listing pre-rendered."""
    from recfetch.sandbox import realtimekit
    from recfetch.sandbox.storage import Storage

    storage = Storage()
    standin = realtimekit.create(storage, recordings=0)
    now = datetime.now(UTC)
    span = timedelta(days=5)
    for index in range(records):
        content = index.to_bytes(8, "big") * 128
        standin.add_recording(invoked_time=now - span + span * index / records, content=content)
    total = benchlib.cache_listing(standin, PER_PAGE)
    standin.max_per_page = PER_PAGE
    standin.server.start()
    print(json.dumps({"profile": standin.profile(), "total": total}), flush=True)
    for line in sys.stdin:
        if line.strip() == "gets":
            print(json.dumps(sum(standin.gets.values())), flush=True)
    standin.server.stop()
    storage.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=16, help="--jobs of the untimed first pull")
    parser.add_argument("--timeout", type=float, default=600, help="per pull, s")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="recfetch-nothing-new-", dir=shm if shm.is_dir() else None))
    env = benchlib.clean_env(work)
    server = benchlib.ServedStandIn(__file__, [f"--serve={args.recordings}"], work)

    def gets() -> int:
        return int(server.ask("gets"))

    rows = []
    failed = False
    try:
        hello = server.hello()
        pull = [
            *benchlib.recfetch_cmd(),
            "--quiet",
            "realtimekit",
            "pull",
            "-o",
            str(work / "out"),
            "--jsonl",
        ]
        first = benchlib.measure(
            [*pull, "-j", str(args.jobs)], env=env, logs=work / "logs", timeout=args.timeout
        )
        summary = _summary(first)
        if first.code != 0:
            print(f"first pull: exit {first.code}\n{first.err_tail()}", file=sys.stderr)
            return 1
        rows.append(
            (
                "first pull (untimed set-up)",
                f"{first.wall:.2f}",
                f"{first.cpu:.2f}",
                f"{first.peak_mib:.0f}",
                summary.get("downloaded", "?"),
                "-",
            )
        )
        for name, extra in (
            ("pull, nothing new", []),
            ("pull --incremental, nothing new", ["--incremental"]),
        ):
            walls, cpus, peaks = [], [], []
            downloaded: object = 0
            before = gets()
            for _ in range(args.rounds):
                run = benchlib.measure([*pull, *extra], env=env, logs=work / "logs", timeout=args.timeout)
                downloaded = _summary(run).get("downloaded", "?")
                if run.code != 0 or downloaded != 0:
                    failed = True
                    print(
                        f"{name}: exit {run.code}, downloaded {downloaded}\n{run.err_tail()}", file=sys.stderr
                    )
                walls.append(run.wall)
                cpus.append(run.cpu)
                peaks.append(run.peak_mib)
            rows.append(
                (
                    name,
                    benchlib.spread(walls),
                    benchlib.spread(cpus),
                    benchlib.spread(peaks, "{:.0f}"),
                    downloaded,
                    (gets() - before) // args.rounds,
                )
            )
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{hello['total']:,} RealtimeKit recordings in the archive, {PER_PAGE} per listing page, loopback; "
        f"median (min-max) of {args.rounds}; load average {os.getloadavg()[0]:.2f}"
    )
    print(benchlib.table(("run", "wall s", "CPU s", "peak RSS MiB", "downloaded", "API GETs/run"), rows))
    return 1 if failed else 0


def _summary(run: benchlib.Run) -> dict[str, object]:
    for line in reversed(run.out().splitlines()):
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("type") == "summary":
                return record  # type: ignore[no-any-return]
    return {}


if __name__ == "__main__":
    sys.exit(main())
