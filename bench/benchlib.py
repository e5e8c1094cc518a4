"""Shared helpers of the benchmarks in bench/ (not part of recfetch; not used by the tests).

- `measure`: run one command, wall time and peak RSS of its whole process tree
  (the sum over every live descendant, sampled from /proc, and never below the
  largest single process's ``ru_maxrss``), with a hard time limit.
- `LatentServer`: a sandbox `Server` that waits before every answer (first-byte
  latency) and once more on the first request of each new connection (the
  TCP+TLS set-up a real network charges), counting connections.
- `delay_routes`: API latency on a provider stand-in's routes.
- `cache_listing`: pre-renders a RealtimeKit stand-in's listing pages, so a
  100,000-record benchmark times the clients, not the stand-in's O(n) filter.
- `table`: a small fixed-width table.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recfetch.sandbox import realtimekit
from recfetch.sandbox.httpserver import Request, Response, Server

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def recfetch_cmd() -> list[str]:
    """The `recfetch` entry point installed beside this interpreter (what a user runs)."""
    script = Path(sys.executable).parent / "recfetch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "recfetch"]


PYTHON_TUNING = frozenset(
    {
        "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONMALLOC", "PYTHONDEVMODE",
        "PYTHONTRACEMALLOC", "PYTHONPROFILEIMPORTTIME",
    }
)


def clean_env(work: Path, **extra: str) -> dict[str, str]:
    """Environment for every client: no proxies (loopback only), recfetch config/state under ``work``.

    Interpreter settings a user's shell would not have (``PYTHONUNBUFFERED``, ``PYTHONDONTWRITEBYTECODE``...)
    is dropped too, so recfetch is timed as it runs for them; the other clients ignore it.
    """
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k not in PYTHON_TUNING}
    env.update(
        {
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "RECFETCH_CONFIG": str(work / "config.toml"),
            "RECFETCH_STATE_DIR": str(work / "state"),
            "RECFETCH_PROFILE": "bench",
            "NO_COLOR": "1",
            "NO_PROXY": "*",
            "no_proxy": "*",
            "HOME": str(work),  # keeps ~/.curlrc, ~/.aria2 and friends out of the measurement
            **extra,
        }
    )
    return env


class ServedStandIn:
    """A bench script's own ``--serve`` mode in a child process, so its CPU is not counted.

    The child prints one JSON line (its "hello", with the stand-in's ``profile``) when ready,
    answers a question line with one line, and stops when its stdin closes.
    """

    def __init__(self, script: str, args: Sequence[str], work: Path) -> None:
        self.work = work
        self.proc = subprocess.Popen(
            [sys.executable, script, *args],
            env=clean_env(work),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def hello(self, provider: str = "realtimekit") -> dict[str, Any]:
        """The child's first line; its profile is written as the `bench` profile of ``work``."""
        hello: dict[str, Any] = json.loads(self._line())
        profile = "\n".join(f'{k} = "{v}"' for k, v in hello["profile"].items())
        (self.work / "config.toml").write_text(f"[profiles.bench.{provider}]\n{profile}\n")
        return hello

    def ask(self, question: str) -> Any:
        """Send one line, return the child's JSON answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(question + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def close(self, timeout: float = 60) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=timeout)

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()


# -- measuring ------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    peak_mib: float
    code: int
    cpu: float
    """User + system CPU seconds of the process and every descendant it waited for
    (less sensitive to a loaded machine than wall time)."""
    stdout: Path
    stderr: Path

    def out(self) -> str:
        return self.stdout.read_text(errors="replace")

    def err_tail(self, lines: int = 5) -> str:
        return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-lines:])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found.extend(int(x) for x in fh.read().split())
        except OSError:
            continue
    return found


def tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and all its live descendants."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(pid))
    return total


def measure(
    cmd: Sequence[str], *, env: dict[str, str], logs: Path, cwd: Path | None = None, timeout: float = 300
) -> Run:
    """Run ``cmd`` to completion (killed after ``timeout`` s); stdout/stderr go to files in ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.monotonic_ns()}"
    out_path, err_path = logs / f"{stamp}.out", logs / f"{stamp}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            peak = max(peak, tree_rss(proc.pid))
            if time.monotonic() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    try:  # anything the command left running in its session (xargs children, ...)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    peak_mib = max(peak / MIB, usage.ru_maxrss / 1024)
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, peak_mib, proc.returncode, cpu, out_path, err_path)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min–max)`` or just the value for one round."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)
        lines.append("  ".join(padded))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- latency on the sandbox servers ------------------------------------------------


