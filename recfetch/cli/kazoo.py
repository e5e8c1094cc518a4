"""`recfetch kazoo`: the common verbs with Kazoo's list filters, plus `tag` and `delete`.

The provider module (its HTTP code) is imported by the commands that talk to Kazoo, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

import typer

from recfetch.cli._factory import Format, build_provider_app, fmt_of
from recfetch.cli._runtime import reported, runtime
from recfetch.output import write_one
from recfetch.providers.catalog import KAZOO

if TYPE_CHECKING:
    from recfetch.providers.kazoo import KazooProvider

app = build_provider_app(KAZOO)


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
    from recfetch.providers.kazoo import parse_tags

    fmt = fmt_of({"format": format, "json_": json_, "jsonl": jsonl})
    rt = runtime(ctx)
    metadata = parse_tags(pairs)
    provider = cast("KazooProvider", rt.provider("kazoo"))
    try:
        write_one(rt.ui, provider.tag(ref, metadata).to_dict(), fmt)
    finally:
        provider.close()
