"""The bodies of the verbs every provider has; the sub-apps only translate flags into calls."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from recfetch import config
from recfetch.cli._confirm import confirm_delete
from recfetch.cli._runtime import Runtime, check_base_url, signals_stop
from recfetch.destinations.settings import resolve as resolve_store
from recfetch.download import Reporter
from recfetch.errors import (
    RUN_LEVEL,
    ConfigError,
    NotFoundError,
    RecfetchError,
    UsageError,
    batch_exit_code,
)
from recfetch.jobs.batch import BatchResult, SkipReason, check_template
from recfetch.jobs.context import JobContext
from recfetch.jobs.download import BadRef, DownloadJob, refs_from
from recfetch.jobs.listing import Limited, build_query, clean_filters, window_text
from recfetch.jobs.options import DownloadOptions, ListOptions, PullOptions
from recfetch.jobs.pull import PullJob, PullResult
from recfetch.naming import DEFAULT_TEMPLATE
from recfetch.output import EventWriter, human_bytes, progress_for, write_one, write_records
from recfetch.providers import get_provider
from recfetch.providers.base import Recording, iso
from recfetch.shard import parse_shard

__all__ = ["DEFAULT_TEMPLATE", "download", "list_recordings", "login", "pull", "show", "url"]


# ---------------------------------------------------------------------------
# helpers


def read_refs(refs: list[str]) -> Iterator[str]:
    """Refs from arguments; `-` reads lines (plain refs or JSONL records with `ref`).

    The rules are the batch's (`refs_from`); here one unreadable line stops the command.
    """
    for ref in refs_from(refs, sys.stdin):
        if isinstance(ref, BadRef):
            raise UsageError(f"stdin line {ref.line} {ref.problem}", hint=ref.hint)
        yield ref


# ---------------------------------------------------------------------------
# login


def login(rt: Runtime, name: str, values: dict[str, Any], *, no_verify: bool) -> None:
    rt.writes_config = True
    cls = get_provider(name)
    given: dict[str, str] = {}
    stdin_used = False
    for setting in cls.settings:
        if values.get(setting.key + "_stdin"):
            if stdin_used:
                raise UsageError("only one --*-stdin option can read standard input")
            stdin_used = True
            secret = sys.stdin.readline().strip()
            if not secret:
                raise UsageError(f"--{setting.key.replace('_', '-')}-stdin read nothing")
            given[setting.key] = secret
        elif values.get(setting.key):
            given[setting.key] = values[setting.key]
    if values.get("base_url"):
        given["base_url"] = values["base_url"]
    interactive = sys.stdin.isatty() and not stdin_used
    # Resolve exactly as every other verb does: option > environment > file.
    sources = rt.settings(cls, cli_values=given)
    from_env = [key for key, item in sources.items() if item.source == "env" and key not in given]
    existing = config.profile_table(rt.data(), rt.profile, name)
    for setting in cls.settings:
        if setting.key in given or setting.key in from_env or not setting.prompt or not interactive:
            continue
        alternative = setting.unless
        if alternative and (given.get(alternative) or alternative in from_env or existing.get(alternative)):
            continue  # the alternative login is already there (kazoo: api_key, not a user)
        answer = _prompt(setting, existing.get(setting.key))
        if answer:
            given[setting.key] = answer
    resolved = config.materialize(rt.settings(cls, cli_values=given), cls.secret_keys())
    try:
        cls.check_settings(resolved)
    except ConfigError as exc:
        missing = [s for s in cls.settings if s.required and not resolved.get(s.key)]
        if missing:
            opt = "--" + missing[0].key.replace("_", "-")
            also = f" or {opt}-stdin" if missing[0].secret else ""
            raise UsageError(
                f"{name} login needs {opt}{also} ({missing[0].help})",
                hint=f"pass it as an option, or run `recfetch {name} login` on a terminal to be asked",
            ) from None
        raise UsageError(
            exc.message, hint=f"pass it as an option, see `recfetch {name} login --help`"
        ) from None
    check_base_url(name, resolved.get("base_url"))  # before saving: a typo must not break later runs
    if not no_verify:
        provider = cls(resolved, profile=rt.profile, state_dir=config.state_dir(), stop=rt.stop)
        try:
            label = provider.verify()
        finally:
            provider.close()
        rt.ui.info(f"verified: {label}")
    config.update_profile(rt.config_path, rt.profile, name, given)
    rt.ui.info(f"saved {name} settings to profile {rt.profile!r} in {rt.config_path}")
    if from_env:
        used = ", ".join(f"{key} ({config.env_name(name, key)})" for key in from_env)
        rt.ui.info(f"used from the environment and not saved: {used}")


def _prompt(setting: Any, current_value: Any) -> str:
    """Ask for one setting on the terminal (stderr: stdout carries data only)."""
    shown = "" if current_value is None else (" [keep current]" if setting.secret else f" [{current_value}]")
    answer: str = typer.prompt(
        f"{setting.key}{shown}",
        default="" if current_value is not None or not setting.required else None,
        hide_input=setting.secret,
        show_default=False,
        err=True,
    )
    return answer


# ---------------------------------------------------------------------------
# list / show / url


def list_recordings(rt: Runtime, name: str, opts: ListOptions, fmt: str) -> None:
    query = build_query(
        since=opts.since, until=opts.until, tz=opts.tz, limit=opts.limit, filters=opts.filters
    )
    if query.since or query.until:
        rt.ui.debug(f"time window (UTC): {window_text(query)}")
    shard = parse_shard(opts.shard) if opts.shard else None
    provider = rt.provider(name, options=query.options)
    with_raw = fmt != "table"  # the table shows no raw: it is then never cleaned
    try:
        records = (
            r.to_dict(raw=with_raw)
            for r in Limited(provider.iter_recordings(query), opts.limit, rt.ui)
            if shard is None or shard.takes(r.ref)
        )
        provider.api.before_request = rt.ui.stdout.flush  # lines go out a page at a time
        write_records(rt.ui, records, fmt, paged=True)
        for note in provider.listing_notes():
            rt.ui.info(note)
    finally:
        provider.close()


def show(rt: Runtime, name: str, ref: str, fmt: str, options: dict[str, Any]) -> None:
    provider = rt.provider(name, options=options)
    try:
        write_one(rt.ui, provider.get_recording(ref).to_dict(), fmt)
    finally:
        provider.close()


def url(rt: Runtime, name: str, ref: str, as_json: bool, options: dict[str, Any]) -> None:
    provider = rt.provider(name, options=options)
    try:
        recording = provider.get_recording(ref)
        if not recording.downloadable:  # it exists, its file does not (yet): SPEC §5 says 6
            raise NotFoundError(
                f"{name} recording {ref} has no file to download"
                f" ({recording.skip_reason or recording.status})"
            )
        target = provider.mint(recording)
        if not target.printable:
            raise UsageError(
                f"{name} serves recordings only to requests carrying your credentials, "
                "so there is no URL that is safe to print",
                hint=f"use `recfetch {name} download {ref}`",
            )
        if as_json:
            rt.ui.line(json.dumps({"url": target.url, "expires_at": iso(target.expires_at)}))
        else:
            rt.ui.line(target.url)
    finally:
        provider.close()


# ---------------------------------------------------------------------------
# download / pull: build the options, run the job, render its result


@contextmanager
def _transfers(rt: Runtime) -> Iterator[Reporter]:
    """While files move: SIGINT/SIGTERM stop the run cleanly, and the progress display is up."""
    with signals_stop(rt.stop), progress_for(rt.ui) as progress:
        yield progress


def _context(rt: Runtime, on_event: Callable[[dict[str, Any]], None]) -> JobContext:
    return JobContext(
        stop=rt.stop,
        notify=rt.ui,
        progress=lambda: _transfers(rt),
        on_event=on_event,
        confirm_delete=confirm_delete,
        store_settings=lambda: resolve_store(rt.data(), rt.profile),
    )


def _event_printer(rt: Runtime, writer: EventWriter, fmt: str) -> Callable[[dict[str, Any]], None]:
    def on_event(event: dict[str, Any]) -> None:
        if fmt == "table" and event.get("reason") == SkipReason.DRY_RUN:
            size = event.get("size_bytes")
            rt.ui.line(
                f"would download  {event['ref']}  ->  {event['path']}"
                + (f"  ({human_bytes(size)})" if size is not None else "")
            )
            return
        writer.file(event)

    return on_event


def _report(rt: Runtime, writer: EventWriter, fmt: str, result: BatchResult) -> None:
    """The summary, the run-level error (stderr) and the closing notes."""
    as_json = fmt in ("json", "jsonl")
    if result.run_error is not None and as_json:
        rt.ui.error(result.run_error)
    failures = result.failure_events
    if result.run_error is not None:  # said once, by the run's error line below
        failures = [f for f in failures if (f.get("error") or {}).get("code") != result.run_error.code]
    nothing_done = not (result.downloaded or result.skipped or result.failed)
    if not (result.run_error is not None and nothing_done and fmt not in ("json", "jsonl", "csv")):
        # A run stopped before any file (a rejected key at a cron pull) shows only its error,
        # not a success-looking "0 downloaded, 0 skipped, 0 failed" first.
        writer.summary(result.summary(), failures)
    if result.run_error is not None and not as_json:
        rt.ui.error(result.run_error)
    for note in result.notes:
        if note.startswith("warning: "):
            rt.ui.warn(note)
        else:
            rt.ui.info(note)


def _early_summary(rt: Runtime, fmt: str, exc: RecfetchError) -> None:
    """--json/--jsonl promise a summary whose exit_code is the process's, even for a run that never began."""
    if fmt in ("json", "jsonl"):
        EventWriter(rt.ui, fmt).summary(BatchResult(run_error=exc).summary(), [])


