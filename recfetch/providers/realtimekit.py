"""Cloudflare RealtimeKit (formerly Dyte) recordings: list, download and recording control."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

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
from recfetch.providers.base import DownloadTarget, ListQuery, Provider, Recording, Setting, iso
from recfetch.redact import redact_url
from recfetch.timeparse import parse_provider_time

__all__ = ["AUDIO_SUFFIX", "CONTROL_ACTIONS", "STATUSES", "RealtimeKit"]

log = logging.getLogger("recfetch.realtimekit")

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"

STATUSES = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
"""`realtimekit_Recording.status` enum (spec c92b9b0f; Dyte v2 had only the first four)."""

CONTROL_ACTIONS = ("stop", "pause", "resume")
"""PUT …/recordings/{id} `action` enum."""

AUDIO_SUFFIX = "_audio"
"""Ref/id suffix of a recording's audio-only export.

The audio export is a second file of the same recording; giving it its own ref
keeps the archive, file names and download events of the two files apart, so
downloading the video never makes `--audio` skip the audio as "in archive".
"""

PAGE_SIZE = 100
"""Asked for per page; the server may cap it lower and we follow its `paging` offsets."""

FRESH_FOR = 30.0
"""Seconds a recording fetched by `get_recording` may serve the next `mint` without another GET."""

RETENTION = timedelta(days=7)
"""RealtimeKit keeps recordings on its bucket for 7 days (DOC: recording-guide/start-recording)."""

_STATE = {
    "INVOKED": ("processing", "not started yet (RealtimeKit status INVOKED)"),
    "RECORDING": ("processing", "still recording (RealtimeKit status RECORDING)"),
    "PAUSED": ("processing", "recording is paused (RealtimeKit status PAUSED)"),
    "UPLOADING": ("processing", "still uploading (RealtimeKit status UPLOADING)"),
    "ERRORED": ("failed", "the recording failed at RealtimeKit (status ERRORED)"),
    "UPLOADED": ("ready", None),
}

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_APP_ID = re.compile(r"^[a-f0-9]{32}$")
_TOKEN_OK = re.compile(r"^[\x21-\x7e]+$")
_URL_KEYS = ("download_url", "audio_download_url")
_STORAGE_SECRETS = ("access_key", "secret", "password", "private_key")

# Cloudflare API gateway (v4 envelope) error codes; see providers/README.md §2 "Errors".
_HEADER_FORMAT_CODES = {6003, 6100, 6101, 6102, 6103, 6111}
_AUTH_CODES = {9106, 9109, 10000, 10001}
_ROUTE_CODES = {7000, 7003}
_RATE_CODES = {971, 10429}

_VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska"}
_AUDIO_TYPES = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".mp4": "audio/mp4",
    ".ogg": "audio/ogg",
    ".webm": "audio/webm",
}
_AUDIO_EXT = {"audio/mpeg": ".mp3", "audio/mp4": ".m4a", "audio/aac": ".aac", "audio/ogg": ".ogg"}


class _Rejected(ProviderError):
    """RealtimeKit refused a request (4xx); a usage error when the user supplied its input."""


class RealtimeKit(Provider):
    """`GET/POST/PUT /accounts/{account_id}/realtime/kit/{app_id}/recordings…` with a Bearer token."""

    name: ClassVar[str] = "realtimekit"
    title: ClassVar[str] = "Cloudflare RealtimeKit"
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("account_id", "Cloudflare account ID (32 hex characters, from the dashboard)."),
        Setting("app_id", "RealtimeKit app ID (32 hex characters)."),
        Setting(
            "api_token",
            "Cloudflare API token with the Realtime or Realtime Admin permission.",
            secret=True,
        ),
    )
    auth_headers_hint: ClassVar[str] = "Authorization: Bearer <api_token>"
    extra_verbs: ClassVar[tuple[str, ...]] = ("active", "start", "stop", "pause", "resume")

    def __init__(self, settings: Mapping[str, str], **kw: Any) -> None:
        self.account_id = (settings.get("account_id") or "").strip()
        self.app_id = (settings.get("app_id") or "").strip().lower()
        self._token = _clean_token(settings.get("api_token") or "")
        self._lock = threading.Lock()
        self._fresh: dict[str, tuple[float, dict[str, Any]]] = {}
        super().__init__(settings, **kw)
        self._root = f"accounts/{quote(self.account_id, safe='')}/realtime/kit/{quote(self.app_id, safe='')}"

    # -- settings and auth ------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, str]) -> None:
        super().check_settings(settings)
        account = (settings.get("account_id") or "").strip()
        app = (settings.get("app_id") or "").strip().lower()
        # Both go into the URL path: anything but an identifier could reach another endpoint.
        if not _SAFE_ID.match(account) or len(account) > 32:
            raise ConfigError(
                f"realtimekit: account_id {account!r} is not a Cloudflare account ID",
                hint="copy the 32-character account ID from the Cloudflare dashboard and run "
                "`recfetch config set realtimekit.account_id ID`",
            )
        if not _APP_ID.match(app):
            raise ConfigError(
                f"realtimekit: app_id {app!r} is not a RealtimeKit app ID (32 hex characters)",
                hint="copy it from Realtime > RealtimeKit in the Cloudflare dashboard and run "
                "`recfetch config set realtimekit.app_id ID`",
            )
        token = _clean_token(settings.get("api_token") or "")
        if not _TOKEN_OK.match(token):
            raise ConfigError(
                "realtimekit: api_token contains spaces, line breaks or non-ASCII characters",
                hint="paste only the token itself with `recfetch realtimekit login --api-token-stdin`",
            )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    # -- errors -----------------------------------------------------------
    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        status = response.status_code
        if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            return self._gateway_error(status, body["errors"])
        detail = _realtimekit_message(body)
        if status in (401, 403):
            return AuthError(
                f"RealtimeKit rejected the request for app {self.app_id} (HTTP {status})"
                + (f": {detail}" if detail else ""),
                hint="check that app_id belongs to account_id and that the API token has the "
                "Realtime or Realtime Admin permission; then run `recfetch realtimekit login`",
            )
        if status == 404:
            return NotFoundError(f"RealtimeKit: {detail or 'not found'} (HTTP 404)")
        if status == 429:
            return _rate_limited(detail)
        if status >= 500:
            return ProviderError(
                f"RealtimeKit failed with HTTP {status} after retries" + (f": {detail}" if detail else ""),
                hint="Cloudflare is having trouble; try again later",
                retryable=True,
            )
        if 400 <= status < 500 and isinstance(body, dict):
            return _Rejected(
                f"RealtimeKit refused the request (HTTP {status})" + (f": {detail}" if detail else "")
            )
        return None

    def _gateway_error(self, status: int, errors: list[Any]) -> RecfetchError:
        """The Cloudflare API front door answers before RealtimeKit with the v4 envelope."""
        codes: set[int] = set()
        messages: list[str] = []
        for item in errors:
            if not isinstance(item, dict):
                continue
            codes.add(_int(item.get("code")) or 0)
            if isinstance(item.get("message"), str):
                messages.append(f"{item['message']} (code {item.get('code')})")
            for link in item.get("error_chain") or ():
                if isinstance(link, dict):
                    codes.add(_int(link.get("code")) or 0)
                    if isinstance(link.get("message"), str):
                        messages.append(f"{link['message']} (code {link.get('code')})")
        said = "; ".join(messages) or f"HTTP {status}"
        if codes & _HEADER_FORMAT_CODES:
            return AuthError(
                "Cloudflare rejected the Authorization header: the API token is not in the expected "
                f"format ({said})",
                hint="paste only the token (no 'Bearer ' prefix, no quotes) with "
                "`recfetch realtimekit login --api-token-stdin`",
            )
        if codes & _RATE_CODES or status == 429:
            return _rate_limited(said)
        if codes & _AUTH_CODES or status in (401, 403):
            return AuthError(
                f"the API token was rejected; it needs the Realtime or Realtime Admin permission "
                f"on account {self.account_id} ({said})",
                hint="create a token at https://dash.cloudflare.com/profile/api-tokens and run "
                "`recfetch realtimekit login --api-token-stdin`",
            )
        if codes & _ROUTE_CODES:
            return ConfigError(
                f"Cloudflare could not route to account {self.account_id}, app {self.app_id} ({said})",
                hint="check account_id and app_id in the Cloudflare dashboard; fix them with "
                "`recfetch config set realtimekit.account_id ID`",
            )
        if status >= 500:
            return ProviderError(
                f"the Cloudflare API failed with HTTP {status} after retries ({said})",
                hint="Cloudflare is having trouble; try again later",
                retryable=True,
            )
        return _Rejected(f"the Cloudflare API refused the request (HTTP {status}): {said}")

    def _body(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        user_input: str | None = None,
        not_found: str | None = None,
        not_found_hint: str | None = None,
    ) -> dict[str, Any]:
        """One API call; returns the JSON envelope after checking it is one."""
        try:
            response = self.api.request(
                method,
                f"{self._root}/{path}",
                params=params,
                json_body=json_body,
                what=what,
                # A retried POST/PUT could start or pause twice; only 429/503 mean "not processed".
                idempotent=method == "GET",
            )
        except _Rejected as exc:
            if user_input:
                raise UsageError(
                    f"{exc.message}; check {user_input}",
                    hint=f"see `recfetch {self.name} --help`",
                    http_status=exc.http_status,
                    provider=self.name,
                ) from None
            raise
        except NotFoundError as exc:
            if not_found:
                raise NotFoundError(
                    not_found,
                    hint=not_found_hint or f"check the id with `recfetch {self.name} list`",
                    http_status=exc.http_status,
                    provider=self.name,
                ) from None
            raise
        body = self.api.json_of(response, what=what)
        if not isinstance(body, dict):
            raise ProviderError(
                f"RealtimeKit sent an unexpected response for {what} (not a JSON object)",
                hint="check that base_url points at the Cloudflare API",
                provider=self.name,
                http_status=response.status_code,
            )
        if body.get("success") is False:
            detail = _realtimekit_message(body) or "no reason given"
            raise ProviderError(
                f"RealtimeKit reported a failure for {what}: {detail}",
                provider=self.name,
                http_status=response.status_code,
            )
        return body

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        """One API call; returns the envelope's `data` (or the body when it has none)."""
        body = self._body(method, path, **kw)
        if "data" in body:
            return body["data"]
        if "result" in body:  # a Cloudflare v4-style envelope: be liberal
            return body["result"]
        return body

    # -- required ---------------------------------------------------------
    def verify(self) -> str:
        self._call("GET", "recordings", what="recordings list", params={"page_no": 1, "per_page": 1})
        return f"RealtimeKit app {self.app_id} in account {self.account_id}"

    def iter_recordings(self, query: ListQuery) -> Iterator[Recording]:
        opts = {**self.options, **query.options}
        audio = bool(opts.get("audio"))
        params: dict[str, Any] = {"sort_by": "invokedTime", "sort_order": "ASC"}
        # Oldest first: recordings that start while we page are appended at the end
        # instead of shifting the offsets of pages not yet read.
        given: list[str] = []
        if opts.get("meeting"):
            params["meeting_id"] = _uuid(opts["meeting"], flag="--meeting", what="meeting id")
            given.append("--meeting")
        statuses = _statuses(opts.get("status"))
        if statuses:
            params["status"] = statuses  # repeated `status=A&status=B` keys, as the official SDK sends
            given.append("--status")
        if opts.get("search"):
            params["search"] = str(opts["search"])
            given.append("--search")
        if opts.get("expired") is not None:
            params["expired"] = "true" if opts["expired"] else "false"
            given.append("--expired" if opts["expired"] else "--no-expired")
        if query.since:
            params["start_time"] = iso(query.since)
            given.append("--since")
        if query.until:
            params["end_time"] = iso(query.until)
            given.append("--until")
        user_input = ", ".join(given) if given else None
        seen: set[str] = set()
        page = 1
        while True:
            body = self._body(
                "GET",
                "recordings",
                params={**params, "page_no": page, "per_page": PAGE_SIZE},
                what="recordings list",
                user_input=user_input,
            )
            data = body.get("data", body.get("result"))
            if data is None:
                data = []
            if not isinstance(data, list):
                raise ProviderError(
                    f"RealtimeKit sent a recordings page without a `data` list (page {page})",
                    hint="check that base_url points at the Cloudflare API",
                    provider=self.name,
                )
            fresh = 0
            for obj in data:
                recording = self._recording(obj, audio=audio, where=f"page {page}")
                base_id = str(obj["id"]).strip()
                if base_id in seen:
                    continue
                seen.add(base_id)
                fresh += 1
                if _in_window(obj, query.since, query.until):
                    yield recording
            if not data or _last_page(body.get("paging"), len(data)):
                return
            if fresh == 0:
                raise ProviderError(
                    f"RealtimeKit returned page {page} again with nothing new; stopping instead of looping",
                    hint="try again; if it persists the API is ignoring page_no",
                    provider=self.name,
                )
            page += 1

    def get_recording(self, ref: str) -> Recording:
        base_id, audio = self._parse_ref(ref)
        obj = self._get(base_id)
        recording = self._recording(obj, audio=audio, where=f"recording {base_id}")
        if recording.downloadable:
            now = time.monotonic()
            with self._lock:
                # `download REF` mints right after this GET: its fresh URL saves a second request.
                self._fresh[base_id] = (now, obj)
                if len(self._fresh) > 64:
                    self._fresh = {k: v for k, v in self._fresh.items() if now - v[0] < FRESH_FOR}
        if (
            audio
            and not recording.downloadable
            and str(obj.get("status") or "").upper() == "UPLOADED"
            and _str(obj.get("download_url"))
        ):
            raise NotFoundError(
                f"RealtimeKit recording {base_id} has no audio export",
                hint="download it without --audio; only recordings started with an audio_config "
                f"(`recfetch {self.name} start --audio-codec`) have one",
                provider=self.name,
            )
        return recording

    def mint(self, recording: Recording) -> DownloadTarget:
        base_id, audio = self._parse_ref(recording.ref)
        audio = audio or recording.id.endswith(AUDIO_SUFFIX)
        with self._lock:
            fetched, cached = self._fresh.pop(base_id, (0.0, None))
        # Only once, and only when just fetched: a re-mint (expired or rejected URL) always GETs.
        obj = cached if cached is not None and time.monotonic() - fetched < FRESH_FOR else self._get(base_id)
        fresh = self._recording(obj, audio=audio, where=f"recording {base_id}")
        url = _str(obj.get("audio_download_url" if audio else "download_url"))
        if not url:
            raise NotFoundError(
                f"RealtimeKit recording {base_id} has no {'audio ' if audio else ''}file to download "
                f"any more ({fresh.skip_reason or fresh.provider_status})",
                hint="RealtimeKit keeps recordings for 7 days",
                provider=self.name,
            )
        if urlsplit(url).scheme not in ("http", "https"):
            raise ProviderError(
                f"RealtimeKit sent a download URL that is not http(s) for recording {base_id}",
                provider=self.name,
            )
        expires = parse_provider_time(obj.get("download_url_expiry"))
        if expires is not None and expires <= datetime.now(UTC):
            raise NotFoundError(
                f"the download URL of RealtimeKit recording {base_id} expired at {iso(expires)}",
                hint="RealtimeKit keeps recordings for 7 days; if that is not long ago, "
                "check this computer's clock",
                provider=self.name,
            )
        log.debug("minted %s for %s", redact_url(url), recording.ref)
        return DownloadTarget(
            url=url,
            expires_at=expires,
            size_bytes=fresh.size_bytes,
            filename=fresh.filename,
            media_type=fresh.media_type,
        )

    # -- recording control (provider-only verbs) --------------------------
    def active_recording(self, meeting_id: str) -> Recording:
        meeting = meeting_id.strip()
        if not _SAFE_ID.match(meeting):
            raise UsageError(
                f"{meeting_id!r} is not a RealtimeKit meeting id",
                hint="pass the meeting's UUID, e.g. from the `meeting` field of `list --json`",
            )
        obj = self._call(
            "GET",
            f"recordings/active-recording/{quote(meeting, safe='')}",
            what="active recording",
            user_input="MEETING_ID",
            not_found=f"no active recording for meeting {meeting}",
            not_found_hint=f"start one with `recfetch {self.name} start --meeting {meeting}`",
        )
        return self._recording(obj, audio=False, where=f"active recording of meeting {meeting}")

    def start_recording(
        self,
        meeting_id: str,
        *,
        max_seconds: int | None = None,
        file_name_prefix: str | None = None,
        audio_codec: str | None = None,
        audio_channel: str | None = None,
        allow_multiple: bool = False,
    ) -> Recording:
        body: dict[str, Any] = {"meeting_id": _uuid(meeting_id, flag="--meeting", what="meeting id")}
        if max_seconds is not None:
            if not 60 <= max_seconds <= 86400:
                raise UsageError(
                    f"--max-seconds {max_seconds} is out of range", hint="use 60 to 86400 (24 hours)"
                )
            body["max_seconds"] = max_seconds
        if file_name_prefix:
            body["file_name_prefix"] = file_name_prefix
        if audio_codec or audio_channel:
            audio: dict[str, Any] = {"export_file": True}
            if audio_codec:
                audio["codec"] = audio_codec.upper()
            if audio_channel:
                audio["channel"] = audio_channel.lower()
            body["audio_config"] = audio
        if allow_multiple:
            body["allow_multiple_recordings"] = True
        try:
            obj = self._call(
                "POST",
                "recordings",
                json_body=body,
                what="start recording",
                user_input="--meeting and the start options",
                not_found=f"RealtimeKit has no meeting {body['meeting_id']}",
                not_found_hint="check the meeting id in the RealtimeKit dashboard",
            )
        except UsageError as exc:
            if exc.http_status == 409 and not allow_multiple:
                exc.hint = "the meeting is already being recorded; pass --allow-multiple to start another"
            raise
        if isinstance(obj, dict) and isinstance(obj.get("recording"), dict):
            obj = obj["recording"]  # the track-recording shape, accepted liberally
        return self._recording(obj, audio=False, where="the started recording")

    def control(self, ref: str, action: str) -> Recording:
        if action not in CONTROL_ACTIONS:
            raise UsageError(f"unknown recording action {action!r}", hint="use stop, pause or resume")
        base_id, _ = self._parse_ref(ref)
        obj = self._call(
            "PUT",
            f"recordings/{base_id}",
            json_body={"action": action},
            what=f"{action} recording",
            user_input=f"the status of recording {base_id} (`recfetch {self.name} show {base_id}`)",
            not_found=f"RealtimeKit has no recording {base_id}",
        )
        return self._recording(obj, audio=False, where=f"recording {base_id}")

    # -- mapping ----------------------------------------------------------
    def _get(self, base_id: str) -> dict[str, Any]:
        obj = self._call(
            "GET",
            f"recordings/{base_id}",
            what=f"recording {base_id}",
            user_input="the recording id",
            not_found=f"RealtimeKit has no recording {base_id}",
        )
        if not isinstance(obj, dict):
            raise ProviderError(
                f"RealtimeKit sent no recording object for {base_id}",
                hint="check that base_url points at the Cloudflare API",
                provider=self.name,
            )
        return obj

    def canonical_ref(self, ref: str) -> str:
        """With --audio, REF names the audio export: `<uuid>_audio` (archived apart from the video)."""
        text = ref.strip()
        if self.options.get("audio") and text and not text.lower().endswith(AUDIO_SUFFIX):
            return text + AUDIO_SUFFIX
        return text

    def _parse_ref(self, ref: str) -> tuple[str, bool]:
        text = ref.strip()
        audio = bool(self.options.get("audio"))
        if text.lower().endswith(AUDIO_SUFFIX):
            text, audio = text[: -len(AUDIO_SUFFIX)], True
        return _uuid(text, flag="REF", what="recording ref"), audio

    def _recording(self, obj: Any, *, audio: bool, where: str) -> Recording:
        if not isinstance(obj, dict) or not _str(obj.get("id")):
            raise ProviderError(
                f"RealtimeKit sent a recording without an id ({where})",
                hint="check that base_url points at the Cloudflare API",
                provider=self.name,
            )
        base_id = str(obj["id"]).strip()
        provider_status = str(obj.get("status") or "").upper() or None
        status, reason = _STATE.get(provider_status or "", ("unknown", None))
        if status == "unknown":
            reason = f"unknown RealtimeKit status {provider_status or '(none)'}"
        video_url = _str(obj.get("download_url"))
        audio_url = _str(obj.get("audio_download_url"))
        url = audio_url if audio else video_url
        downloadable = provider_status == "UPLOADED" and bool(url)
        if provider_status == "UPLOADED" and not url:
            reason = self._missing_file_reason(obj, audio=audio, video_url=video_url)
        name = _str(obj.get("output_file_name"))
        if audio:
            media_type = _media_type(audio_url, _AUDIO_TYPES) or ("audio/mp4" if audio_url else None)
            filename = _audio_name(name, media_type)
            size = None  # file_size is the main (video) file's size, not the audio export's
        else:
            media_type = _media_type(name, _VIDEO_TYPES) or _media_type(video_url, _VIDEO_TYPES)
            if media_type is None and video_url:
                media_type = "video/mp4"
            filename = name
            size = _int(obj.get("file_size"))
        duration = obj.get("recording_duration")
        rid = base_id + (AUDIO_SUFFIX if audio else "")
        return Recording(
            provider=self.name,
            profile=self.profile,
            ref=rid,
            id=rid,
            status=status,
            provider_status=provider_status,
            downloadable=downloadable,
            started_at=parse_provider_time(obj.get("started_time"))
            or parse_provider_time(obj.get("invoked_time")),
            ended_at=parse_provider_time(obj.get("stopped_time")),
            duration_s=_float(duration),
            size_bytes=size,
            media_type=media_type,
            filename=filename,
            call_id=_str(obj.get("session_id")),
            raw=_raw(obj),
            skip_reason=None if downloadable else reason,
        )

    def _missing_file_reason(self, obj: Mapping[str, Any], *, audio: bool, video_url: str | None) -> str:
        expiry = parse_provider_time(obj.get("download_url_expiry"))
        uploaded = parse_provider_time(obj.get("stopped_time")) or parse_provider_time(
            obj.get("invoked_time")
        )
        now = datetime.now(UTC)
        if (expiry and expiry <= now) or (expiry is None and uploaded and uploaded + RETENTION <= now):
            when = f" on {iso(expiry)}" if expiry else ""
            return f"expired{when}: RealtimeKit keeps recordings for 7 days"
        if audio and video_url:
            return "no audio export (the recording was started without an audio_config)"
        storage = obj.get("storage_config")
        if isinstance(storage, dict) and storage.get("type"):
            return f"stored in your own {storage['type']} storage, not on RealtimeKit's bucket"
        return "no download_url: RealtimeKit's bucket was disabled for this recording"


