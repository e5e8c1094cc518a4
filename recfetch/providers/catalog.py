"""The built-in providers as plain data: names, settings, flags and help texts.

This is what the command line is built from, so `recfetch kazoo --help` (and every other
`--help`) runs without importing a provider's module, its HTTP code or httpx. Each provider
class takes its entry with ``class KazooProvider(Provider, info=KAZOO)``; `BUILT_IN` says, in
CLI order, where each class lives, for the registry to import it when a command needs it.
"""

from __future__ import annotations

from typing import Final

from recfetch.providers.base import LISTING, MINTING, Flag, ProviderInfo, Setting

__all__ = [
    "BIRD",
    "BUILT_IN",
    "DEFAULT_VALIDITY",
    "DIRECTIONS",
    "KALEYRA",
    "KAZOO",
    "KISMET",
    "LINK_MODES",
    "MAX_VALIDITY",
    "REALTIMEKIT",
    "REALTIMEKIT_STATUSES",
]

KISMET_BASE_URL = "https://api.kismethealth.com"

KISMET: Final = ProviderInfo(
    name="kismet",
    title="Kismet Health",
    default_base_url=KISMET_BASE_URL,
    settings=(
        Setting("client_id", "API client id (Kismet dashboard → API credentials)"),
        Setting(
            "client_secret", "API client secret (shown once when the credential is created)", secret=True
        ),
        Setting(
            "base_url",
            f"API base URL (default {KISMET_BASE_URL})",
            required=False,
            default=KISMET_BASE_URL,
            prompt=False,
        ),
    ),
    extra_verbs=("users", "calls"),
    flags=(
        Flag(
            "user",
            "Only this organization user id (repeatable); default: every user.",
            repeatable=True,
            metavar="ID",
        ),
        Flag("call", "Only this call id (needs exactly one --user).", metavar="ID"),
        Flag("email", "Only users matching this email (Kismet's server-side filter).", metavar="EMAIL"),
    ),
    ref_help="Recording ref USER_ID/CALL_ID/EGRESS_ID (the `ref` field of `list`).",
    list_help="List the organization's recordings (users → ended calls → egresses), paging to the end.",
)

REALTIMEKIT_BASE_URL = "https://api.cloudflare.com/client/v4"

REALTIMEKIT_STATUSES = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
"""`realtimekit_Recording.status` enum (spec c92b9b0f; Dyte v2 had only the first four)."""

REALTIMEKIT: Final = ProviderInfo(
    name="realtimekit",
    title="Cloudflare RealtimeKit",
    default_base_url=REALTIMEKIT_BASE_URL,
    settings=(
        Setting("account_id", "Cloudflare account ID (32 hex characters, from the dashboard)."),
        Setting("app_id", "RealtimeKit app ID (32 hex characters)."),
        Setting(
            "api_token",
            "Cloudflare API token with the Realtime or Realtime Admin permission.",
            secret=True,
        ),
    ),
    extra_verbs=("active", "start", "start-tracks", "stop", "pause", "resume"),
    flags=(
        Flag("meeting", "Only recordings of this meeting (its UUID).", metavar="ID"),
        Flag(
            "status",
            "Only recordings in this RealtimeKit status, any case; repeatable: "
            + ", ".join(REALTIMEKIT_STATUSES)
            + ".",
            repeatable=True,
            metavar="S",
        ),
        Flag("search", "Only recordings whose meeting id or title matches TEXT.", metavar="TEXT"),
        Flag(
            "expired",
            "Only recordings expired (or not) on RealtimeKit's bucket, which keeps them 7 days.",
            kind=bool,
            negatable=True,
        ),
        Flag(
            "audio",
            "Fetch the audio-only export (audio_download_url) instead of the video; its ref is <uuid>_audio.",
            kind=bool,
            default=False,
            verbs=MINTING,
        ),
    ),
    ref_help="Recording uuid (the `ref` field of `list`); <uuid>_audio names its audio export.",
)