class LatentServer(Server):
    """A sandbox server that answers ``first_byte`` s late, ``connect`` s more on a new connection.

    The sandbox serves each connection from its own thread, so the first request a
    thread sees is the first request of a connection: that is when a real client
    would have paid for its TCP+TLS handshake.
    """

    def __init__(self, name: str, *, first_byte: float, connect: float) -> None:
        super().__init__(name)
        self.first_byte = first_byte
        self.connect = connect
        self.connections = 0
        self.answered = 0
        self._conn = threading.local()
        self._counts = threading.Lock()

    def dispatch(self, request: Request) -> Response:
        delay = self.first_byte
        fresh = not getattr(self._conn, "seen", False)
        if fresh:
            self._conn.seen = True
            delay += self.connect
        with self._counts:
            self.connections += fresh
            self.answered += 1
        time.sleep(delay)
        return super().dispatch(request)

    def take_counts(self) -> dict[str, int]:
        with self._counts:
            counts = {"connections": self.connections, "requests": self.answered}
            self.connections = self.answered = 0
        return counts


Handler = Callable[[Request], Response]


def delay_routes(server: Server, seconds: float) -> None:
    """Every route of ``server`` answers ``seconds`` late (provider API latency)."""

    def slow(handler: Handler) -> Handler:
        def delayed(request: Request) -> Response:
            time.sleep(seconds)
            return handler(request)

        return delayed

    if seconds > 0:
        server.routes[:] = [(method, regex, slow(fn)) for method, regex, fn in server.routes]


def listing_url(standin: Any) -> str:
    profile = standin.profile()
    account, app = profile["account_id"], profile["app_id"]
    return f"{profile['base_url']}/accounts/{account}/realtime/kit/{app}/recordings"


def cache_listing(standin: Any, per_page: int = 100) -> int:
    """Pre-render the stand-in's unfiltered listing pages (as recfetch asks for them, both orders).

    The items come from the stand-in itself (one request for everything), so the
    records and their presigned URLs are exactly what it would serve; pages are
    answered by slicing. Any other query goes to the stand-in as usual.
    Returns the number of records.
    """
    server: Server = standin.server
    token = standin.profile()["api_token"]
    path = re.sub(r"^https?://[^/]+", "", listing_url(standin))
    saved = standin.max_per_page
    standin.max_per_page = 10**9
    query = {"sort_by": ["invokedTime"], "sort_order": ["ASC"], "page_no": ["1"], "per_page": ["1000000000"]}
    try:
        everything = server.dispatch(Request("GET", path, query, {"authorization": f"Bearer {token}"}, b""))
    finally:
        standin.max_per_page = saved
    assert isinstance(everything.body, bytes), everything
    items = json.loads(everything.body)["data"]
    total = len(items)
    pages: dict[tuple[str, int], bytes] = {}
    for order, ordered in (("ASC", items), ("DESC", items[::-1])):
        for start in range(0, total, per_page):
            chunk = ordered[start : start + per_page]
            body = {
                "success": True,
                "data": chunk,
                "paging": {"total_count": total, "start_offset": start + 1, "end_offset": start + len(chunk)},
            }
            pages[(order, start // per_page + 1)] = json.dumps(body).encode()
    regex = re.compile("^" + realtimekit.PREFIX + "$")
    original = next(fn for method, rx, fn in server.routes if method == "GET" and rx.pattern == regex.pattern)
    plain = {"sort_by", "sort_order", "page_no", "per_page"}

    def cached(request: Request) -> Response:
        q = request.query
        if (
            set(q) <= plain
            and request.header("authorization") == f"Bearer {token}"
            and q.get("sort_by", ["invokedTime"]) == ["invokedTime"]
            and q.get("per_page") == [str(per_page)]
            and (q.get("page_no") or ["x"])[0].isdigit()
        ):
            key = (q.get("sort_order", ["DESC"])[0], int(q["page_no"][0]))
            if key in pages:
                return Response(200, pages[key], {"Content-Type": "application/json"})
        return original(request)

    server.routes.insert(0, ("GET", regex, cached))
    return total
