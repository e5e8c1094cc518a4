"""Benchmark: start-up of `recfetch --version`, a provider's and a verb's `--help`, one bash TAB.

Run by hand (not by pytest):

    python bench/startup.py                # hyperfine if installed, else a timing loop
    python bench/startup.py --runs 50

Every command runs with the interpreter of this venv (the one recfetch is
installed in), against `python -c pass` in the same venv. The TAB is the real
thing: bash sources the shipped `completions/recfetch.bash`, fills COMP_WORDS
for `recfetch realtimekit p<TAB>` and calls the completion function, which calls
back into `recfetch` the way it does in a terminal; `bash -c true` is listed so
bash's own share can be subtracted. The completion must offer `pull`, else exit 1. Runs use
bytecode as an installed recfetch does (PYTHONDONTWRITEBYTECODE is dropped; warm-up runs
write the checkout's __pycache__).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

TAB = (
    "source {script}; COMP_WORDS=(recfetch realtimekit p); COMP_CWORD=2; "
    "_recfetch_completion recfetch; printf '%s\\n' \"${{COMPREPLY[@]}}\""
)


def _commands(script: Path) -> list[tuple[str, list[str]]]:
    recfetch = benchlib.recfetch_cmd()
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("recfetch --version", [*recfetch, "--version"]),
        ("recfetch kazoo --help", [*recfetch, "kazoo", "--help"]),
        ("recfetch realtimekit pull --help", [*recfetch, "realtimekit", "pull", "--help"]),
        ("bash -c true", ["bash", "--norc", "--noprofile", "-c", "true"]),
        (
            "bash TAB: recfetch realtimekit p",
            ["bash", "--norc", "--noprofile", "-c", TAB.format(script=script)],
        ),
    ]


Timings = list[tuple[float, float]]
"""Per command: median wall seconds, mean CPU (user + system) seconds."""


def _hyperfine(cmds: list[tuple[str, list[str]]], env: dict[str, str], runs: int, work: Path) -> Timings:
    export = work / "hyperfine.json"
    argv = [
        "hyperfine",
        "-N",
        "--warmup",
        "3",
        "--runs",
        str(runs),
        "--export-json",
        str(export),
        "--style",
        "none",
    ]
    for name, cmd in cmds:
        argv += ["-n", name, shlex.join(cmd)]
    done = subprocess.run(argv, env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:  # its warnings (noisy first runs, ...) only matter when it failed
        raise SystemExit(f"hyperfine failed:\n{done.stderr}")
    results = json.loads(export.read_text())["results"]
    return [(r["median"], r["user"] + r["system"]) for r in results]


def _loop(cmds: list[tuple[str, list[str]]], env: dict[str, str], runs: int) -> Timings:
    medians = []
    for _, cmd in cmds:
        times = []
        for _ in range(3):
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        medians.append((statistics.median(times), cpu / runs))
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-hyperfine", action="store_true", help="time with a plain loop")
    args = parser.parse_args()
    script = benchlib.ROOT / "completions" / "recfetch.bash"
    work = Path(tempfile.mkdtemp(prefix="recfetch-startup-"))
    env = benchlib.clean_env(work)
    # An installed recfetch runs from bytecode (pip compiles it at install; a checkout writes
    # __pycache__ on its first run): PYTHONDONTWRITEBYTECODE would add compiling every recfetch
    # module to each run (~20 % of a --help's instructions), a cost no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # The completion function calls `recfetch` by name: the one in this venv.
    env["PATH"] = str(Path(benchlib.recfetch_cmd()[0]).parent) + os.pathsep + env.get("PATH", "")
    (work / "config.toml").write_text("")
    try:
        cmds = _commands(script)
        offered = subprocess.run(
            cmds[-1][1], env=env, capture_output=True, text=True, check=False
        ).stdout.split()
        if "pull" not in offered:
            print(f"the completion offered {offered!r}, not 'pull'", file=sys.stderr)
            return 1
        use_hyperfine = shutil.which("hyperfine") is not None and not args.no_hyperfine
        medians = _hyperfine(cmds, env, args.runs, work) if use_hyperfine else _loop(cmds, env, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = medians[0][0]
    tool = "hyperfine -N" if use_hyperfine else "a timing loop"
    print(f"median of {args.runs} runs ({tool}), {sys.executable}; load average {os.getloadavg()[0]:.2f}")
    rows = [
        (name, f"{wall * 1000:.0f}", f"{wall / base:.1f}x", f"{cpu * 1000:.0f}")
        for (name, _), (wall, cpu) in zip(cmds, medians, strict=True)
    ]
    print(benchlib.table(("command", "wall ms", "vs python -c pass", "CPU ms"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
