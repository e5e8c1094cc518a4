"""`recfetch kaleyra`: the common verbs, with ids read from a Kaleyra recordings report."""

from __future__ import annotations

from enum import Enum

from recfetch.cli._factory import Flag, build_provider_app
from recfetch.providers.kaleyra import DEFAULT_VALIDITY, MAX_VALIDITY, Kaleyra


class LinkMode(str, Enum):
    json = "json"
    redirect = "redirect"


LIST_FLAGS = (
    Flag(
        "from_report",
        ("--from-report",),
        "Recordings report CSV exported from the Kaleyra platform (- reads stdin). "
        "Kaleyra has no listing API, so list and pull need it.",
        metavar="FILE",
    ),
    Flag(
        "id_column",
        ("--id-column",),
        "Report column holding the recording id (default: found by name, e.g. 'Recording ID').",
        metavar="NAME",
    ),
)

DOWNLOAD_FLAGS = (
    Flag(
        "validity",
        ("--validity",),
        f"Minutes the minted link stays valid (1..{MAX_VALIDITY}).",
        type=int,
        default=DEFAULT_VALIDITY,
        metavar="MIN",
    ),
    Flag(
        "link_mode",
        ("--link-mode",),
        "How Kaleyra hands out the link: json (download=0, link in a JSON body) or "
        "redirect (download=1, a 301 whose Location is read, never followed with the api-key).",
        type=LinkMode,
        default=LinkMode.json,
    ),
)

app = build_provider_app(
    Kaleyra,
    list_flags=LIST_FLAGS,
    download_flags=DOWNLOAD_FLAGS,
    ref_help="Recording id, as in the report's recording-id column.",
    list_help="List the recordings named in a Kaleyra report (--from-report FILE): "
    "Kaleyra has no listing API.",
)
