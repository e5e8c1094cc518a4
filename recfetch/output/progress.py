"""The progress display of a batch (SPEC §1), drawn with rich on stderr.

One bar per file in flight (name, bytes done/total, speed, ETA) and a total line (files
done/total, bytes done/total, speed, ETA). The totals grow while a listing streams: every
recording the batch decides to fetch is *planned* (`file_planned`) as it is listed.
Result lines are printed above the bars through the display's console, and every
write to the terminal (a result line or a redraw) happens under one lock, from one place at
a time: rich's own refresh thread is off and a ticker here redraws under that lock, so a
line printed from a worker thread can never interleave with a redraw. Every row fits the
terminal width (80 columns included): names are cut to a fixed column, result lines too.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

NAME_WIDTH = 24
TICK_SECONDS = 0.2
BYTES_WIDTH = 15
FIXED_CELLS = NAME_WIDTH + BYTES_WIDTH + 10 + 8 + 4
"""Name, bytes (`123.4/567.8 MB`), speed, ETA and the four gaps: the bar gets the rest."""


def _amount(n: float) -> tuple[str, str]:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return (f"{n:.0f}" if unit == "B" else f"{n:.1f}"), unit
        n /= 1000
    return f"{n:.1f}", "TB"


class SpeedColumn(ProgressColumn):
    """`2.1 MB/s`, in the same units as the byte counts."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("", justify="right")
        value, unit = _amount(speed)
        return Text(f"{value} {unit}/s", justify="right")


class BytesColumn(ProgressColumn):
    """`12.3/45.6 MB`: done/total in the total's unit, `12.3 MB/?` while the total is unknown."""

    def render(self, task: Task) -> Text:
        if not task.total:
            value, unit = _amount(task.completed)
            return Text(f"{value} {unit}/?", justify="right")
        total, unit = _amount(task.total)
        scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
        done = f"{task.completed / scale:.0f}" if unit == "B" else f"{task.completed / scale:.1f}"
        return Text(f"{done}/{total} {unit}", justify="right")


def fit_line(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells: a trailing `  (reason)` stays whole, the rest loses its middle."""
    if len(text) <= width or width < 5:
        return text[:width] if width >= 1 else text
    label = text[:12] if text[:12].rstrip() in ("downloaded", "skipped", "failed") else ""
    head, sep, tail = text[len(label) :].rpartition("  (")
    if sep and len(label + sep + tail) + 12 <= width:
        return label + _cut_middle(head, width - len(label + sep + tail)) + sep + tail
    if sep and len(label + head + sep) + 12 <= width:  # a long reason: keep the ref whole, cut the reason
        return label + head + sep + _cut_middle(tail, width - len(label + head + sep))
    return label + _cut_middle(text[len(label) :], width - len(label))


def _cut_middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = width - 1
    head = keep // 2
    return text[:head] + "…" + text[len(text) - (keep - head) :]


def _short_name(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else "…" + name[-(NAME_WIDTH - 1) :]


class ProgressDisplay:
    """Bars for the files in flight and a total line; also the only writer while it is shown."""

    def __init__(self, console: Console) -> None:
        self._console = console
        bar_width = max(6, min(30, console.width - FIXED_CELLS))
        self._progress = Progress(
            TextColumn("{task.description}", markup=False, table_column=_column(NAME_WIDTH)),
            BarColumn(bar_width=bar_width),
            BytesColumn(table_column=_column(BYTES_WIDTH, justify="right")),
            SpeedColumn(table_column=_column(10, justify="right")),
            TimeRemainingColumn(table_column=_column(8, justify="right")),
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskID] = {}
        self._total: TaskID | None = None
        self._planned: dict[str, int | None] = {}
        """Recordings listed for fetching and not yet started, by ref, with their size if known."""
        self._unsized: set[str] = set()
        """Started transfers whose size the listing did not give (the storage host will)."""
        self._planned_files = 0
        self._planned_bytes = 0
        self._done = 0
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="recfetch-progress", daemon=True)

    # -- lifetime ----------------------------------------------------------
    def __enter__(self) -> ProgressDisplay:
        with self._lock:
            self._progress.start()
            self._total = self._progress.add_task(self._label(), total=0)
            self._progress.refresh()
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join()
        with self._lock:
            self._progress.stop()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            with self._lock:
                self._progress.refresh()

    # -- printing above the bars --------------------------------------------
    def print(self, text: str, style: str | None = None) -> None:
        """One result line above the display, cut to the terminal width, never torn by a redraw."""
        with self._lock:
            line = fit_line(text, self._console.width)
            self._console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)

    # -- the plan: what the batch will fetch ---------------------------------
    def _label(self) -> str:
        return f"total {self._done}/{self._planned_files} files"

    def _update_total(self) -> None:
        if self._total is not None:
            total = self._planned_bytes or None
            self._progress.update(self._total, description=self._label(), total=total)

    def file_planned(self, ref: str, size: int | None) -> None:
        """The listing found one more recording to fetch (``size`` when the provider says)."""
        with self._lock:
            self._planned[ref] = size
            self._planned_files += 1
            self._planned_bytes += size or 0
            self._update_total()

    # -- the engine's Reporter ---------------------------------------------------
    def file_started(self, key: str, name: str, total: int | None, completed: int) -> None:
        with self._lock:
            self._tasks[key] = self._progress.add_task(_short_name(name), total=total, completed=completed)
            if key in self._planned and self._planned.pop(key) is None:
                self._unsized.add(key)
            self._learn_size(key, total)
            if self._total is not None and completed:
                self._progress.advance(self._total, completed)

    def file_advance(self, key: str, n: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self._progress.advance(task, n)
            if self._total is not None:
                self._progress.advance(self._total, n)

    def _learn_size(self, key: str, total: int | None) -> None:
        if total and key in self._unsized:  # the provider did not say; the storage host did
            self._unsized.discard(key)
            self._planned_bytes += total
            self._update_total()

    def file_reset(self, key: str, completed: int, total: int | None) -> None:
        with self._lock:
            self._learn_size(key, total)
            task = self._tasks.get(key)
            if task is None:
                return
            before = self._progress.tasks[_index(self._progress, task)].completed
            self._progress.update(task, completed=completed, total=total)
            if self._total is not None:
                self._progress.advance(self._total, completed - before)

    def file_finished(self, key: str, ok: bool) -> None:
        with self._lock:
            task = self._tasks.pop(key, None)
            self._unsized.discard(key)
            if task is not None:
                self._progress.remove_task(task)
            self._done += 1
            self._update_total()


def _column(width: int, *, justify: Any = "left") -> Column:
    return Column(
        width=width, min_width=width, max_width=width, no_wrap=True, overflow="ellipsis", justify=justify
    )


def _index(progress: Progress, task: TaskID) -> int:
    return next(i for i, t in enumerate(progress.tasks) if t.id == task)
