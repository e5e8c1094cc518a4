"""SPEC §4 output: formats and shortcuts, streamed JSONL, CSV, progress only on a terminal, colour."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pexpect
import pytest

from recfetch.providers import REGISTRY, get_provider
from recfetch.providers.base import RECORD_FIELDS, ListQuery
from recfetch.sandbox import Sandbox
from recfetch.sandbox.httpserver import Fault, json_response

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ANSI = "\x1b["
PAGED = [n for n in sorted(REGISTRY) if n != "kaleyra"]  # kaleyra lists a local report, no paging


def buffered() -> dict[str, str]:
    """The environment for a child whose stdout is buffered as a user's is (a pipe): when
    recfetch flushes is under test, so PYTHONUNBUFFERED (set by some runners) is left out."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def assert_record(record: dict[str, Any], provider: str, profile: str = "sandbox") -> None:
    assert list(record) == list(RECORD_FIELDS)
    assert record["provider"] == provider and record["profile"] == profile
    assert record["status"] in ("ready", "processing", "failed", "unknown")
    assert isinstance(record["downloadable"], bool)
    for key in ("started_at", "ended_at"):
        assert record[key] is None or RFC3339_Z.match(record[key]), record[key]
    assert record["size_bytes"] is None or isinstance(record["size_bytes"], int)
    assert record["duration_s"] is None or isinstance(record["duration_s"], int | float)
    assert isinstance(record["raw"], dict)


def listing(cli, *args: str) -> list[dict[str, Any]]:
    result = cli("kismet", "list", "--jsonl", *args)
    assert result.exit_code == 0, result.output
    return result.jsonl()


# ---------------------------------------------------------------------------
# formats


def test_jsonl_is_one_full_record_per_line(cli, sandbox_profile) -> None:
    records = listing(cli)
    assert len(records) >= 12
    for record in records:
        assert_record(record, "kismet")


@pytest.mark.parametrize("args", [["--json"], ["--format", "json"]])
def test_json_is_one_document_with_schema_version_and_items(cli, sandbox_profile, args: list[str]) -> None:
    result = cli("kismet", "list", *args)
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert list(doc) == ["schema_version", "items"] and doc["schema_version"] == 1
    assert [r["ref"] for r in doc["items"]] == [r["ref"] for r in listing(cli)]


def test_jsonl_shortcut_equals_format_jsonl(cli, sandbox_profile) -> None:
    assert cli("kismet", "list", "--jsonl").stdout == cli("kismet", "list", "--format", "jsonl").stdout


def test_empty_listing_is_valid_in_every_format_and_exits_0(cli, sandbox_profile) -> None:
    window = ["--since", "2001-01-01T00:00:00Z", "--until", "2001-01-02T00:00:00Z"]
    assert cli("kismet", "list", *window, "--json").json() == {"schema_version": 1, "items": []}
    assert cli("kismet", "list", *window, "--jsonl").stdout == ""
    header = cli("kismet", "list", *window, "--format", "csv").stdout
    assert next(csv.reader(io.StringIO(header))) == list(RECORD_FIELDS)
    table = cli("kismet", "list", *window)
    # Piped, the table is tab-separated: its header line stays, like CSV's, so scripts see the columns.
    assert table.exit_code == 0 and "no recordings matched" in table.stderr
    assert table.stdout == "ref\tstatus\tstarted_at\tduration_s\tsize_bytes\tdirection\tfilename\n"