def download(rt: Runtime, name: str, refs: list[str], opts: DownloadOptions, fmt: str) -> int:
    """`P download REF...`: run the job, render its result, return the exit code."""
    writer = EventWriter(rt.ui, fmt)
    job = DownloadJob(_context(rt, _event_printer(rt, writer, fmt)), state_dir=config.state_dir())
    result: BatchResult | None = None
    try:
        check_template(opts.name)
        provider = rt.provider(
            name,
            options=clean_filters(opts.filters),
            retries=opts.retries,
            api_concurrency=opts.api_concurrency,
        )
    except RecfetchError as exc:
        _early_summary(rt, fmt, exc)
        raise
    try:
        sinks = job.sinks(provider, opts)
        result = job.run(provider, opts, sinks, refs_from(refs, sys.stdin))
    except RecfetchError as exc:
        if result is None:
            _early_summary(rt, fmt, exc)
        raise
    finally:
        provider.close()
    _report(rt, writer, fmt, result)
    return int(result.exit_code)


def pull(rt: Runtime, name: str, opts: PullOptions, fmt: str) -> int:
    """`P pull`: run the job, render its result, return the exit code."""
    writer = EventWriter(rt.ui, fmt)
    job = PullJob(_context(rt, _event_printer(rt, writer, fmt)), state_dir=config.state_dir())
    try:
        check_template(opts.name)
        query = build_query(
            since=opts.since, until=opts.until, tz=opts.tz, limit=opts.limit, filters=opts.filters
        )
        provider = rt.provider(
            name, options=query.options, retries=opts.retries, api_concurrency=opts.api_concurrency
        )
    except RecfetchError as exc:
        _early_summary(rt, fmt, exc)
        raise
    result: PullResult | None = None
    try:
        sinks = job.sinks(provider, opts)
        result = job.run(provider, opts, sinks)
    except RecfetchError as exc:
        if result is None:
            _early_summary(rt, fmt, exc)
        raise
    finally:
        provider.close()
    for note in provider.listing_notes():
        rt.ui.info(note)
    if not result.declined:
        _report(rt, writer, fmt, result.batch)
    return int(result.exit_code)


