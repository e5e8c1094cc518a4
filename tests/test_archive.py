"""The state that makes `pull` cron-safe: the SQLite archive, the pull lock, the watermarks."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recfetch.errors import ConfigError, LockedError
from recfetch.providers.base import Recording
from recfetch.state import Archive, Lock, TokenCache, Watermarks, default_archive_path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class _Result:
    path: Path
    bytes: int
    sha256: str | None


def _recording(ref: str, size: int | None = 5, provider: str = "kazoo", profile: str = "p") -> Recording:
    return Recording(provider=provider, profile=profile, ref=ref, id=ref, size_bytes=size)


def _file(tmp_path: Path, name: str, data: bytes = b"hello") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_archive_remembers_a_verified_download_by_profile_provider_and_ref(tmp_path: Path) -> None:
    path = _file(tmp_path, "a.mp3")
    with Archive(tmp_path / "state" / "archive.sqlite3") as archive:
        archive.add(_recording("r1"), _Result(path, 5, "ab" * 32))
        assert archive.has("kazoo", "p", "r1") == path.resolve()
        assert archive.has("kazoo", "other-profile", "r1") is None
        assert archive.has("bird", "p", "r1") is None
        entry = archive.get("kazoo", "p", "r1")
    assert entry is not None
    assert (entry.bytes, entry.sha256, entry.provider_size) == (5, "ab" * 32, 5)
    assert entry.downloaded_at.endswith("Z")


def test_archive_survives_reopening_and_is_private(tmp_path: Path) -> None:
    db = tmp_path / "state" / "archive.sqlite3"
    path = _file(tmp_path, "a.mp3")
    with Archive(db) as archive:
        archive.add(_recording("r1"), _Result(path, 5, None))
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    with Archive(db) as archive:
        assert archive.has("kazoo", "p", "r1") == path.resolve()
        assert [e.ref for e in archive.entries()] == ["r1"]


def test_archived_recording_whose_file_was_deleted_counts_as_not_downloaded(tmp_path: Path) -> None:
    path = _file(tmp_path, "a.mp3")
    with Archive(tmp_path / "a.sqlite3") as archive:
        archive.add(_recording("r1"), _Result(path, 5, None))
        path.unlink()
        assert archive.has("kazoo", "p", "r1") is None
        assert archive.get("kazoo", "p", "r1") is not None  # the history stays


def test_archive_uses_wal_so_readers_in_other_processes_are_not_blocked(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    path = _file(tmp_path, "a.mp3")
    with Archive(db) as archive:
        archive.add(_recording("r1"), _Result(path, 5, None))
        mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        # A reader in another process sees the committed row while we hold the connection open.
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sqlite3; print(sqlite3.connect({str(db)!r}).execute("
                "'select count(*) from downloads').fetchone()[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert out.stdout.strip() == "1"


def test_archive_accepts_writes_from_many_threads(tmp_path: Path) -> None:
    path = _file(tmp_path, "a.mp3")
    with Archive(tmp_path / "a.sqlite3") as archive:

        def writer(n: int) -> None:
            for i in range(25):
                archive.add(_recording(f"r{n}-{i}"), _Result(path, 5, None))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(archive.entries()) == 200


def _crash_mid_transaction(db: str) -> None:
    archive = Archive(Path(db))
    archive._db.execute("BEGIN IMMEDIATE")
    archive._db.execute("INSERT INTO downloads VALUES ('p', 'kazoo', 'half', '/x', 1, NULL, NULL, 'now')")
    os._exit(9)  # killed before COMMIT


def test_a_crash_mid_write_leaves_the_archive_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    path = _file(tmp_path, "a.mp3")
    with Archive(db) as archive:
        archive.add(_recording("r1"), _Result(path, 5, None))
    proc = multiprocessing.get_context("fork").Process(target=_crash_mid_transaction, args=(str(db),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 9
    with Archive(db) as archive:
        assert [e.ref for e in archive.entries()] == ["r1"]
        assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_unusable_archive_path_is_a_config_error_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(ConfigError) as info:
        Archive(tmp_path / "dir.sqlite3")
    assert "--archive" in info.value.one_line()


def test_default_archive_lives_in_the_state_dir(tmp_path: Path) -> None:
    assert default_archive_path(tmp_path) == tmp_path / "archive.sqlite3"


# ---------------------------------------------------------------------------
# lock


def test_second_lock_for_same_profile_and_provider_fails_naming_the_holder_pid(tmp_path: Path) -> None:
    with Lock(tmp_path, "work", "kazoo"):
        with pytest.raises(LockedError) as info:
            Lock(tmp_path, "work", "kazoo").acquire()
        assert f"PID {os.getpid()}" in str(info.value)
        assert "work/kazoo" in str(info.value)
        assert info.value.exit_code == 11
        # Other providers and profiles are independent.
        with Lock(tmp_path, "work", "bird"), Lock(tmp_path, "home", "kazoo"):
            pass
    with Lock(tmp_path, "work", "kazoo"):  # released on exit
        pass


def test_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path; from recfetch.state import Lock; "
        f"Lock(Path({str(tmp_path)!r}), 'work', 'kazoo').acquire(); os._exit(0)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, env=env)
    lock = Lock(tmp_path, "work", "kazoo")
    assert lock.holder() not in (None, os.getpid())  # the dead holder's PID is still written
    with lock:
        assert lock.holder() == os.getpid()


def test_stale_pid_file_without_a_lock_is_overwritten(tmp_path: Path) -> None:
    lock = Lock(tmp_path, "work", "kazoo")
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text("999999\n")
    with lock:
        assert lock.holder() == os.getpid()


def test_an_unwritable_state_dir_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "locks").write_text("a file where the folder should be")
    with pytest.raises(ConfigError) as info:
        Lock(tmp_path, "work", "kazoo").acquire()
    assert "RECFETCH_STATE_DIR" in info.value.one_line()


def test_profile_names_cannot_escape_the_locks_folder(tmp_path: Path) -> None:
    lock = Lock(tmp_path, "../../evil", "kazoo")
    assert lock.path.parent == tmp_path / "locks"
    with lock:
        assert lock.path.exists()


# ---------------------------------------------------------------------------
# watermarks and the token cache


def test_watermarks_are_per_profile_and_provider(tmp_path: Path) -> None:
    marks = Watermarks(tmp_path)
    assert marks.get("p", "kazoo") is None
    when = datetime(2025, 11, 20, 14, 3, 11, tzinfo=UTC)
    marks.set("p", "kazoo", when)
    assert marks.get("p", "kazoo") == when
    assert marks.get("p", "bird") is None
    assert marks.get("q", "kazoo") is None
    marks.set("p", "kazoo", when + timedelta(days=1))
    assert marks.get("p", "kazoo") == when + timedelta(days=1)


def test_a_corrupt_watermark_reads_as_none_so_the_next_run_lists_everything(tmp_path: Path) -> None:
    marks = Watermarks(tmp_path)
    marks.set("p", "kazoo", datetime.now(UTC))
    next(marks.dir.iterdir()).write_text("{not json")
    assert marks.get("p", "kazoo") is None


def test_token_cache_still_works_beside_the_new_state(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path, "kazoo", "identity")
    cache.save("tok", expires_at=None)
    assert cache.load()["token"] == "tok"  # type: ignore[index]
