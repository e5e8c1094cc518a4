"""Cloudflare RealtimeKit (formerly Dyte) recordings: list, download and recording control."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from recfetch.errors import (
    ConfigError,
    NotFoundError,
    ProviderError,
    RecfetchError,
    UsageError,
)
from recfetch.providers.base import (
    DownloadTarget,
    ListQuery,
    Provider,
    Recording,
    iso,
)
from recfetch.providers.catalog import REALTIMEKIT
from recfetch.providers.catalog import REALTIMEKIT_STATUSES as STATUSES
from recfetch.providers.limiter import Budget
from recfetch.providers.paging import ListingGuard
from recfetch.providers.realtimekit_start import StartOptions, TrackOptions
from recfetch.providers.realtimekit_wire import (
    AUDIO_SUFFIX,
    Rejected,
    error_message,
    in_window,
    last_page,
    map_error,
    recording_of,
    ref_of,
    text_of,
)
from recfetch.timeparse import parse_provider_time
from recfetch.urls import redact_url

__all__ = ["AUDIO_SUFFIX", "CONTROL_ACTIONS", "STATUSES", "RealtimeKitProvider"]

log = logging.getLogger("recfetch.realtimekit")

CONTROL_ACTIONS = ("stop", "pause", "resume")
"""PUT …/recordings/{id} `action` enum."""


PAGE_SIZE = 100
"""Asked for per page; the server may cap it lower and we follow its `paging` offsets."""

FRESH_FOR = 30.0
"""Seconds a recording fetched by `get_recording` may serve the next `mint` without another GET."""


_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_APP_ID = re.compile(r"^[a-f0-9]{32}$")
_TOKEN_OK = re.compile(r"^[\x21-\x7e]+$")


class RealtimeKitProvider(Provider, info=REALTIMEKIT):
    """`GET/POST/PUT /accounts/{account_id}/realtime/kit/{app_id}/recordings…` with a Bearer token."""

    api_budget: ClassVar[Budget | None] = Budget(1200, 300.0)
    """Cloudflare's API: 1,200 requests per 5 minutes per token, then every call is blocked for 5 minutes."""

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

    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        return map_error(response, body, account_id=self.account_id, app_id=self.app_id)

    # -- errors -----------------------------------------------------------

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
        except Rejected as exc:
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
            detail = error_message(body) or "no reason given"
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
        guard = ListingGuard(self.name)
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
            if self.on_page is not None:
                self.on_page([ref_of(obj, audio) for obj in data if isinstance(obj, dict) and obj.get("id")])
            where = f"page {page}"
            for obj in data:
                recording = self._record(obj, audio=audio, where=where)
                if guard.is_new(str(obj["id"]).strip()) and in_window(obj, query.since, query.until):
                    yield recording
            more = bool(data) and not last_page(body.get("paging"), len(data))
            if not guard.next_page(more=more):
                return
            page += 1

    def get_recording(self, ref: str) -> Recording:
        base_id, audio = self._parse_ref(ref)
        obj = self._get(base_id)
        recording = self._record(obj, audio=audio, where=f"recording {base_id}")
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
            and text_of(obj.get("download_url"))
        ):
            raise NotFoundError(
                f"RealtimeKit recording {base_id} has no audio export",
                hint="download it without --audio; only recordings started with an audio_config "
                f"(`recfetch {self.name} start --audio-codec`) have one",
                provider=self.name,
            )
        return recording

    def mint(self, recording: Recording) -> DownloadTarget:
        listed = self.listed_target(recording)
        if listed is not None:
            return listed
        base_id, audio = self._parse_ref(recording.ref)
        audio = audio or recording.id.endswith(AUDIO_SUFFIX)
        with self._lock:
            fetched, cached = self._fresh.pop(base_id, (0.0, None))
        # Only once, and only when just fetched: a re-mint (expired or rejected URL) always GETs.
        obj = cached if cached is not None and time.monotonic() - fetched < FRESH_FOR else self._get(base_id)
        fresh = self._record(obj, audio=audio, where=f"recording {base_id}")
        url = text_of(obj.get("audio_download_url" if audio else "download_url"))
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
        return self._record(obj, audio=False, where=f"active recording of meeting {meeting}")

    def start_recording(self, meeting_id: str, options: StartOptions) -> Recording:
        """POST …/recordings with every body field the user gave (see `realtimekit_start`)."""
        body = options.body(meeting_id)
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
            if exc.http_status == 409 and not options.allow_multiple:
                exc.hint = "the meeting is already being recorded; pass --allow-multiple to start another"
            raise
        if isinstance(obj, dict) and isinstance(obj.get("recording"), dict):
            obj = obj["recording"]  # the track-recording shape, accepted liberally
        return self._record(obj, audio=False, where="the started recording")

    def start_track_recording(self, meeting_id: str, options: TrackOptions) -> Recording:
        """POST …/recordings/track: per-participant audio tracks; answers `data.recording`."""
        body = options.body(meeting_id)
        obj = self._call(
            "POST",
            "recordings/track",
            json_body=body,
            what="start track recording",
            user_input="--meeting and the start-tracks options",
            not_found=f"RealtimeKit has no meeting {body['meeting_id']}",
            not_found_hint="check the meeting id in the RealtimeKit dashboard",
        )
        if not (isinstance(obj, dict) and isinstance(obj.get("recording"), dict)):
            raise ProviderError(
                "RealtimeKit answered the track recording without a `recording` object",
                hint="check that base_url points at the Cloudflare API",
                provider=self.name,
            )
        return self._record(obj["recording"], audio=False, where="the started track recording")

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
        return self._record(obj, audio=False, where=f"recording {base_id}")

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
        echoed = text_of(obj.get("id"))
        if echoed is not None and echoed.lower() != base_id:
            # Trust the REF the user gave: never show or download another recording in its place.
            raise ProviderError(
                f"RealtimeKit answered the request for recording {base_id} with recording {echoed}",
                hint="check that base_url points at the Cloudflare API; report it if it does",
                provider=self.name,
                http_status=200,
            )
        return obj

    def _record(self, obj: Any, *, audio: bool, where: str) -> Recording:
        return recording_of(obj, profile=self.profile, audio=audio, where=where)

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


# ---------------------------------------------------------------------------
# helpers


def _clean_token(value: str) -> str:
    token = value.strip()
    if token[:7].lower() == "bearer ":  # pasted with the scheme: be liberal
        token = token[7:].strip()
    return token


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
