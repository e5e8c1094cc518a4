"""Where a verified file is recorded, in a fixed order: manifest, metadata sidecar, archive, deletion.

Decisions (also in the README's cron section):
- The archive row is written last, after the manifest line and the sidecar: a
  recording in the archive is skipped by every later run, so it must already be
  in the manifest (for `verify`) and have its sidecar. Rows are committed in
  groups (`groupcommit`); the manifest is fsynced once per group, before it.
- `--delete-after` deletes a recording only after its archive row is committed
  (it forces the group) and its local file re-hashes to what
  the archive recorded (size, sha256, and the provider's checksum when it gives
  one). That covers files downloaded in this run and archived files from earlier
  runs (so a delete that failed last night is retried); a file that is merely
  present (not archived) is never a reason to delete.
- The log file sees every event and note but never decides anything.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from recfetch import manifest as manifest_mod
from recfetch.download import FileResult
from recfetch.errors import (
    IntegrityError,
    InterruptedError_,
    LocalIOError,
    NotFoundError,
    ProviderError,
    RecfetchError,
    UsageError,
)
from recfetch.fsutil import write_private
from recfetch.jobs.context import Notifier, Silent
from recfetch.jobs.groupcommit import GroupCommit
from recfetch.jobs.journal import Journal, reconcile, sidecar_path
from recfetch.jobs.options import DownloadOptions
from recfetch.jobs.place import Place
from recfetch.logfile import LogFile
from recfetch.providers.base import Provider, Recording
from recfetch.state import Archive, ArchiveEntry, ArchiveRow, default_archive_path
from recfetch.urls import strip_signed

Extra = dict[str, Any] | None
"""Fields a sink adds to the file event (e.g. ``{"deleted": true}``)."""


class Sink:
    """One place a run's results go. Subclasses override what they take part in."""

    stage: ClassVar[int] = 0
    """Position in the commit order (lower first)."""
    acts_on_archived: ClassVar[bool] = False
    """Does `archived` do anything (then archived recordings are handed to the sinks)?"""

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def commit(self, recording: Recording, res: FileResult) -> Extra:
        """A file is final and verified; raise a RecfetchError to fail the recording."""
        return None

    def sync(self) -> None:
        """Make what `commit` wrote durable: called before the archive commits a group of rows."""

    def failure(self, exc: RecfetchError) -> tuple[str, Extra]:
        """The event's reason (and extra fields) when `commit` raised ``exc``."""
        return str(exc), None

    def archived(self, recording: Recording, entry: ArchiveEntry) -> Extra:
        """A recording skipped because the archive holds it and its file is still there."""
        return None


