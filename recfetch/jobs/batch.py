"""Downloading many recordings: one `plan()` of skip rules, a pool of transfers, one result.

Per recording, `Planner.plan` decides (in this order): a duplicate in this run,
not downloadable, in the archive with its file still there, the file already
present, `--max-files` reached, `--dry-run`; anything left is fetched.
`BatchRunner.run` fetches with `--jobs` transfers at once (`threads_for`: a few
more threads, which verify and make files durable meanwhile), hands each verified file to the
sinks in their fixed order (manifest, metadata, archive, deletion) and counts
outcomes in a `BatchResult`, whose `exit_code` is the run's only exit code rule.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from recfetch import naming
from recfetch.download import Downloader, FileResult
from recfetch.errors import (
    RUN_LEVEL,
    ExitCode,
    InterruptedError_,
    LocalIOError,
    NothingNewError,
    RecfetchError,
    batch_exit_code,
)
from recfetch.jobs.context import JobContext
from recfetch.jobs.options import DownloadOptions
from recfetch.jobs.sinks import Extra, Sinks
from recfetch.providers.base import Provider, Recording
from recfetch.state import ArchiveEntry


class SkipReason(str, Enum):
    """Why a recording was not fetched; the value is the event's ``reason`` (SPEC §4)."""

    DUPLICATE = "duplicate in this run"
    NOT_DOWNLOADABLE = "not downloadable"
    IN_ARCHIVE = "in archive"
    ALREADY_PRESENT = "already present"
    DRY_RUN = "dry run: would download"


ROUTINE = frozenset({SkipReason.DUPLICATE, SkipReason.IN_ARCHIVE, SkipReason.ALREADY_PRESENT})
"""Skips a nightly pull makes by the thousand; the human log shows them only with -v."""


@dataclass(frozen=True)
class Skip:
    reason: SkipReason
    detail: str | None = None
    """Shown instead of the reason's value (a provider's own "still processing")."""
    path: Path | None = None
    entry: ArchiveEntry | None = None

    def result(self, ref: str) -> FileResult:
        return FileResult(ref, "skipped", self.detail or self.reason.value, self.path, 0, None, None)


@dataclass(frozen=True)
class Fetch:
    path: Path


@dataclass(frozen=True)
class Stop:
    """`--max-files` reached while recordings were still waiting."""


Decision = Skip | Fetch | Stop


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
    fail_if_empty: bool = False
    deleting: bool = False
    """`--delete-after` was on (the summary then counts ``deleted``)."""
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    """Closing remarks for the person ("warning: ..." ones are warnings), already in the log file."""

    @property
    def exit_code(self) -> ExitCode:
        """SPEC §5 for a batch: the one place a download or pull's exit code is decided."""
        if self.run_error is not None:
            return self.run_error.exit_code
        if self.interrupted:
            return ExitCode.INTERRUPTED
        code = batch_exit_code(self.failures, self.attempted)
        if code == ExitCode.OK and self.fail_if_empty:
            new = self.would_download or self.downloaded
            if new == 0 and self.failed == 0:
                return NothingNewError.exit_code
        return code

    def summary(self) -> dict[str, Any]:
        """The SPEC §4 summary event's fields."""
        out: dict[str, Any] = {
            "downloaded": self.downloaded,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "exit_code": int(self.exit_code),
        }
        if self.deleting:
            out["deleted"] = self.deleted
        if self.dry_run:
            out["would_download"] = self.would_download
        return out

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
    """The SPEC §4 per-file event (plus any fields a sink added, e.g. ``deleted``)."""
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


def check_template(template: str) -> None:
    """A bad `--name` template is a usage error before anything is listed or fetched."""
    naming.render(template, Recording(provider="x", profile="x", ref="x", id="x"), ext=naming.UNKNOWN_EXT)


def target_path(opts: DownloadOptions, recording: Recording) -> Path:
    ext = naming.extension_for(recording, recording.media_type)
    relative = naming.render(opts.name, recording, ext=ext)
    return opts.output_dir / Path(relative)


