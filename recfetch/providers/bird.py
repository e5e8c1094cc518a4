"""Bird (classic api.bird.com) voice recordings: list, show, the `.mp3` 307 redirect, delete."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote, urljoin

import httpx

from recfetch.errors import (
    AuthError,
    ConfigError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RecfetchError,
    UsageError,
)
from recfetch.providers.base import DownloadTarget, ListQuery, Provider, Recording, iso
from recfetch.providers.catalog import BIRD, DIRECTIONS
from recfetch.providers.paging import ListingGuard
from recfetch.timeparse import parse_provider_time
from recfetch.urls import presigned_expiry

__all__ = ["DIRECTIONS", "PAGE_LIMIT", "BirdProvider"]

PAGE_LIMIT = 99
"""The list endpoint's documented maximum `limit` (DOC: 1..99, default 10)."""
_DIRECTION_NAMES = {"incoming": "inbound", "outgoing": "outbound"}
"""Bird's words mapped to the record's vocabulary (SPEC §4 uses inbound/outbound)."""

_REDIRECTS = (301, 302, 303, 307, 308)
_JSON = {"Accept": "application/json"}

# Only `accepted` and `available` are documented examples; the rest of the enum was not
# published, so unknown values are kept in provider_status and reported as `unknown`.
_STATUS = {
    "available": "ready",
    "accepted": "processing",
    "processing": "processing",
    "pending": "processing",
    "started": "processing",
    "recording": "processing",
    "in-progress": "processing",
    "failed": "failed",
    "error": "failed",
    "deleted": "failed",
    "rejected": "failed",
}
_MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "mpeg": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "webm": "audio/webm",
    "flac": "audio/flac",
}


