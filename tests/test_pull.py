"""Cron-grade `pull` against the sandbox: archive, incremental windows, lock, interruption,
verified deletion, manifests, metadata, log file and the batch controls (SPEC §2, §3, §4, §5)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from recfetch.providers import REGISTRY
from recfetch.providers.base import iso
from recfetch.sandbox import Sandbox
from recfetch.sandbox.httpserver import Fault, Response
from recfetch.state import Lock, Watermarks

REPO = Path(__file__).resolve().parent.parent
PROVIDERS = tuple(REGISTRY)
STORAGE_BACKED = tuple(n for n in ("realtimekit", "bird", "kismet", "kaleyra") if n in PROVIDERS)
DELETERS = tuple(n for n in ("kazoo", "bird") if n in PROVIDERS)


# ---------------------------------------------------------------------------
# helpers


@pytest.fixture
def mints(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """How many download URLs each provider minted during in-process runs."""
    counts: collections.Counter[str] = collections.Counter()
    for name, cls in REGISTRY.items():
        original = cls.mint

        def counting(self: Any, recording: Any, _orig: Any = original, _name: str = name) -> Any:
            counts[_name] += 1
            return _orig(self, recording)

        monkeypatch.setattr(cls, "mint", counting)
    return counts


def source_args(sandbox: Sandbox, name: str, tmp_path: Path) -> list[str]:
    """Kaleyra has no listing API: pull reads the platform's recordings report."""
    if name != "kaleyra":
        return []
    report = tmp_path / "kaleyra-report.csv"
    report.write_text(sandbox["kaleyra"].report_csv())
    return ["--from-report", str(report)]


def pull(cli: Any, sandbox: Sandbox, name: str, tmp_path: Path, *args: str, out: str = "out") -> Any:
    return cli(name, "pull", "-o", str(tmp_path / out), *source_args(sandbox, name, tmp_path), *args)


def add_new(sandbox: Sandbox, name: str, minutes_ago: int = 5) -> str:
    """A downloadable recording that started a few minutes ago; returns its ref."""
    standin = sandbox[name]
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    if name == "kismet":
        return standin.add_recording(created_at=when)
    if name == "realtimekit":
        return standin.add_recording(invoked_time=when)
    if name == "kazoo":
        return standin.add_recording(start=when.timestamp())
    if name == "bird":
        return standin.add_recording(started_at=when)
    return standin.add_recording(started_at=when)


def fail_media(sandbox: Sandbox, name: str, ref: str) -> None:
    """Every media request for ``ref`` answers 500 from now on."""
    if name == "kazoo":
        sandbox["kazoo"].fail_next(500, times=10_000, path_contains=ref, method="GET")
        return
    needle = ref.rsplit("/", 1)[-1]
    sandbox.storage.server.add_fault(
        Fault(
            lambda r: needle in r.path,
            Response(500, b"<Error><Code>InternalError</Code></Error>", {"Content-Type": "application/xml"}),
            times=None,
        )
    )


def events(res: Any) -> list[dict[str, Any]]:
    return [e for e in res.jsonl() if e.get("type") == "file"]


def summary(res: Any) -> dict[str, Any]:
    lines = [e for e in res.jsonl() if e.get("type") == "summary"]
    assert len(lines) == 1, res.output
    return lines[0]


def by_outcome(res: Any, outcome: str) -> list[dict[str, Any]]:
    return [e for e in events(res) if e["outcome"] == outcome]


def state_dir() -> Path:
    return Path(os.environ["RECFETCH_STATE_DIR"])


def archive_rows(path: Path | None = None) -> list[tuple[Any, ...]]:
    db = path or state_dir() / "archive.sqlite3"
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT provider, ref, path, bytes, sha256 FROM downloads ORDER BY ref"
        ).fetchall()


def proc_env() -> dict[str, str]:
    """The test's RECFETCH_* settings plus an import path, for real subprocesses."""
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}


