"""`recfetch kazoo`: the common verbs with Kazoo's list filters, plus `tag` and `delete`."""

from __future__ import annotations

from typing import Annotated, cast

import typer

from recfetch.cli._factory import Flag, Format, build_provider_app, fmt_of
from recfetch.cli._runtime import reported, runtime
from recfetch.output import write_one
from recfetch.providers.kazoo import Kazoo, parse_tags

LIST_FLAGS = (
    Flag(
        "user",
        ("--user",),
        "Only this user's recordings (the user's 32-hex id; /users/{id}/recordings).",
        metavar="USER_ID",
    ),
    Flag(
        "filter",
        ("--filter",),
        "Kazoo filter, sent as filter_KEY=VALUE; repeatable, all must match "
        "(e.g. direction=inbound, custom_channel_vars.queue=sales, not_owner_id=ID).",
        type=list[str] | None,
        metavar="KEY=VALUE",
    ),
)

LIST_HELP = (
    "List Kazoo recordings, paging to the end. Kazoo answers at most 31 days per request: "
    "--since further back is walked in 31-day windows, newest first. Without --since the "
    "listing covers the 31 days before --until (default now)."
)

app = build_provider_app(
    Kazoo,
    list_flags=LIST_FLAGS,
    ref_help="Recording id, YYYYMM-<32 hex> (the `ref` field of `list`).",
    list_help=LIST_HELP,
    delete_help="Kazoo deletes the metadata doc and media stored on it; copies on an external "
    "storage provider are not deleted.",
)


@app.command(
    "tag",
    epilog="\b\nExamples:\n  recfetch kazoo tag REF case=1234\n  recfetch kazoo tag REF tags.important=true",
)
@reported
def tag(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Recording id (the `ref` field of `list`).", show_default=False)],
    pairs: Annotated[
        list[str],
        typer.Argument(
            help="KEY=VALUE to store in user_metadata. JSON values keep their type (1, true, "
            '{"a":1}); other values are text; a dotted KEY nests (tags.important=1).',
            metavar="KEY=VALUE...",
            show_default=False,
        ),
    ],
    format: Annotated[Format | None, typer.Option("--format", help="Output format for the record.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Shortcut for --format json.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Shortcut for --format jsonl.")] = False,
) -> None:
    """Store KEY=VALUE pairs in the recording's user_metadata (PATCH; needs Kazoo 5.x)."""
    fmt = fmt_of({"format": format, "json_": json_, "jsonl": jsonl})
    rt = runtime(ctx)
    metadata = parse_tags(pairs)
    provider = cast(Kazoo, rt.provider("kazoo"))
    try:
        write_one(rt.ui, provider.tag(ref, metadata).to_dict(), fmt)
    finally:
        provider.close()
