"""What RealtimeKit sends, read: recording objects, error envelopes, paging (no requests here).

Split from `realtimekit.py`, which keeps the API calls: this module turns the wire format
into `Recording`s and `RecfetchError`s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from recfetch.errors import (
    AuthError,
    ConfigError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RecfetchError,
)
from recfetch.providers.base import DownloadTarget, Recording, iso
from recfetch.redact import LazyRaw
from recfetch.timeparse import parse_provider_time

NAME = "realtimekit"

_STATE = {
    "INVOKED": ("processing", "not started yet (RealtimeKit status INVOKED)"),
    "RECORDING": ("processing", "still recording (RealtimeKit status RECORDING)"),
    "PAUSED": ("processing", "recording is paused (RealtimeKit status PAUSED)"),
    "UPLOADING": ("processing", "still uploading (RealtimeKit status UPLOADING)"),
    "ERRORED": ("failed", "the recording failed at RealtimeKit (status ERRORED)"),
    "UPLOADED": ("ready", None),
}

_URL_KEYS = frozenset({"download_url", "audio_download_url"})

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

RETENTION = timedelta(days=7)
"""RealtimeKit keeps recordings on its bucket for 7 days (DOC: recording-guide/start-recording)."""

AUDIO_SUFFIX = "_audio"
"""Ref/id suffix of a recording's audio-only export.

The audio export is a second file of the same recording; giving it its own ref
keeps the archive, file names and download events of the two files apart, so
downloading the video never makes `--audio` skip the audio as "in archive".
"""


class Rejected(ProviderError):
    """RealtimeKit refused a request (4xx); a usage error when the user supplied its input."""


def last_page(paging: Any, count: int) -> bool:
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


def error_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    message = body.get("message")
    return message if isinstance(message, str) and message else None


def text_of(value: Any) -> str | None:
    if value is None:
        return None
    text = (value if type(value) is str else str(value)).strip()
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


def _raw(obj: Mapping[str, Any]) -> LazyRaw:
    """The object as received without its download URLs, cleaned when first read (`LazyRaw`):
    credentials and presigned URLs go at every depth, and any other URL with a query loses it.
    A recording a pull only skips is never read, so never cleaned."""
    return LazyRaw(obj, redact_urls=True, drop=_URL_KEYS)


def in_window(obj: Mapping[str, Any], since: datetime | None, until: datetime | None) -> bool:
    """Client-side guard: the API documents its start/end_time filter loosely ("meetings")."""
    if since is None and until is None:
        return True
    when = parse_provider_time(obj.get("invoked_time")) or parse_provider_time(obj.get("started_time"))
    if when is None:
        return True
    return (since is None or when >= since) and (until is None or when < until)


def map_error(response: httpx.Response, body: Any, *, account_id: str, app_id: str) -> RecfetchError | None:
    """RealtimeKit's own error envelope, or the Cloudflare gateway's v4 one, as a RecfetchError."""
    status = response.status_code
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        return _gateway_error(status, body["errors"], account_id=account_id, app_id=app_id)
    detail = error_message(body)
    if status in (401, 403):
        return AuthError(
            f"RealtimeKit rejected the request for app {app_id} (HTTP {status})"
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
        return Rejected(
            f"RealtimeKit refused the request (HTTP {status})" + (f": {detail}" if detail else "")
        )
    return None


def _gateway_error(status: int, errors: list[Any], *, account_id: str, app_id: str) -> RecfetchError:
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
            f"on account {account_id} ({said})",
            hint="create a token at https://dash.cloudflare.com/profile/api-tokens and run "
            "`recfetch realtimekit login --api-token-stdin`",
        )
    if codes & _ROUTE_CODES:
        return ConfigError(
            f"Cloudflare could not route to account {account_id}, app {app_id} ({said})",
            hint="check account_id and app_id in the Cloudflare dashboard; fix them with "
            "`recfetch config set realtimekit.account_id ID`",
        )
    if status >= 500:
        return ProviderError(
            f"the Cloudflare API failed with HTTP {status} after retries ({said})",
            hint="Cloudflare is having trouble; try again later",
            retryable=True,
        )
    return Rejected(f"the Cloudflare API refused the request (HTTP {status}): {said}")


def ref_of(obj: Mapping[str, Any], audio: bool) -> str:
    """The ref of a recording object with an id (of its audio export, ``audio``)."""
    return _ref(str(obj["id"]).strip(), audio)


def _ref(ident: str, audio: bool) -> str:
    """The ref of the recording with id ``ident`` (of its audio export, ``audio``)."""
    return ident + AUDIO_SUFFIX if audio else ident


def recording_of(obj: Any, *, profile: str, audio: bool, where: str) -> Recording:
    """One RealtimeKit recording object (or its audio export, ``audio``) as a Recording."""
    ident = text_of(obj.get("id")) if isinstance(obj, dict) else None
    if not ident:
        raise ProviderError(
            f"RealtimeKit sent a recording without an id ({where})",
            hint="check that base_url points at the Cloudflare API",
            provider=NAME,
        )
    provider_status = str(obj.get("status") or "").upper() or None
    status, reason = _STATE.get(provider_status or "", ("unknown", None))
    if status == "unknown":
        reason = f"unknown RealtimeKit status {provider_status or '(none)'}"
    video_url = text_of(obj.get("download_url"))
    audio_url = text_of(obj.get("audio_download_url"))
    url = audio_url if audio else video_url
    downloadable = provider_status == "UPLOADED" and bool(url)
    expiry = parse_provider_time(obj.get("download_url_expiry")) if provider_status == "UPLOADED" else None
    started = parse_provider_time(obj.get("started_time"))
    ended = parse_provider_time(obj.get("stopped_time"))
    missing = provider_status == "UPLOADED" and not url
    # Each time is parsed once; invoked_time only stands in for a missing start or stop.
    invoked = parse_provider_time(obj.get("invoked_time")) if not started or (missing and not ended) else None
    if missing:
        reason = _missing_file_reason(obj, expiry, ended or invoked, audio=audio, video_url=video_url)
    name = text_of(obj.get("output_file_name"))
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
    rid = _ref(ident, audio)  # the id read once above
    return Recording(
        provider=NAME,
        profile=profile,
        ref=rid,
        id=rid,
        status=status,
        provider_status=provider_status,
        downloadable=downloadable,
        started_at=started or invoked,
        ended_at=ended,
        duration_s=_float(duration),
        size_bytes=size,
        media_type=media_type,
        filename=filename,
        call_id=text_of(obj.get("session_id")),
        raw=_raw(obj),
        skip_reason=None if downloadable else reason,
        listed=_listed(url, expiry, size=size, filename=filename, media_type=media_type)
        if downloadable
        else None,
    )


def _listed(
    url: str | None,
    expires: datetime | None,
    *,
    size: int | None,
    filename: str | None,
    media_type: str | None,
) -> DownloadTarget | None:
    """The presigned URL the listing carried, with its published expiry (used if far enough off)."""
    if not url or expires is None or not _http_url(url):
        return None
    return DownloadTarget(
        url=url, expires_at=expires, size_bytes=size, filename=filename, media_type=media_type
    )


def _http_url(url: str) -> bool:
    """Whether ``url``'s scheme is http or https (a plain prefix, the usual case, needs no parse)."""
    if url[:8].lower().startswith(("http://", "https://")):
        return True
    return urlsplit(url).scheme in ("http", "https")


def _missing_file_reason(
    obj: Mapping[str, Any],
    expiry: datetime | None,
    uploaded: datetime | None,
    *,
    audio: bool,
    video_url: str | None,
) -> str:
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
