"""What makes download and pull safe unattended: archive, manifest, log, lock, windows, deletion."""

# Decisions (also in the README's cron section):
# - An archived recording whose local file was deleted is downloaded again (with a
#   warning): the archive must never be the reason a recording exists only at the provider.
# - --delete-after deletes a recording only after its local file re-hashes to what the
#   archive recorded (size, sha256, and the provider's checksum when it gives one). That
#   covers files downloaded in this run and archived files from earlier runs (so a delete
#   that failed last night is retried); a file that is merely present (not archived) is
#   never a reason to delete.
# - The incremental watermark advances only after a complete run (nothing failed, nothing
#   interrupted, not cut short by --limit/--max-files, not a dry run) and only when the
#   run's window reaches back to the stored watermark, so no stretch of time is skipped.

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from recfetch import config, timeparse
from recfetch import manifest as manifest_mod
from recfetch.batch import ArchivedLike, BatchOptions, BatchResult
from recfetch.cli._confirm import confirm_delete
from recfetch.download import FileResult
from recfetch.errors import (
    IntegrityError,
    InterruptedError_,
    NotFoundError,
    ProviderError,
    RecfetchError,
    TransferError,
    UsageError,
)
from recfetch.fsutil import write_private
from recfetch.logfile import LogFile
from recfetch.providers.base import ListQuery, Provider, Recording, iso
from recfetch.redact import redact_url
from recfetch.state import Archive, Lock, Watermarks, default_archive_path

# ---------------------------------------------------------------------------
# download and pull: archive, manifest, metadata, log file


