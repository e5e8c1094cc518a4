"""Everything the user sees: tables, JSON/JSONL/CSV, download events, progress, errors.

The only module that imports rich. stdout carries data; progress, warnings and
errors go to stderr, progress only when stderr is a terminal.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from recfetch.download.report import NullReporter
from recfetch.errors import RUN_LEVEL, RecfetchError
from recfetch.output import table as output_table
from recfetch.providers.base import RECORD_FIELDS
from recfetch.redact import scrub

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("table", "json", "jsonl", "csv")
SCHEMA_VERSION = 1



def _console(file: TextIO, options: dict[str, Any]) -> Console:
    """A rich Console whose reader going away ends the run as SIGPIPE would (exit 141).

    rich's own ``on_broken_pipe`` (documented for overriding) exits 1, which cron reads as a bug:
    `recfetch ... pull 2>&1 | head` hit it as soon as a note reached the closed pipe.
    """
    from rich.console import Console

    class _PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True  # nothing more can reach that reader
            raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")

    return _PipeConsole(file=file, **options)

class Ui:
    """Stream and colour settings for one invocation."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        verbose: int = 0,
        progress: bool = True,
        color: str = "auto",
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        # NO_COLOR (https://no-color.org) counts when set and non-empty; --color wins over it.
        no_color = color == "never" or (color == "auto" and bool(os.environ.get("NO_COLOR")))
        force = color == "always"
        # color_system=None turns off every style escape (bold and dim too), not only colours.
        system = None if no_color else ("auto" if not force else "standard")
        self._console_options = {
            "no_color": no_color,
            "color_system": system,
            "force_terminal": True if force else None,
            "highlight": False,
            "soft_wrap": True,
        }
        self._err: Console | None = None
        self._out: Console | None = None
        self.json_errors = False
        """--json/--jsonl mode: errors, warnings and notes on stderr are JSON objects too."""
        # Progress needs a real terminal on stderr (`--color always` forces colour, never bars),
        # and a stdout that cannot print on that terminal behind the display's back: a pipe's
        # reader (`| tee`, `| jq`) writes to the same screen whenever it likes, and a redraw
        # would erase its lines. A file or the terminal itself is fine.
        self.show_progress = progress and not quiet and _isatty(self.stderr) and not _is_pipe(self.stdout)
        self.display: Any = None
        """The progress display while it owns the terminal: every stderr line goes through it."""

    @property
    def err(self) -> Console:
        """rich's console on stderr, made (and rich imported) on first use."""
        if self._err is None:
            self._err = _console(self.stderr, self._console_options)
        return self._err

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = _console(self.stdout, self._console_options)
        return self._out

    def note(self, text: str, style: str | None = None) -> None:
        """A human line on stderr (above the progress display while one is shown)."""
        if self.display is not None:
            self.display.print(text, style)
        else:
            self.err.print(text, style=style, markup=False)

    # -- messages on stderr ---------------------------------------------
    def _json_note(self, kind: str, message: str) -> None:
        self.stderr.write(json.dumps({"type": kind, "message": scrub(message)}, ensure_ascii=False) + "\n")
        self.stderr.flush()

    def info(self, message: str) -> None:
        if self.quiet:
            return
        if self.json_errors:
            self._json_note("info", message)
            return
        self.note(scrub(message))

    def warn(self, message: str) -> None:
        if self.quiet:  # --quiet: "no progress, only errors" (SPEC §1)
            return
        if self.json_errors:
            self._json_note("warning", message.removeprefix("warning: "))
            return
        self.note(scrub(message), "yellow")

    def debug(self, message: str) -> None:
        if self.verbose:
            self.note(scrub(message), "dim")

    def error(self, exc: RecfetchError) -> None:
        if self.json_errors:
            payload = exc.to_json()
            payload["message"] = scrub(str(payload["message"]))
            self.stderr.write(json.dumps(payload) + "\n")
            self.stderr.flush()
            return
        self.note(f"error: {scrub(exc.one_line())}", "red")

    # -- data on stdout ----------------------------------------------------
    def line(self, text: str) -> None:
        if self.display is not None and self._stdout_is_terminal():
            # Both streams are the same screen: go through the display, which prints
            # above its bars under its lock; a raw write would tear them apart.
            self.display.print(text)
            return
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def _stdout_is_terminal(self) -> bool:
        try:
            return self.stdout.isatty()
        except (AttributeError, ValueError):
            return False