KAZOO: Final = ProviderInfo(
    name="kazoo",
    title="Kazoo",
    default_base_url=None,
    settings=(
        Setting(
            "base_url", "Kazoo server root, e.g. https://kazoo.example.com:8000 (a trailing /v2 is accepted)"
        ),
        Setting("account_id", "Kazoo account id (32 hex characters)"),
        Setting(
            "api_key",
            "Account API key (or leave empty and use username + password)",
            secret=True,
            required=False,
        ),
        Setting(
            "username",
            "User name (with password and account_name, instead of api_key)",
            required=False,
            unless="api_key",
        ),
        Setting("password", "User password", secret=True, required=False, unless="api_key"),
        Setting("account_name", "Account name the user logs in to", required=False, unless="api_key"),
    ),
    extra_verbs=("tag", "delete"),
    flags=(
        Flag(
            "user",
            "Only this user's recordings (the user's 32-hex id; /users/{id}/recordings).",
            metavar="USER_ID",
        ),
        Flag(
            "filter",
            "Kazoo filter, sent as filter_KEY=VALUE; repeatable, all must match "
            "(e.g. direction=inbound, custom_channel_vars.queue=sales, not_owner_id=ID).",
            repeatable=True,
            metavar="KEY=VALUE",
        ),
    ),
    ref_help="Recording id, YYYYMM-<32 hex> (the `ref` field of `list`).",
    list_help=(
        "List Kazoo recordings, paging to the end. Kazoo answers at most 31 days per request: "
        "--since further back is walked in 31-day windows, newest first. Without --since the "
        "listing covers the 31 days before --until (default now)."
    ),
    delete_help=(
        "Kazoo deletes the metadata doc and media stored on it; copies on an external "
        "storage provider are not deleted."
    ),
)

DEFAULT_VALIDITY = 5
"""Minutes a minted Kaleyra link stays valid: Kaleyra's own default (DOC)."""
MAX_VALIDITY = 1440
"""Kaleyra documents no maximum; a day is plenty for one transfer and bounds a leaked link."""
LINK_MODES = ("json", "redirect")
"""json: `download=0`, the link comes back in a JSON body; redirect: `download=1`, a 301 to it."""

KALEYRA: Final = ProviderInfo(
    name="kaleyra",
    title="Kaleyra",
    default_base_url="https://api.kaleyra.io",
    settings=(
        Setting("sid", "Account SID (Security Identifier), e.g. HXXXXXXX071US."),
        Setting("api_key", "API key generated in the Kaleyra.io account.", secret=True),
        Setting("base_url", "API base URL.", required=False, default="https://api.kaleyra.io", prompt=False),
    ),
    flags=(
        Flag(
            "from_report",
            "Recordings report CSV exported from the Kaleyra platform (- reads stdin). "
            "Kaleyra has no listing API, so list and pull need it.",
            metavar="FILE",
            verbs=LISTING | {"show"},
        ),
        Flag(
            "id_column",
            "Report column holding the recording id (default: found by name, e.g. 'Recording ID').",
            metavar="NAME",
            verbs=LISTING | {"show"},
        ),
        Flag(
            "validity",
            f"Minutes the minted link stays valid (1..{MAX_VALIDITY}).",
            kind=int,
            default=DEFAULT_VALIDITY,
            metavar="MIN",
            verbs=MINTING,
        ),
        Flag(
            "link_mode",
            "How Kaleyra hands out the link: json (download=0, link in a JSON body) or "
            "redirect (download=1, a 301 whose Location is read, never followed with the api-key).",
            choices=LINK_MODES,
            default="json",
            verbs=MINTING,
        ),
    ),
    ref_help="Recording id, as in the report's recording-id column.",
    list_help=(
        "List the recordings named in a Kaleyra report (--from-report FILE): Kaleyra has no listing API."
    ),
)

DIRECTIONS = ("incoming", "outgoing")
"""Bird's `direction` filter values."""

BIRD: Final = ProviderInfo(
    name="bird",
    title="Bird",
    default_base_url="https://api.bird.com",
    settings=(
        Setting("workspace_id", "Workspace id (uuid, from app.bird.com)."),
        Setting(
            "access_key",
            "Access key (settings → security → access keys), sent as `AccessKey`; or leave empty "
            "and give a token",
            secret=True,
            required=False,
        ),
        Setting("token", "Bearer token, instead of an access key", secret=True, required=False),
        Setting("base_url", "API base URL.", required=False, default="https://api.bird.com", prompt=False),
    ),
    extra_verbs=("delete",),
    flags=(
        Flag("channel", "Only recordings of this channel (channelId, a uuid).", metavar="ID"),
        Flag("call", "Only recordings of this call (the call's uuid; sent as `id`).", metavar="ID"),
        Flag("direction", "Only incoming or outgoing calls.", choices=DIRECTIONS),
        Flag("status", "Only recordings in this Bird status (e.g. available, accepted).", metavar="S"),
    ),
    ref_help="Recording uuid (the `ref` field of `list`).",
)

BUILT_IN: Final[dict[str, tuple[ProviderInfo, str]]] = {
    info.name: (info, f"recfetch.providers.{module}:{cls}")
    for info, module, cls in (
        (KISMET, "kismet", "KismetProvider"),
        (REALTIMEKIT, "realtimekit", "RealtimeKitProvider"),
        (KAZOO, "kazoo", "KazooProvider"),
        (KALEYRA, "kaleyra", "KaleyraProvider"),
        (BIRD, "bird", "BirdProvider"),
    )
}
"""name -> (info, "module:Class"), in the order the CLI lists them."""
