"""`recfetch verify MANIFEST`: re-hash the files a manifest lists and report missing or changed ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recfetch import manifest as manifest_mod
from recfetch.cli._runtime import Runtime, reported, runtime
from recfetch.errors import ExitCode
from recfetch.output import SCHEMA_VERSION

_LABELS = {"ok": "ok", "missing": "MISSING", "changed": "CHANGED", "invalid": "INVALID"}


@reported
def verify(
    ctx: typer.Context,
    manifest: Annotated[
        Path,
        typer.Argument(help="A manifest written by --manifest (JSONL).", show_default=False, dir_okay=False),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document with every file's result.")
    ] = False,
) -> int:
    """Re-hash every file a manifest lists; report missing or changed files (exit 8 if any)."""
    rt = runtime(ctx)
    counts = {"ok": 0, "missing": 0, "changed": 0, "invalid": 0}
    items = []
    for check in manifest_mod.verify(manifest, read_object=_object_reader(rt)):
        counts[check.status] += 1
        if as_json:
            items.append(check.to_dict())
            continue
        if check.status == "ok":
            if rt.ui.verbose:
                rt.ui.line(f"ok       {check.path}")
            continue
        where = check.path or f"{manifest}:{check.line}"
        rt.ui.line(f"{_LABELS[check.status]:<8} {where}  ({check.detail})")
    bad = counts["missing"] + counts["changed"] + counts["invalid"]
    code = int(ExitCode.TRANSFER) if bad else 0
    summary = {**counts, "files": counts["ok"] + counts["missing"] + counts["changed"], "exit_code": code}
    if as_json:
        rt.ui.line(
            json.dumps({"schema_version": SCHEMA_VERSION, "items": items, "summary": summary}, indent=2)
        )
    text = (
        f"verified {summary['files']} file(s) from {manifest}: {counts['ok']} ok, "
        f"{counts['missing']} missing, {counts['changed']} changed"
        + (f", {counts['invalid']} unreadable line(s)" if counts["invalid"] else "")
    )
    if bad:
        rt.ui.err.print(text, style="red", markup=False)
    else:
        rt.ui.info(text)
    return code


def _object_reader(rt: Runtime) -> manifest_mod.ObjectReader:
    """Reads s3:// entries with the store's settings (AWS_* environment, else the profile's table)."""
    from recfetch.destinations import ObjectReaders, StoreSettings
    from recfetch.destinations.settings import resolve

    def settings() -> StoreSettings:
        return resolve(rt.data(), rt.profile)

    return ObjectReaders(settings)


def register(app: typer.Typer) -> None:
    app.command(
        "verify",
        epilog="\b\nExamples:\n  recfetch kazoo pull -o recordings --manifest recordings/manifest.jsonl\n"
        "  recfetch verify recordings/manifest.jsonl",
    )(verify)
