"""What every provider is: the Provider interface and the frozen data it hands out.

Importing this module costs no HTTP stack: httpx and the API client are loaded when a
provider is constructed, so the command tree, the job options and the output layer can use
the plain data here (`Setting`, `Flag`, `ProviderInfo`, `Recording`) while `--help` runs.
"""

from __future__ import annotations

import abc
import dataclasses
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from recfetch.errors import ConfigError, RecfetchError
from recfetch.providers.limiter import ApiLimiter, Budget
from recfetch.redact import LazyRaw, clean_raw
from recfetch.urls import origin_of  # re-exported: the download engine imports it from here

if TYPE_CHECKING:
    import httpx

__all__ = [
    "STATUSES",
    "DownloadTarget",
    "Flag",
    "ListQuery",
    "Provider",
    "ProviderInfo",
    "Recording",
    "Setting",
    "iso",
    "origin_of",
]

STATUSES = ("ready", "processing", "failed", "unknown")

RECORD_FIELDS = (
    "provider",
    "profile",
    "ref",
    "id",
    "status",
    "provider_status",
    "downloadable",
    "started_at",
    "ended_at",
    "duration_s",
    "size_bytes",
    "media_type",
    "filename",
    "call_id",
    "direction",
    "from",
    "to",
    "raw",
)
"""SPEC §4 recording record, in output order."""


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_TEXT_FIELDS = (
    "ref",
    "id",
    "provider_status",
    "media_type",
    "filename",
    "call_id",
    "direction",
    "from_",
    "to",
    "skip_reason",
    "checksum",
)


def valid_line(value: str) -> str:
    """One line of valid text: lone surrogates and control characters (ESC, CR, NUL...) become U+FFFD."""
    if value.isascii() and value.isprintable():  # the usual case, without a regex pass
        return value
    return _CONTROL.sub("\ufffd", _SURROGATE.sub("\ufffd", value))


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # The text `isoformat(timespec=...)` writes, then +00:00 as Z, formatted from the fields at
    # half its cost (its offset and timespec handling): two times in every listed record.
    text = _ISO_SECONDS % (value.year, value.month, value.day, value.hour, value.minute, value.second)
    millis = value.microsecond // 1000
    return f"{text}.{millis:03d}Z" if value.microsecond else text + "Z"


_ISO_SECONDS = "%04d-%02d-%02dT%02d:%02d:%02d"


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of a provider's profile table."""

    key: str
    help: str
    secret: bool = False
    required: bool = True
    default: str | None = None
    prompt: bool = True
    """Asked for by interactive `login`."""
    unless: str | None = None
    """Not asked by interactive `login` once this other setting has a value (an alternative login)."""


LISTING = frozenset({"list", "pull"})
"""Verbs that list: a filter flag is accepted by these."""
MINTING = frozenset({"url", "download", "pull"})
"""Verbs that mint download targets: a flag shaping the download is accepted by these."""


@dataclass(frozen=True, slots=True)
class Flag:
    """One provider-specific option, as plain data; the CLI derives `--name-with-dashes` from it.

    The value reaches the provider under ``name`` (in `ListQuery.options` or the constructor's
    ``options``) as a plain ``str``/``int``/``bool``, a list of them when ``repeatable``, or None.
    """

    name: str
    help: str
    kind: type = str
    """str, int or bool (a bool without ``negatable`` is an on/off switch defaulting to False)."""
    default: str | int | bool | None = None
    choices: tuple[str, ...] = ()
    repeatable: bool = False
    negatable: bool = False
    """A bool that is True, False (`--no-NAME`) or unset (None)."""
    metavar: str | None = None
    verbs: frozenset[str] = LISTING

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


DEFAULT_REF_HELP = "Recording ref (the `ref` field of `list`)."


@dataclass(frozen=True)
class ProviderInfo:
    """What the command line knows about a provider before importing its module: names, settings,
    flags and help texts (`recfetch.providers.catalog` holds the built-in ones). A provider class
    names its own with ``class XProvider(Provider, info=X)``, so there is one copy of each."""

    name: str
    title: str
    settings: tuple[Setting, ...]
    default_base_url: str | None = None
    flags: tuple[Flag, ...] = ()
    extra_verbs: tuple[str, ...] = ()
    """Verbs beyond the common six that its `cli/<name>.py` adds (`delete` when it can delete)."""
    ref_help: str = DEFAULT_REF_HELP
    list_help: str | None = None
    delete_help: str | None = None

    @property
    def can_delete(self) -> bool:
        return "delete" in self.extra_verbs

    def secret_keys(self) -> frozenset[str]:
        """The settings declared secret (as `Provider.secret_keys`)."""
        return frozenset(s.key for s in self.settings if s.secret)

    @classmethod
    def of(cls, provider: type[Provider]) -> ProviderInfo:
        """The info a provider class declares by its own class attributes (one defined by a test)."""
        return cls(**{f.name: getattr(provider, f.name) for f in dataclasses.fields(cls)})


