"""`recfetch bird`: the common verbs with Bird's list filters, plus `delete`."""

from __future__ import annotations

from enum import Enum

from recfetch.cli._factory import Flag, build_provider_app
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