# ---------------------------------------------------------------------------
# helpers


def _clean_token(value: str) -> str:
    token = value.strip()
    if token[:7].lower() == "bearer ":  # pasted with the scheme: be liberal
        token = token[7:].strip()
    return token


def _last_page(paging: Any, count: int) -> bool:
    """`paging.end_offset >= total_count`; without usable paging, read on until an empty page."""
    if not isinstance(paging, dict):
        return False
    total = _int(paging.get("total_count"))
    end = _int(paging.get("end_offset"))
    if end is None and _int(paging.get("start_offset")) is not None:
        end = (_int(paging.get("start_offset")) or 0) + count - 1
    if total is None or end is None:
        return False
    return end >= total


def _rate_limited(detail: str | None) -> RateLimitedError:
    return RateLimitedError(
        "the Cloudflare API is still rate limiting this token after retries"
        + (f" ({detail})" if detail else ""),
        hint="Cloudflare allows 1,200 requests per 5 minutes per token and then blocks for 5 minutes; "
        "wait and run again",
    )


def _realtimekit_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str) and error:
        return error
    message = body.get("message")
    return message if isinstance(message, str) and message else None


def _uuid(value: Any, *, flag: str, what: str) -> str:
    text = str(value or "").strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not a RealtimeKit {what} (a UUID like 0fd1b6ba-8b7c-4b3e-9e0e-3b7c5e0b4a1d)",
            hint="copy the id from `recfetch realtimekit list`",
        ) from None


