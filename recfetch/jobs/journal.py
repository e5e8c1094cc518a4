"""The commit journal: every file on disk is either recorded (archive, manifest, sidecar) or a `.part`.

A run journals a commit (`Journal.intend`) before the engine may rename the
`.part` into place; the archive row that ends the commit is committed later, in
a group (`jobs.groupcommit`), after which the journal marks the group done. A run
killed in between leaves open entries; the next run that opens the archive
finishes those commits from what the entry holds (manifest path, sidecar text)
and the file itself (size and sha256, re-read), without asking the provider.

The journal is a file per run beside the archive (`archive.sqlite3.pending-PID-XXXX.jsonl`):
one appended JSON line per intent, abandon and done group, never fsynced (like the
archive's WAL it survives a kill -9; see the README's durability note). The run
holds an flock on it, so another run tells a live journal (locked) from one left
by a dead run (lockable). Entries in the archive's `pending` table, the journal of
earlier versions, are finished the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from recfetch import manifest as manifest_mod
from recfetch import naming
from recfetch.errors import LocalIOError, RecfetchError
from recfetch.fsutil import private_dir, utc_stamp, write_private
from recfetch.providers.base import Recording
from recfetch.state import Archive, ArchiveRow, Pending

Key = tuple[str, str, str]
"""(profile, provider, ref)"""

COMPACT_AT = 1 << 20
"""Rewrite a run's journal with only its open entries once it has grown past this many bytes."""


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def journal_files(archive_path: Path, *, temporary: bool = False) -> list[Path]:
    """The journal files of runs on the archive (live or dead), or their compactions' temp files."""
    pattern = f"{glob.escape(archive_path.name)}.pending-*.jsonl"
    return sorted(archive_path.parent.glob(f".{pattern}.tmp" if temporary else pattern))


class Journal:
    """This run's journal file: created at the first intent, removed when a run ends with none open."""

    def __init__(self, archive_path: Path) -> None:
        self.archive_path = archive_path
        self.path: Path | None = None
        self._fd = -1
        self._size = 0
        self._open: dict[Key, bytes] = {}
        """Each open entry's line, to compact the file."""
        self._lock = threading.Lock()

    def intend(self, recording: Recording, path: Path, *, manifest: Path | None, sidecar: str | None) -> None:
        """Journal a commit before the file can appear at ``path`` (LocalIOError: cannot write it)."""
        entry = {
            "op": "intend",
            "key": [recording.profile, recording.provider, recording.ref],
            "path": str(path.resolve()),
            "provider_size": recording.size_bytes,
            "manifest": str(manifest.resolve()) if manifest is not None else None,
            "sidecar": sidecar,
            "started_at": utc_stamp(),
        }
        line = _line(entry)
        with self._lock:
            self._append(line)
            self._open[(recording.profile, recording.provider, recording.ref)] = line

    def abandon(self, key: Key) -> None:
        """No final file came of it (failed, interrupted, already there)."""
        with self._lock:
            if self._open.pop(key, None) is not None:
                self._append(_line({"op": "abandon", "key": list(key)}))

    def done(self, keys: Iterable[Key]) -> None:
        """These commits' archive rows are committed: one line for the group."""
        with self._lock:
            closed = [list(key) for key in keys if self._open.pop(key, None) is not None]
            if not closed:
                return
            self._append(_line({"op": "done", "keys": closed}))
            if self._size >= COMPACT_AT:
                self._compact()

    def close(self) -> None:
        """Remove the file when no entry is open; otherwise leave it for the next run."""
        with self._lock:
            if self._fd < 0:
                return
            if not self._open and self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)  # drops the flock: an open entry is now the next run's to finish
            self._fd = -1

    def _append(self, line: bytes) -> None:
        try:
            if self._fd < 0:
                name = f"{self.archive_path.name}.pending-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
                self.path = private_dir(self.archive_path.parent) / name
                self._fd = _locked(self.path, os.O_EXCL)
            os.write(self._fd, line)
        except OSError as exc:
            raise LocalIOError(
                f"cannot write the commit journal {self.path}: {exc.strerror}",
                hint="free space on the archive's disk (or pass another --archive), then run again",
            ) from None
        self._size += len(line)

    def _compact(self) -> None:
        """Replace the file with one holding only the open entries (locked before it appears)."""
        assert self.path is not None
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        payload = b"".join(self._open.values())
        try:
            fd = _locked(tmp, os.O_TRUNC)
        except OSError:
            return  # the long file is still correct; try again after the next group
        try:
            os.write(fd, payload)
            os.replace(tmp, self.path)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        os.close(self._fd)
        self._fd, self._size = fd, len(payload)


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")


