"""`recfetch bird`: the common verbs with Bird's list filters, plus `delete`."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from recfetch.cli._commands import read_refs
from recfetch.cli._confirm import confirm_delete
from recfetch.cli._factory import Flag, build_provider_app
from recfetch.cli._runtime import current, run
from recfetch.errors import RUN_LEVEL, RecfetchError, UsageError, batch_exit_code
from recfetch.providers.base import Recording
from recfetch.providers.bird import Bird


class Direction(str, Enum):
    incoming = "incoming"
    outgoing = "outgoing"


LIST_FLAGS = (
    Flag("channel", ("--channel",), "Only recordings of this channel (channelId, a uuid).", metavar="ID"),
    Flag("call", ("--call",), "Only recordings of this call (the call's uuid; sent as `id`).", metavar="ID"),
    Flag("direction", ("--direction",), "Only incoming or outgoing calls.", type=Direction),
    Flag(
        "status",
        ("--status",),
        "Only recordings in this Bird status (e.g. available, accepted).",
        metavar="S",
    ),
)

app = build_provider_app(Bird, list_flags=LIST_FLAGS, ref_help="Recording uuid (the `ref` field of `list`).")


@app.command("delete")
def delete(
    refs: Annotated[
        list[str],
        typer.Argument(help="Recording refs to delete, or - to read them from stdin.", show_default=False),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"deleted": [...], "failed": [...]} on stdout.')
    ] = False,
) -> None:
    """Delete recordings at Bird (asks first on a terminal; needs --yes otherwise)."""
    current().ui.json_errors = as_json

    def body() -> None:
        rt = current()
        wanted = list(dict.fromkeys(r.strip() for r in read_refs(refs) if r.strip()))
        if not wanted:
            raise UsageError("no recording refs to delete", hint="pass refs, or - with refs on stdin")
        if not confirm_delete("bird", wanted, yes=yes):
            rt.ui.info("nothing deleted")
            return
        provider = rt.provider("bird")
        deleted: list[str] = []
        failures: list[tuple[str, RecfetchError]] = []
        try:
            for ref in wanted:
                try:
                    provider.delete(Recording(provider="bird", profile=provider.profile, ref=ref, id=ref))
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
            rt.ui.line(
                json.dumps(
                    {
                        "deleted": deleted,
                        "failed": [{"ref": r, "code": e.code, "message": e.one_line()} for r, e in failures],
                    }
                )
            )
        code = int(batch_exit_code([e for _, e in failures], len(wanted)))
        if code:
            raise typer.Exit(code)

    run(body)