# ---------------------------------------------------------------------------
# delete (providers that implement Provider.delete)


def delete_recordings(rt: Runtime, name: str, refs: list[str], *, yes: bool, as_json: bool) -> int:
    """Delete recordings at the provider after confirmation; report each outcome."""
    from recfetch.cli import _confirm  # looked up at call time (tests stand in for the prompt)

    wanted = list(dict.fromkeys(r.strip() for r in read_refs(refs) if r.strip()))
    if not wanted:
        raise UsageError("no recording refs to delete", hint="pass refs, or - with refs on stdin")
    if not _confirm.confirm_delete(name, wanted, yes=yes):
        rt.ui.info("nothing deleted")
        return 0
    provider = rt.provider(name)
    deleted: list[str] = []
    failures: list[tuple[str, RecfetchError]] = []
    try:
        for ref in wanted:
            try:
                provider.delete(Recording(provider=name, profile=provider.profile, ref=ref, id=ref))
            except RecfetchError as exc:
                if isinstance(exc, RUN_LEVEL) or len(wanted) == 1:
                    raise
                failures.append((ref, exc))
                rt.ui.error(exc)
                continue
            deleted.append(ref)
            rt.ui.info(f"deleted {ref}")
    finally:
        provider.close()
    if as_json:
        failed = [{"ref": r, "code": e.code, "message": e.one_line()} for r, e in failures]
        rt.ui.line(json.dumps({"deleted": deleted, "failed": failed}))
    return int(batch_exit_code([e for _, e in failures], len(wanted)))
