"""What every provider is: the Provider interface and the frozen data it hands out."""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from recfetch.errors import ConfigError, RecfetchError
from recfetch.providers._http import ApiClient

__all__ = [
    "STATUSES",
    "DownloadTarget",
    "ListQuery",
    "Provider",
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


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) — two URLs share credentials only when these match."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


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

    def to_dict(self) -> dict[str, Any]:
        """The SPEC §4 record: every field present, null when unknown."""
        values = {
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
            "raw": dict(self.raw),
        }
        return {name: values[name] for name in RECORD_FIELDS}

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

    def expires_within(self, seconds: float, *, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        now = now or datetime.now(UTC)
        return (self.expires_at - now).total_seconds() <= seconds

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
    auth_headers_hint: ClassVar[str] = ""
    extra_verbs: ClassVar[tuple[str, ...]] = ()

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
    ) -> None:
        self.config = dict(settings)
        self.profile = profile
        self.state_dir = state_dir
        self.options = dict(options or {})
        self.api = ApiClient(
            self.base_url(),
            provider=self.name,
            auth=self.auth_headers,
            error_mapper=self.map_error,
            retries=retries,
            stop=stop,
            client=http,
        )

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
    def check_settings(cls, settings: Mapping[str, str]) -> None:
        """ConfigError naming the first missing required setting."""
        for setting in cls.settings:
            if setting.required and not settings.get(setting.key):
                raise ConfigError(
                    f"{cls.name}: {setting.key} is not set for this profile",
                    hint=f"run `recfetch {cls.name} login` or set "
                    f"RECFETCH_{cls.name.upper()}_{setting.key.upper()}",
                )

    def auth_headers(self) -> dict[str, str]:
        """Credential headers for the provider's API host (never for storage hosts)."""
        return {}

    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        """Turn the provider's error envelope into a specific error, or None for generic."""
        return None

    def ref_of(self, recording: Recording) -> str:
        return recording.ref

    def canonical_ref(self, ref: str) -> str:
        """The ref a user-typed REF is listed and archived under (an option may pick another file)."""
        return ref

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