def test_csv_has_a_header_and_one_row_per_record_with_raw_as_json(cli, sandbox_profile) -> None:
    result = cli("kismet", "list", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    records = listing(cli)
    assert list(rows[0]) == list(RECORD_FIELDS)
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert row["ref"] == record["ref"]
        assert json.loads(row["raw"]) == record["raw"]
        assert row["downloadable"] == json.dumps(record["downloadable"])  # true/false, as in JSON
        assert row["ended_at"] == (record["ended_at"] or "")


def test_piped_table_is_tab_separated_one_recording_per_line(cli, sandbox_profile) -> None:
    result = cli("kismet", "list")
    assert result.exit_code == 0
    records = listing(cli)
    header, *rows = result.stdout.splitlines()
    assert header.split("\t") == [
        "ref",
        "status",
        "started_at",
        "duration_s",
        "size_bytes",
        "direction",
        "filename",
    ]
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        cells = row.split("\t")
        assert len(cells) == 7 and cells[0] == record["ref"] and cells[1] == record["status"]
    assert ANSI not in result.stdout and "─" not in result.stdout  # not a terminal: no box drawing


def test_table_cells_never_break_a_line() -> None:
    from recfetch.output import table as output_table

    out = io.StringIO()
    records = [{"ref": "a", "status": "ready", "filename": "two\nlines\tand tab"}]
    assert output_table.stream(out, records, ("ref", "status", "filename"), width=None) == 1
    assert out.getvalue().splitlines()[1] == "a\tready\ttwo lines and tab"


def test_terminal_table_fits_the_width_and_keeps_refs_whole() -> None:
    from recfetch.output import table as output_table

    ref = "202511-" + "0123456789abcdef" * 2
    records = [
        {
            "ref": ref,
            "status": "ready",
            "started_at": "2025-11-20T14:03:11Z",
            "duration_s": 312.0,
            "size_bytes": 5000000,
            "direction": "inbound",
            "filename": "x" * 90,
        }
        for _ in range(3)
    ]
    for width in (200, 80, 120):
        out = io.StringIO()
        assert output_table.stream(out, records, output_table_columns(), width=width) == 3
        lines = out.getvalue().splitlines()
        assert len(lines) == 4 and lines[0].startswith("ref")
        assert all(len(line) <= width for line in lines)
        assert all(line.startswith(ref) for line in lines[1:])
    assert "…" in lines[1]  # at 120 columns the 90-character filename is cut, not wrapped


def output_table_columns() -> tuple[str, ...]:
    from recfetch.output import TABLE_COLUMNS

    return TABLE_COLUMNS


def test_table_streams_rows_as_they_arrive() -> None:
    from recfetch.output import table as output_table

    out = io.StringIO()
    seen: list[int] = []

    def records():
        for n in range(output_table.SAMPLE_ROWS + 20):
            seen.append(len(out.getvalue().splitlines()))
            yield {"ref": f"r{n}", "status": "ready"}

    output_table.stream(out, records(), ("ref", "status"), width=80)
    # After the sample that sizes the columns, each row is written before the next is read.
    assert seen[-1] == output_table.SAMPLE_ROWS + 19 + 1


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
def test_show_in_every_format(cli, sandbox_profile, fmt: str) -> None:
    record = listing(cli)[0]
    result = cli("kismet", "show", record["ref"], "--format", fmt)
    assert result.exit_code == 0, result.output
    if fmt in ("json", "jsonl"):
        assert json.loads(result.stdout) == record
        assert (fmt == "jsonl") == (len(result.stdout.strip().splitlines()) == 1)
    elif fmt == "csv":
        (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
        assert row["ref"] == record["ref"]
    else:
        assert record["ref"] in result.stdout and "provider_status" in result.stdout
    assert (
        cli("kismet", "show", record["ref"], "--json").stdout
        == cli("kismet", "show", record["ref"], "--format", "json").stdout
    )


def test_download_events_in_jsonl_and_json(cli, sandbox_profile) -> None:
    ref = sandbox_profile["kismet"].refs(ready_only=True)[0]
    jsonl = cli("kismet", "download", ref, "-o", "a", "--jsonl")
    assert jsonl.exit_code == 0
    file_event, summary = jsonl.jsonl()
    assert file_event["type"] == "file" and file_event["outcome"] == "downloaded"
    assert set(file_event) >= {"ref", "provider", "outcome", "reason", "path", "bytes", "sha256", "error"}
    assert summary["type"] == "summary" and summary["downloaded"] == 1 and summary["exit_code"] == 0
    doc = cli("kismet", "download", ref, "-o", "b", "--no-archive", "--json").json()
    assert doc["schema_version"] == 1 and doc["items"][0]["ref"] == ref and doc["summary"]["downloaded"] == 1


def test_download_human_log_goes_to_stdout_and_summary_to_stderr(cli, sandbox_profile) -> None:
    ref = sandbox_profile["kismet"].refs(ready_only=True)[0]
    result = cli("kismet", "download", ref, "-o", "out")
    assert result.exit_code == 0
    assert result.stdout.startswith("downloaded  out/")
    assert "1 downloaded, 0 skipped, 0 failed" in result.stderr


# ---------------------------------------------------------------------------
# JSONL streams as pages arrive


def _gate_last_request(server: Any, count: int) -> tuple[threading.Event, threading.Event]:
    """Hold the ``count``-th request (the listing's last) until the test opens the gate."""
    reached, gate = threading.Event(), threading.Event()
    seen = [0]

    def match(request: Any) -> bool:
        seen[0] += 1
        if seen[0] == count:
            reached.set()
            gate.wait(20)
        return False  # then serve it normally

    server.add_fault(Fault(match, None, times=None))  # type: ignore[arg-type]
    return reached, gate


@pytest.mark.parametrize("name", PAGED)
def test_jsonl_first_line_arrives_before_the_last_page_is_served(
    name: str, tmp_path: Path, config_file: Path
) -> None:
    # Enough recordings that every provider needs several pages (Kazoo lists a 31-day window).
    with Sandbox(recordings=1000 if name == "kazoo" else 300, providers=[name]) as box:
        box.write_profile(config_file, "sandbox")
        server = box[name].server
        cls = get_provider(name)
        reference = cls(box[name].profile(), profile="sandbox", state_dir=tmp_path / "ref-state")
        expected = sum(1 for _ in reference.iter_recordings(ListQuery()))
        requests = len(server.requests())
        assert requests > 1, "the listing must take several pages for this test to mean anything"
        server.clear()
        reached, gate = _gate_last_request(server, requests)
        timer = threading.Timer(15, gate.set)  # never hang the suite if output is not streamed
        timer.start()
        env = {**buffered(), "RECFETCH_PROFILE": "sandbox", "RECFETCH_STATE_DIR": str(tmp_path / "state")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "recfetch", name, "list", "--jsonl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        rest: list[str] = []
        try:
            first = proc.stdout.readline()  # type: ignore[union-attr]
            streamed = not gate.is_set()
            assert json.loads(first)["provider"] == name
            assert streamed, "the first line came only after the last page was served"
            # Keep draining so a full pipe never stalls the child before it asks for the last page.
            drain = threading.Thread(target=lambda: rest.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
            drain.start()
            assert reached.wait(20), "the listing never asked for its last page"
            assert not gate.is_set()  # so line 1 was out while the last page was still held back
            gate.set()
            err = proc.stderr.read()  # type: ignore[union-attr]
            proc.wait(timeout=60)
            drain.join(timeout=60)
        finally:
            gate.set()
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert 1 + len(rest) == expected


# ---------------------------------------------------------------------------
# progress and colour on a real terminal


def _run_on_pty(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "recfetch", *args],
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})},
        timeout=60,
        encoding="utf-8",
        codec_errors="replace",
    )
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


