"""The bodies of the verbs every provider has; the sub-apps only translate flags into calls."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from recfetch import config, timeparse
from recfetch.batch import DEFAULT_TEMPLATE, BatchOptions, BatchResult, run_batch
from recfetch.cli._runtime import current, run, signals_stop
from recfetch.download import Downloader, FileResult
from recfetch.errors import (
    RUN_LEVEL,
    ConfigError,
    NothingNewError,
    RecfetchError,
    UsageError,
    batch_exit_code,
)
from recfetch.output import EventWriter, human_bytes, progress_for, write_one, write_records
from recfetch.providers import get_provider
from recfetch.providers.base import ListQuery, Provider, Recording, iso

__all__ = ["DEFAULT_TEMPLATE", "download", "list_recordings", "login", "pull", "show", "url"]


# ---------------------------------------------------------------------------
# helpers


def _json_mode(fmt: str) -> None:
    current().ui.json_errors = fmt in ("json", "jsonl")


def build_query(
    *,
    since: str | None,
    until: str | None,
    tz: str | None,
    limit: int | None,
    options: Mapping[str, Any],
) -> ListQuery:
    rt = current()
    timeparse.zone(tz)  # reject a bad --tz even when no date needs it
    start = timeparse.parse_time(since, tz=tz, flag="--since") if since else None
    end = timeparse.parse_time(until, tz=tz, flag="--until") if until else None
    if start and end and start >= end:
        raise UsageError(
            "--since must be before --until", hint=f"the window resolved to {iso(start)} .. {iso(end)}"
        )
    if start or end:
        rt.ui.debug(f"time window (UTC): {iso(start) or '-'} .. {iso(end) or 'now'}")
    clean = {k: v for k, v in options.items() if v not in (None, [], ())}
    return ListQuery(since=start, until=end, limit=limit, options=clean)


def limited(records: Iterable[Recording], limit: int | None, what: str = "recordings") -> Iterator[Recording]:
    """Stop after ``limit`` and say so on stderr (never a silent cap)."""
    if limit is None:
        yield from records
        return
    iterator = iter(records)
    yield from itertools.islice(iterator, limit)
    if next(iterator, None) is not None:
        current().ui.warn(f"stopped after --limit {limit} {what}; more are available")


def read_refs(refs: list[str]) -> Iterator[str]:
    """Refs from arguments; `-` reads lines (plain refs or JSONL records with `ref`)."""
    for ref in refs:
        if ref != "-":
            yield ref
            continue
        for line_no, line in enumerate(sys.stdin, start=1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                except ValueError:
                    raise UsageError(
                        f"stdin line {line_no} is not valid JSON",
                        hint="send one ref per line, or JSONL records with a ref field",
                    ) from None
                value = obj.get("ref") if isinstance(obj, dict) else None
                if not isinstance(value, str) or not value:
                    raise UsageError(
                        f'stdin line {line_no} has no "ref" field',
                        hint="pipe `list --jsonl` output, or one ref per line",
                    )
                yield value
            else:
                yield text


# ---------------------------------------------------------------------------
# login


def login(name: str, values: dict[str, Any], *, no_verify: bool) -> None:
    def body() -> None:
        rt = current()
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
        data = rt.data()
        existing = config.profile_table(data, rt.profile, name)
        for setting in cls.settings:
            if setting.key in given or not setting.prompt:
                continue
            if not interactive:
                continue
            current_value = existing.get(setting.key)
            shown = (
                ""
                if current_value is None
                else (" [keep current]" if setting.secret else f" [{current_value}]")
            )
            answer = typer.prompt(
                f"{setting.key}{shown}",
                default="" if current_value is not None or not setting.required else None,
                hide_input=setting.secret,
                show_default=False,
                err=True,  # stdout carries data only
            )
            if answer:
                given[setting.key] = answer
        merged = {
            k: str(v)
            for k, v in existing.items()
            if not k.endswith("_cmd") or k.removesuffix("_cmd") not in given
        }
        merged.update(given)
        for key in given:
            merged.pop(key + "_cmd", None)
        resolved = config.materialize({k: config.Sourced(v, "option") for k, v in merged.items()})
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
        if not no_verify:
            provider = cls(resolved, profile=rt.profile, state_dir=config.state_dir(), stop=rt.stop)
            try:
                label = provider.verify()
            finally:
                provider.close()
            rt.ui.info(f"verified: {label}")
        config.update_profile(rt.config_path, rt.profile, name, given)
        rt.ui.info(f"saved {name} settings to profile {rt.profile!r} in {rt.config_path}")

    run(body)


# ---------------------------------------------------------------------------
# list / show / url


def list_recordings(
    name: str,
    *,
    fmt: str,
    options: dict[str, Any],
    since: str | None,
    until: str | None,
    tz: str | None,
    limit: int | None,
) -> None:
    _json_mode(fmt)

    def body() -> None:
        rt = current()
        query = build_query(since=since, until=until, tz=tz, limit=limit, options=options)
        provider = rt.provider(name, options=query.options)
        try:
            records = (r.to_dict() for r in limited(provider.iter_recordings(query), limit))
            write_records(rt.ui, records, fmt)
        finally:
            provider.close()

    run(body)


def show(name: str, ref: str, *, fmt: str, options: dict[str, Any]) -> None:
    _json_mode(fmt)

    def body() -> None:
        rt = current()
        provider = rt.provider(name, options=options)
        try:
            write_one(rt.ui, provider.get_recording(ref).to_dict(), fmt)
        finally:
            provider.close()

    run(body)


def url(name: str, ref: str, *, as_json: bool, options: dict[str, Any]) -> None:
    _json_mode("json" if as_json else "table")

    def body() -> None:
        rt = current()
        provider = rt.provider(name, options=options)
        try:
            recording = provider.get_recording(ref)
            if not recording.downloadable:
                raise UsageError(
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

    run(body)


# ---------------------------------------------------------------------------
# download / pull

DRY_RUN_REASON = "dry run: would download"


def final_exit_code(result: BatchResult, *, fail_if_empty: bool) -> int:
    """The process exit code of a batch, which the summary's ``exit_code`` always equals."""
    code = int(result.exit_code)
    if code == 0 and fail_if_empty:
        new = result.would_download if result.would_download else result.downloaded
        if new == 0 and result.failed == 0:
            code = int(NothingNewError.exit_code)
    return code