LISTED_URL_MIN_LIFE = timedelta(minutes=5)
"""A URL from the listing is used only while at least this far from its expiry (SPEC §3)."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording as every provider describes it (SPEC §4)."""

    provider: str
    profile: str
    ref: str
    id: str
    status: str = "unknown"
    provider_status: str | None = None
    downloadable: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    media_type: str | None = None
    filename: str | None = None
    call_id: str | None = None
    direction: str | None = None
    from_: str | None = None
    to: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None
    """Why a recording is not downloadable (shown by `pull`); not part of the record."""
    checksum: str | None = None
    """`algo:hexdigest` when the provider reports one; verified after download."""
    listed: DownloadTarget | None = field(default=None, repr=False, compare=False)
    """The download URL that came with the listing, kept in memory for this run only (never in
    the record, the archive or any sink); `Provider.listed_target` decides whether it is used."""

    def __post_init__(self) -> None:
        # One pass for every provider, before any sink sees the record: `raw` loses credentials
        # and presigned URLs (SPEC §4), and all text becomes valid Unicode (names, tables, CSV, JSON).
        object.__setattr__(self, "raw", clean_raw(self.raw))
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            # Printable ASCII, the usual case, is already one valid line (`valid_line`'s own test).
            if isinstance(value, str) and not (value.isascii() and value.isprintable()):
                object.__setattr__(self, name, valid_line(value))
        # A negative size or duration is the provider's placeholder for "unknown", for every provider.
        if self.duration_s is not None and self.duration_s < 0:
            object.__setattr__(self, "duration_s", None)
        if self.size_bytes is not None and self.size_bytes < 0:
            object.__setattr__(self, "size_bytes", None)

    def to_dict(self, *, raw: bool = True) -> dict[str, Any]:
        """The SPEC §4 record: every field present, null when unknown.

        ``raw`` False leaves `raw` out, for a sink that never shows it (the `list` table): a
        `LazyRaw` is then never cleaned, which was a quarter of a table listing's CPU.
        """
        record: dict[str, Any] = {
            "provider": self.provider,
            "profile": self.profile,
            "ref": self.ref,
            "id": self.id,
            "status": self.status,
            "provider_status": self.provider_status,
            "downloadable": self.downloadable,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_s": self.duration_s,
            "size_bytes": self.size_bytes,
            "media_type": self.media_type,
            "filename": self.filename,
            "call_id": self.call_id,
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
        }  # written in RECORD_FIELDS order (a test holds them together)
        if raw:
            record["raw"] = self.raw.copy() if isinstance(self.raw, LazyRaw) else dict(self.raw)
        return record

    def replace(self, **changes: Any) -> Recording:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class DownloadTarget:
    """A freshly minted place to GET the recording's bytes from.

    ``url`` may be presigned: never log or print it (only `url` does).
    ``headers`` are credentials for the provider's own API host; the download
    engine sends them only while a request stays on ``credential_origin``.
    """

    url: str = field(repr=False)
    expires_at: datetime | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    size_bytes: int | None = None
    filename: str | None = None
    media_type: str | None = None
    credential_origin: tuple[str, str, int] | None = None

    @property
    def printable(self) -> bool:
        """True when the URL can be handed out: it carries no header credential."""
        return not self.headers


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What `list` and `pull` ask a provider for."""

    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """Provider-specific filters, keyed by option name (e.g. ``user``, ``status``)."""


class Provider(abc.ABC):
    """A provider module holds the whole truth about one API: paths, auth, paging, errors.

    Constructors make no network request. ``api`` talks only to the provider's
    API origin; presigned storage URLs are fetched by the download engine with
    a client that carries no credentials.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    default_base_url: ClassVar[str | None]
    settings: ClassVar[tuple[Setting, ...]]
    extra_verbs: ClassVar[tuple[str, ...]] = ()
    """Verbs beyond the common six that its `cli/<name>.py` adds (`delete` when it can delete)."""
    flags: ClassVar[tuple[Flag, ...]] = ()
    """Provider-specific options, each naming the verbs that accept it."""
    api_budget: ClassVar[Budget | None] = None
    """A documented request budget the API lane keeps before the provider says 429."""
    retry_after_floor: ClassVar[float | None] = None
    """Seconds a 429 without Retry-After waits at least (None: the usual backoff)."""
    ref_help: ClassVar[str] = DEFAULT_REF_HELP
    list_help: ClassVar[str | None] = None
    delete_help: ClassVar[str | None] = None

    def __init_subclass__(cls, info: ProviderInfo | None = None, **kwargs: Any) -> None:
        """``class KazooProvider(Provider, info=KAZOO)``: the class attributes come from its info."""
        super().__init_subclass__(**kwargs)
        if info is not None:
            for f in dataclasses.fields(info):
                setattr(cls, f.name, getattr(info, f.name))

    def __init__(
        self,
        settings: Mapping[str, str],
        *,
        profile: str,
        state_dir: Path,
        options: Mapping[str, Any] | None = None,
        retries: int = 5,
        stop: threading.Event | None = None,
        http: httpx.Client | None = None,
        api_concurrency: int = 4,
    ) -> None:
        self.config = dict(settings)
        self._listed_lock = threading.Lock()
        self._listed_used: set[str] = set()
        self.profile = profile
        self.state_dir = state_dir
        self.options = dict(options or {})
        from recfetch.providers._http import ApiClient

        self.api = ApiClient(
            self.base_url(),
            provider=self.name,
            auth=self.http_auth(),
            error_mapper=self.map_error,
            retries=retries,
            stop=stop,
            client=http,
            retry_after_floor=self.retry_after_floor,
            limiter=ApiLimiter(api_concurrency, budget=self.api_budget),
        )
        self.on_page: Callable[[list[str]], None] | None = None
        """Called by a listing with the refs of a page before it yields the page's recordings
        (where the provider knows them): a batch looks their archive rows up in one query."""

    def base_url(self) -> str:
        """Where the API is reached: the profile's base_url or the public default."""
        url = self.config.get("base_url") or self.default_base_url
        if not url:
            raise ConfigError(
                f"{self.name}: base_url is not set",
                hint=f"run `recfetch {self.name} login` or set RECFETCH_{self.name.upper()}_BASE_URL",
            )
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{self.name}: base_url {url!r} is not an http(s) URL",
                hint=f"fix it with `recfetch config set {self.name}.base_url URL`",
            )
        return url

    @classmethod
    def secret_keys(cls) -> frozenset[str]:
        """The settings declared secret: hidden at login, masked by `config show`, scrubbed everywhere."""
        return frozenset(s.key for s in cls.settings if s.secret)

    @classmethod
    def check_settings(cls, settings: Mapping[str, str]) -> None:
        """ConfigError naming the first missing required setting."""
        for setting in cls.settings:
            if setting.required and not settings.get(setting.key):
                raise ConfigError(
                    f"{cls.name}: {setting.key} is not set for this profile",
                    hint=f"run `recfetch {cls.name} login` or set "
                    f"RECFETCH_{cls.name.upper()}_{setting.key.upper()}",
                )

    def http_auth(self) -> httpx.Auth:
        """How API requests authenticate: by default `auth_headers` on each one."""
        from recfetch.providers._http import HeaderAuth

        return HeaderAuth(self.auth_headers)

    def listing_notes(self) -> list[str]:
        """What the last listing learned that the user should hear on stderr (e.g. withheld recordings)."""
        return []

    def auth_headers(self) -> dict[str, str]:
        """Credential headers for the provider's API host (never for storage hosts)."""
        return {}

    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        """Turn the provider's error envelope into a specific error, or None for generic."""
        return None

    def canonical_ref(self, ref: str) -> str:
        """The ref a user-typed REF is listed and archived under (an option may pick another file)."""
        return ref

    def listed_target(self, recording: Recording) -> DownloadTarget | None:
        """The URL that came with the listing, saving one API request per file (SPEC §3): only when
        its expiry is known and at least 5 minutes away, and only once per recording, so a mint
        asked for again (the URL was rejected or ran out) goes to the API."""
        target = recording.listed
        if target is None or target.expires_at is None:
            return None
        if target.expires_at - datetime.now(UTC) < LISTED_URL_MIN_LIFE:
            return None
        with self._listed_lock:
            if recording.ref in self._listed_used:
                return None
            self._listed_used.add(recording.ref)
        return target

    # -- required -------------------------------------------------------
    @abc.abstractmethod
    def verify(self) -> str:
        """One cheap authenticated call; returns a label for the account."""

    @abc.abstractmethod
    def iter_recordings(self, query: ListQuery) -> Iterator[Recording]:
        """Every recording matching ``query``, paging to the end, as pages arrive."""

    @abc.abstractmethod
    def get_recording(self, ref: str) -> Recording:
        """One recording by ``ref``; NotFoundError when absent. Never mints a URL."""

    @abc.abstractmethod
    def mint(self, recording: Recording) -> DownloadTarget:
        """A fresh download target, minted just in time; called again when it expires."""

    # -- optional -------------------------------------------------------
    def delete(self, recording: Recording) -> None:
        """Delete the recording at the provider (kazoo, bird)."""
        raise NotImplementedError

    @property
    def can_delete(self) -> bool:
        return type(self).delete is not Provider.delete

    def close(self) -> None:
        """Release the API client's connections (cached tokens are already on disk)."""
        self.api.close()