def _is_pipe(stream: TextIO) -> bool:
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, ValueError, OSError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


# ---------------------------------------------------------------------------
# records


TABLE_COLUMNS = ("ref", "status", "started_at", "duration_s", "size_bytes", "direction", "filename")
CSV_COLUMNS = RECORD_FIELDS


_ENCODE_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
"""`json.dumps(value, ensure_ascii=False)` without building an encoder per record, and without
its cycle check (an id noted and dropped per object): records and events are trees, nothing in
them refers back to itself."""


def write_records(
    ui: Ui,
    records: Iterable[Mapping[str, Any]],
    fmt: str,
    *,
    columns: tuple[str, ...] = TABLE_COLUMNS,
    paged: bool = False,
) -> int:
    """Write records in ``fmt``; jsonl and csv stream as records arrive. Returns the count.

    On a terminal every line is flushed as it is written. ``paged`` says the caller flushes
    ``ui.stdout`` before each page of ``records`` is fetched (`ApiClient.before_request`): then
    a pipe or file gets the lines in blocks, one write per page rather than one per record,
    and a reader that went away (`| head`) is still noticed before the next page is asked for.
    """
    each = not paged or ui._stdout_is_terminal()
    try:
        return _write_records(ui, records, fmt, columns, each)
    finally:
        if not each:  # a listing that fails part-way: its lines come out before its error
            ui.stdout.flush()


def _write_records(
    ui: Ui, records: Iterable[Mapping[str, Any]], fmt: str, columns: tuple[str, ...], each: bool
) -> int:
    count = 0
    out = ui.stdout
    if fmt == "jsonl":
        for record in records:
            out.write(_ENCODE_JSON(record) + "\n")
            if each:
                out.flush()
            count += 1
        out.flush()
        return count
    if fmt == "csv":
        writer: csv.DictWriter[str] | None = None
        for record in records:
            if writer is None:
                fields = list(record.keys())
                writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
                writer.writeheader()
            writer.writerow({k: _csv_cell(v) for k, v in record.items()})
            if each:
                out.flush()
            count += 1
        if writer is None and columns is TABLE_COLUMNS:
            # An empty recording listing still gets its header, so a spreadsheet import
            # or `csvcut` downstream sees the same columns every night.
            csv.writer(out).writerow(CSV_COLUMNS)
        out.flush()
        return count
    if fmt == "json":
        # One document, written item by item so a huge listing never sits in memory.
        out.write(f'{{"schema_version": {SCHEMA_VERSION}, "items": [')
        for record in records:
            out.write(("\n  " if count == 0 else ",\n  ") + _ENCODE_JSON(record))
            if each:
                out.flush()
            count += 1
        out.write("\n]}\n" if count else "]}\n")
        out.flush()
        return count
    width = ui.out.width if ui._stdout_is_terminal() else None
    count = output_table.stream(out, records, columns, width=width, flush_each=each)
    if not count and not ui.quiet:
        ui.err.print("no recordings matched", markup=False)
    return count


def write_one(ui: Ui, record: Mapping[str, Any], fmt: str) -> None:
    """`show`: one record; table format prints key/value pairs."""
    if fmt in ("json", "jsonl"):
        ui.line(json.dumps(record, ensure_ascii=False, indent=2 if fmt == "json" else None))
        return
    if fmt == "csv":
        write_records(ui, [record], "csv")
        return
    fields = [(key, output_table.cell(value)) for key, value in record.items() if key != "raw"]
    if not ui._stdout_is_terminal():
        for key, value in fields:
            ui.stdout.write(f"{key}\t{value}\n")
        ui.stdout.flush()
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in fields:
        table.add_row(key, value)
    ui.out.print(table)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):  # as in the JSON record, not Python's True/False
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    return value


# ---------------------------------------------------------------------------
# download events