def _on_disk(path: Path) -> list[Path]:
    """What occupies ``path`` (for an unknown type: under any media extension too)."""
    candidates = [path]
    if path.suffix == naming.UNKNOWN_EXT:
        candidates += [path.with_suffix(ext) for ext in sorted(naming.media_extensions())]
    return [c for c in candidates if os.path.lexists(c)]


def _proven(path: Path, recording: Recording) -> bool:
    """A file recfetch did not record counts as this recording only with the provider's size.

    An empty file, a symlink, or any file when the provider reports no size proves nothing.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size > 0
        and recording.size_bytes is not None
        and st.st_size == recording.size_bytes
    )


def _with_id(path: Path, recording: Recording, n: int) -> Path:
    """``name_<id>.ext`` (then ``name_<id>_2.ext``...): the recording id keeps names apart."""
    tag = naming.sanitize_component(recording.id, max_bytes=64) + (f"_{n}" if n > 1 else "")
    return path.with_name(naming.sanitize_component(f"{path.stem}_{tag}{path.suffix}"))


SEEN_LIMIT = 50_000
"""How many refs and paths a run remembers for in-run duplicate and collision checks.

Beyond it the oldest are forgotten, so memory stays flat on any listing size; what
is forgotten is still caught by the archive and the disk (a duplicate is then "in
archive", a path another recording took is owned on disk).
"""


class Recent:
    """A mapping that keeps only the ``limit`` most recently added keys."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self.limit = limit
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: Any, default: Any = None) -> Any:
        return self._items.get(key, default)

    def put(self, key: Any, value: Any = True) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class Planner:
    """The skip rules of a batch, in one place and one order."""

    def __init__(self, provider: Provider, opts: DownloadOptions, sinks: Sinks) -> None:
        self.provider = provider
        self.opts = opts
        self.sinks = sinks
        self.seen_refs = Recent()
        self.seen_paths = Recent()
        """Paths given out in this run, and to which ref."""
        self.fetches = 0
        self._page_rows: dict[str, ArchiveEntry | None] = {}
        """The archive's rows for the refs of the listing page being planned (see `prefetch`)."""

    def prefetch(self, refs: list[str]) -> None:
        """A listing page's refs, before its recordings come: their archive rows in one query
        instead of one per recording (a nothing-new pull looks up every listed recording)."""
        archive = self.sinks.archive
        if archive is None or self.opts.overwrite:
            return
        rows = archive.get_many(self.provider.name, self.provider.profile, refs)
        self._page_rows = {ref: rows.get(ref) for ref in refs}

    def archived(self, recording: Recording) -> ArchiveEntry | None:
        """The archive's row for ``recording`` when its file is still there (and --overwrite is off)."""
        archive = self.sinks.archive
        if archive is None or self.opts.overwrite:
            return None
        ref = recording.ref
        rows = self._page_rows
        entry = rows.pop(ref) if ref in rows else archive.get(self.provider.name, self.provider.profile, ref)
        if entry is not None and not self.sinks.place.holds(entry.location, recording, sha256=entry.sha256):
            # The archive says done but the file is gone: the recording may still exist
            # only at the provider, so fetch it again rather than trust the record.
            self.sinks.notes.warn(
                f"warning: {ref} is in the archive but {entry.location} is missing; downloading it again"
            )
            return None
        return entry

    def _claim(self, path: Path, recording: Recording) -> Path | Skip | None:
        """``path`` if this recording may be written there, a Skip if it is already there, else None."""
        ref = recording.ref
        if self.seen_paths.get(path, ref) != ref:
            return None  # another recording of this run goes there
        archive = self.sinks.archive
        owners = {archive.owner(p) for p in [path, *_on_disk(path)]} if archive is not None else set()
        owners.discard(None)
        if owners - {(self.provider.name, ref)}:
            return None  # the archive says another recording's file is (or was) there
        if owners:
            return path  # this recording's own file (--overwrite, or it went missing)
        present = _on_disk(path)
        if not present:
            return path
        proven = [p for p in present if _proven(p, recording)]
        if proven and not self.opts.overwrite:
            return Skip(SkipReason.ALREADY_PRESENT, path=proven[0])
        if proven and len(proven) == len(present):
            return path  # --overwrite: it is this recording's file by the provider's size
        return None  # a file recfetch cannot vouch for: never replaced, never counted as done

    def place(self, recording: Recording) -> Path | Skip:
        """Where the recording's file goes: a path no other recording owns (SPEC §3).

        The template's path when it is free or this recording's; otherwise ``_<id>``
        is added (in this run, or against the archive and the disk across runs).
        """
        base = target_path(self.opts, recording)
        for n in range(100):
            candidate = base if n == 0 else _with_id(base, recording, n)
            claimed = self._claim(candidate, recording)
            if claimed is not None:
                if isinstance(claimed, Path):
                    self.seen_paths.put(claimed, recording.ref)
                return claimed
        raise LocalIOError(
            f"no free file name for {recording.ref} near {base}",
            hint="clear out the folder or pick another --name template",
        )

    def plan(self, recording: Recording) -> Decision:
        if recording.ref in self.seen_refs:
            # Overlapping listing windows may repeat a recording: never fetch it twice in one run.
            return Skip(SkipReason.DUPLICATE)
        self.seen_refs.put(recording.ref)
        if not recording.downloadable:
            detail = recording.skip_reason or f"not downloadable (status {recording.status})"
            return Skip(SkipReason.NOT_DOWNLOADABLE, detail)
        entry = self.archived(recording)
        if entry is not None:
            return Skip(SkipReason.IN_ARCHIVE, path=entry.path, entry=entry)
        if self.sinks.place.store is not None:
            # An object store: the engine HEADs the key (proof, or a `_<id>` key beside another's).
            path = self.sinks.place.target(self.opts.name, recording)
            if self.seen_paths.get(path, recording.ref) != recording.ref:
                path = _with_id(path, recording, 1)
            self.seen_paths.put(path, recording.ref)
        else:
            placed = self.place(recording)
            if isinstance(placed, Skip):
                return placed
            path = placed
        if self.opts.max_files is not None and self.fetches >= self.opts.max_files:
            return Stop()
        self.fetches += 1
        if self.opts.dry_run:
            return Skip(SkipReason.DRY_RUN, path=path)
        return Fetch(path)


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