def _statuses(values: Any) -> list[str]:
    if not values:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        for part in str(value).split(","):
            status = part.strip().upper()
            if not status:
                continue
            if status not in STATUSES:
                raise UsageError(
                    f"--status {part.strip()!r} is not a RealtimeKit recording status",
                    hint="use one of " + ", ".join(STATUSES) + " (any case; repeat --status for several)",
                )
            if status not in out:
                out.append(status)
    return out


def _in_window(obj: Mapping[str, Any], since: datetime | None, until: datetime | None) -> bool:
    """Client-side guard: the API documents its start/end_time filter loosely ("meetings")."""
    if since is None and until is None:
        return True
    when = parse_provider_time(obj.get("invoked_time")) or parse_provider_time(obj.get("started_time"))
    if when is None:
        return True
    return (since is None or when >= since) and (until is None or when < until)


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _media_type(name_or_url: str | None, table: Mapping[str, str]) -> str | None:
    if not name_or_url:
        return None
    path = urlsplit(name_or_url).path if "://" in name_or_url else name_or_url
    dot = path.rfind(".")
    return table.get(path[dot:].lower()) if dot >= 0 else None


def _audio_name(name: str | None, media_type: str | None) -> str | None:
    if not name:
        return None
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem + _AUDIO_EXT.get(media_type or "", ".m4a")


def _raw(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as received, with presigned URLs and any storage secrets removed."""
    raw = {k: _scrub_urls(v) for k, v in obj.items() if k not in _URL_KEYS}
    storage = raw.get("storage_config")
    if isinstance(storage, dict):
        raw["storage_config"] = {k: v for k, v in storage.items() if k not in _STORAGE_SECRETS}
    return raw


def _scrub_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (None if k in _URL_KEYS else _scrub_urls(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_urls(v) for v in value]
    if isinstance(value, str) and value.startswith(("http://", "https://")) and "?" in value:
        return redact_url(value)  # any other signed-looking URL loses its query
    return value