@dataclass
class Extras:
    """The optional sinks of one download/pull run."""

    archive: Archive | None = None
    manifest: manifest_mod.ManifestWriter | None = None
    log: LogFile | None = None
    warn_fn: Any = None

    def event(self, event: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.file_event(event)

    def summary(self, summary: dict[str, Any]) -> None:
        if self.log is not None:
            level = "info" if summary.get("exit_code") in (0, None) else "error"
            text = ", ".join(f"{k} {summary[k]}" for k in ("downloaded", "skipped", "failed") if k in summary)
            self.log.write(
                level,
                f"finished: {text}; exit {summary.get('exit_code')}",
                event={"type": "summary", **summary},
            )

    def warn(self, message: str) -> None:
        if self.warn_fn is not None:
            self.warn_fn(message)
        if self.log is not None:
            self.log.warning(message.removeprefix("warning: "))

    def info(self, message: str, **kw: Any) -> None:
        if self.log is not None:
            self.log.info(message, **kw)


def _strip_signed_urls(value: Any) -> Any:
    """Belt and braces for the sidecar: no URL query string (where signatures live) is stored."""
    if isinstance(value, str):
        return redact_url(value) if value.startswith(("http://", "https://")) and "?" in value else value
    if isinstance(value, dict):
        return {k: _strip_signed_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_signed_urls(v) for v in value]
    return value


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_metadata_hook(recording: Recording, res: FileResult) -> None:
    """`--write-metadata`: the SPEC §4 record beside the file as `<file>.json`."""
    path = Path(res.path)
    record = _strip_signed_urls(recording.to_dict())
    try:
        write_private(sidecar_path(path), (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode())
    except OSError as exc:
        raise TransferError(f"cannot write {sidecar_path(path)}: {exc.strerror}") from None


@contextmanager
def extras(
    rt: Any,
    provider: Provider,
    opts: BatchOptions,
    *,
    archive: Path | None,
    no_archive: bool,
    manifest: Path | None,
    write_metadata: bool,
    log_file: Path | None,
    command: str,
) -> Iterator[Extras]:
    """Open the archive, manifest and log file for one run and hook them into ``opts``."""
    if archive is not None and no_archive:
        raise UsageError("--archive and --no-archive cannot be used together", hint="pick one")
    out = Extras(warn_fn=rt.ui.warn)
    try:
        if log_file is not None:
            out.log = LogFile(log_file.expanduser(), provider=provider.name)
            out.log.attach()
            out.log.info(f"{command} started (profile {provider.profile})", command=command)
        if not no_archive:
            path = archive.expanduser() if archive is not None else default_archive_path(config.state_dir())
            out.archive = Archive(path)
            opts.archive = out.archive
        opts.warn = out.warn
        if manifest is not None:
            writer = manifest_mod.ManifestWriter(manifest.expanduser())
            out.manifest = writer

            def manifest_hook(recording: Recording, res: FileResult) -> None:
                try:
                    writer.append(
                        manifest_mod.entry_for(
                            provider=provider.name,
                            profile=provider.profile,
                            ref=recording.ref,
                            path=Path(res.path),
                            size=res.bytes,
                            sha256=res.sha256,
                            provider_size=recording.size_bytes,
                        )
                    )
                except OSError as exc:
                    raise TransferError(
                        f"cannot append to the manifest {writer.path}: {exc.strerror}"
                    ) from None

            opts.after_file.append(manifest_hook)
        if write_metadata:
            opts.after_file.append(write_metadata_hook)
        yield out
    finally:
        if out.manifest is not None:
            out.manifest.close()
        if out.archive is not None:
            out.archive.close()
        if out.log is not None:
            out.log.close()


# ---------------------------------------------------------------------------
# pull: verified deletion


_ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256"}


class Deleter:
    """`--delete-after`: delete at the provider only what the disk and the archive both vouch for."""

    def __init__(self, rt: Any, provider: Provider, archive: Archive, out: Extras) -> None:
        self.rt = rt
        self.provider = provider
        self.archive = archive
        self.out = out

    def _refuse(self, recording: Recording, why: str) -> IntegrityError:
        return IntegrityError(
            f"not deleted at {self.provider.name}: {why}",
            hint="the local file is kept; check it, or download it again with --overwrite",
            provider=self.provider.name,
        )

    def _verify(self, recording: Recording, path: Path, *, size: int, sha256: str | None) -> None:
        entry = self.archive.get(self.provider.name, self.provider.profile, recording.ref)
        if entry is None:
            raise self._refuse(recording, "it is not recorded in the archive")
        if entry.path.resolve() != path.resolve():
            raise self._refuse(recording, f"the archive records it at {entry.path}, not {path}")
        expected_sha = sha256 or entry.sha256
        if not expected_sha or (entry.sha256 and entry.sha256 != expected_sha):
            raise self._refuse(recording, "no matching sha256 is recorded for the local file")
        extra_algo = None
        digest = None
        if recording.checksum:
            algo, _, digest = recording.checksum.partition(":")
            extra_algo = _ALGORITHMS.get(algo.strip().lower())
            if extra_algo is None or not digest:
                raise self._refuse(recording, f"cannot check the provider's {algo or 'unnamed'} checksum")
        try:
            actual_size, digests = manifest_mod.hash_file(path, *([extra_algo] if extra_algo else []))
        except OSError as exc:
            raise self._refuse(recording, f"cannot read {path}: {exc.strerror}") from None
        if actual_size != size or actual_size != entry.bytes:
            raise self._refuse(recording, f"{path} has {actual_size} bytes, {entry.bytes} were recorded")
        if recording.size_bytes is not None and actual_size != recording.size_bytes:
            raise self._refuse(
                recording, f"{path} has {actual_size} bytes, the provider reports {recording.size_bytes}"
            )
        if digests["sha256"] != expected_sha.lower():
            raise self._refuse(recording, f"{path} no longer matches its recorded sha256")
        if extra_algo and digest and digests[extra_algo] != digest.strip().lower():
            raise self._refuse(recording, f"{path} does not match the provider's {extra_algo} checksum")

    def _delete(self, recording: Recording, path: Path) -> dict[str, Any]:
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
        message = f"deleted {recording.ref} at {name}{note}; verified local copy {path}"
        self.rt.ui.info(message)
        self.out.info(message, ref=recording.ref, deleted=True)
        return {"deleted": True}

    def after_download(self, recording: Recording, res: FileResult) -> dict[str, Any]:
        path = Path(res.path)
        self._verify(recording, path, size=res.bytes, sha256=res.sha256)
        return self._delete(recording, path)

    def for_archived(self, recording: Recording, entry: ArchivedLike) -> dict[str, Any]:
        self._verify(recording, entry.path, size=entry.bytes, sha256=entry.sha256)
        return self._delete(recording, entry.path)


# ---------------------------------------------------------------------------
# pull: lock, incremental window, watermark


@dataclass
class PullSession:
    query: ListQuery
    rt: Any = None
    provider: Provider | None = None
    extras: Extras = field(default_factory=Extras)
    incremental: bool = False
    dry_run: bool = False
    started: datetime | None = None
    watermarks: Watermarks | None = None
    previous: datetime | None = None
    contiguous: bool = True

    def new_watermark(self) -> datetime | None:
        assert self.started is not None
        end = self.started if self.query.until is None else min(self.query.until, self.started)
        if self.previous is not None and end <= self.previous:
            return None  # never move a watermark backwards
        return end

    def finish(self, result: BatchResult, *, limit_truncated: bool = False) -> None:
        """Advance the watermark after a complete incremental run; otherwise say why not."""
        if not self.incremental or self.provider is None or self.watermarks is None:
            return
        reasons = []
        if self.dry_run:
            reasons.append("this was a dry run")
        if result.interrupted:
            reasons.append("the run was interrupted")
        if result.run_error is not None or result.failures or result.failed:
            reasons.append("some recordings failed")
        if result.truncated:
            reasons.append("--max-files left recordings waiting")
        if limit_truncated:
            reasons.append("--limit cut the listing short")
        if not self.contiguous:
            reasons.append(f"the window does not reach back to the watermark {iso(self.previous)}")
        name, profile = self.provider.name, self.provider.profile
        if reasons:
            message = f"incremental: watermark for {profile}/{name} not advanced: {'; '.join(reasons)}"
            self.rt.ui.debug(message)
            self.extras.info(message)
            return
        end = self.new_watermark()
        if end is None:
            return
        self.watermarks.set(profile, name, end)
        message = f"incremental: watermark for {profile}/{name} is now {iso(end)}"
        self.rt.ui.debug(message)
        self.extras.info(message)


def resolve_window(
    query: ListQuery,
    *,
    incremental: bool,
    explicit_window: bool,
    watermark: datetime | None,
    overlap: timedelta,
) -> tuple[ListQuery, bool]:
    """(the query to list with, whether a success may advance the watermark)."""
    if not incremental:
        return query, False
    if explicit_window:
        # --since/--until win; a success counts only when the window leaves no gap after
        # the stored watermark (or seeds the first one).
        contiguous = query.since is None or watermark is None or query.since <= watermark
        return query, contiguous
    since = watermark - overlap if watermark is not None else None
    return dataclasses.replace(query, since=since), True


@contextmanager
def pull_session(
    rt: Any,
    provider: Provider,
    opts: BatchOptions,
    query: ListQuery,
    *,
    archive: Path | None,
    no_archive: bool,
    manifest: Path | None,
    write_metadata: bool,
    log_file: Path | None,
    incremental: bool,
    overlap: str,
    delete_after: bool,
    yes: bool,
    explicit_window: bool,
    started: datetime,
) -> Iterator[PullSession]:
    """Everything around a pull's batch: checks, confirmation, the lock, the window, the sinks."""
    name, profile = provider.name, provider.profile
    overlap_delta = timeparse.parse_duration(overlap, flag="--overlap")
    deleting = delete_after and not opts.dry_run
    if delete_after:
        if not provider.can_delete:
            raise UsageError(
                f"{name} does not support deleting recordings",
                hint="drop --delete-after (kazoo and bird can delete)",
            )
        if no_archive:
            raise UsageError(
                "--delete-after needs the archive to prove each file was verified",
                hint="drop --no-archive",
            )
    if archive is not None and no_archive:
        raise UsageError("--archive and --no-archive cannot be used together", hint="pick one")
    # Ask (or insist on --yes) before anything is downloaded, and before taking the lock.
    if deleting and not confirm_delete(name, ["each recording this pull verifies locally"], yes=yes):
        rt.ui.info("not confirmed: nothing was downloaded or deleted")
        raise typer.Exit(0)
    lock = Lock(config.state_dir(), profile, name)
    lock.acquire()
    try:
        with extras(
            rt,
            provider,
            opts,
            archive=archive,
            no_archive=no_archive,
            manifest=manifest,
            write_metadata=write_metadata,
            log_file=log_file,
            command="pull",
        ) as out:
            marks = Watermarks(config.state_dir()) if incremental else None
            previous = marks.get(profile, name) if marks is not None else None
            resolved, contiguous = resolve_window(
                query,
                incremental=incremental,
                explicit_window=explicit_window,
                watermark=previous,
                overlap=overlap_delta,
            )
            if incremental:
                if explicit_window:
                    note = "--since/--until given, the watermark is not used for the window"
                elif previous is None:
                    note = f"no watermark yet for {profile}/{name}: listing everything"
                else:
                    note = f"last complete run ended {iso(previous)}; overlap {overlap}"
                rt.ui.debug(f"incremental: {note}")
                out.info(f"incremental: {note}")
            window = f"{iso(resolved.since) or '-'} .. {iso(resolved.until) or 'now'}"
            rt.ui.debug(f"listing window (UTC): {window}")
            out.info(f"listing window (UTC): {window}")
            if deleting:
                assert out.archive is not None
                deleter = Deleter(rt, provider, out.archive, out)
                opts.after_archive.append(deleter.after_download)
                opts.on_archived.append(deleter.for_archived)
            yield PullSession(
                resolved,
                rt=rt,
                provider=provider,
                extras=out,
                incremental=incremental,
                dry_run=opts.dry_run,
                started=started,
                watermarks=marks,
                previous=previous,
                contiguous=contiguous,
            )
    finally:
        lock.release()