def _clean_raw(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The recording as received, minus its `url` (only `url` may print one; `Recording` scrubs the rest)."""
    return {k: v for k, v in obj.items() if k != "url"}


def _recording_id(path: str, base: str) -> str | None:
    """The recording id when ``path`` names one recording (`.../recordings/{id}[.mp3]`)."""
    _, found, rest = unquote(path).partition(unquote(base).rstrip("/") + "/")
    if not found:
        return None
    rid = rest.removesuffix(".mp3")
    return rid if rid and "/" not in rid else None


def _number(identifier: Any) -> str | None:
    """A party's phone number (or contact identifier) from a Bird CallIdentifier."""
    if not isinstance(identifier, Mapping):
        return None
    number = identifier.get("number")
    if isinstance(number, Mapping):
        value = number.get("number")
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    contact = identifier.get("contact")
    if isinstance(contact, Mapping):
        value = contact.get("identifierValue")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def _details(body: Any) -> str:
    """`details` of Bird's error envelope as `field: problem; …`."""
    details = body.get("details") if isinstance(body, Mapping) else None
    if isinstance(details, Mapping):
        parts = []
        for key, value in details.items():
            problems = value if isinstance(value, list) else [value]
            text = ", ".join(str(p) for p in problems if p not in (None, ""))
            parts.append(f"{str(key).lstrip('.')}: {text}" if text else str(key).lstrip("."))
        return "; ".join(parts)
    if isinstance(details, list):
        return "; ".join(str(d) for d in details)
    return ""


def _message(body: Any) -> str:
    if isinstance(body, Mapping):
        message = body.get("message")
        code = body.get("code")
        text = message.strip() if isinstance(message, str) else ""
        if isinstance(code, str) and code and code not in text:
            text = f"{code}: {text}" if text else code
        return text
    return ""


class ValidationError(ProviderError):
    """Bird's 422 (`InvalidPayload`, validation): a usage error when our filters caused it."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message, http_status=422)
        self.details = details


class BirdProvider(Provider, info=BIRD):
    """Workspace-scoped Recordings API; media through `{id}.mp3`, a 307 to presigned S3."""

    # -- wire ------------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, str]) -> None:
        super().check_settings(settings)
        if not (settings.get("access_key") or settings.get("token")):
            raise ConfigError(
                "bird: no credentials: set access_key (or a Bearer token)",
                hint="run `recfetch bird login` or set RECFETCH_BIRD_ACCESS_KEY",
            )

    def auth_headers(self) -> dict[str, str]:
        # `AccessKey` (DOC: api-authorization, the dashboard's access keys); `Bearer` for a token,
        # the scheme of the Recordings API page's examples (SPEC §6).
        if self.config.get("access_key"):
            return {"Authorization": f"AccessKey {self.config['access_key']}"}
        return {"Authorization": f"Bearer {self.config.get('token', '')}"}

    def _base(self) -> str:
        return f"/workspaces/{quote(self.config.get('workspace_id', ''), safe='')}/recordings"

    def _one(self, rid: str) -> str:
        return f"{self._base()}/{quote(rid, safe='')}"

    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        status = response.status_code
        message = _message(body)
        details = _details(body)
        detail = ": " + "; ".join(p for p in (message, details) if p) if (message or details) else ""
        if status in (401, 403):
            return AuthError(
                f"bird rejected the access key or token (HTTP {status}){detail}",
                hint="check access_key (or token) and that its access role covers this workspace's "
                "recordings (`recfetch bird login`)",
            )
        rid = _recording_id(response.request.url.path, self._base())
        if rid is not None and status == 422:  # Bird's answer to an id that is not a uuid
            return NotFoundError(
                f"bird does not accept {rid!r} as a recording id (HTTP 422)",
                hint="use the ref field of `recfetch bird list` (a uuid)",
            )
        if rid is not None and status == 404:
            return NotFoundError(
                f"bird recording {rid} not found in workspace {self.config.get('workspace_id')}",
                hint="check the id with `recfetch bird list`",
            )
        if status == 404:
            return NotFoundError(f"bird: not found (HTTP 404){detail}")
        if status == 422:
            return ValidationError(f"bird did not accept the request (HTTP 422){detail}", details or message)
        if status == 429:
            return RateLimitedError(
                f"bird is still rate limiting after retries (HTTP 429){detail}",
                hint="wait a minute, or lower --jobs (Bird allows about 50 GET requests/s per workspace)",
            )
        return None

    # -- records -----------------------------------------------------------
    def _record(self, obj: Mapping[str, Any]) -> Recording:
        rid = obj.get("id")
        if not isinstance(rid, str | int) or not str(rid).strip():
            raise ProviderError("bird sent a recording without an id", hint="report this to Bird support")
        rid = str(rid).strip()
        provider_status = obj.get("status")
        provider_status = str(provider_status) if provider_status not in (None, "") else None
        status = _STATUS.get((provider_status or "").lower(), "unknown")
        downloadable = (provider_status or "").lower() == "available"
        fmt = obj.get("format")
        fmt = str(fmt).lower().lstrip(".") if isinstance(fmt, str) and fmt.strip() else None
        media_type = _MEDIA_TYPES.get(fmt or "", "audio/mpeg" if fmt is None else None)
        direction = _DIRECTION_NAMES.get(str(obj.get("direction") or "").lower())
        started = parse_provider_time(obj.get("startedAt")) or parse_provider_time(obj.get("createdAt"))
        ended = parse_provider_time(obj.get("endedAt"))
        duration = _seconds(obj.get("duration"))
        if duration is None and started and ended and ended >= started:
            duration = (ended - started).total_seconds()
        source_id = obj.get("sourceId")
        reason = None
        if not downloadable:
            reason = f"not available yet (bird status {provider_status or 'missing'})"
            if status == "failed":
                reason = f"recording failed at bird (status {provider_status})"
        return Recording(
            provider=self.name,
            profile=self.profile,
            ref=rid,
            id=rid,
            status=status,
            provider_status=provider_status,
            downloadable=downloadable,
            started_at=started,
            ended_at=ended,
            duration_s=duration,
            media_type=media_type,
            filename=f"{rid}.{fmt}" if fmt else None,
            call_id=str(source_id) if source_id not in (None, "") else None,
            direction=direction,
            from_=_number(obj.get("originator")),
            to=_number(obj.get("receiver")),
            raw=_clean_raw(obj),
            skip_reason=reason,
            listed=self._listed(obj.get("url"), media_type, f"{rid}.{fmt}" if fmt else None)
            if downloadable
            else None,
        )

    @staticmethod
    def _listed(url: Any, media_type: str | None, filename: str | None) -> DownloadTarget | None:
        """The presigned URL a recording object carries, when its query says when it expires."""
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            return None
        expires = presigned_expiry(url)
        if expires is None:
            return None
        return DownloadTarget(url=url, expires_at=expires, media_type=media_type, filename=filename)

    # -- Provider --------------------------------------------------------
    def verify(self) -> str:
        self.api.get_json(self._base(), params={"limit": 1}, headers=_JSON, what="recordings list")
        return f"workspace {self.config.get('workspace_id')}"

    def _filters(self, query: ListQuery) -> dict[str, Any]:
        options = query.options
        direction = options.get("direction")
        if direction is not None:
            direction = str(direction).lower()
            if direction not in DIRECTIONS:
                raise UsageError(
                    f"--direction {direction!r} is not one of {', '.join(DIRECTIONS)}",
                    hint="use --direction incoming or --direction outgoing",
                )
        status = options.get("status")
        return {
            "channelId": options.get("channel"),
            "id": options.get("call"),  # DOC: list-recordings' `id` parameter is "the ID for the call"
            "direction": direction,
            "status": str(status) if status else None,
            "startAt": iso(query.since),
            "endAt": iso(query.until),
        }

    def iter_recordings(self, query: ListQuery) -> Iterator[Recording]:
        filters = self._filters(query)  # a bad --direction fails before any request
        return self._pages(query, filters)

    def _pages(self, query: ListQuery, filters: dict[str, Any]) -> Iterator[Recording]:
        limit = PAGE_LIMIT if query.limit is None else max(1, min(PAGE_LIMIT, query.limit + 1))
        token: str | None = None
        guard = ListingGuard(self.name)
        while True:
            params = {"limit": limit, "pageToken": token, **filters}
            try:
                body = self.api.get_json(self._base(), params=params, headers=_JSON, what="recordings list")
            except ProviderError as exc:
                if isinstance(exc, ValidationError) and any(v is not None for v in filters.values()):
                    problem = exc.details or exc.message
                    raise UsageError(
                        f"bird rejected the list filters: {problem}",
                        hint="check --channel/--call (uuids), --direction, --status and --since/--until",
                    ) from None
                raise
            except NotFoundError:
                raise NotFoundError(
                    f"bird workspace {self.config.get('workspace_id')} was not found (HTTP 404)",
                    hint="check workspace_id with `recfetch config show bird`",
                    http_status=404,
                ) from None
            if not isinstance(body, Mapping):
                raise ProviderError("bird sent a recordings page that is not a JSON object")
            results = body.get("results")
            if results is None:
                results = []
            if not isinstance(results, list):
                raise ProviderError("bird sent a recordings page whose `results` is not a list")
            for item in results:
                if isinstance(item, Mapping) and guard.is_new(str(item.get("id"))):
                    yield self._record(item)
            token = body.get("nextPageToken")
            more = isinstance(token, str) and bool(token)
            if not guard.next_page(more=more, cursor=token):
                return

    def _metadata(self, rid: str) -> Mapping[str, Any]:
        body = self.api.get_json(self._one(rid), headers=_JSON, what=f"recording {rid}")
        if not isinstance(body, Mapping):
            raise ProviderError(f"bird sent recording {rid} as something other than a JSON object")
        return body

    def get_recording(self, ref: str) -> Recording:
        rid = ref.strip()
        if not rid:
            raise UsageError("empty bird recording ref", hint="pass the ref field of `recfetch bird list`")
        return self._record(self._metadata(rid))

    def mint(self, recording: Recording) -> DownloadTarget:
        listed = self.listed_target(recording)
        if listed is not None:
            return listed
        rid = recording.id
        # Redirects are never followed here: the 307's Location is a presigned S3 URL that must
        # be fetched without the AccessKey (S3 rejects a request carrying both, and the key
        # must not leave api.bird.com). `Range: bytes=0-0` keeps a server that answers with
        # the media itself from sending the whole file to this metadata call.
        response = self.api.request(
            "GET",
            self._one(rid) + ".mp3",
            headers={"Range": "bytes=0-0", "Accept": "audio/mpeg, */*"},
            ok=(200, 206, *_REDIRECTS),
            what=f"recording {rid} media",
        )
        if response.status_code in _REDIRECTS:
            location = response.headers.get("location", "").strip()
            if location:
                url = urljoin(str(response.request.url), location)
                return self._target(url, recording)
        # No redirect: fall back to the presigned `url` of a fresh metadata read.
        body = self._metadata(rid)
        url = body.get("url")
        if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            return self._target(url, self._record(body))
        if response.status_code in (200, 206):
            # The API serves the bytes itself: fetch them from the API origin with the key,
            # which the engine sends only while it stays on that origin.
            return DownloadTarget(
                url=self.api.url(self._one(rid) + ".mp3"),
                headers=self.auth_headers(),
                credential_origin=self.api.origin,
                media_type=recording.media_type,
                filename=recording.filename,
            )
        raise ProviderError(
            f"bird gave no download location for recording {rid}",
            hint="the recording may still be processing; try again later",
            http_status=response.status_code,
        )

    def _target(self, url: str, recording: Recording) -> DownloadTarget:
        return DownloadTarget(
            url=url,
            expires_at=presigned_expiry(url),
            media_type=recording.media_type,
            filename=recording.filename,
        )

    def delete(self, recording: Recording) -> None:
        rid = recording.id
        self.api.request("DELETE", self._one(rid), ok=(200, 202, 204), what=f"recording {rid}")