def _downloads(
    name: str,
    provider: Provider,
    items: Iterable[Recording | FileResult],
    *,
    fmt: str,
    opts: BatchOptions,
    retries: int,
    fail_if_empty: bool,
    events_extra: list[Any] | None = None,
    extras: Any = None,
    deleting: bool = False,
) -> BatchResult:
    rt = current()
    writer = EventWriter(rt.ui, fmt)

    def on_event(event: dict[str, Any]) -> None:
        if extras is not None:
            extras.event(event)
        if fmt == "table" and event.get("reason") == DRY_RUN_REASON:
            size = event.get("size_bytes")
            rt.ui.line(
                f"would download  {event['ref']}  ->  {event['path']}"
                + (f"  ({human_bytes(size)})" if size is not None else "")
            )
            return
        writer.file(event)

    with signals_stop(rt.stop), progress_for(rt.ui) as progress:
        downloader = Downloader(retries=retries, reporter=progress, stop=rt.stop, overwrite=opts.overwrite)
        try:
            result = run_batch(
                provider,
                items,
                opts,
                downloader=downloader,
                on_event=on_event,
                reporter=progress,
                stop=rt.stop,
            )
        finally:
            downloader.close()
    if result.run_error is not None and fmt in ("json", "jsonl"):
        rt.ui.error(result.run_error)
    summary = result.summary()
    summary["exit_code"] = final_exit_code(result, fail_if_empty=fail_if_empty)
    if deleting:
        summary["deleted"] = result.deleted
    if opts.dry_run:
        summary["would_download"] = result.would_download
    writer.summary(summary, result.failure_events)
    if extras is not None:
        extras.summary(summary)
    if result.run_error is not None and fmt not in ("json", "jsonl"):
        rt.ui.error(result.run_error)
    if result.run_error is not None and extras is not None and extras.log is not None:
        extras.log.error(result.run_error.one_line())
    notes = []
    if deleting and result.deleted:
        notes.append(f"deleted {result.deleted} recording(s) at {name} after verifying the local copies")
    if result.truncated:
        notes.append(f"warning: stopped after --max-files {opts.max_files}; more recordings are waiting")
    if result.interrupted:
        notes.append("warning: interrupted: partial files were kept as .part and resume next time")
    for note in notes:
        if note.startswith("warning: "):
            rt.ui.warn(note)
            if extras is not None and extras.log is not None:
                extras.log.warning(note.removeprefix("warning: "))
        else:
            rt.ui.info(note)
    return result


