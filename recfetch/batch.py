"""Downloading many recordings: skip rules, --jobs threads, events and the run's exit code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
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


class ArchiveLike(Protocol):
    def has(self, provider: str, profile: str, ref: str) -> Path | None: ...
    def add(self, recording: Recording, result: FileResult) -> None: ...


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
    """Hooks run (in the worker thread) after a file is verified: manifest, metadata, delete."""


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


def event_for(provider: str, result: FileResult) -> dict[str, Any]:
    """The SPEC §4 per-file event."""
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
    }


def target_path(opts: BatchOptions, recording: Recording) -> Path:
    ext = naming.extension_for(recording, recording.media_type)
    relative = naming.render(opts.template, recording, ext=ext)
    return opts.output_dir / Path(relative)


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
    """Download every downloadable recording; never raise for one recording's failure."""
    result = BatchResult()
    started = time.monotonic()
    lock = threading.Lock()
    in_flight: set[Future[FileResult]] = set()
    jobs = max(1, opts.jobs)
    seen_paths: set[Path] = set()

    def record(res: FileResult, recording: Recording | None = None) -> None:
        with lock:
            event = event_for(provider.name, res)
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

    def work(recording: Recording, path: Path) -> FileResult:
        res = downloader.fetch(recording, path, lambda: provider.mint(recording))
        if res.outcome == "downloaded":
            for hook in opts.after_file:
                try:
                    hook(recording, res)
                except RecfetchError as exc:
                    return FileResult(
                        res.ref, "failed", str(exc), res.path, res.bytes, res.sha256, exc, res.mints
                    )
            if opts.archive is not None:
                opts.archive.add(recording, res)
        return res

    def drain(block_until: int) -> None:
        while len(in_flight) > block_until:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                in_flight.discard(fut)
                record(fut.result())

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="recfetch-dl")
    try:
        count = 0
        for recording in recordings:
            if stop.is_set():
                if result.run_error is None:
                    result.interrupted = True
                break
            if isinstance(recording, FileResult):  # a ref that failed before download
                with lock:
                    result.attempted += 1
                record(recording)
                continue
            if not recording.downloadable:
                reason = recording.skip_reason or f"not downloadable (status {recording.status})"
                record(FileResult(recording.ref, "skipped", reason, None, 0, None, None))
                continue
            if opts.archive is not None and not opts.overwrite:
                existing = opts.archive.has(provider.name, provider.profile, recording.ref)
                if existing is not None:
                    record(FileResult(recording.ref, "skipped", "in archive", existing, 0, None, None))
                    continue
            path = target_path(opts, recording)
            if path in seen_paths:
                path = path.with_name(f"{path.stem}_{len(seen_paths)}{path.suffix}")
            seen_paths.add(path)
            if (
                not opts.overwrite
                and path.exists()
                and (recording.size_bytes is None or path.stat().st_size == recording.size_bytes)
            ):
                record(FileResult(recording.ref, "skipped", "already present", path, 0, None, None))
                continue
            if opts.max_files is not None and count >= opts.max_files:
                result.truncated = True
                break
            count += 1
            if opts.dry_run:
                on_event(
                    {
                        **event_for(
                            provider.name,
                            FileResult(
                                recording.ref, "skipped", "dry run: would download", path, 0, None, None
                            ),
                        ),
                        "size_bytes": recording.size_bytes,
                    }
                )
                result.skipped += 1
                continue
            with lock:
                result.attempted += 1
            in_flight.add(pool.submit(work, recording, path))
            drain(jobs * 2)
        drain(0)
    except RecfetchError as exc:
        # Listing failed part-way: stop new work, finish what is running.
        stop.set()
        drain(0)
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
