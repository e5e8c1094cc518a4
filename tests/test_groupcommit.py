"""Archive rows committed in groups (issue 10 #3): never before the file, always by the end, never lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from recfetch.errors import LocalIOError
from recfetch.jobs.groupcommit import GroupCommit
from recfetch.jobs.journal import Journal, journal_files
from recfetch.providers import REGISTRY
from recfetch.providers.base import Recording
from recfetch.sandbox import Sandbox
from recfetch.state import Archive, ArchiveRow

REPO = Path(__file__).resolve().parent.parent


def committed(db: Path) -> set[str]:
    """The refs another process sees in the archive (only committed rows)."""
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT ref FROM downloads")}


def row(tmp_path: Path, ref: str) -> ArchiveRow:
    return ArchiveRow("p", "bird", ref, str(tmp_path / f"{ref}.mp3"), 5, "ab" * 32, 5)


def recording(ref: str) -> Recording:
    return Recording(provider="bird", profile="p", ref=ref, id=ref, size_bytes=5)


# ---------------------------------------------------------------------------
# the group: when rows are committed


def test_rows_wait_for_their_group_and_a_flush_commits_every_one_and_closes_their_journal(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.sqlite3"
    with Archive(db) as archive:
        journal = Journal(db)
        group = GroupCommit(archive, journal, max_rows=64, max_age=3600)
        for n in range(10):
            journal.intend(recording(f"r{n}"), tmp_path / f"r{n}.mp3", manifest=None, sidecar=None)
            group.add(row(tmp_path, f"r{n}"))
        assert committed(db) == set()  # still one group, not ten transactions
        assert journal_files(db) != []  # ...and every file in it is journaled
        group.flush()
        assert committed(db) == {f"r{n}" for n in range(10)}
        group.close()
        journal.close()
    assert journal_files(db) == []  # nothing open: the run's journal is gone


def test_a_full_group_commits_without_being_asked(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    with Archive(db) as archive:
        group = GroupCommit(archive, max_rows=4, max_age=3600)
        for n in range(6):
            group.add(row(tmp_path, f"r{n}"))
        assert committed(db) == {"r0", "r1", "r2", "r3"}
        group.close()


def test_a_group_commits_once_its_oldest_row_has_waited_its_time(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    with Archive(db) as archive:
        group = GroupCommit(archive, max_rows=64, max_age=0.05)
        group.add(row(tmp_path, "r0"))
        wait_for(lambda: committed(db) == {"r0"})
        group.close()


def test_what_the_earlier_sinks_wrote_is_synced_before_the_group_commits(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    seen: list[set[str]] = []
    with Archive(db) as archive:
        group = GroupCommit(archive, before=lambda: seen.append(committed(db)), max_rows=2, max_age=3600)
        for n in range(4):
            group.add(row(tmp_path, f"r{n}"))
        group.close()
    assert seen == [set(), {"r0", "r1"}]  # each sync came before its own group's rows


def test_a_failed_group_commit_is_raised_and_its_files_stay_journaled(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    with Archive(db, timeout=0.1) as archive:
        journal = Journal(db)
        group = GroupCommit(archive, journal, max_rows=64, max_age=3600)
        journal.intend(recording("r0"), tmp_path / "r0.mp3", manifest=None, sidecar=None)
        group.add(row(tmp_path, "r0"))
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the archive for too long
        try:
            with pytest.raises(LocalIOError, match="cannot write the archive"):
                group.flush()
            with pytest.raises(LocalIOError):
                group.add(row(tmp_path, "r1"))  # later rows are refused with the same error
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        group.close()
        journal.close()
    assert committed(db) == set()
    [left] = journal_files(db)  # the next run finishes r0 from here
    assert [json.loads(line)["key"][2] for line in left.read_text().splitlines()] == ["r0"]


# ---------------------------------------------------------------------------
# whole runs: killed mid-group, stopped by SIGINT, deleting at the provider

_KILLED_MID_GROUP = textwrap.dedent(
    """
    import hashlib, os, signal, sys, types
    from pathlib import Path
    from recfetch.download import FileResult
    from recfetch.jobs.context import Silent
    from recfetch.jobs.sinks import ArchiveSink, ManifestSink, MetadataSink, Notes, Sinks
    from recfetch.providers.base import Recording

    db, out, manifest, refs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
    provider = types.SimpleNamespace(name="bird", profile="sandbox")
    notes = Notes(Silent(), None)
    sinks = Sinks([ManifestSink(manifest, provider), MetadataSink(), ArchiveSink(db, notes)], notes)
    with sinks:
        sinks.sinks[-1].group.max_age = 3600  # the group waits for more files
        for ref in refs:
            final = out / f"{ref}.mp3"  # the test put the bytes there: the engine's rename
            data = final.read_bytes()
            rec = Recording(provider="bird", profile="sandbox", ref=ref, id=ref, size_bytes=len(data))
            sinks.intend(rec, final)
            digest = hashlib.sha256(data).hexdigest()
            sinks.commit(rec, FileResult(ref, "downloaded", None, final, len(data), digest, None))
        os.kill(os.getpid(), signal.SIGKILL)  # before the group commits
    """
)


def test_a_run_killed_before_its_group_commits_is_finished_by_the_next_run_without_downloading_again(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    bird = sandbox_profile["bird"]
    refs = bird.ids(status="available")[:3]
    out, manifest = tmp_path / "out", tmp_path / "manifest.jsonl"
    out.mkdir()
    db = Path(os.environ["RECFETCH_STATE_DIR"]) / "archive.sqlite3"
    for ref in refs:
        (out / f"{ref}.mp3").write_bytes(bird.content(ref))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_GROUP, str(db), str(out), str(manifest), *refs],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert committed(db) == set() and len(manifest.read_text().splitlines()) == 3

    res = cli("bird", "pull", "-o", str(out), "--manifest", str(manifest), "--write-metadata", "--jsonl")
    assert res.exit_code == 0, res.output
    events = {e["ref"]: e for e in res.jsonl() if e.get("type") == "file"}
    for ref in refs:
        assert events[ref]["reason"] == "in archive"  # recovered, not downloaded twice
        assert f"({ref}), left complete but unrecorded" in res.stderr
        assert json.loads((out / f"{ref}.mp3.json").read_text())["ref"] == ref
    assert committed(db) == set(bird.ids(status="available"))
    lines = [json.loads(line)["ref"] for line in manifest.read_text().splitlines()]
    assert sorted(lines) == sorted(set(lines)) and set(lines) == committed(db)  # each file once
    assert journal_files(db) == []


def test_sigint_commits_the_rows_of_every_file_the_run_reported(
    sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    bird = sandbox_profile["bird"]
    for _ in range(30):
        bird.add_recording(size=30_000)
    sandbox_profile.storage.throttle(150_000)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "recfetch", "bird", "pull", "-o", str(out), "-j", "2", "--jsonl"]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[dict[str, Any]] = []
        while sum(e.get("outcome") == "downloaded" for e in lines) < 3:
            lines.append(json.loads(proc.stdout.readline()))
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        sandbox_profile.storage.throttle(None)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines += [json.loads(x) for x in rest.splitlines()]
    downloaded = {e["ref"] for e in lines if e.get("outcome") == "downloaded"}
    db = Path(os.environ["RECFETCH_STATE_DIR"]) / "archive.sqlite3"
    assert committed(db) == downloaded
    assert journal_files(db) == []  # every commit closed: nothing left for the next run to finish
    assert "recorded" not in err


def test_delete_after_deletes_a_recording_only_once_its_archive_row_is_committed(
    cli: Any, sandbox_profile: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Path(os.environ["RECFETCH_STATE_DIR"]) / "archive.sqlite3"
    seen: dict[str, bool] = {}
    cls = REGISTRY["bird"]
    original = cls.delete

    def checking(self: Any, rec: Recording) -> Any:
        seen[rec.ref] = rec.ref in committed(db)  # as another process would see it, right now
        return original(self, rec)

    monkeypatch.setattr(cls, "delete", checking)
    out = Path(os.environ["RECFETCH_STATE_DIR"]).parent / "out"
    res = cli("bird", "pull", "-o", str(out), "--delete-after", "--yes", "--jsonl")
    assert res.exit_code == 0, res.output
    downloaded = {e["ref"] for e in res.jsonl() if e.get("outcome") == "downloaded"}
    assert downloaded and set(seen) == downloaded
    assert all(seen.values()), seen


def test_the_watermark_moves_only_after_every_row_of_the_run_is_committed(
    cli: Any, sandbox_profile: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recfetch.state import Watermarks

    db = Path(os.environ["RECFETCH_STATE_DIR"]) / "archive.sqlite3"
    at_move: list[set[str]] = []
    original = Watermarks.set

    def checking(self: Watermarks, *args: Any) -> None:
        at_move.append(committed(db))  # what a run reading the archive right now would see
        original(self, *args)

    monkeypatch.setattr(Watermarks, "set", checking)
    out = Path(os.environ["RECFETCH_STATE_DIR"]).parent / "out"
    res = cli("bird", "pull", "-o", str(out), "--incremental", "--jsonl")
    assert res.exit_code == 0, res.output
    downloaded = {e["ref"] for e in res.jsonl() if e.get("outcome") == "downloaded"}
    assert downloaded and at_move == [downloaded]


# ---------------------------------------------------------------------------
# the journal file: compacted while a run goes on, never touched while its run lives


def test_a_long_runs_journal_is_compacted_to_its_open_entries_and_still_finishes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recfetch.jobs.journal as journal_mod

    monkeypatch.setattr(journal_mod, "COMPACT_AT", 1)  # compact after every group
    db = tmp_path / "a.sqlite3"
    left = tmp_path / "left.mp3"
    left.write_bytes(b"12345")
    with Archive(db) as archive:
        journal = Journal(db)
        journal.intend(recording("left"), left, manifest=None, sidecar=None)  # never committed
        group = GroupCommit(archive, journal, max_rows=4, max_age=3600)
        for n in range(40):
            journal.intend(recording(f"r{n}"), tmp_path / f"r{n}.mp3", manifest=None, sidecar=None)
            group.add(row(tmp_path, f"r{n}"))
        [path] = journal_files(db)  # 41 intents and 10 groups written: only the open entry is kept
        assert [json.loads(x)["key"][2] for x in path.read_text().splitlines()] == ["left"]
        group.close()
        journal.close()  # the run dies with "left" open

    messages: list[str] = []
    with Archive(db) as archive:
        assert journal_mod.reconcile(archive, messages.append) == 1
    assert "left" in committed(db) and journal_files(db) == []
    assert messages and "(left), left complete but unrecorded" in messages[0]


def test_a_live_runs_journal_is_left_alone_and_a_dead_compactions_temp_file_is_removed(
    tmp_path: Path,
) -> None:
    import recfetch.jobs.journal as journal_mod

    db = tmp_path / "a.sqlite3"
    final = tmp_path / "live.mp3"
    final.write_bytes(b"12345")
    live = Journal(db)
    live.intend(recording("live"), final, manifest=None, sidecar=None)  # its run still holds the lock
    [path] = journal_files(db)
    stale = path.with_name(f".{path.name.replace('pending-', 'pending-1-')}.tmp")
    stale.write_text("{}\n")  # a dead run's compaction, cut short before its rename
    with Archive(db) as archive:
        assert journal_mod.reconcile(archive, lambda m: None) == 0
    assert committed(db) == set() and journal_files(db) == [path]
    assert not stale.exists()
    live.close()