ROUTINE_SKIPS = frozenset({"in archive", "already present", "duplicate in this run"})
RUN_LEVEL_CODES = frozenset(cls.code for cls in RUN_LEVEL)
"""A file failing with one of these stops the run: its error is printed once, as the run's."""


class EventWriter:
    """`download`/`pull` results: per-file lines and a summary, in the chosen format."""

    def __init__(self, ui: Ui, fmt: str) -> None:
        self.ui = ui
        self.fmt = fmt
        self._items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []

    def file(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self.fmt == "jsonl":
                self.ui.line(_ENCODE_JSON(event))
            elif self.fmt == "json":
                self._items.append(event)
            elif self.fmt == "csv":
                self._rows.append(event)
            else:
                self._human(event)

    def _human(self, event: dict[str, Any]) -> None:
        outcome = event["outcome"]
        if outcome == "downloaded":
            if not self.ui.quiet:
                self.ui.line(f"downloaded  {event['path']}  ({human_bytes(event['bytes'])})")
        elif outcome == "skipped":
            # A nightly pull skips thousands of archived files: routine skips are listed
            # only with -v (the summary counts them); a skip with a reason to read is shown.
            routine = event.get("reason") in ROUTINE_SKIPS
            if self.ui.verbose or (not routine and not self.ui.quiet):
                where = f"  {event['path']}" if event.get("path") else ""
                self.ui.note(
                    f"skipped     {event['ref']}{where}  ({event.get('reason') or 'skipped'})", "dim"
                )
        else:
            err = event.get("error") or {}
            if err.get("code") in RUN_LEVEL_CODES and event.get("reason") != "bad_ref":
                return  # the run stops on it; it is reported once, as the run's error
            message = scrub(str(err.get("message") or event.get("reason")))
            # A message that already names the item ("stdin line 5 is not valid JSON") is not
            # prefixed with it a second time.
            said = message if message.startswith(event["ref"]) else f"{event['ref']}: {message}"
            self.ui.note(f"failed      {said}", "red")

    def summary(self, summary: dict[str, Any], failures: list[dict[str, Any]]) -> None:
        if self.fmt == "jsonl":
            self.ui.line(json.dumps({"type": "summary", **summary}))
        elif self.fmt == "json":
            doc = {"schema_version": SCHEMA_VERSION, "items": self._items, "summary": summary}
            self.ui.line(json.dumps(doc, ensure_ascii=False, indent=2))
        elif self.fmt == "csv":
            buf = io.StringIO()
            fields = ["type", "ref", "provider", "outcome", "reason", "path", "bytes", "sha256"]
            writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for row in self._rows:
                writer.writerow({k: _csv_cell(row.get(k)) for k in fields})
            self.ui.stdout.write(buf.getvalue())
            self.ui.stdout.flush()
        if (
            self.fmt == "table"
            or self.fmt not in ("json", "jsonl", "csv")
            or (failures and not self.ui.json_errors)
        ):
            self.human_summary(summary, failures)

    def human_summary(self, summary: dict[str, Any], failures: list[dict[str, Any]]) -> None:
        if self.ui.quiet and not failures:
            return
        text = (
            f"{summary['downloaded']} downloaded, {summary['skipped']} skipped, "
            f"{summary['failed']} failed; {human_bytes(summary['bytes'])} "
            f"in {summary['seconds']:.1f}s"
        )
        self.ui.err.print(text, markup=False, style="bold" if not failures else "red")
        for item in failures:
            err = item.get("error") or {}
            self.ui.err.print(
                f"  failed {item['ref']}: {scrub(str(err.get('message') or item.get('reason')))}",
                markup=False,
            )


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


# ---------------------------------------------------------------------------
# progress


class NullProgress(NullReporter):
    """The do-nothing twin of the progress display (not a terminal, --quiet, --no-progress):
    the engine's `NullReporter`, usable as a context manager like the display."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@contextmanager
def progress_for(ui: Ui) -> Iterator[Any]:
    """The batch's progress display (or its null twin); stderr lines go through it meanwhile."""
    if not ui.show_progress:
        yield NullProgress()
        return
    from recfetch.output.progress import ProgressDisplay

    with ProgressDisplay(ui.err) as display:
        ui.display = display
        try:
            yield display
        finally:
            ui.display = None
