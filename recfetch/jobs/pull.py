"""`pull`, the cron command, top-down: confirm → lock → window → batch → watermark.

Decisions (also in the README's cron section):
- An archived recording whose local file was deleted is downloaded again (with a
  warning): the archive must never be the reason a recording exists only at the provider.
- The incremental watermark advances only after a complete run (nothing failed, nothing
  interrupted, not cut short by --limit/--max-files, not a dry run) and only when the
  run's window reaches back to the stored watermark, so no stretch of time is skipped.
  It moves to the end of the window the run covered: `--until` when given, else the
  moment the run started.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recfetch import timeparse
from recfetch.errors import ExitCode, UsageError
from recfetch.jobs.batch import BatchResult
from recfetch.jobs.context import JobContext, Notifier
from recfetch.jobs.download import run_batch
from recfetch.jobs.listing import Limited, build_query, window_text
from recfetch.jobs.options import PullOptions
from recfetch.jobs.place import Place, StoreWatermarks
from recfetch.jobs.sinks import Notes, Sinks, open_sinks
from recfetch.providers.base import ListQuery, Provider, Recording, iso
from recfetch.shard import Shard, parse_shard
from recfetch.state import Lock, Watermarks


@dataclass
class PullResult:
    batch: BatchResult = field(default_factory=BatchResult)
    declined: bool = False
    """`--delete-after` was not confirmed: nothing was downloaded or deleted."""
    watermark: datetime | None = None
    """The watermark this run stored (incremental runs that advanced it)."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.declined else self.batch.exit_code


@dataclass(frozen=True)
class Window:
    query: ListQuery
    previous: datetime | None
    """The stored watermark (incremental only)."""
    contiguous: bool
    """Whether a complete run may advance the watermark (no gap after the stored one)."""


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


def covered_until(query: ListQuery, started: datetime) -> datetime:
    """The end of the time a run listed: its --until, or the moment it started."""
    return started if query.until is None else min(query.until, started)


def check_delete(provider: Provider, opts: PullOptions) -> None:
    if not opts.delete_after:
        return
    if not provider.can_delete:
        raise UsageError(
            f"{provider.name} does not support deleting recordings",
            hint="drop --delete-after (kazoo and bird can delete)",
        )
    if opts.no_archive:
        raise UsageError(
            "--delete-after needs the archive to prove each file was verified", hint="drop --no-archive"
        )