@pytest.fixture
def slow_download(sandbox_profile) -> str:
    """A ready kismet ref whose bytes take about a second to arrive, so a bar gets drawn."""
    kismet = sandbox_profile["kismet"]
    ref = kismet.refs(ready_only=True)[0]
    sandbox_profile.storage.throttle(sandbox_profile.storage.size(kismet.storage_key(ref)) / 1.0)
    return ref


def test_progress_bar_is_drawn_when_stderr_is_a_terminal(slow_download: str) -> None:
    code, output = _run_on_pty(["kismet", "download", slow_download, "-o", "out"])
    assert code == 0, output
    assert "total" in output
    assert "━" in output  # the bar itself
    assert Path("out").is_dir() and any(Path("out").iterdir())


@pytest.mark.parametrize("flag", ["--no-progress", "--quiet"])
def test_no_progress_on_a_terminal_with_no_progress_or_quiet(slow_download: str, flag: str) -> None:
    code, output = _run_on_pty([flag, "kismet", "download", slow_download, "-o", "out"])
    assert code == 0, output
    assert "total" not in output and "━" not in output


def test_no_progress_and_no_escape_codes_when_stderr_is_not_a_terminal(slow_download: str, cli_proc) -> None:
    result = cli_proc("kismet", "download", slow_download, "-o", "out")
    assert result.exit_code == 0, result.output
    assert ANSI not in result.stderr and "\r" not in result.stderr
    assert "total" not in result.stderr