def _early_summary(fmt: str, exc: RecfetchError) -> None:
    """--json/--jsonl promise a summary whose exit_code is the process's, even for a run that never began."""
    if fmt not in ("json", "jsonl"):
        return
    summary = BatchResult().summary()
    summary["exit_code"] = int(exc.exit_code)
    EventWriter(current().ui, fmt).summary(summary, [])


def _batch_options(
    *,
    output_dir: Path,
    name: str,
    jobs: int,
    overwrite: bool,
    dry_run: bool,
    max_files: int | None,
) -> BatchOptions:
    from recfetch import naming

    naming.render(name, Recording(provider="x", profile="x", ref="x", id="x"), ext=".bin")
    return BatchOptions(
        output_dir=output_dir,
        template=name,
        jobs=jobs,
        overwrite=overwrite,
        dry_run=dry_run,
        max_files=max_files,
    )


def _refs_to_items(
    provider: Provider, refs: Iterable[str], opts: BatchOptions | None = None
) -> Iterator[Recording | FileResult]:
    for ref in refs:
        ref = provider.canonical_ref(ref)  # e.g. realtimekit --audio: another file, another ref
        # An archived ref whose file is still there needs no provider call at all (Kismet audits them).
        if opts is not None and opts.archive is not None and not opts.overwrite:
            entry = opts.archive.get(provider.name, provider.profile, ref)
            if entry is not None and entry.path.exists():
                yield FileResult(ref, "skipped", "in archive", entry.path, 0, None, None)
                continue
        try:
            yield provider.get_recording(ref)
        except RecfetchError as exc:
            if isinstance(exc, RUN_LEVEL):
                raise
            yield FileResult(ref, "failed", exc.code.lower(), None, 0, None, exc)


class _Limited:
    """`--limit N` for pull: stop after N recordings, say so, and remember it (no watermark then)."""

    def __init__(self, records: Iterable[Recording], limit: int | None) -> None:
        self.records = records
        self.limit = limit
        self.truncated = False

    def __iter__(self) -> Iterator[Recording]:
        if self.limit is None:
            yield from self.records
            return
        iterator = iter(self.records)
        yield from itertools.islice(iterator, self.limit)
        if next(iterator, None) is not None:
            self.truncated = True
            current().ui.warn(f"stopped after --limit {self.limit} recordings; more are available")


def download(
    name: str,
    refs: list[str],
    /,
    *,
    fmt: str,
    options: dict[str, Any],
    output_dir: Path,
    name_template: str | None = None,
    jobs: int,
    retries: int,
    overwrite: bool,
    dry_run: bool,
    archive: Path | None,
    no_archive: bool,
    manifest: Path | None,
    write_metadata: bool,
    fail_if_empty: bool,
    max_files: int | None,
    log_file: Path | None,
    **kw: Any,
) -> None:
    _json_mode(fmt)
    template = kw.pop("name", None) or name_template or DEFAULT_TEMPLATE

    def body() -> None:
        rt = current()
        try:
            opts = _batch_options(
                output_dir=output_dir,
                name=template,
                jobs=jobs,
                overwrite=overwrite,
                dry_run=dry_run,
                max_files=max_files,
            )
            provider = rt.provider(name, options=options, retries=retries)
        except RecfetchError as exc:
            _early_summary(fmt, exc)
            raise
        result: BatchResult | None = None
        try:
            from recfetch.cli import _pullsupport

            with _pullsupport.extras(
                rt,
                provider,
                opts,
                archive=archive,
                no_archive=no_archive,
                manifest=manifest,
                write_metadata=write_metadata,
                log_file=log_file,
                command="download",
            ) as extras:
                result = _downloads(
                    name,
                    provider,
                    _refs_to_items(provider, read_refs(refs), opts),
                    fmt=fmt,
                    opts=opts,
                    retries=retries,
                    fail_if_empty=fail_if_empty,
                    extras=extras,
                )
        except RecfetchError as exc:
            if result is None:
                _early_summary(fmt, exc)
            raise
        finally:
            provider.close()
        _exit(result, fail_if_empty)

    run(body)


