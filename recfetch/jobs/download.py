"""`download REF...`: resolve refs, then the same batch as `pull`; and the batch step both share."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from recfetch.download import Downloader, FileResult
from recfetch.errors import RUN_LEVEL, ExitCode, RecfetchError, UsageError
from recfetch.jobs.batch import BatchResult, BatchRunner, SkipReason
from recfetch.jobs.context import JobContext, Notifier
from recfetch.jobs.options import DownloadOptions
from recfetch.jobs.place import Place
from recfetch.jobs.sinks import Sinks, open_sinks
from recfetch.providers.base import Provider, Recording
from recfetch.shard import parse_shard


def run_batch(
    provider: Provider,
    opts: DownloadOptions,
    sinks: Sinks,
    ctx: JobContext,
    items: Iterable[Recording | FileResult],
    *,
    deleting: bool = False,
) -> BatchResult:
    """Transfer ``items`` with the progress display open, then log the summary and closing notes."""
    with ctx.progress() as reporter:
        downloader = Downloader(
            retries=opts.retries,
            reporter=reporter,
            stop=ctx.stop,
            overwrite=opts.overwrite,
            stall_timeout=opts.stall_timeout,
            store=sinks.place.store,
            transfers=max(1, opts.jobs),
        )
        try:
            result = BatchRunner(provider, opts, sinks, ctx, downloader).run(items)
        finally:
            downloader.close()
    result.deleting = deleting
    result.dry_run = opts.dry_run
    sinks.summary(result.summary())
    if result.run_error is not None:
        sinks.notes.error(result.run_error)
    if deleting and result.deleted:
        result.notes.append(
            f"deleted {result.deleted} recording(s) at {provider.name} after verifying the local copies"
        )
    if result.truncated:
        result.notes.append(
            f"warning: stopped after --max-files {opts.max_files}; more recordings are waiting"
        )
    if result.interrupted and sinks.place.store is not None:
        result.notes.append("warning: interrupted: unfinished uploads were aborted; the next run redoes them")
    elif result.interrupted:
        result.notes.append("warning: interrupted: partial files were kept as .part and resume next time")
    for note in result.notes:
        if note.startswith("warning: "):
            sinks.notes.log("warning", note.removeprefix("warning: "))
    return result


BAD_REF = "bad_ref"
"""The ``reason`` of a file event for a ref (or stdin line) that names no recording: that item fails alone."""


class RefError(RecfetchError):
    """One ref of a batch names no recording; the other refs still download (exit 3, or 2 alone)."""

    exit_code = ExitCode.USAGE
    code = "USAGE"


@dataclass(frozen=True)
class BadRef:
    """A line of piped refs that could not be read."""

    line: int
    problem: str
    hint: str

    def result(self) -> FileResult:
        error = RefError(f"stdin line {self.line} {self.problem}", hint=self.hint)
        return FileResult(f"stdin line {self.line}", "failed", BAD_REF, None, 0, None, error)


def refs_from(args: Iterable[str], stdin: Iterable[str]) -> Iterator[str | BadRef]:
    """Refs from arguments; `-` reads lines of ``stdin`` (plain refs, or JSONL records with `ref`)."""
    for ref in args:
        if ref != "-":
            yield ref
            continue
        for line_no, line in enumerate(stdin, start=1):
            text = line.strip()
            if not text:
                continue
            if not text.startswith("{"):
                yield text
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                yield BadRef(
                    line_no, "is not valid JSON", "send one ref per line, or JSONL records with a ref field"
                )
                continue
            value = obj.get("ref") if isinstance(obj, dict) else None
            if isinstance(value, str) and value:
                yield value
            else:
                yield BadRef(line_no, 'has no "ref" field', "pipe `list --jsonl` output, or one ref per line")


class DownloadJob:
    """Download the named recordings (`P download REF...`, `-` for refs on stdin)."""

    def __init__(self, ctx: JobContext, *, state_dir: Path) -> None:
        self.ctx = ctx
        self.state_dir = state_dir

    def sinks(self, provider: Provider, opts: DownloadOptions, notify: Notifier | None = None) -> Sinks:
        shard = parse_shard(opts.shard) if opts.shard else None
        return open_sinks(
            provider, opts, state_dir=self.state_dir, notify=notify or self.ctx.notify, command="download",
            place=Place.open(opts.output_dir, self.ctx.store_settings, jobs=opts.jobs),
            shard=shard.label if shard else None,
        )

    def run(
        self, provider: Provider, opts: DownloadOptions, sinks: Sinks, refs: Iterable[str | BadRef]
    ) -> BatchResult:
        if opts.shard:
            shard = parse_shard(opts.shard)
            # A line that is no ref belongs to no shard: every shard reading that pipe reports it.
            refs = (
                ref for ref in refs if isinstance(ref, BadRef) or shard.takes(provider.canonical_ref(ref))
            )
        with sinks:
            return run_batch(provider, opts, sinks, self.ctx, _resolve(provider, refs, opts, sinks))


def _resolve(
    provider: Provider, refs: Iterable[str | BadRef], opts: DownloadOptions, sinks: Sinks
) -> Iterator[Recording | FileResult]:
    """Each ref's recording; an archived ref whose file is still there needs no provider call."""
    archive = sinks.archive
    for given in refs:
        if isinstance(given, BadRef):
            yield given.result()
            continue
        try:
            ref = provider.canonical_ref(given)  # e.g. realtimekit --audio: another file, another ref
        except UsageError as exc:
            yield _bad(given, exc)
            continue
        # No provider call at all for what is done (Kismet audits every lookup).
        if archive is not None and not opts.overwrite and sinks.place.store is None:
            entry = archive.get(provider.name, provider.profile, ref)
            if entry is not None and entry.path.exists():
                yield FileResult(ref, "skipped", SkipReason.IN_ARCHIVE.value, entry.path, 0, None, None)
                continue
        try:
            yield provider.get_recording(ref)
        except UsageError as exc:
            yield _bad(ref, exc)  # a malformed ref is this item's problem, not the batch's
        except RecfetchError as exc:
            if isinstance(exc, RUN_LEVEL):
                raise
            yield FileResult(ref, "failed", exc.code.lower(), None, 0, None, exc)


def _bad(ref: str, exc: UsageError) -> FileResult:
    error = RefError(exc.message, hint=exc.hint)
    return FileResult(ref, "failed", BAD_REF, None, 0, None, error)
