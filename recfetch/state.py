"""Per-user state outside the user's TOML: cached API tokens, the archive, locks and watermarks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from recfetch.errors import ConfigError, LocalIOError, LockedError
from recfetch.fsutil import private_dir, utc_stamp, write_private

if TYPE_CHECKING:
    from recfetch.providers.base import Recording


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write a 0600 file atomically in a 0700 state folder."""
    private_dir(path.parent, tighten=True)
    write_private(path, payload)


class TokenCache:
    """Session tokens a provider obtained (e.g. Kazoo's auth_token), one 0600 file each.

    The file name is a hash of the identity (profile, base URL, login), so a
    changed credential never picks up another identity's token; the token
    itself is never written to the user's TOML, logs or output.
    """

    def __init__(self, state_dir: Path, provider: str, identity: str) -> None:
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
        self.path = state_dir / "tokens" / f"{provider}-{digest}.json"

    def load(self) -> dict[str, Any] | None:
        """The cached entry, or None when absent, unreadable or expired."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return None
        expires = data.get("expires_at")
        if isinstance(expires, int | float) and expires <= time.time():
            return None
        return data

    def save(self, token: str, *, expires_at: float | None = None, **extra: Any) -> None:
        entry = {"token": token, "expires_at": expires_at, "saved_at": time.time(), **extra}
        _atomic_write(self.path, json.dumps(entry).encode("utf-8"))

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# ---------------------------------------------------------------------------
# archive


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One verified download: where it went and what it hashed to."""

    profile: str
    provider: str
    ref: str
    path: Path
    bytes: int
    sha256: str | None
    provider_size: int | None
    downloaded_at: str
    location: str = ""
    """The path column as written: a file path, or an object URL (`s3://BUCKET/KEY`)."""


@dataclass(frozen=True, slots=True)
class ArchiveRow:
    """A verified download about to be recorded (`Archive.add_rows`)."""

    profile: str
    provider: str
    ref: str
    where: str
    """A file's resolved path, or an object URL (`s3://BUCKET/KEY`) as it is."""
    size: int
    sha256: str | None
    provider_size: int | None

    @classmethod
    def of(cls, recording: Recording, result: Any, *, location: str | None = None) -> ArchiveRow:
        """The row for ``recording`` downloaded as ``result`` (``location``: an object URL instead)."""
        where = location if location is not None else str(Path(result.path).resolve())
        return cls(
            recording.profile,
            recording.provider,
            recording.ref,
            where,
            int(result.bytes),
            result.sha256,
            recording.size_bytes,
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.profile, self.provider, self.ref)

    def values(self, stamp: str) -> tuple[Any, ...]:
        """The `downloads` columns in table order, ``stamp`` as downloaded_at."""
        return (*self.key, self.where, self.size, self.sha256, self.provider_size, stamp)


_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS downloads (
    profile       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    ref           TEXT NOT NULL,
    path          TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    sha256        TEXT,
    provider_size INTEGER,
    downloaded_at TEXT NOT NULL,
    PRIMARY KEY (profile, provider, ref)
)
""",
    """
CREATE INDEX IF NOT EXISTS downloads_by_path ON downloads (path)
""",
    # The commit journal of earlier versions (now a journal file beside the archive,
    # `jobs.journal`); entries left in it are still finished at the next start.
    """