def _exit(result: BatchResult, fail_if_empty: bool) -> None:
    code = final_exit_code(result, fail_if_empty=fail_if_empty)
    if code:
        raise typer.Exit(code)


def pull(
    name: str,
    /,
    *,
    fmt: str,
    options: dict[str, Any],
    since: str | None,
    until: str | None,
    tz: str | None,
    limit: int | None,
    output_dir: Path,
    jobs: int,
    retries: int,
    overwrite: bool,
    dry_run: bool,
    archive: Path | None,
    no_archive: bool,
    manifest: Path | None,
    write_metadata: bool,
    fail_if_empty: bool,
    max_files: int | None,
    log_file: Path | None,
    incremental: bool,
    overlap: str,
    delete_after: bool,
    yes: bool,
    **kw: Any,
) -> None:
    _json_mode(fmt)
    template = kw.pop("name", None) or DEFAULT_TEMPLATE

    def body() -> None:
        rt = current()
        from recfetch.cli import _pullsupport

        started = datetime.now(UTC)
        try:
            opts = _batch_options(
                output_dir=output_dir,
                name=template,
                jobs=jobs,
                overwrite=overwrite,
                dry_run=dry_run,
                max_files=max_files,
            )
            query = build_query(since=since, until=until, tz=tz, limit=limit, options=options)
            provider = rt.provider(name, options=query.options, retries=retries)
        except RecfetchError as exc:
            _early_summary(fmt, exc)
            raise
        result: BatchResult | None = None
        try:
            with _pullsupport.pull_session(
                rt,
                provider,
                opts,
                query,
                archive=archive,
                no_archive=no_archive,
                manifest=manifest,
                write_metadata=write_metadata,
                log_file=log_file,
                incremental=incremental,
                overlap=overlap,
                delete_after=delete_after,
                yes=yes,
                explicit_window=bool(since or until),
                started=started,
            ) as session:
                items = _Limited(provider.iter_recordings(session.query), limit)
                result = _downloads(
                    name,
                    provider,
                    items,
                    fmt=fmt,
                    opts=opts,
                    retries=retries,
                    fail_if_empty=fail_if_empty,
                    extras=session.extras,
                    deleting=delete_after and not dry_run,
                )
                try:
                    session.finish(result, limit_truncated=items.truncated)
                except OSError as exc:
                    # The files are safe; only the next run's window is wider than it could be.
                    rt.ui.warn(f"warning: could not save the incremental watermark: {exc.strerror}")
        except RecfetchError as exc:
            if result is None:
                _early_summary(fmt, exc)
            raise
        finally:
            provider.close()
        _exit(result, fail_if_empty)

    run(body)




# ---------------------------------------------------------------------------
# delete (providers that implement Provider.delete)


def delete_recordings(name: str, refs: list[str], *, yes: bool, as_json: bool) -> None:
    """Delete recordings at the provider after confirmation; report each outcome."""
    from recfetch.cli._confirm import confirm_delete

    current().ui.json_errors = as_json

    def body() -> None:
        rt = current()
        wanted = list(dict.fromkeys(r.strip() for r in read_refs(refs) if r.strip()))
        if not wanted:
            raise UsageError("no recording refs to delete", hint="pass refs, or - with refs on stdin")
        if not confirm_delete(name, wanted, yes=yes):
            rt.ui.info("nothing deleted")
            return
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
        code = int(batch_exit_code([e for _, e in failures], len(wanted)))
        if code:
            raise typer.Exit(code)

    run(body)