class LogSink(Sink):
    """`--log-file`: JSON lines with every event, note and the summary."""

    def __init__(self, path: Path, *, provider: str, profile: str, command: str) -> None:
        self.path = path
        self.provider = provider
        self.profile = profile
        self.command = command
        self.log: LogFile | None = None

    def open(self) -> None:
        self.log = LogFile(self.path, provider=self.provider)
        self.log.attach()
        self.log.info(f"{self.command} started (profile {self.profile})", command=self.command)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def write(self, level: str, message: str, **fields: Any) -> None:
        if self.log is not None:
            self.log.write(level, message, **fields)

    def event(self, event: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.file_event(event)

    def summary(self, summary: dict[str, Any]) -> None:
        level = "info" if summary.get("exit_code") in (0, None) else "error"
        text = ", ".join(f"{k} {summary[k]}" for k in ("downloaded", "skipped", "failed") if k in summary)
        self.write(
            level, f"finished: {text}; exit {summary.get('exit_code')}", event={"type": "summary", **summary}
        )


class Notes:
    """Messages for the person (stderr) and the log file, with one call."""

    def __init__(self, notify: Notifier, log: LogSink | None) -> None:
        self.notify = notify
        self.log_sink = log

    def log(self, level: str, message: str, **fields: Any) -> None:
        """Only in the log file (the CLI shows this message itself)."""
        if self.log_sink is not None:
            self.log_sink.write(level, message.removeprefix("warning: "), **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.notify.info(message)
        self.log("info", message, **fields)

    def warn(self, message: str) -> None:
        self.notify.warn(message)
        self.log("warning", message)

    def debug(self, message: str) -> None:
        """Shown with -v; always in the log file."""
        self.notify.debug(message)
        self.log("info", message)

    def error(self, exc: RecfetchError) -> None:
        """Only in the log: the CLI shows the error itself."""
        self.log("error", exc.one_line())


class ManifestSink(Sink):
    """`--manifest`: one JSONL line per downloaded file."""

    stage = 10

    def __init__(self, path: Path, provider: Provider, place: Place | None = None) -> None:
        self.path = path
        self.provider = provider
        self.place = place or Place(Path("."))
        self.writer: manifest_mod.ManifestWriter | None = None

    def open(self) -> None:
        self.writer = manifest_mod.ManifestWriter(self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def commit(self, recording: Recording, res: FileResult) -> Extra:
        assert self.writer is not None
        entry = manifest_mod.entry_for(
            provider=self.provider.name,
            profile=self.provider.profile,
            ref=recording.ref,
            path=Path(res.path or "") if self.place.store is None else self.place.location(res.path or ""),
            size=res.bytes,
            sha256=res.sha256,
            provider_size=recording.size_bytes,
        )
        try:
            self.writer.append(entry, sync=False)  # fsynced once per archive group (`sync`)
        except OSError as exc:
            raise self._error("append to", exc) from None
        return None

    def sync(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.sync()
        except OSError as exc:
            raise self._error("sync", exc) from None

    def _error(self, what: str, exc: OSError) -> LocalIOError:
        return LocalIOError(
            f"cannot {what} the manifest {self.path}: {exc.strerror}",
            hint="free space or fix the permissions, then run again",
        )


class MetadataSink(Sink):
    """`--write-metadata`: the SPEC §4 record beside the file as `<file>.json`."""

    stage = 20

    def __init__(self, place: Place | None = None) -> None:
        self.place = place or Place(Path("."))
        self.journaled: dict[str, str] = {}
        """Sidecar text rendered for the commit journal, by ref, until its commit writes it (once)."""

    @staticmethod
    def render(recording: Recording) -> str:
        # Belt and braces for the sidecar: no URL query string (where signatures live) is stored.
        return json.dumps(strip_signed(recording.to_dict()), indent=2, ensure_ascii=False) + "\n"

    def commit(self, recording: Recording, res: FileResult) -> Extra:
        path = sidecar_path(Path(res.path or ""))
        text = self.journaled.pop(recording.ref, None) or self.render(recording)
        store = self.place.store
        if store is not None:  # `KEY.json` beside the object, one PUT
            store.write_object(store.key(path.as_posix()), text.encode(), content_type="application/json")
            return None
        try:
            write_private(path, text.encode())
        except OSError as exc:
            raise LocalIOError(
                f"cannot write {path}: {exc.strerror}",
                hint="free space or fix the permissions, then run again",
            ) from None
        return None


class ArchiveSink(Sink):
    """The archive: which recordings are downloaded and verified, and where (written last, in groups)."""

    stage = 30

    def __init__(self, path: Path, notes: Notes | None = None, place: Place | None = None) -> None:
        self.path = path
        self.notes = notes
        """Where to say what the commit journal recovered; None: a dry run, which changes nothing."""
        self.place = place or Place(Path("."))
        self.archive: Archive | None = None
        self.journal = Journal(path)
        self.before: Callable[[], None] | None = None
        """What makes the earlier sinks durable before a group commits (set by `Sinks`)."""
        self.group: GroupCommit | None = None

    def open(self) -> None:
        self.archive = Archive(self.path)
        if self.notes is not None:
            notes = self.notes
            reconcile(self.archive, lambda m: notes.warn(m) if m.startswith("warning: ") else notes.info(m))
        self.group = GroupCommit(self.archive, self.journal, before=self.before)

    def close(self) -> None:
        if self.group is not None:
            self.group.close()
            with contextlib.suppress(RecfetchError):  # what stays uncommitted stays journaled
                self.group.flush()
        self.journal.close()
        if self.archive is not None:
            self.archive.close()

    def commit(self, recording: Recording, res: FileResult) -> Extra:
        assert self.group is not None
        location = self.place.location(res.path or "") if self.place.store is not None else None
        self.group.add(ArchiveRow.of(recording, res, location=location))
        return None

    def flush(self) -> None:
        """Commit every row handed over so far (a RecfetchError if the archive cannot be written)."""
        if self.group is not None:
            self.group.flush()

    def failure(self, exc: RecfetchError) -> tuple[str, Extra]:
        return f"downloaded, but the archive was not updated: {exc}", None


_ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256"}


class VerifiedDeleter(Sink):
    """`--delete-after`: delete at the provider only what the disk and the archive both vouch for."""

    stage = 40
    acts_on_archived = True

    def __init__(
        self, provider: Provider, archive: ArchiveSink, notes: Notes, place: Place | None = None
    ) -> None:
        self.provider = provider
        self.archive_sink = archive
        self.notes = notes
        self.place = place or Place(Path("."))

    @property
    def archive(self) -> Archive:
        assert self.archive_sink.archive is not None
        return self.archive_sink.archive

    def _refuse(self, why: str) -> IntegrityError:
        return IntegrityError(
            f"not deleted at {self.provider.name}: {why}",
            hint="the local file is kept; check it, or download it again with --overwrite",
            provider=self.provider.name,
        )

    def _verify_object(self, recording: Recording, location: str, *, size: int, sha256: str | None) -> None:
        """The object's metadata (written only after its bytes were verified) must prove this recording."""
        store = self.place.store
        assert store is not None
        entry = self.archive.get(self.provider.name, self.provider.profile, recording.ref)
        if entry is None:
            raise self._refuse("it is not recorded in the archive")
        if entry.location != location:
            raise self._refuse(f"the archive records it at {entry.location}, not {location}")
        expected_sha = sha256 or entry.sha256
        if not expected_sha or (entry.sha256 and entry.sha256 != expected_sha):
            raise self._refuse("no matching sha256 is recorded for the object")
        proof = store.head(self.place.key_of(location))
        if proof is None:
            raise self._refuse(f"{location} is missing")
        if proof.length != size or proof.length != entry.bytes:
            raise self._refuse(f"{location} has {proof.length} bytes, {entry.bytes} were recorded")
        if not proof.proves(recording.ref, recording.size_bytes, expected_sha):
            raise self._refuse(f"{location} does not carry this recording's verified sha256 and size")
        if recording.checksum:
            algo, _, digest = recording.checksum.partition(":")
            extra_algo = _ALGORITHMS.get(algo.strip().lower())
            if extra_algo is None or not digest:
                raise self._refuse(f"cannot check the provider's {algo or 'unnamed'} checksum")
            hasher = hashlib.new(extra_algo)
            for chunk in store.read(self.place.key_of(location)):
                hasher.update(chunk)
            if hasher.hexdigest() != digest.strip().lower():
                raise self._refuse(f"{location} does not match the provider's {extra_algo} checksum")

    def _verify(self, recording: Recording, path: Path, *, size: int, sha256: str | None) -> None:
        entry = self.archive.get(self.provider.name, self.provider.profile, recording.ref)
        if entry is None:
            raise self._refuse("it is not recorded in the archive")
        if entry.path.resolve() != path.resolve():
            raise self._refuse(f"the archive records it at {entry.path}, not {path}")
        expected_sha = sha256 or entry.sha256
        if not expected_sha or (entry.sha256 and entry.sha256 != expected_sha):
            raise self._refuse("no matching sha256 is recorded for the local file")
        extra_algo = None
        digest = None
        if recording.checksum:
            algo, _, digest = recording.checksum.partition(":")
            extra_algo = _ALGORITHMS.get(algo.strip().lower())
            if extra_algo is None or not digest:
                raise self._refuse(f"cannot check the provider's {algo or 'unnamed'} checksum")
        try:
            actual_size, digests = manifest_mod.hash_file(path, *([extra_algo] if extra_algo else []))
        except OSError as exc:
            raise self._refuse(f"cannot read {path}: {exc.strerror}") from None
        if actual_size != size or actual_size != entry.bytes:
            raise self._refuse(f"{path} has {actual_size} bytes, {entry.bytes} were recorded")
        if recording.size_bytes is not None and actual_size != recording.size_bytes:
            raise self._refuse(f"{path} has {actual_size} bytes, the provider reports {recording.size_bytes}")
        if digests["sha256"] != expected_sha.lower():
            raise self._refuse(f"{path} no longer matches its recorded sha256")
        if extra_algo and digest and digests[extra_algo] != digest.strip().lower():
            raise self._refuse(f"{path} does not match the provider's {extra_algo} checksum")

    def _delete(self, recording: Recording, path: Path | str) -> dict[str, Any]:
        name = self.provider.name
        try:
            self.provider.delete(recording)
            note = ""
        except NotFoundError:
            note = " (it was already gone)"  # the goal state; the listing was a moment ago
        except InterruptedError_:
            raise
        except RecfetchError as exc:
            # One refused delete must not stop the other downloads: a per-item failure.
            raise ProviderError(
                f"deleting at {name} failed: {exc.message}",
                hint="the local file is kept; the next pull with --delete-after retries the delete",
                provider=name,
                http_status=exc.http_status,
            ) from None
        self.notes.info(
            f"deleted {recording.ref} at {name}{note}; verified copy {path}",
            ref=recording.ref,
            deleted=True,
        )
        return {"deleted": True}

    def commit(self, recording: Recording, res: FileResult) -> Extra:
        self.archive_sink.flush()  # the archive row is committed before anything is deleted
        if self.place.store is not None:
            location = self.place.location(res.path or "")
            self._verify_object(recording, location, size=res.bytes, sha256=res.sha256)
            return self._delete(recording, location)
        path = Path(res.path or "")
        self._verify(recording, path, size=res.bytes, sha256=res.sha256)
        return self._delete(recording, path)

    def failure(self, exc: RecfetchError) -> tuple[str, Extra]:
        return f"downloaded, but {exc}", {"deleted": False}

    def archived(self, recording: Recording, entry: ArchiveEntry) -> Extra:
        if self.place.store is not None:
            self._verify_object(recording, entry.location, size=entry.bytes, sha256=entry.sha256)
            return self._delete(recording, entry.location)
        self._verify(recording, entry.path, size=entry.bytes, sha256=entry.sha256)
        return self._delete(recording, entry.path)


def _failed(res: FileResult, exc: RecfetchError, reason: str) -> FileResult:
    return FileResult(res.ref, "failed", reason, res.path, res.bytes, res.sha256, exc, res.mints)


@dataclass
class Sinks:
    """A run's sinks, kept in commit order; opened and closed together (``with sinks:``)."""

    sinks: list[Sink]
    notes: Notes
    place: Place = field(default_factory=lambda: Place(Path(".")))
    """Where the files go (a folder, or an object store checked when the sinks open)."""

    def __post_init__(self) -> None:
        self.sinks.sort(key=lambda s: s.stage)

    @classmethod
    def none(cls, notify: Notifier | None = None) -> Sinks:
        return cls([], Notes(notify or Silent(), None))

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)
        self.sinks.sort(key=lambda s: s.stage)

    def __enter__(self) -> Sinks:
        archive = self._of(ArchiveSink)
        if archive is not None:
            archive.before = functools.partial(self._sync, archive.stage)
        if self.place.store is not None:
            # Wrong credentials, a missing bucket or a read-only key stop the run here,
            # before anything is listed or minted.
            self.place.store.check()
        opened: list[Sink] = []
        try:
            for sink in sorted(self.sinks, key=lambda s: not isinstance(s, LogSink)):
                sink.open()
                opened.append(sink)
        except BaseException:
            for sink in reversed(opened):
                sink.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for sink in sorted(self.sinks, key=lambda s: isinstance(s, LogSink)):
            sink.close()

    def _sync(self, below: int) -> None:
        for sink in self.sinks:
            if sink.stage < below:
                sink.sync()

    def _of(self, kind: type[Any]) -> Any:
        for sink in self.sinks:  # a plain loop: asked twice per recording (archive, event)
            if isinstance(sink, kind):
                return sink
        return None

    @property
    def archive(self) -> Archive | None:
        sink = self._of(ArchiveSink)
        return sink.archive if sink is not None else None

    @property
    def acts_on_archived(self) -> bool:
        return any(s.acts_on_archived for s in self.sinks)

    def intend(self, recording: Recording, path: Path) -> None:
        """Journal the commit before the engine may put a file at ``path`` (see `journal`).

        Not for an object store: its objects appear whole, and their metadata is the proof.
        """
        archive = self._of(ArchiveSink)
        if archive is None or self.place.store is not None:
            return
        manifest = self._of(ManifestSink)
        metadata = self._of(MetadataSink)
        sidecar = metadata.render(recording) if metadata is not None else None
        archive.journal.intend(
            recording, path, manifest=manifest.path if manifest is not None else None, sidecar=sidecar
        )
        if metadata is not None and sidecar is not None:
            metadata.journaled[recording.ref] = sidecar  # the commit writes this very text

    def abandon(self, recording: Recording) -> None:
        """No final file came of it (failed, interrupted, already there)."""
        archive = self._of(ArchiveSink)
        if archive is not None:
            archive.journal.abandon((recording.profile, recording.provider, recording.ref))
        self._forget(recording)

    def _forget(self, recording: Recording) -> None:
        metadata = self._of(MetadataSink)
        if metadata is not None:
            metadata.journaled.pop(recording.ref, None)

    def flush(self) -> None:
        """Commit the archive rows of every file handed over so far (end of a batch, before a watermark)."""
        archive = self._of(ArchiveSink)
        if archive is not None:
            archive.flush()

    def commit(self, recording: Recording, res: FileResult) -> tuple[FileResult, Extra]:
        """Hand a verified file to each sink in order; the first refusal fails the recording."""
        extra: dict[str, Any] = {}
        for sink in self.sinks:
            try:
                extra.update(sink.commit(recording, res) or {})
            except RecfetchError as exc:
                self._forget(recording)
                reason, more = sink.failure(exc)
                extra.update(more or {})
                return _failed(res, exc, reason), extra or None
        return res, extra or None

    def archived(
        self, recording: Recording, entry: ArchiveEntry, res: FileResult
    ) -> tuple[FileResult, Extra]:
        extra: dict[str, Any] = {}
        for sink in self.sinks:
            try:
                extra.update(sink.archived(recording, entry) or {})
            except RecfetchError as exc:
                extra["deleted"] = False
                return _failed(res, exc, f"in archive, but {exc}"), extra
        return res, extra or None

    def event(self, event: dict[str, Any]) -> None:
        log = self._of(LogSink)
        if log is not None:
            log.event(event)

    def summary(self, summary: dict[str, Any]) -> None:
        log = self._of(LogSink)
        if log is not None:
            log.summary(summary)


def open_sinks(
    provider: Provider,
    opts: DownloadOptions,
    *,
    state_dir: Path,
    notify: Notifier,
    command: str,
    delete: bool = False,
    place: Place | None = None,
    shard: str | None = None,
) -> Sinks:
    """The sinks ``opts`` asks for (not yet opened: ``with`` the result opens them).

    ``shard`` (a label such as ``2of4``) gives the run its own default archive.
    """
    place = place or Place(opts.output_dir)
    if opts.archive is not None and opts.no_archive:
        raise UsageError("--archive and --no-archive cannot be used together", hint="pick one")
    log = None
    if opts.log_file is not None:
        log = LogSink(
            opts.log_file.expanduser(), provider=provider.name, profile=provider.profile, command=command
        )
    notes = Notes(notify, log)
    sinks = Sinks([log] if log is not None else [], notes, place)
    archive = None
    if not opts.no_archive:
        path = (
            opts.archive.expanduser() if opts.archive is not None else default_archive_path(state_dir, shard)
        )
        archive = ArchiveSink(path, None if opts.dry_run else notes, place)
        sinks.add(archive)
    if opts.manifest is not None:
        sinks.add(ManifestSink(opts.manifest.expanduser(), provider, place))
    if opts.write_metadata:
        sinks.add(MetadataSink(place))
    if delete:
        if archive is None:
            raise UsageError(
                "--delete-after needs the archive to prove each file was verified", hint="drop --no-archive"
            )
        sinks.add(VerifiedDeleter(provider, archive, notes, place))
    return sinks