def _locked(path: Path, flag: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | flag, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


# ---------------------------------------------------------------------------
# finishing what a dead run left open


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _final(archive: Archive, entry: Pending) -> Path | None:
    """Where the committed file is: the journaled path, or its typed twin (`.bin` renamed by type)."""
    candidates = [entry.path]
    if entry.path.suffix == naming.UNKNOWN_EXT:
        candidates += [entry.path.with_suffix(ext) for ext in sorted(naming.media_extensions())]
    for path in candidates:
        if path.is_file() and not path.is_symlink():
            owner = archive.owner(path)
            if owner is None or owner == (entry.provider, entry.ref):
                return path
    return None


def _in_manifest(manifest: Path, ref: str, path: Path, sha256: str) -> bool:
    try:
        entries = manifest_mod.read_entries(manifest)
        return any(
            e is not None and e.get("ref") == ref and e.get("path") == str(path) and e.get("sha256") == sha256
            for _, e in entries
        )
    except RecfetchError:
        return False


def _finish(archive: Archive, entry: Pending, final: Path) -> bool:
    """Write what is missing of the commit (manifest line, sidecar, archive row); False: not our file."""
    size, digests = manifest_mod.hash_file(final)
    sha256 = digests["sha256"]
    if size == 0 or (entry.provider_size is not None and size != entry.provider_size):
        return False  # not the verified file the engine renames into place: record nothing
    if entry.manifest is not None and not _in_manifest(entry.manifest, entry.ref, final, sha256):
        writer = manifest_mod.ManifestWriter(entry.manifest)
        try:
            writer.append(
                manifest_mod.entry_for(
                    provider=entry.provider,
                    profile=entry.profile,
                    ref=entry.ref,
                    path=final,
                    size=size,
                    sha256=sha256,
                    provider_size=entry.provider_size,
                )
            )
        finally:
            writer.close()
    if entry.sidecar is not None:
        write_private(sidecar_path(final), entry.sidecar.encode("utf-8"))
    where = str(final.resolve())
    archive.add_row(
        ArchiveRow(entry.profile, entry.provider, entry.ref, where, size, sha256, entry.provider_size)
    )
    _remove_leftovers(final)
    return True


def _remove_leftovers(final: Path, *, committed: bool = True) -> None:
    """What a kill can leave beside a file: a sidecar's temp file, and once committed the `.part.meta`."""
    leftovers = [final.with_name(final.name + ".part.meta")] if committed else []
    leftovers += final.parent.glob(f".{glob.escape(sidecar_path(final).name)}.*.tmp")
    for path in leftovers:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _settle(archive: Archive, entry: Pending, say: Callable[[str], None]) -> bool | None:
    """Finish one open commit: True recovered, False nothing to record, None try again next run."""
    final = _final(archive, entry)
    if final is None:
        # The rename never happened: the `.part` (if any) resumes when the recording comes up.
        _remove_leftovers(entry.path, committed=False)
        return False
    try:
        recorded = _finish(archive, entry, final)
    except (OSError, RecfetchError) as exc:
        say(f"warning: could not record {final} left by an interrupted run: {exc}; trying again next run")
        return None
    if recorded:
        say(f"recorded {final} ({entry.ref}), left complete but unrecorded by an interrupted run")
    return recorded


def _claim(path: Path) -> int | None:
    """A read descriptor holding the flock of a dead run's journal, or None (live, or gone)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)  # finished (or compacted) while we waited
    except OSError:
        os.close(fd)
        return None
    return fd


def _open_entries(fd: int) -> dict[Key, tuple[bytes, Pending]]:
    """The entries of a journal file that were neither abandoned nor done, in order."""
    entries: dict[Key, tuple[bytes, Pending]] = {}
    with os.fdopen(os.dup(fd), "rb") as fh:
        for raw in fh:
            try:
                item = json.loads(raw)
                if item["op"] == "intend":
                    key: Key = tuple(item["key"])
                    manifest = Path(item["manifest"]) if item.get("manifest") else None
                    pending = Pending(
                        *key, Path(item["path"]), item.get("provider_size"), manifest, item.get("sidecar"), 0
                    )
                    entries[key] = (raw, pending)
                elif item["op"] == "abandon":
                    entries.pop(tuple(item["key"]), None)
                else:
                    for done in item["keys"]:
                        entries.pop(tuple(done), None)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the kill: its rename never happened
    return entries


def _reconcile_file(archive: Archive, path: Path, say: Callable[[str], None]) -> int:
    fd = _claim(path)
    if fd is None:
        return 0
    recovered = 0
    try:
        retry: list[bytes] = []
        for raw, entry in _open_entries(fd).values():
            outcome = _settle(archive, entry, say)
            recovered += outcome is True
            if outcome is None:
                retry.append(raw)
        if retry:
            write_private(path, b"".join(retry))
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        say(f"warning: could not finish the commit journal {path}: {exc.strerror}; trying again next run")
    finally:
        os.close(fd)
    return recovered


def reconcile(archive: Archive, say: Callable[[str], None]) -> int:
    """Finish the commits interrupted runs left open; how many files were recovered."""
    recovered = 0
    for entry in archive.pending():  # the `pending` table of earlier versions
        if _alive(entry.pid):
            continue  # another run is in the middle of it
        outcome = _settle(archive, entry, say)
        recovered += outcome is True
        if outcome is not None:
            archive.abandon(entry.profile, entry.provider, entry.ref)
    for path in journal_files(archive.path):
        recovered += _reconcile_file(archive, path, say)
    for path in journal_files(archive.path, temporary=True):  # a compaction cut short by a kill
        fd = _claim(path)
        if fd is not None:
            path.unlink(missing_ok=True)  # its entries are still in the journal it was to replace
            os.close(fd)
    return recovered
