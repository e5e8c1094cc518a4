"""`download REF...`: resolve refs, then the same batch as `pull`; and the batch step both share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from recfetch.download import Downloader, FileResult
from recfetch.errors import RUN_LEVEL, RecfetchError
from recfetch.jobs.batch import BatchResult, BatchRunner, SkipReason
from recfetch.jobs.context import JobContext, Notifier
from recfetch.jobs.options import DownloadOptions
from recfetch.jobs.sinks import Sinks, open_sinks
from recfetch.providers.base import Provider, Recording


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
    if result.interrupted:
        result.notes.append("warning: interrupted: partial files were kept as .part and resume next time")
    for note in result.notes:
        if note.startswith("warning: "):
            sinks.notes.log("warning", note.removeprefix("warning: "))
    return result


class DownloadJob:
    """Download the named recordings (`P download REF...`, `-` for refs on stdin)."""

    def __init__(self, ctx: JobContext, *, state_dir: Path) -> None:
        self.ctx = ctx
        self.state_dir = state_dir

    def sinks(self, provider: Provider, opts: DownloadOptions, notify: Notifier | None = None) -> Sinks:
        return open_sinks(
            provider, opts, state_dir=self.state_dir, notify=notify or self.ctx.notify, command="download"
        )

    def run(
        self, provider: Provider, opts: DownloadOptions, sinks: Sinks, refs: Iterable[str]
    ) -> BatchResult:
        with sinks:
            return run_batch(provider, opts, sinks, self.ctx, _resolve(provider, refs, opts, sinks))


def _resolve(
    provider: Provider, refs: Iterable[str], opts: DownloadOptions, sinks: Sinks
) -> Iterator[Recording | FileResult]:
    """Each ref's recording; an archived ref whose file is still there needs no provider call."""
    archive = sinks.archive
    for ref in refs:
        ref = provider.canonical_ref(ref)  # e.g. realtimekit --audio: another file, another ref
        # No provider call at all for what is done (Kismet audits every lookup).
        if archive is not None and not opts.overwrite:
            entry = archive.get(provider.name, provider.profile, ref)
            if entry is not None and entry.path.exists():
                yield FileResult(ref, "skipped", SkipReason.IN_ARCHIVE.value, entry.path, 0, None, None)
                continue
        try:
            yield provider.get_recording(ref)
        except RecfetchError as exc:
            if isinstance(exc, RUN_LEVEL):
                raise
            yield FileResult(ref, "failed", exc.code.lower(), None, 0, None, exc)