def _until_stopped(items: Iterable[Recording | FileResult], stop: threading.Event) -> Iterator[Any]:
    """Stop pulling from the listing as soon as a signal arrives (no new page is requested)."""
    for item in items:
        if stop.is_set():
            return
        yield item
        if stop.is_set():
            return


Outcome = tuple[FileResult, Extra]


def threads_for(jobs: int) -> int:
    """Worker threads of a batch of ``jobs`` transfers: a file that has arrived is verified,
    fsynced, renamed and handed to the sinks on its thread outside the transfer limit
    (`Downloader(transfers=...)`), so a few threads beyond ``jobs`` start the next
    transfers meanwhile."""
    jobs = max(1, jobs)
    return jobs + max(4, jobs // 4)


class BatchRunner:
    """Download every downloadable recording; never raise for one recording's failure."""

    def __init__(
        self,
        provider: Provider,
        opts: DownloadOptions,
        sinks: Sinks,
        ctx: JobContext,
        downloader: Downloader,
    ) -> None:
        self.provider = provider
        self.opts = opts
        self.sinks = sinks
        self.ctx = ctx
        self.downloader = downloader
        self.planner = Planner(provider, opts, sinks)
        self.result = BatchResult(fail_if_empty=opts.fail_if_empty)
        self._lock = threading.Lock()
        self._in_flight: set[Future[Outcome]] = set()

    # -- per file, in a worker thread ------------------------------------------------

    def _fetch(self, recording: Recording, path: Path) -> Outcome:
        try:
            self.sinks.intend(recording, path)
            res = self.downloader.fetch(recording, path, lambda: self.provider.mint(recording))
            if res.outcome != "downloaded":
                self.sinks.abandon(recording)
                return res, None
        except RecfetchError as exc:  # the journal could not be written (e.g. a full disk)
            return FileResult(recording.ref, "failed", exc.code.lower(), None, 0, None, exc), None
        if self.sinks.place.store is None:
            res = _typed_path(recording, res)
        return self.sinks.commit(recording, res)

    def _archived(self, recording: Recording, skip: Skip) -> Outcome:
        assert skip.entry is not None
        res = dataclasses.replace(skip.result(recording.ref), sha256=skip.entry.sha256)
        return self.sinks.archived(recording, skip.entry, res)

    # -- bookkeeping, on the main thread ---------------------------------------------

    def record(self, res: FileResult, extra: Extra = None) -> None:
        result = self.result
        with self._lock:
            event = event_for(self.provider.name, res, extra)
            if self.sinks.place.store is not None and res.path is not None:
                event["path"] = self.sinks.place.location(res.path)
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
                        self.ctx.stop.set()
                    else:
                        result.failures.append(res.error)
                result.failure_events.append(event)
        self.sinks.event(event)
        self.ctx.on_event(event)

    def _drain(self, block_until: int) -> None:
        # Report finished files at once (events stream), then wait while too many are in flight.
        for fut in [f for f in self._in_flight if f.done()]:
            self._in_flight.discard(fut)
            self.record(*fut.result())
        while len(self._in_flight) > block_until:
            done, _ = wait(self._in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                self._in_flight.discard(fut)
                self.record(*fut.result())

    def _submit(self, pool: ThreadPoolExecutor, fn: Callable[..., Outcome], *args: Any) -> None:
        with self._lock:
            self.result.attempted += 1
        self._in_flight.add(pool.submit(fn, *args))
        self._drain(2 * threads_for(self.opts.jobs))

    def _handle(self, pool: ThreadPoolExecutor, item: Recording | FileResult) -> bool:
        """Plan and start one item; False when --max-files says stop."""
        if isinstance(item, FileResult):  # a ref resolved (or failed) before the batch
            if item.outcome == "failed":
                with self._lock:
                    self.result.attempted += 1
            self.record(item)
            return True
        decision = self.planner.plan(item)
        if isinstance(decision, Stop):
            self.result.truncated = True
            return False
        if isinstance(decision, Fetch):
            self.downloader.reporter.file_planned(item.ref, item.size_bytes)  # the display's totals
            self._submit(pool, self._fetch, item, decision.path)
        elif (
            decision.reason is SkipReason.IN_ARCHIVE and self.sinks.acts_on_archived and not self.opts.dry_run
        ):
            self._submit(pool, self._archived, item, decision)
        elif decision.reason is SkipReason.DRY_RUN:
            with self._lock:
                self.result.would_download += 1
            self.record(decision.result(item.ref), {"size_bytes": item.size_bytes})
        else:
            self.record(decision.result(item.ref))
        return True

    def run(self, items: Iterable[Recording | FileResult]) -> BatchResult:
        started = time.monotonic()
        stop = self.ctx.stop
        pool = ThreadPoolExecutor(max_workers=threads_for(self.opts.jobs), thread_name_prefix="recfetch-dl")
        self.provider.on_page = self.planner.prefetch
        try:
            for item in _until_stopped(items, stop):
                if not self._handle(pool, item):
                    break
            self._drain(0)
        except RecfetchError as exc:
            # Listing failed part-way: stop new work, finish what is running.
            stop.set()
            self._drain(0)
            if self.result.run_error is None:
                self.result.run_error = exc
        except KeyboardInterrupt:
            stop.set()
            self._drain(0)
            self.result.interrupted = True
        finally:
            self.provider.on_page = None
            pool.shutdown(wait=True)
            self.result.seconds = time.monotonic() - started
        try:
            self.sinks.flush()  # every file reported so far is in the archive before the run ends
        except RecfetchError as exc:
            if self.result.run_error is None:
                self.result.run_error = exc
        if stop.is_set() and self.result.run_error is None:
            self.result.interrupted = True
        return self.result
