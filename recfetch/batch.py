"""Downloading many recordings: skip rules, --jobs threads, events and the run's exit code."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recfetch import naming
from recfetch.download import Downloader, FileResult, Reporter
from recfetch.errors import (
    RUN_LEVEL,
    ExitCode,
    InterruptedError_,
    RecfetchError,
    batch_exit_code,
)
from recfetch.providers.base import Provider, Recording

DEFAULT_TEMPLATE = "{date}_{provider}_{id}{ext}"


class ArchivedLike(Protocol):
    path: Path
    bytes: int
    sha256: str | None


class ArchiveLike(Protocol):
    def get(self, provider: str, profile: str, ref: str) -> ArchivedLike | None: ...
    def add(self, recording: Recording, result: FileResult) -> None: ...


Extra = dict[str, Any] | None
"""Fields a hook adds to the file event (e.g. ``{"deleted": true}``)."""


@dataclass
class BatchOptions:
    output_dir: Path = Path(".")
    template: str = DEFAULT_TEMPLATE
    jobs: int = 4
    overwrite: bool = False
    dry_run: bool = False
    max_files: int | None = None
    archive: ArchiveLike | None = None
    after_file: list[Callable[[Recording, FileResult], None]] = field(default_factory=list)
    """Hooks run (in the worker thread) after a file is verified, before the archive: manifest, metadata."""
    after_archive: list[Callable[[Recording, FileResult], Extra]] = field(default_factory=list)
    """Hooks run once the verified file is in the archive (delete-after)."""
    on_archived: list[Callable[[Recording, ArchivedLike], Extra]] = field(default_factory=list)
    """Hooks run (in a worker thread) for a recording skipped because it is archived and present."""
    warn: Callable[[str], None] | None = None


@dataclass
class BatchResult:
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    attempted: int = 0
    failures: list[RecfetchError] = field(default_factory=list)
    failure_events: list[dict[str, Any]] = field(default_factory=list)
    run_error: RecfetchError | None = None
    interrupted: bool = False
    truncated: bool = False
    """--max-files stopped the run while recordings were still waiting."""
    would_download: int = 0
    """--dry-run: how many files a real run would have downloaded."""
    deleted: int = 0

    @property
    def exit_code(self) -> ExitCode:
        if self.run_error is not None:
            return self.run_error.exit_code
        if self.interrupted:
            return ExitCode.INTERRUPTED
        return batch_exit_code(self.failures, self.attempted)

    def summary(self) -> dict[str, Any]:
        return {
            "downloaded": self.downloaded,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "exit_code": int(self.exit_code),
        }

    @property
    def complete(self) -> bool:
        """Every listed recording was handled and nothing failed (the watermark may advance)."""
        return (
            self.run_error is None
            and not self.interrupted
            and not self.truncated
            and not self.failures
            and self.failed == 0
        )


def event_for(provider: str, result: FileResult, extra: Extra = None) -> dict[str, Any]:
    """The SPEC §4 per-file event (plus any fields a hook added, e.g. ``deleted``)."""
    error = None
    if result.error is not None:
        error = {"code": result.error.code, "message": result.error.one_line()}
    return {
        "type": "file",
        "ref": result.ref,
        "provider": provider,
        "outcome": result.outcome,
        "reason": result.reason,
        "path": str(result.path) if result.path else None,
        "bytes": result.bytes,
        "sha256": result.sha256,
        "error": error,
        **(extra or {}),
    }


def target_path(opts: BatchOptions, recording: Recording) -> Path:
    ext = naming.extension_for(recording, recording.media_type)
    relative = naming.render(opts.template, recording, ext=ext)
    return opts.output_dir / Path(relative)


def _typed_path(recording: Recording, res: FileResult) -> FileResult:
    """Give a file saved as ``.bin`` the extension of the Content-Type it arrived with.

    Some providers (Kaleyra) say nothing about the format until the bytes come;
    an existing file of the same name is never replaced.
    """
    if res.path is None or res.path.suffix != naming.UNKNOWN_EXT or not res.media_type:
        return res
    ext = naming.extension_for(recording.replace(filename=None), res.media_type)
    typed = res.path.with_suffix(ext)
    if ext == naming.UNKNOWN_EXT or typed.exists():
        return res
    try:
        os.replace(res.path, typed)
    except OSError:
        return res
    return dataclasses.replace(res, path=typed)


def _present(path: Path, recording: Recording) -> Path | None:
    """The final file already on disk (for an unknown type: under any media extension)."""
    candidates = [path]
    if path.suffix == naming.UNKNOWN_EXT:
        candidates += [path.with_suffix(ext) for ext in sorted(naming.media_extensions())]
    for candidate in candidates:
        if candidate.exists() and (
            recording.size_bytes is None or candidate.stat().st_size == recording.size_bytes
        ):
            return candidate
    return None


def _failed(res: FileResult, exc: RecfetchError, reason: str) -> FileResult:
    return FileResult(res.ref, "failed", reason, res.path, res.bytes, res.sha256, exc, res.mints)


def _until_stopped(items: Iterable[Recording | FileResult], stop: threading.Event) -> Iterator[Any]:
    """Stop pulling from the listing as soon as a signal arrives (no new page is requested)."""
    for item in items:
        if stop.is_set():
            return
        yield item
        if stop.is_set():
            return


def run_batch(
    provider: Provider,
    recordings: Iterable[Recording | FileResult],
    opts: BatchOptions,
    *,
    downloader: Downloader,
    on_event: Callable[[dict[str, Any]], None],
    reporter: Reporter,
    stop: threading.Event,
) -> BatchResult:
    """Download every downloadable recording; never raise for one recording's failure.

    The archive is written only after a file is final, verified and its
    `after_file` hooks (manifest, metadata) succeeded; `after_archive` hooks
    (delete-after) run only once the archive holds it.
    """
    result = BatchResult()
    started = time.monotonic()
    lock = threading.Lock()
    in_flight: set[Future[tuple[FileResult, Extra]]] = set()
    jobs = max(1, opts.jobs)
    seen_paths: set[Path] = set()
    seen_refs: set[str] = set()

    def record(res: FileResult, extra: Extra = None) -> None:
        with lock:
            event = event_for(provider.name, res, extra)
            if extra and extra.get("deleted"):
                result.deleted += 1
            if res.outcome == "downloaded":
                result.downloaded += 1
                result.bytes += res.bytes
            elif res.outcome == "skipped":
                result.skipped += 1
            else:
                result.failed += 1
                if res.error is not None:
                    if isinstance(res.error, InterruptedError_):
                        result.interrupted = True
                    elif isinstance(res.error, RUN_LEVEL) and result.run_error is None:
                        result.run_error = res.error
                        stop.set()
                    else:
                        result.failures.append(res.error)
                result.failure_events.append(event)
        on_event(event)

    def work(recording: Recording, path: Path) -> tuple[FileResult, Extra]:
        res = downloader.fetch(recording, path, lambda: provider.mint(recording))
        if res.outcome != "downloaded":
            return res, None
        res = _typed_path(recording, res)
        for hook in opts.after_file:
            try:
                hook(recording, res)
            except RecfetchError as exc:
                return _failed(res, exc, str(exc)), None
        if opts.archive is not None:
            try:
                opts.archive.add(recording, res)
            except RecfetchError as exc:
                return _failed(res, exc, f"downloaded, but the archive was not updated: {exc}"), None
        extra: dict[str, Any] = {}
        for after in opts.after_archive:
            try:
                extra.update(after(recording, res) or {})
            except RecfetchError as exc:
                extra["deleted"] = False
                return _failed(res, exc, f"downloaded, but {exc}"), extra
        return res, extra or None

    def archived_work(recording: Recording, entry: ArchivedLike) -> tuple[FileResult, Extra]:
        res = FileResult(recording.ref, "skipped", "in archive", entry.path, 0, entry.sha256, None)
        extra: dict[str, Any] = {}
        for hook in opts.on_archived:
            try:
                extra.update(hook(recording, entry) or {})
            except RecfetchError as exc:
                extra["deleted"] = False
                return _failed(res, exc, f"in archive, but {exc}"), extra
        return res, extra or None

    def drain(block_until: int) -> None:
        # Report finished files at once (events stream), then wait while too many are in flight.
        for fut in [f for f in in_flight if f.done()]:
            in_flight.discard(fut)
            record(*fut.result())
        while len(in_flight) > block_until:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                in_flight.discard(fut)
                record(*fut.result())

    def submit(fn: Callable[..., tuple[FileResult, Extra]], *args: Any) -> None:
        with lock:
            result.attempted += 1
        in_flight.add(pool.submit(fn, *args))
        drain(jobs * 2)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="recfetch-dl")
    try:
        count = 0
        for recording in _until_stopped(recordings, stop):
            if isinstance(recording, FileResult):  # a ref resolved (or failed) before download
                if recording.outcome == "failed":
                    with lock:
                        result.attempted += 1
                record(recording)
                continue
            if recording.ref in seen_refs:
                # Overlapping listing windows may repeat a recording: never fetch it twice in one run.
                record(FileResult(recording.ref, "skipped", "duplicate in this run", None, 0, None, None))
                continue
            seen_refs.add(recording.ref)
            if not recording.downloadable:
                reason = recording.skip_reason or f"not downloadable (status {recording.status})"
                record(FileResult(recording.ref, "skipped", reason, None, 0, None, None))
                continue
            if opts.archive is not None and not opts.overwrite:
                entry = opts.archive.get(provider.name, provider.profile, recording.ref)
                if entry is not None and entry.path.exists():
                    if opts.on_archived and not opts.dry_run:
                        submit(archived_work, recording, entry)
                    else:
                        record(FileResult(recording.ref, "skipped", "in archive", entry.path, 0, None, None))
                    continue
                if entry is not None and opts.warn is not None:
                    # The archive says done but the file is gone: the recording may still
                    # exist only at the provider, so fetch it again rather than trust the record.
                    opts.warn(
                        f"warning: {recording.ref} is in the archive but {entry.path} is missing; "
                        "downloading it again"
                    )
            path = target_path(opts, recording)
            if path in seen_paths:
                path = path.with_name(f"{path.stem}_{len(seen_paths)}{path.suffix}")
            seen_paths.add(path)
            present = None if opts.overwrite else _present(path, recording)
            if present is not None:
                record(FileResult(recording.ref, "skipped", "already present", present, 0, None, None))
                continue
            if opts.max_files is not None and count >= opts.max_files:
                result.truncated = True
                break
            count += 1
            if opts.dry_run:
                with lock:
                    result.would_download += 1
                record(
                    FileResult(recording.ref, "skipped", "dry run: would download", path, 0, None, None),
                    {"size_bytes": recording.size_bytes},
                )
                continue
            submit(work, recording, path)
        drain(0)
    except RecfetchError as exc:
        # Listing failed part-way: stop new work, finish what is running.
        stop.set()
        drain(0)
        if result.run_error is None:
            result.run_error = exc
    except KeyboardInterrupt:
        stop.set()
        drain(0)
        result.interrupted = True
    finally:
        pool.shutdown(wait=True)
        result.seconds = time.monotonic() - started
    if stop.is_set() and result.run_error is None:
        result.interrupted = True
    return result
