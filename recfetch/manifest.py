"""Chain of custody: an append-only JSONL manifest of downloaded files, and re-verifying it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recfetch.errors import UsageError
from recfetch.fsutil import open_append_private, utc_stamp

CHUNK = 1024 * 1024
FIELDS = ("provider", "profile", "ref", "path", "bytes", "sha256", "provider_size", "retrieved_at")


def hash_file(path: Path, *algorithms: str) -> tuple[int, dict[str, str]]:
    """(size, {algorithm: hexdigest}) read in one pass; sha256 is always included."""
    hashers = {name: hashlib.new(name) for name in {"sha256", *algorithms}}
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    return size, {name: h.hexdigest() for name, h in hashers.items()}


class ManifestWriter:
    """Appends one line per downloaded file; fsynced per line, or per group with ``sync=False`` and `sync`.

    Lines are written with one `write` on an O_APPEND descriptor under an flock,
    so worker threads and concurrent pulls (one per provider) never interleave.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = open_append_private(path)
        except OSError as exc:
            raise UsageError(
                f"cannot open the manifest {path}: {exc.strerror}", hint="pass a writable --manifest path"
            ) from None
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any], *, sync: bool = True) -> None:
        line = (json.dumps({k: entry.get(k) for k in FIELDS}, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                os.write(self._fd, line)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            if sync:
                os.fsync(self._fd)

    def sync(self) -> None:
        """Make every line appended so far durable (one fsync for a group of lines)."""
        with self._lock:
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            os.close(self._fd)


def entry_for(
    *,
    provider: str,
    profile: str,
    ref: str,
    path: Path | str,
    size: int,
    sha256: str | None,
    provider_size: int | None,
) -> dict[str, Any]:
    return {
        "provider": provider,
        "profile": profile,
        "ref": ref,
        "path": path if isinstance(path, str) else str(Path(path).resolve()),
        "bytes": size,
        "sha256": sha256,
        "provider_size": provider_size,
        "retrieved_at": utc_stamp(),
    }


# ---------------------------------------------------------------------------
# verify


@dataclass(frozen=True, slots=True)
class Check:
    """One manifest entry checked against the disk."""

    status: str
    """ok | missing | changed | invalid"""
    path: str | None
    ref: str | None
    provider: str | None
    expected_bytes: int | None
    expected_sha256: str | None
    actual_bytes: int | None = None
    actual_sha256: str | None = None
    detail: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "path": self.path,
            "ref": self.ref,
            "provider": self.provider,
            "expected_bytes": self.expected_bytes,
            "expected_sha256": self.expected_sha256,
            "actual_bytes": self.actual_bytes,
            "actual_sha256": self.actual_sha256,
            "detail": self.detail,
            "line": self.line,
        }


def read_entries(manifest: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, entry or None when the line is not a manifest entry); blank lines skipped."""
    try:
        fh = manifest.open("r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise UsageError(
            f"manifest {manifest} does not exist", hint="pass the file given to --manifest"
        ) from None
    except IsADirectoryError:
        raise UsageError(
            f"manifest {manifest} is a directory", hint="pass the file given to --manifest"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read manifest {manifest}: {exc.strerror}") from None
    with fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                yield number, None
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("path"), str) or not obj["path"]:
                yield number, None
                continue
            yield number, obj


ObjectReader = Callable[[str], Iterator[bytes]]
"""Reads an object-store URL (`s3://BUCKET/KEY`) in chunks; raises FileNotFoundError when absent."""


def is_object_url(path: str) -> bool:
    return path.startswith("s3://")


def latest_entries(
    manifest: Path,
) -> tuple[dict[Path | str, tuple[int, dict[str, Any]]], list[int]]:
    """Entries by resolved path or object URL (a later line for the same one supersedes), bad lines."""
    base = manifest.resolve().parent
    latest: dict[Path | str, tuple[int, dict[str, Any]]] = {}
    invalid: list[int] = []
    for number, entry in read_entries(manifest):
        if entry is None:
            invalid.append(number)
            continue
        key: Path | str
        if is_object_url(entry["path"]):
            key = entry["path"]
        else:
            path = Path(entry["path"]).expanduser()
            # A relative path is read against the manifest's folder, so a moved tree still verifies.
            key = path if path.is_absolute() else base / path
        latest.pop(key, None)  # keep file order by the latest line
        latest[key] = (number, entry)
    return latest, invalid


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _hash_object(read: ObjectReader, url: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for chunk in read(url):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def check_entry(
    path: Path | str, entry: dict[str, Any], line: int, read_object: ObjectReader | None = None
) -> Check:
    expected_bytes = _int(entry.get("bytes"))
    expected_sha = entry.get("sha256") if isinstance(entry.get("sha256"), str) else None
    common: dict[str, Any] = {
        "path": str(path),
        "ref": entry.get("ref"),
        "provider": entry.get("provider"),
        "expected_bytes": expected_bytes,
        "expected_sha256": expected_sha,
        "line": line,
    }
    if isinstance(path, str):
        if read_object is None:
            return Check("invalid", **common, detail="an object URL, but no object store to read it")
        try:
            size, actual = _hash_object(read_object, path)
        except FileNotFoundError:
            return Check("missing", **common, detail="object not found")
    elif not path.is_file():
        return Check("missing", **common, detail="file not found")
    else:
        try:
            size, digests = hash_file(path)
        except OSError as exc:
            return Check("missing", **common, detail=f"cannot read: {exc.strerror}")
        actual = digests["sha256"]
    if expected_sha is None and expected_bytes is None:
        return Check("invalid", **common, actual_bytes=size, actual_sha256=actual, detail="no size or sha256")
    problems = []
    if expected_bytes is not None and size != expected_bytes:
        problems.append(f"size {size} != {expected_bytes}")
    if expected_sha is not None and actual != expected_sha.lower():
        problems.append("sha256 differs")
    status = "changed" if problems else "ok"
    return Check(
        status, **common, actual_bytes=size, actual_sha256=actual, detail="; ".join(problems) or None
    )


def verify(manifest: Path, read_object: ObjectReader | None = None) -> Iterator[Check]:
    """Re-hash every file (or object) the manifest lists, its latest line per path; bad lines are `invalid`.

    ``read_object`` reads `s3://` paths (written by a pull into an object store).
    """
    latest, invalid = latest_entries(manifest)
    for number in invalid:
        yield Check(
            "invalid",
            None,
            None,
            None,
            None,
            None,
            detail=f"line {number} is not a manifest entry",
            line=number,
        )
    for path, (number, entry) in latest.items():
        yield check_entry(path, entry, number, read_object)
