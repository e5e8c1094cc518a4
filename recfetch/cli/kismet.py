"""`recfetch kismet`: the common verbs with Kismet's filters, plus `users` and `calls`.

The provider module (its HTTP code) is imported by the commands that talk to Kismet, not here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from recfetch.cli._factory import Format, build_provider_app, fmt_of
from recfetch.cli._runtime import Runtime, reported, runtime
from recfetch.output import write_records
from recfetch.providers.catalog import KISMET

if TYPE_CHECKING:
    from recfetch.providers.kismet import KismetProvider

app = build_provider_app(KISMET)

USER_COLUMNS = ("id", "email", "display_name", "is_admin", "created_at")
CALL_COLUMNS = ("id", "name", "state", "is_ended", "has_egresses", "participants", "created_at")

FormatOpt = Annotated[
    Format | None, typer.Option("--format", help="Output format: table, json, jsonl or csv.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Shortcut for --format json.")]
JsonlOpt = Annotated[bool, typer.Option("--jsonl", help="Shortcut for --format jsonl.")]


def _emit(
    rt: Runtime,
    fmt: str,
    produce: Callable[[KismetProvider], Iterator[dict[str, Any]]],
    columns: tuple[str, ...],
    empty: str,
) -> None:
    provider = cast("KismetProvider", rt.provider("kismet"))
    try:
        records = produce(provider)
        if fmt == "table":  # write_records would say "no recordings matched"
            first = next(records, None)
            if first is None:
                rt.ui.info(empty)
                return
            records = itertools.chain([first], records)
        provider.api.before_request = rt.ui.stdout.flush  # lines go out a page at a time
        write_records(rt.ui, records, fmt, columns=columns, paged=True)
    finally:
        provider.close()


@app.command(
    "users",
    help="List the organization's users (their ids are what --user takes).",
    epilog="\b\nExamples:\n  recfetch kismet users\n  recfetch kismet users --email ann@example.com --json",
)
@reported
def users(
    ctx: typer.Context,
    email: Annotated[
        str | None, typer.Option("--email", help="Only users matching this email.", metavar="EMAIL")
    ] = None,
    format: FormatOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    fmt = fmt_of({"format": format, "json_": json_, "jsonl": jsonl})
    _emit(runtime(ctx), fmt, lambda p: p.iter_users(email=email), USER_COLUMNS, "no users matched")


@app.command(
    "calls",
    help="List one user's calls, ended or not (their ids are what --call takes).",
    epilog="\b\nExamples:\n  recfetch kismet calls --user 101\n  recfetch kismet list --user 101 --call 501",
)
@reported
def calls(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="Organization user id.", metavar="ID")],
    format: FormatOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    fmt = fmt_of({"format": format, "json_": json_, "jsonl": jsonl})
    _emit(runtime(ctx), fmt, lambda p: p.iter_calls(user), CALL_COLUMNS, f"user {user} has no calls")
