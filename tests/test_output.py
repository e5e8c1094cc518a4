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

from recfetch.providers import get_provider, registry
from recfetch.providers.base import RECORD_FIELDS, ListQuery
from recfetch.sandbox import Sandbox
from recfetch.sandbox.httpserver import Fault

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ANSI = "\x1b["
PAGED = [n for n in sorted(registry()) if n != "kaleyra"]  # kaleyra lists a local report, no paging


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
    assert table.exit_code == 0 and table.stdout == "" and "no recordings matched" in table.stderr


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
        assert row["downloadable"] == str(record["downloadable"])
        assert row["ended_at"] == (record["ended_at"] or "")


def test_table_shows_one_row_per_record(cli, sandbox_profile) -> None:
    result = cli("kismet", "list")
    assert result.exit_code == 0
    records = listing(cli)
    header = result.stdout.splitlines()[1]
    assert "ref" in header and "status" in header and "started_at" in header
    for record in records:
        assert record["ref"] in result.stdout
    assert ANSI not in result.stdout  # not a terminal


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
        env = {**os.environ, "RECFETCH_PROFILE": "sandbox", "RECFETCH_STATE_DIR": str(tmp_path / "state")}
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