def test_errors_are_coloured_on_a_terminal_by_default(sandbox_profile) -> None:
    code, output = _run_on_pty(["kismet", "show", "999999/999999/999999"])
    assert code == 6
    assert ANSI in output and "error: " in output


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--color", "never"], {}), ([], {"NO_COLOR": "1"})],
    ids=["color-never", "NO_COLOR"],
)
def test_no_escape_codes_with_color_never_or_no_color(
    sandbox_profile, args: list[str], env: dict[str, str]
) -> None:
    code, output = _run_on_pty([*args, "kismet", "show", "999999/999999/999999"], env)
    assert code == 6 and "error: " in output
    assert ANSI not in output
    code, output = _run_on_pty([*args, "kismet", "list", "--limit", "3"], env)
    assert code == 0 and "ref" in output
    assert ANSI not in output


def test_color_always_colours_even_a_pipe(cli_proc, sandbox_profile) -> None:
    result = cli_proc("--color", "always", "kismet", "show", "999999/999999/999999")
    assert result.exit_code == 6
    assert ANSI in result.stderr
    assert ANSI not in cli_proc("kismet", "show", "999999/999999/999999").stderr


def test_a_reader_that_stops_early_ends_the_listing_quietly(tmp_path: Path, config_file: Path) -> None:
    # `list --jsonl | head -n 1` must not print "internal error: BrokenPipeError".
    with Sandbox(recordings=300, providers=["realtimekit"]) as box:
        box.write_profile(config_file, "sandbox")
        command = f"{sys.executable} -m recfetch -p sandbox realtimekit list --jsonl | head -n 1"
        proc = subprocess.run(
            ["bash", "-c", command + '; echo "status=${PIPESTATUS[0]}" >&2'],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert json.loads(proc.stdout)["provider"] == "realtimekit"
    assert proc.stderr == "status=141\n"  # silent, and the code a SIGPIPE-killed writer has


@pytest.mark.parametrize("fmt", [["--jsonl"], []])
def test_lines_piped_in_blocks_still_stop_at_once_when_the_reader_goes(
    tmp_path: Path, config_file: Path, fmt: list[str]
) -> None:
    # A pipe gets a page of lines per write, not a line per write; `| head -n 1` must still end
    # the listing (status 141, silent) before it pages on, not after the last of 10 pages.
    with Sandbox(recordings=1000, providers=["realtimekit"]) as box:
        box.write_profile(config_file, "sandbox")
        command = f"{sys.executable} -m recfetch -p sandbox realtimekit list {' '.join(fmt)} | head -n 1"
        proc = subprocess.run(
            ["bash", "-c", command + '; echo "status=${PIPESTATUS[0]}" >&2'],
            capture_output=True,
            text=True,
            timeout=60,
            env=buffered(),
        )
        pages = len(box["realtimekit"].server.requests("/recordings", method="GET"))
    assert proc.stderr == "status=141\n"
    assert len(proc.stdout.splitlines()) == 1
    assert pages <= 3, f"the listing went on for {pages} pages after its reader had gone"


def test_a_page_of_lines_is_flushed_before_the_next_page_is_asked_for(config_file: Path) -> None:
    # A pipe gets lines in blocks, yet a page's lines never wait for the next page: pages of two
    # records (far less than a pipe's buffer) still reach the reader as each page arrives.
    with Sandbox(recordings=6, providers=["realtimekit"]) as box:
        box.write_profile(config_file, "sandbox")
        box["realtimekit"].max_per_page = 2
        reached, gate = _gate_last_request(box["realtimekit"].server, 2)  # page 2 is held
        timer = threading.Timer(15, gate.set)  # never hang the suite if lines are held back
        timer.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "recfetch", "-p", "sandbox", "realtimekit", "list", "--jsonl"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=buffered(),
            text=True,
        )
        try:
            first = proc.stdout.readline()  # type: ignore[union-attr]
            held = not gate.is_set() and reached.wait(20) and not gate.is_set()
            gate.set()
            rest = proc.stdout.read()  # type: ignore[union-attr]
            proc.wait(timeout=60)
        finally:
            gate.set()
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
    assert held, "page 1's lines came only after page 2 was served"
    assert json.loads(first)["provider"] == "realtimekit"
    assert proc.returncode == 0 and 1 + len(rest.splitlines()) == 6