CREATE TABLE IF NOT EXISTS pending (
    profile       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    ref           TEXT NOT NULL,
    path          TEXT NOT NULL,
    provider_size INTEGER,
    manifest      TEXT,
    sidecar       TEXT,
    pid           INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    PRIMARY KEY (profile, provider, ref)
)
""",
)


@dataclass(frozen=True, slots=True)
class Pending:
    """A commit that was under way: the file may be final already, its records not yet written.

    Everything needed to finish the commit without the provider is here: where the
    manifest line goes (``manifest``) and the sidecar's text (``sidecar``).
    """

    profile: str
    provider: str
    ref: str
    path: Path
    provider_size: int | None
    manifest: Path | None
    sidecar: str | None
    pid: int


def default_archive_path(state_dir: Path, shard: str | None = None) -> Path:
    """The archive; a `--shard` run keeps its own (``archive.shard-2of4.sqlite3``), so shards never wait."""
    return state_dir / (f"archive.shard-{shard}.sqlite3" if shard else "archive.sqlite3")


class Archive:
    """Recordings already downloaded and verified, in SQLite, keyed by (profile, provider, ref).

    WAL mode lets other processes read while a pull writes; every write is one
    transaction (a run commits its rows in groups, `jobs.groupcommit`), so a crash
    mid-write leaves the previous state. One connection
    is shared by the batch's worker threads behind a lock (writes are tiny next
    to a download, and SQLite serialises writers anyway).
    """

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        try:
            private_dir(path.parent, tighten=True)
            # Create the file 0600 before SQLite does (it would use the umask);
            # the -wal and -shm files copy the database file's mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(
                str(path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a crash (kill -9) loses nothing and never corrupts; only a
            # power cut can lose the last commits (then a file may be downloaded again).
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._tx():
                for statement in _SCHEMA:
                    self._db.execute(statement)
        except (OSError, sqlite3.Error, LocalIOError) as exc:
            raise ConfigError(
                f"cannot open the archive {path}: {_reason(exc)}",
                hint="pass another file with --archive, or --no-archive",
            ) from None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a failed write (full disk, locked for too long) is a LocalIOError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            raise LocalIOError(
                f"cannot write the archive {self.path}: {exc}",
                hint="free space on its disk (or pass another --archive), then run again",
            ) from None

    def get(self, provider: str, profile: str, ref: str) -> ArchiveEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT profile, provider, ref, path, bytes, sha256, provider_size, downloaded_at "
                "FROM downloads WHERE profile = ? AND provider = ? AND ref = ?",
                (profile, provider, ref),
            ).fetchone()
        return _entry(row) if row else None

    def get_many(self, provider: str, profile: str, refs: list[str]) -> dict[str, ArchiveEntry]:
        """The rows of those ``refs`` the archive has, in one query per 500 refs (a listing page)."""
        found: dict[str, ArchiveEntry] = {}
        for start in range(0, len(refs), 500):
            chunk = refs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(
                    "SELECT profile, provider, ref, path, bytes, sha256, provider_size, downloaded_at "
                    f"FROM downloads WHERE profile = ? AND provider = ? AND ref IN ({marks})",
                    (profile, provider, *chunk),
                ).fetchall()
            found.update((row[2], _entry(row)) for row in rows)
        return found

    def has(self, provider: str, profile: str, ref: str) -> Path | None:
        """The archived file's path when the recording was downloaded and the file is still there.

        An archived file that has since disappeared returns None, so the
        recording is downloaded again: the archive must not be the reason a
        recording that still exists at the provider is missing locally.
        """
        entry = self.get(provider, profile, ref)
        if entry is None or not entry.path.exists():
            return None
        return entry.path

    def add(self, recording: Recording, result: Any, *, location: str | None = None) -> None:
        """Record a verified download (called only after the file is final and checked)."""
        self.add_rows([ArchiveRow.of(recording, result, location=location)])

    def add_rows(self, rows: Sequence[ArchiveRow]) -> None:
        """Record verified downloads in one transaction (a group commit: see `jobs.groupcommit`)."""
        stamp = utc_stamp()
        with self._lock, self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO downloads "
                "(profile, provider, ref, path, bytes, sha256, provider_size, downloaded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [row.values(stamp) for row in rows],
            )

    def add_row(self, row: ArchiveRow) -> None:
        """Record one verified download and close its entry in the legacy `pending` table, together."""
        with self._lock, self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO downloads "
                "(profile, provider, ref, path, bytes, sha256, provider_size, downloaded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row.values(utc_stamp()),
            )
            db.execute(
                "DELETE FROM pending WHERE profile = ? AND provider = ? AND ref = ?",
                (row.profile, row.provider, row.ref),
            )

    def owner(self, path: Path) -> tuple[str, str] | None:
        """(provider, ref) of the recording the archive says owns ``path``, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT provider, ref FROM downloads WHERE path = ? LIMIT 1", (str(path.resolve()),)
            ).fetchone()
        return (row[0], row[1]) if row else None

    # -- the `pending` table: commit journal entries left by versions before the journal file ----

    def abandon(self, profile: str, provider: str, ref: str) -> None:
        """Drop a `pending` entry (it was finished, or nothing came of it)."""
        with self._lock, self._tx() as db:
            db.execute(
                "DELETE FROM pending WHERE profile = ? AND provider = ? AND ref = ?", (profile, provider, ref)
            )

    def pending(self) -> list[Pending]:
        with self._lock:
            rows = self._db.execute(
                "SELECT profile, provider, ref, path, provider_size, manifest, sidecar, pid FROM pending"
            ).fetchall()
        return [
            Pending(r[0], r[1], r[2], Path(r[3]), r[4], Path(r[5]) if r[5] else None, r[6], int(r[7]))
            for r in rows
        ]

    def forget(self, provider: str, profile: str, ref: str) -> None:
        with self._lock, self._tx() as db:
            db.execute(
                "DELETE FROM downloads WHERE profile = ? AND provider = ? AND ref = ?",
                (profile, provider, ref),
            )

    def entries(self, provider: str | None = None, profile: str | None = None) -> list[ArchiveEntry]:
        sql = (
            "SELECT profile, provider, ref, path, bytes, sha256, provider_size, downloaded_at FROM downloads"
        )
        where, args = [], []
        if provider is not None:
            where.append("provider = ?")
            args.append(provider)
        if profile is not None:
            where.append("profile = ?")
            args.append(profile)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY downloaded_at, ref", args).fetchall()
        return [_entry(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entry(row: tuple[Any, ...]) -> ArchiveEntry:
    return ArchiveEntry(row[0], row[1], row[2], Path(row[3]), int(row[4]), row[5], row[6], row[7], row[3])


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


# ---------------------------------------------------------------------------
# per-(profile, provider) files: locks and watermarks


def _key_name(profile: str, provider: str) -> str:
    """A file name for (profile, provider) that no profile name can escape from."""
    return f"{quote(profile, safe='')}.{provider}"


class Lock:
    """One `pull` per profile and provider: flock on a file that also names the holder's PID.

    The kernel drops a flock when its process dies, so a lock left by a crashed
    or killed pull is simply taken over; the PID inside is only for the message
    (and a stale one is overwritten). The file is never unlinked: unlinking a
    lock file lets two processes lock two different inodes at once.
    """

    def __init__(self, state_dir: Path, profile: str, provider: str) -> None:
        self.profile = profile
        self.provider = provider
        self.path = state_dir / "locks" / f"{_key_name(profile, provider)}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            private_dir(self.path.parent, tighten=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the pull lock {self.path}: {_reason(exc)}",
                hint="make the state directory writable or point RECFETCH_STATE_DIR elsewhere",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "unknown PID"
            raise LockedError(
                f"another pull ({who}) is running for {self.profile}/{self.provider}",
                hint="wait for it to finish; a lock left by a dead process is taken over automatically",
                provider=self.provider,
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def holder(self) -> int | None:
        """The PID written in the lock file (may be stale)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return _read_pid(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class Watermarks:
    """`pull --incremental`: per profile and provider, the end of the last fully successful run."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "watermarks"

    def _path(self, profile: str, provider: str) -> Path:
        return self.dir / f"{_key_name(profile, provider)}.json"

    def get(self, profile: str, provider: str) -> datetime | None:
        try:
            data = json.loads(self._path(profile, provider).read_text("utf-8"))
            value = datetime.fromisoformat(str(data["until"]).replace("Z", "+00:00"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def set(self, profile: str, provider: str, until: datetime) -> None:
        until = until.astimezone(UTC)
        payload = {
            "profile": profile,
            "provider": provider,
            # Milliseconds, truncated: a watermark may only err towards listing more.
            "until": until.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "saved_at": utc_stamp(),
        }
        _atomic_write(self._path(profile, provider), json.dumps(payload).encode("utf-8"))

    def clear(self, profile: str, provider: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(profile, provider).unlink()