class PullJob:
    """List with the filters, download what is new, remember how far a complete run got."""

    def __init__(self, ctx: JobContext, *, state_dir: Path, started: datetime | None = None) -> None:
        self.ctx = ctx
        self.state_dir = state_dir
        self.started = started or datetime.now(UTC)
        self.watermarks: Watermarks | StoreWatermarks = Watermarks(state_dir)

    def sinks(self, provider: Provider, opts: PullOptions, notify: Notifier | None = None) -> Sinks:
        """The sinks `opts` asks for, the verified deleter included."""
        timeparse.parse_duration(opts.overlap, flag="--overlap")
        check_delete(provider, opts)
        shard = parse_shard(opts.shard) if opts.shard else None
        return open_sinks(
            provider,
            opts,
            state_dir=self.state_dir,
            notify=notify or self.ctx.notify,
            command="pull",
            delete=opts.delete_after and not opts.dry_run,
            place=Place.open(opts.output_dir, self.ctx.store_settings, jobs=opts.jobs),
            shard=shard.label if shard else None,
        )

    def run(self, provider: Provider, opts: PullOptions, sinks: Sinks) -> PullResult:
        profile = provider.profile
        shard = parse_shard(opts.shard) if opts.shard else None
        # Lock and watermark are per shard, so shards never wait on each other (SPEC §9).
        name = f"{provider.name}.shard-{shard.label}" if shard else provider.name
        store = sinks.place.store
        self.watermarks = StoreWatermarks(store) if store is not None else Watermarks(self.state_dir)
        overlap = timeparse.parse_duration(opts.overlap, flag="--overlap")
        query = build_query(
            since=opts.since, until=opts.until, tz=opts.tz, limit=opts.limit, filters=opts.filters
        )
        check_delete(provider, opts)
        deleting = opts.delete_after and not opts.dry_run
        if deleting != sinks.acts_on_archived:
            raise ValueError("pull sinks must come from PullJob.sinks() for these options")
        # Ask (or insist on --yes) before anything is downloaded, and before taking the lock.
        if deleting and not self.ctx.confirm_delete(
            provider.name, ["each recording this pull verifies locally"], yes=opts.yes
        ):
            self.ctx.notify.info("not confirmed: nothing was downloaded or deleted")
            return PullResult(declined=True)
        lock = Lock(self.state_dir, profile, name)
        lock.acquire()
        try:
            with sinks:
                window = self._window(provider, opts, query, overlap, sinks.notes, name)
                items = Limited(provider.iter_recordings(window.query), opts.limit, sinks.notes)
                batch = run_batch(
                    provider, opts, sinks, self.ctx, _in_shard(items, shard), deleting=deleting
                )
                result = PullResult(batch)
                if opts.incremental:
                    result.watermark = self._advance(
                        provider, opts, window, batch, items.truncated, sinks.notes, name
                    )
                return result
        finally:
            lock.release()

    def _window(
        self,
        provider: Provider,
        opts: PullOptions,
        query: ListQuery,
        overlap: timedelta,
        notes: Notes,
        name: str,
    ) -> Window:
        profile = provider.profile
        if query.since or query.until:
            self.ctx.notify.debug(f"time window (UTC): {window_text(query)}")
        previous = self.watermarks.get(profile, name) if opts.incremental else None
        resolved, contiguous = resolve_window(
            query,
            incremental=opts.incremental,
            explicit_window=opts.explicit_window,
            watermark=previous,
            overlap=overlap,
        )
        if opts.incremental:
            if opts.explicit_window:
                note = "--since/--until given, the watermark is not used for the window"
            elif previous is None:
                note = f"no watermark yet for {profile}/{name}: listing everything"
            else:
                note = f"last complete run ended {iso(previous)}; overlap {opts.overlap}"
            notes.debug(f"incremental: {note}")
        notes.debug(f"listing window (UTC): {window_text(resolved)}")
        return Window(resolved, previous, contiguous)

    def _advance(
        self,
        provider: Provider,
        opts: PullOptions,
        window: Window,
        batch: BatchResult,
        limit_truncated: bool,
        notes: Notes,
        name: str,
    ) -> datetime | None:
        """Advance the watermark after a complete incremental run; otherwise say why not."""
        profile = provider.profile
        reasons = []
        if opts.dry_run:
            reasons.append("this was a dry run")
        if batch.interrupted:
            reasons.append("the run was interrupted")
        if batch.run_error is not None or batch.failures or batch.failed:
            reasons.append("some recordings failed")
        if batch.truncated:
            reasons.append("--max-files left recordings waiting")
        if limit_truncated:
            reasons.append("--limit cut the listing short")
        if not window.contiguous:
            reasons.append(f"the window does not reach back to the watermark {iso(window.previous)}")
        if reasons:
            notes.debug(f"incremental: watermark for {profile}/{name} not advanced: {'; '.join(reasons)}")
            return None
        end = covered_until(window.query, self.started)
        if window.previous is not None and end <= window.previous:
            return None  # never move a watermark backwards
        try:
            self.watermarks.set(profile, name, end)
        except OSError as exc:
            # The files are safe; only the next run's window is wider than it could be.
            self.ctx.notify.warn(f"warning: could not save the incremental watermark: {exc.strerror}")
            return None
        notes.debug(f"incremental: watermark for {profile}/{name} is now {iso(end)}")
        return end


def _in_shard(items: Iterable[Recording], shard: Shard | None) -> Iterator[Recording]:
    """The listed recordings of this shard (all of them without --shard)."""
    for recording in items:
        if shard is None or shard.takes(recording.ref):
            yield recording