def start_pull(name: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recfetch", name, "pull", *args],
        env=proc_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def part_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.part") if p.stat().st_size > 0] if root.exists() else []


@pytest.fixture
def throttled(sandbox_profile: Sandbox) -> Iterator[Sandbox]:
    sandbox_profile.storage.throttle(40_000)
    yield sandbox_profile
    sandbox_profile.storage.throttle(None)


# ---------------------------------------------------------------------------
# archive: the second pull downloads nothing and mints nothing


@pytest.mark.parametrize("name", PROVIDERS)
def test_second_pull_downloads_nothing_and_mints_no_url(
    name: str, cli: Any, sandbox_profile: Sandbox, tmp_path: Path, mints: collections.Counter[str]
) -> None:
    first = pull(cli, sandbox_profile, name, tmp_path, "--jsonl")
    assert first.exit_code == 0, first.output
    downloaded = by_outcome(first, "downloaded")
    assert downloaded, "the stand-in should have downloadable recordings"
    assert mints[name] >= len(downloaded)
    rows = archive_rows()
    assert {r[1] for r in rows} == {e["ref"] for e in downloaded}
    assert all(
        r[4] == e["sha256"] for r, e in zip(rows, sorted(downloaded, key=lambda e: e["ref"]), strict=True)
    )

    mints.clear()
    sandbox_profile.storage.server.clear()
    audited = sandbox_profile["kismet"].audited_total if name == "kismet" else 0
    second = pull(cli, sandbox_profile, name, tmp_path, "--jsonl")
    assert second.exit_code == 0, second.output
    assert by_outcome(second, "downloaded") == []
    assert {e["ref"] for e in by_outcome(second, "skipped") if e["reason"] == "in archive"} == {
        e["ref"] for e in downloaded
    }
    assert mints[name] == 0
    assert sandbox_profile.storage.server.requests() == []
    if name == "kismet":
        assert sandbox_profile["kismet"].audited_total == audited  # no audited URL fetch
    assert summary(second)["downloaded"] == 0


def test_pull_without_archive_still_skips_files_already_present(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path, mints: collections.Counter[str]
) -> None:
    # Without the archive, only the provider's size proves a file on disk (SPEC §3):
    # RealtimeKit reports one (test_nothing_lost covers the providers that do not).
    name = "realtimekit"
    first = pull(cli, sandbox_profile, name, tmp_path, "--no-archive", "--jsonl")
    assert first.exit_code == 0, first.output
    assert not (state_dir() / "archive.sqlite3").exists()
    mints.clear()
    second = pull(cli, sandbox_profile, name, tmp_path, "--no-archive", "--jsonl")
    assert by_outcome(second, "downloaded") == []
    assert {e["reason"] for e in by_outcome(second, "skipped") if e["path"]} == {"already present"}
    assert mints[name] == 0


def test_archive_path_option_puts_the_database_where_asked(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = PROVIDERS[0]
    db = tmp_path / "custom" / "my.sqlite3"
    res = pull(cli, sandbox_profile, name, tmp_path, "--archive", str(db), "--jsonl")
    assert res.exit_code == 0, res.output
    assert len(archive_rows(db)) == len(by_outcome(res, "downloaded"))
    assert not (state_dir() / "archive.sqlite3").exists()
    both = pull(cli, sandbox_profile, name, tmp_path, "--archive", str(db), "--no-archive")
    assert both.exit_code == 2


def test_archived_recording_deleted_locally_is_downloaded_again_with_a_warning(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    first = pull(cli, sandbox_profile, name, tmp_path, "--jsonl")
    gone = by_outcome(first, "downloaded")[0]
    Path(gone["path"]).unlink()
    second = pull(cli, sandbox_profile, name, tmp_path, "--jsonl")
    assert second.exit_code == 0, second.output
    assert [e["ref"] for e in by_outcome(second, "downloaded")] == [gone["ref"]]
    assert Path(gone["path"]).exists()
    assert f"{gone['ref']} is in the archive but" in second.stderr and "downloading it again" in second.stderr


def test_download_skips_archived_refs_without_asking_the_provider(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path, mints: collections.Counter[str]
) -> None:
    name = "kismet" if "kismet" in PROVIDERS else PROVIDERS[0]
    first = pull(cli, sandbox_profile, name, tmp_path, "--jsonl")
    refs = [e["ref"] for e in by_outcome(first, "downloaded")][:3]
    mints.clear()
    sandbox_profile[name].server.clear()
    res = cli(
        name,
        "download",
        "-o",
        str(tmp_path / "out"),
        *source_args(sandbox_profile, name, tmp_path),
        "--jsonl",
        *refs,
    )
    assert res.exit_code == 0, res.output
    assert [e["reason"] for e in events(res)] == ["in archive"] * 3
    assert mints[name] == 0
    assert sandbox_profile[name].server.requests() == []  # not even a metadata (audited) call


def test_jq_pipeline_download_round_trip_uses_the_archive(sandbox_profile: Sandbox, tmp_path: Path) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    src = " ".join(source_args(sandbox_profile, name, tmp_path))
    py = f"{sys.executable} -m recfetch"
    line = f"{py} {name} list {src} --jsonl | jq -r .ref | {py} {name} download {src} -o out --jsonl -"
    first = subprocess.run(
        line, shell=True, cwd=tmp_path, env=proc_env(), capture_output=True, text=True, timeout=60
    )
    assert first.returncode in (0, 3), first.stderr  # undownloadable refs fail, the rest download
    downloaded = [e for e in map(json.loads, first.stdout.splitlines()) if e.get("outcome") == "downloaded"]
    assert downloaded
    sandbox_profile.storage.server.clear()
    again = subprocess.run(
        line, shell=True, cwd=tmp_path, env=proc_env(), capture_output=True, text=True, timeout=60
    )
    skipped = {
        e["ref"] for e in map(json.loads, again.stdout.splitlines()) if e.get("reason") == "in archive"
    }
    assert skipped == {e["ref"] for e in downloaded}
    assert sandbox_profile.storage.server.requests() == []


# ---------------------------------------------------------------------------
# incremental


@pytest.mark.parametrize("name", PROVIDERS)
def test_incremental_picks_up_a_new_recording_listing_from_watermark_minus_overlap(
    name: str, cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    first = pull(cli, sandbox_profile, name, tmp_path, "--incremental", "--jsonl")
    assert first.exit_code == 0, first.output
    mark = Watermarks(state_dir()).get("sandbox", name)
    assert mark is not None and before - timedelta(seconds=2) <= mark <= datetime.now(UTC)

    ref = add_new(sandbox_profile, name)
    second = pull(cli, sandbox_profile, name, tmp_path, "--incremental", "--overlap", "2h", "--jsonl")
    assert second.exit_code == 0, second.output
    assert [e["ref"] for e in by_outcome(second, "downloaded")] == [ref]
    new_mark = Watermarks(state_dir()).get("sandbox", name)
    assert new_mark is not None and new_mark >= mark


def test_incremental_window_is_echoed_with_v_and_starts_at_watermark_minus_overlap(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    marks = Watermarks(state_dir())
    mark = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    marks.set("sandbox", name, mark)
    res = cli(
        "-v",
        name,
        "pull",
        "-o",
        str(tmp_path / "out"),
        "--incremental",
        "--overlap",
        "36h",
        *source_args(sandbox_profile, name, tmp_path),
    )
    assert res.exit_code == 0, res.output
    assert f"listing window (UTC): {iso(mark - timedelta(hours=36))} .. now" in res.stderr
    assert "last complete run ended 2026-01-10T12:00:00Z" in res.stderr


def test_first_incremental_run_lists_everything(cli: Any, sandbox_profile: Sandbox, tmp_path: Path) -> None:
    name = PROVIDERS[0]
    res = cli(
        "-v",
        name,
        "pull",
        "-o",
        str(tmp_path / "out"),
        "--incremental",
        *source_args(sandbox_profile, name, tmp_path),
    )
    assert res.exit_code == 0, res.output
    assert "no watermark yet" in res.stderr
    assert "listing window (UTC): - .. now" in res.stderr


def test_bad_overlap_is_a_usage_error(cli: Any, sandbox_profile: Sandbox, tmp_path: Path) -> None:
    res = pull(cli, sandbox_profile, PROVIDERS[0], tmp_path, "--incremental", "--overlap", "a while")
    assert res.exit_code == 2
    assert "--overlap" in res.stderr


@pytest.mark.parametrize(
    "extra",
    [("--max-files", "1"), ("--limit", "2"), ("--dry-run",)],
    ids=["max-files", "limit", "dry-run"],
)
def test_watermark_never_advances_after_a_truncated_or_dry_run(
    extra: tuple[str, ...], cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    res = pull(cli, sandbox_profile, name, tmp_path, "--incremental", *extra)
    assert res.exit_code == 0, res.output
    assert Watermarks(state_dir()).get("sandbox", name) is None


def test_watermark_never_advances_after_a_partial_run(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    victim = add_new(sandbox_profile, name)
    fail_media(sandbox_profile, name, victim)
    res = pull(cli, sandbox_profile, name, tmp_path, "--incremental", "--retries", "0")
    assert res.exit_code == 3, res.output
    assert Watermarks(state_dir()).get("sandbox", name) is None


def test_explicit_since_wins_and_only_moves_a_watermark_it_reaches_back_to(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    marks = Watermarks(state_dir())
    old = datetime.now(UTC) - timedelta(days=10)
    marks.set("sandbox", name, old)
    # A window starting after the watermark leaves a gap: the watermark stays.
    gap = cli("-v", name, "pull", "-o", str(tmp_path / "out"), "--incremental", "--since", "2d")
    assert gap.exit_code == 0, gap.output
    assert "listing window" in gap.stderr and "does not reach back to the watermark" in gap.stderr
    assert marks.get("sandbox", name) == old.replace(microsecond=old.microsecond // 1000 * 1000)
    # A window reaching back past it advances it.
    wide = cli(name, "pull", "-o", str(tmp_path / "out"), "--incremental", "--since", "30d")
    assert wide.exit_code == 0, wide.output
    assert marks.get("sandbox", name) > datetime.now(UTC) - timedelta(minutes=1)  # type: ignore[operator]


# ---------------------------------------------------------------------------
# lock


def test_pull_exits_11_at_once_when_another_pull_holds_the_lock(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path, mints: collections.Counter[str]
) -> None:
    name = PROVIDERS[0]
    with Lock(state_dir(), "sandbox", name):
        started = time.monotonic()
        res = pull(cli, sandbox_profile, name, tmp_path, "--jsonl")
        assert time.monotonic() - started < 5
    assert res.exit_code == 11
    assert f"another pull (PID {os.getpid()}) is running for sandbox/{name}" in res.stderr
    assert summary(res)["exit_code"] == 11
    assert mints[name] == 0
    assert not (tmp_path / "out").exists()


def test_second_concurrent_pull_process_exits_11_naming_the_first_pid_then_sigterm_stops_the_first(
    throttled: Sandbox, cli_proc: Any, tmp_path: Path
) -> None:
    name = "bird" if "bird" in STORAGE_BACKED else STORAGE_BACKED[0]
    src = source_args(throttled, name, tmp_path)
    first = start_pull(name, "-o", str(tmp_path / "out"), "--jobs", "1", "--jsonl", *src)
    try:
        lock = Lock(state_dir(), "sandbox", name)
        wait_for(lambda: lock.holder() == first.pid)
        second = cli_proc(name, "pull", "-o", str(tmp_path / "out2"), *src, env=proc_env(), timeout=30)
        assert second.exit_code == 11, second.output
        assert f"another pull (PID {first.pid}) is running for sandbox/{name}" in second.stderr
        wait_for(lambda: part_files(tmp_path / "out"))
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    assert json.loads(out.splitlines()[-1])["exit_code"] == 130
    # The lock died with the holder: the next pull runs.
    throttled.storage.throttle(None)
    again = cli_proc(name, "pull", "-o", str(tmp_path / "out"), *src, env=proc_env(), timeout=60)
    assert again.exit_code == 0, again.output


# ---------------------------------------------------------------------------
# interruption and resume


@pytest.mark.parametrize("name", STORAGE_BACKED[:2])
def test_sigint_mid_transfer_keeps_part_and_archive_then_next_pull_resumes_with_range(
    name: str, throttled: Sandbox, tmp_path: Path, cli: Any
) -> None:
    out_dir = tmp_path / "out"
    src = source_args(throttled, name, tmp_path)
    proc = start_pull(name, "-o", str(out_dir), "--jobs", "1", "--jsonl", "--incremental", *src)
    try:
        part = wait_for(lambda: part_files(out_dir))[0]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["exit_code"] == 130
    assert "interrupted" in err
    assert part.exists() and part.stat().st_size > 0
    offset = part.stat().st_size
    final = part.with_name(part.name.removesuffix(".part"))
    assert not final.exists()
    # The archive holds exactly the finished files, each intact.
    rows = archive_rows()
    finished = {e["ref"] for e in lines if e.get("outcome") == "downloaded"}
    assert {r[1] for r in rows} == finished
    for _, _, path, size, _ in rows:
        assert Path(path).stat().st_size == size
    assert Watermarks(state_dir()).get("sandbox", name) is None  # an interrupted run moves nothing

    throttled.storage.throttle(None)
    throttled.storage.server.clear()
    res = cli(name, "pull", "-o", str(out_dir), "--jsonl", *src)
    assert res.exit_code == 0, res.output
    assert final.exists() and not part.exists()
    recording_id = final.stem.split("_", 2)[-1]
    first_request = next(r for r in throttled.storage.server.requests() if recording_id in r.path)
    header = first_request.headers.get("range", "")
    assert header.startswith("bytes="), header
    assert 0 < int(header.removeprefix("bytes=").split("-")[0]) <= offset


# ---------------------------------------------------------------------------
# verified deletion


@pytest.mark.parametrize("name", DELETERS)
def test_delete_after_deletes_only_verified_downloads_and_a_failed_one_is_kept(
    name: str, cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    victim = add_new(sandbox_profile, name)
    fail_media(sandbox_profile, name, victim)
    log = tmp_path / "log.jsonl"
    res = pull(
        cli,
        sandbox_profile,
        name,
        tmp_path,
        "--delete-after",
        "--yes",
        "--retries",
        "0",
        "--jsonl",
        "--log-file",
        str(log),
    )
    assert res.exit_code == 3, res.output
    deleted = set(sandbox_profile[name].deleted)
    logged = [json.loads(x) for x in log.read_text().splitlines()]
    assert {r["ref"] for r in logged if r.get("deleted") and r["msg"].startswith("deleted ")} == deleted
    downloaded = by_outcome(res, "downloaded")
    assert deleted == {e["ref"] for e in downloaded}
    assert all(e["deleted"] is True for e in downloaded)
    assert victim not in deleted
    failed = by_outcome(res, "failed")
    assert [e["ref"] for e in failed] == [victim]
    assert "deleted" not in failed[0] or failed[0]["deleted"] is False
    assert summary(res)["deleted"] == len(deleted)
    for event in downloaded:
        assert Path(event["path"]).exists()
    assert f"deleted {downloaded[0]['ref']} at {name}" in res.stderr


@pytest.mark.parametrize("name", DELETERS)
def test_delete_after_on_a_later_run_deletes_archived_files_that_still_verify(
    name: str, cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    first = pull(cli, sandbox_profile, name, tmp_path, "--jsonl")
    downloaded = by_outcome(first, "downloaded")
    tampered, *rest = downloaded
    Path(tampered["path"]).write_bytes(
        b"\0" * Path(tampered["path"]).stat().st_size
    )  # same size, other bytes
    res = pull(cli, sandbox_profile, name, tmp_path, "--delete-after", "--yes", "--jsonl")
    assert res.exit_code == 3, res.output
    assert set(sandbox_profile[name].deleted) == {e["ref"] for e in rest}
    bad = by_outcome(res, "failed")
    assert [e["ref"] for e in bad] == [tampered["ref"]]
    assert "no longer matches its recorded sha256" in bad[0]["error"]["message"]
    assert Path(tampered["path"]).exists()


def test_a_failed_delete_fails_that_item_and_keeps_the_local_file(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    if "bird" not in PROVIDERS:
        pytest.skip("needs bird")
    sandbox_profile["bird"].fail_next(500, times=1000, path_contains="/recordings/")
    sandbox_profile["bird"].server.faults[-1].match = lambda r: r.method == "DELETE"
    res = pull(cli, sandbox_profile, "bird", tmp_path, "--delete-after", "--yes", "--retries", "0", "--jsonl")
    failed = by_outcome(res, "failed")
    assert failed and all("deleting at bird failed" in e["error"]["message"] for e in failed)
    assert all(Path(e["path"]).exists() for e in failed)
    assert sandbox_profile["bird"].deleted == []
    assert summary(res)["exit_code"] == res.exit_code == 8  # every item failed alike
    # The files are archived: the next run retries only the deletes.
    sandbox_profile["bird"].server.faults.clear()
    again = pull(cli, sandbox_profile, "bird", tmp_path, "--delete-after", "--yes", "--jsonl")
    assert again.exit_code == 0, again.output
    assert set(sandbox_profile["bird"].deleted) == {e["ref"] for e in failed}


def test_delete_after_without_yes_off_a_terminal_exits_2_before_downloading(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = DELETERS[0]
    res = pull(cli, sandbox_profile, name, tmp_path, "--delete-after")
    assert res.exit_code == 2
    assert "--yes" in res.stderr
    assert not (tmp_path / "out").exists()
    assert sandbox_profile[name].deleted == []


@pytest.mark.parametrize("name", [n for n in PROVIDERS if n not in ("kazoo", "bird")][:2])
def test_delete_after_on_a_provider_that_cannot_delete_is_a_usage_error(
    name: str, cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    res = pull(cli, sandbox_profile, name, tmp_path, "--delete-after", "--yes")
    assert res.exit_code == 2
    assert f"{name} does not support deleting recordings" in res.stderr


def test_delete_after_needs_the_archive(cli: Any, sandbox_profile: Sandbox, tmp_path: Path) -> None:
    res = pull(cli, sandbox_profile, DELETERS[0], tmp_path, "--delete-after", "--yes", "--no-archive")
    assert res.exit_code == 2
    assert "archive" in res.stderr


def test_delete_after_never_deletes_on_a_dry_run(cli: Any, sandbox_profile: Sandbox, tmp_path: Path) -> None:
    name = DELETERS[0]
    res = pull(cli, sandbox_profile, name, tmp_path, "--delete-after", "--dry-run")
    assert res.exit_code == 0, res.output
    assert sandbox_profile[name].deleted == []


# ---------------------------------------------------------------------------
# manifest, metadata, log file


def test_manifest_then_verify_intact_is_0_and_after_alteration_is_8(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = PROVIDERS[0]
    manifest = tmp_path / "custody" / "manifest.jsonl"
    res = pull(cli, sandbox_profile, name, tmp_path, "--manifest", str(manifest), "--jsonl", "--jobs", "8")
    downloaded = by_outcome(res, "downloaded")
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert {x["ref"] for x in lines} == {e["ref"] for e in downloaded}
    for line in lines:
        assert line["provider"] == name and line["profile"] == "sandbox"
        assert line["retrieved_at"].endswith("Z")
        assert Path(line["path"]).stat().st_size == line["bytes"]
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600

    assert cli("verify", str(manifest)).exit_code == 0
    victim = Path(lines[0]["path"])
    victim.write_bytes(victim.read_bytes()[:-1] + b"!")
    altered = cli("verify", str(manifest))
    assert altered.exit_code == 8
    assert "CHANGED" in altered.stdout and str(victim) in altered.stdout


def test_write_metadata_puts_the_record_beside_each_file(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "kazoo" if "kazoo" in PROVIDERS else PROVIDERS[0]
    res = pull(cli, sandbox_profile, name, tmp_path, "--write-metadata", "--jsonl")
    assert res.exit_code == 0, res.output
    listed = {
        r["ref"]: r
        for r in cli(name, "list", "--jsonl", *source_args(sandbox_profile, name, tmp_path)).jsonl()
    }
    for event in by_outcome(res, "downloaded"):
        sidecar = Path(event["path"] + ".json")
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
        record = json.loads(sidecar.read_text())
        assert record == listed[event["ref"]]
        assert "Signature" not in sidecar.read_text()


def test_log_file_is_private_json_lines_without_secrets_or_signed_urls(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    log = tmp_path / "logs" / "recfetch.jsonl"
    secrets = [
        v
        for table in sandbox_profile.profiles().values()
        for k, v in table.items()
        if k != "base_url" and any(w in k for w in ("secret", "key", "token", "password"))
    ]
    for name in PROVIDERS:
        res = cli(
            "-v",
            name,
            "pull",
            "-o",
            str(tmp_path / "out"),
            "--log-file",
            str(log),
            *source_args(sandbox_profile, name, tmp_path),
        )
        assert res.exit_code == 0, res.output
    text = log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    records = [json.loads(line) for line in text.splitlines()]
    assert {"time", "level", "msg", "provider", "ref", "event"} <= set(records[0])
    assert any(r["event"] and r["event"].get("outcome") == "downloaded" for r in records)
    assert any(r["event"] and r["event"].get("type") == "summary" for r in records)
    assert "X-Signature" not in text and "X-Expires" not in text and "X-Amz-Signature" not in text
    for secret in secrets:
        assert secret not in text


# ---------------------------------------------------------------------------
# batch controls and exit codes


def test_dry_run_lists_what_would_be_downloaded_and_mints_nothing(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path, mints: collections.Counter[str]
) -> None:
    name = "kismet" if "kismet" in PROVIDERS else PROVIDERS[0]
    audited = sandbox_profile["kismet"].audited_total if name == "kismet" else 0
    res = pull(cli, sandbox_profile, name, tmp_path, "--dry-run")
    assert res.exit_code == 0, res.output
    would = [line for line in res.stdout.splitlines() if line.startswith("would download")]
    assert would
    assert mints[name] == 0
    assert sandbox_profile.storage.server.requests() == []
    assert not (tmp_path / "out").exists()
    if name == "kismet":
        assert sandbox_profile["kismet"].audited_total == audited
    as_json = pull(cli, sandbox_profile, name, tmp_path, "--dry-run", "--jsonl")
    assert summary(as_json)["would_download"] == len(would)
    assert summary(as_json)["downloaded"] == 0


def test_max_files_downloads_at_most_n_and_says_more_are_waiting(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = PROVIDERS[0]
    res = pull(cli, sandbox_profile, name, tmp_path, "--max-files", "2", "--jsonl")
    assert res.exit_code == 0, res.output
    assert len(by_outcome(res, "downloaded")) == 2
    assert "--max-files 2" in res.stderr
    nxt = pull(cli, sandbox_profile, name, tmp_path, "--max-files", "2", "--jsonl")
    assert len(by_outcome(nxt, "downloaded")) == 2  # the next run continues where this one stopped
    assert not {e["ref"] for e in by_outcome(nxt, "downloaded")} & {
        e["ref"] for e in by_outcome(res, "downloaded")
    }


def test_fail_if_empty_exits_9_when_nothing_is_new(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = PROVIDERS[0]
    assert pull(cli, sandbox_profile, name, tmp_path, "--fail-if-empty").exit_code == 0
    res = pull(cli, sandbox_profile, name, tmp_path, "--fail-if-empty", "--jsonl")
    assert res.exit_code == 9
    assert summary(res)["exit_code"] == 9


def test_name_template_with_folders_creates_private_directories(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    res = pull(
        cli, sandbox_profile, name, tmp_path, "--name", "{provider}/{started_at:%Y/%m}/{id}{ext}", "--jsonl"
    )
    assert res.exit_code == 0, res.output
    for event in by_outcome(res, "downloaded"):
        path = Path(event["path"])
        rel = path.relative_to(tmp_path / "out")
        assert rel.parts[0] == name and len(rel.parts) == 4
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_human_summary_on_stderr_names_each_failure_with_its_reason(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    victim = add_new(sandbox_profile, name)
    fail_media(sandbox_profile, name, victim)
    res = pull(cli, sandbox_profile, name, tmp_path, "--retries", "0")
    assert res.exit_code == 3
    assert "downloaded" in res.stdout  # one human line per file on stdout
    assert "1 failed" in res.stderr
    assert f"failed {victim}:" in res.stderr
    assert re.search(r"\d+ downloaded, \d+ skipped, 1 failed; [\d.]+ [KM]?B in [\d.]+s", res.stderr), (
        res.stderr
    )


def _setup_outcome(
    case: str,
    sandbox: Sandbox,
    name: str,
    cli: Any,
    tmp_path: Path,
    stack: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    if case == "partial":
        victim = add_new(sandbox, name)
        fail_media(sandbox, name, victim)
        return ["--retries", "0"]
    if case == "all-failed":
        planned = pull(cli, sandbox, name, tmp_path, "--dry-run", "--jsonl").jsonl()
        for ref in [e["ref"] for e in planned if e.get("reason") == "dry run: would download"]:
            fail_media(sandbox, name, ref)
        return ["--retries", "0"]
    if case == "nothing-new":
        pull(cli, sandbox, name, tmp_path)
        return ["--fail-if-empty"]
    if case == "locked":
        stack.enter_context(Lock(state_dir(), "sandbox", name))
        return []
    if case == "auth":
        secret = next(
            k for k in sandbox[name].profile() if any(w in k for w in ("secret", "key", "token", "password"))
        )
        monkeypatch.setenv(f"RECFETCH_{name.upper()}_{secret.upper()}", "wrong-credential-1234")
        return []
    if case == "config":
        monkeypatch.setenv("RECFETCH_PROFILE", "no-such-profile")
        return []
    return []


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("ok", 0),
        ("partial", 3),
        ("all-failed", 8),
        ("nothing-new", 9),
        ("locked", 11),
        ("auth", 4),
        ("config", 5),
    ],
)
@pytest.mark.parametrize("fmt", ["--jsonl", "--json"])
def test_summary_exit_code_equals_the_process_exit_code(
    case: str,
    code: int,
    fmt: str,
    cli: Any,
    sandbox_profile: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    with contextlib.ExitStack() as stack:
        extra = _setup_outcome(case, sandbox_profile, name, cli, tmp_path, stack, monkeypatch)
        res = pull(cli, sandbox_profile, name, tmp_path, fmt, *extra)
    assert res.exit_code == code, res.output
    got = summary(res) if fmt == "--jsonl" else res.json()["summary"]
    assert got["exit_code"] == code
    assert {"downloaded", "skipped", "failed", "bytes", "seconds", "exit_code"} <= set(got)
    if code in (4, 5, 11):  # run-level errors also go to stderr as one JSON object
        errors = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
        assert any(e.get("type") == "error" for e in errors), res.stderr


def test_cron_line_prints_nothing_on_success_and_logs_everything(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    name = "kazoo" if "kazoo" in PROVIDERS else PROVIDERS[0]
    log = tmp_path / "cron.jsonl"
    args = ("--incremental", "--log-file", str(log), *source_args(sandbox_profile, name, tmp_path))
    res = cli("--quiet", name, "pull", "-o", str(tmp_path / "out"), *args)
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and res.stderr == ""  # cron mails nothing
    records = [json.loads(line) for line in log.read_text().splitlines()]
    downloaded = [r["ref"] for r in records if (r["event"] or {}).get("outcome") == "downloaded"]
    assert downloaded and len(downloaded) == len(list((tmp_path / "out").rglob("*.*")))
    assert any("watermark" in r["msg"] for r in records)


def test_a_recording_named_twice_in_one_run_is_fetched_once(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path, mints: collections.Counter[str]
) -> None:
    name = "bird" if "bird" in PROVIDERS else PROVIDERS[0]
    ref = add_new(sandbox_profile, name)
    res = cli(name, "download", "-o", str(tmp_path / "out"), "--jsonl", "--no-archive", ref, ref)
    assert res.exit_code == 0, res.output
    assert sorted((e["outcome"], e["reason"] or "") for e in events(res)) == [
        ("downloaded", ""),
        ("skipped", "duplicate in this run"),
    ]
    assert mints[name] == 1


def test_delete_verification_checks_the_providers_checksum_too(tmp_path: Path) -> None:
    import hashlib
    import types

    from recfetch.download import FileResult
    from recfetch.errors import IntegrityError
    from recfetch.jobs.context import Silent
    from recfetch.jobs.sinks import ArchiveSink, Notes, VerifiedDeleter
    from recfetch.providers.base import Recording

    data = b"recording bytes"
    path = tmp_path / "a.mp3"
    path.write_bytes(data)
    deleted: list[str] = []
    provider = types.SimpleNamespace(name="bird", profile="p", delete=lambda rec: deleted.append(rec.ref))
    res = FileResult("r1", "downloaded", None, path, len(data), hashlib.sha256(data).hexdigest(), None)
    sink = ArchiveSink(tmp_path / "a.sqlite3")
    sink.open()
    try:
        archive = sink.archive
        assert archive is not None
        deleter = VerifiedDeleter(provider, sink, Notes(Silent(), None))  # type: ignore[arg-type]
        good = Recording(
            "bird", "p", "r1", "r1", size_bytes=len(data), checksum="MD5:" + hashlib.md5(data).hexdigest()
        )
        archive.add(good, res)
        with pytest.raises(IntegrityError, match="md5 checksum"):
            deleter.commit(good.replace(checksum="md5:" + "0" * 32), res)
        with pytest.raises(IntegrityError, match="cannot check the provider's crc32c"):
            deleter.commit(good.replace(checksum="crc32c:abcd"), res)
        with pytest.raises(IntegrityError, match="the provider reports"):
            deleter.commit(good.replace(size_bytes=len(data) + 1), res)
        assert deleted == []
        assert deleter.commit(good, res) == {"deleted": True}
        assert deleted == ["r1"]
    finally:
        sink.close()