def test_lines_of_a_listing_that_fails_part_way_come_out_before_its_error(config_file: Path) -> None:
    # Lines go to a pipe a page at a time; when a page breaks half-way, the records before the
    # break still reach a `2>&1` reader ahead of the error line, as when every line was flushed.
    good = [{"id": f"00000000-0000-4000-8000-00000000000{i}", "status": "UPLOADED"} for i in (1, 2)]
    page = json_response(
        {"success": True, "data": [*good, {"status": "UPLOADED"}], "paging": {"total_count": 3}}
    )
    with Sandbox(recordings=0, providers=["realtimekit"]) as box:
        box.write_profile(config_file, "sandbox")
        box["realtimekit"].server.add_fault(
            Fault(lambda r: r.method == "GET" and r.path.endswith("/recordings"), page, times=None)
        )
        command = f"{sys.executable} -m recfetch -p sandbox realtimekit list --jsonl 2>&1"
        proc = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=60, env=buffered()
        )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 8, proc.stdout
    assert [json.loads(line)["id"] for line in lines[:2]] == [g["id"] for g in good]
    assert len(lines) == 3 and "without an id" in lines[2]


def test_a_closed_stderr_reader_ends_a_pull_like_sigpipe_not_like_a_bug(
    tmp_path: Path, config_file: Path
) -> None:
    # `pull 2>&1 | head -1`: rich's default exits 1 (cron would read "internal error") on the
    # first note that meets the closed pipe.
    with Sandbox(recordings=40, providers=["bird"]) as box:
        box.write_profile(config_file, "sandbox")
        pull = f"{sys.executable} -m recfetch -p sandbox bird pull --no-archive -j 1 -o {tmp_path / 'out'}"
        proc = subprocess.run(
            ["bash", "-c", pull + ' 2>&1 >/dev/null | head -n 1; echo "status=${PIPESTATUS[0]}"'],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.stdout.splitlines()[-1] == "status=141", proc.stdout + proc.stderr


# ---------------------------------------------------------------------------
# the progress display on a real terminal (SPEC §1), rendered by a terminal emulator


def _render(history: Any, screen: Any) -> list[str]:
    rows = ["".join(line[x].data for x in range(screen.columns)) for line in history.top]
    return [row.rstrip() for row in (*rows, *screen.display)]


def test_a_long_skip_reason_at_80_columns_keeps_the_ref_whole(
    sandbox: Any, config_file: Path, tmp_path: Path
) -> None:
    import pexpect
    import pyte

    sandbox.write_profile(config_file, "sandbox")
    env = {**os.environ, "TERM": "xterm-256color", "RECFETCH_PROFILE": "sandbox"}
    env.pop("COLUMNS", None)
    argv = ["-m", "recfetch", "kazoo", "pull", "--dry-run", "-o", "out"]
    child = pexpect.spawn(sys.executable, argv, env=env, cwd=str(tmp_path), dimensions=(24, 80), timeout=60)
    screen = pyte.Screen(80, 24)
    stream = pyte.ByteStream(screen)
    stream.feed(child.read())
    child.close()
    assert child.exitstatus == 0
    skipped = [row.rstrip() for row in screen.display if row.startswith("skipped ")]
    assert skipped, screen.display
    refs = set(sandbox["kazoo"].ids(downloadable=False))
    for row in skipped:
        assert row.split()[1] in refs and row.endswith(")") and "  (" in row, row


def test_progress_display_at_80x24_never_tears_wraps_or_leaves_frames(
    sandbox: Any, config_file: Path, tmp_path: Path
) -> None:
    import pexpect
    import pyte

    sandbox.write_profile(config_file, "sandbox")
    # Bird's media come from the storage stand-in, so the throttle applies (Kazoo serves its own):
    # every body lasts several redraws, so bars are drawn many times even on a loaded machine.
    sandbox.storage.throttle(400_000)
    env = {**os.environ, "TERM": "xterm-256color", "RECFETCH_PROFILE": "sandbox"}
    env.pop("COLUMNS", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "recfetch", "bird", "pull", "-j", "4", "-o", "out"],
        env=env,
        cwd=str(tmp_path),
        dimensions=(24, 80),
        timeout=120,
    )
    screen = pyte.HistoryScreen(80, 24, history=5000)
    stream = pyte.ByteStream(screen)
    frames: list[list[str]] = []
    while True:
        try:
            chunk = child.read_nonblocking(4096, timeout=60)
        except pexpect.EOF:
            break
        stream.feed(chunk)
        frames.append(list(screen.display))
    child.close()
    assert child.exitstatus == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    assert len(files) >= 4
    final = [row for row in _render(screen.history, screen) if row]

    # Every result line is there once, on one row, and nothing is left of the bars.
    downloaded = [row for row in final if row.startswith("downloaded  ")]
    assert len(downloaded) == len(files)
    for name in files:
        assert sum(name[-16:] in row for row in downloaded) == 1, (name, final)
    summary = [row for row in final if re.match(r"\d+ downloaded, \d+ skipped, \d+ failed", row)]
    assert len(summary) == 1
    for row in final:
        assert row.startswith(("downloaded  ", "skipped     ", "failed      ")) or row in summary, row
    assert not any("total " in row or "━" in row for row in final)

    # While it ran: a bar per file and a total line with denominators (files and bytes).
    drawn = [row for frame in frames for row in frame]
    assert any(re.search(r"total \d+/\d+\+? files .*\d+(\.\d)?/\d+(\.\d)? [kKM]B", row) for row in drawn)
    assert any(re.search(r"\.(mp3|wav) .*\d+(\.\d)?/\d+(\.\d)? [KM]?B", row) for row in drawn)
    assert all(len(row.rstrip()) <= 80 for row in drawn)


