"""The commit journal: every file on disk is either recorded (archive, manifest, sidecar) or a `.part`.

A run journals a commit in the archive database (`Archive.intend`) before the
engine may rename the `.part` into place, and the archive row that ends the
commit also closes the journal entry, in one transaction. A run killed in
between leaves the entry behind; the next run that opens the archive finishes
the commit from what the entry holds (manifest path, sidecar text) and the file
itself (size and sha256, re-read), without asking the provider.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable
from pathlib import Path

from recfetch import manifest as manifest_mod
from recfetch import naming
from recfetch.errors import RecfetchError
from recfetch.fsutil import write_private
from recfetch.state import Archive, Pending


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


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


def _finish(archive: Archive, entry: Pending, final: Path) -> None:
    size, digests = manifest_mod.hash_file(final)
    sha256 = digests["sha256"]
    if size == 0 or (entry.provider_size is not None and size != entry.provider_size):
        # Not the verified file the engine renames into place: leave it, record nothing.
        archive.abandon(entry.profile, entry.provider, entry.ref)
        return
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
    archive.add_row(entry.profile, entry.provider, entry.ref, final, size, sha256, entry.provider_size)
    _remove_leftovers(final)


def _remove_leftovers(final: Path, *, committed: bool = True) -> None:
    """What a kill can leave beside a file: a sidecar's temp file, and once committed the `.part.meta`."""
    leftovers = [final.with_name(final.name + ".part.meta")] if committed else []
    leftovers += final.parent.glob(f".{glob.escape(sidecar_path(final).name)}.*.tmp")
    for path in leftovers:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def reconcile(archive: Archive, say: Callable[[str], None]) -> int:
    """Finish the commits an interrupted run left open; how many files were recovered."""
    recovered = 0
    for entry in archive.pending():
        if _alive(entry.pid):
            continue  # another run is in the middle of it
        final = _final(archive, entry)
        if final is None:
            # The rename never happened: the `.part` (if any) resumes when the recording comes up.
            archive.abandon(entry.profile, entry.provider, entry.ref)
            _remove_leftovers(entry.path, committed=False)
            continue
        try:
            _finish(archive, entry, final)
        except (OSError, RecfetchError) as exc:
            say(f"warning: could not record {final} left by an interrupted run: {exc}; trying again next run")
            continue
        recovered += 1
        say(f"recorded {final} ({entry.ref}), left complete but unrecorded by an interrupted run")
    return recovered