def test_behind_tee_every_result_line_stays_on_screen(
    sandbox: Any, config_file: Path, tmp_path: Path
) -> None:
    """stdout into a pipe whose reader prints on the same terminal: no bars to erase its lines."""
    import pexpect
    import pyte

    sandbox.write_profile(config_file, "sandbox")
    sandbox.storage.throttle(100_000)
    env = {**os.environ, "TERM": "xterm-256color", "RECFETCH_PROFILE": "sandbox"}
    env.pop("COLUMNS", None)
    command = f"{sys.executable} -m recfetch kazoo pull -j 4 -o out | tee log.txt"
    child = pexpect.spawn(
        "bash", ["-c", command], env=env, cwd=str(tmp_path), dimensions=(24, 80), timeout=120
    )
    screen = pyte.HistoryScreen(80, 24, history=5000)
    stream = pyte.ByteStream(screen)
    raw = b""
    while True:
        try:
            chunk = child.read_nonblocking(4096, timeout=60)
        except pexpect.EOF:
            break
        raw += chunk
        stream.feed(chunk)
    child.close()
    assert child.exitstatus == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    rows = [row for row in _render(screen.history, screen) if row.startswith("downloaded  ")]
    assert len(rows) == len(files) >= 4
    assert "━".encode() not in raw  # no bars were drawn over the pipe reader's lines
    assert len((tmp_path / "log.txt").read_text().splitlines()) == len(files)


def test_a_piped_table_whose_listing_is_rejected_prints_no_header(cli_proc, sandbox_profile) -> None:
    # `list | cut -f1` in a script: a lone header line would read as "an empty account".
    result = cli_proc("bird", "list", env={"RECFETCH_BIRD_ACCESS_KEY": "wrong-key"})
    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    assert cli_proc("bird", "list").stdout.startswith("ref\tstatus\t")
