"""What Kazoo sends, read: Gregorian times, call_recording docs and error envelopes (no requests here).

Split from `kazoo.py`, which keeps the API calls, token handling and paging.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

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
from recfetch.providers.base import Recording
from recfetch.urls import strip_signed

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")

GREGORIAN_OFFSET = 62_167_219_200
"""Seconds from 0000-01-01 to 1970-01-01: Kazoo timestamps are Gregorian seconds (unix + this)."""


AUDIO_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "mp4": "audio/mp4", "ogg": "audio/ogg"}
"""Extension (Kazoo's `media_type`) -> MIME type, for docs that omit content_type."""


def to_gregorian(when: datetime) -> int:
    """A datetime as Kazoo's Gregorian seconds."""
    return int(when.timestamp()) + GREGORIAN_OFFSET


def from_gregorian(value: Any) -> datetime | None:
    """Kazoo's `start` as UTC; liberal: numbers as strings, and unix seconds from odd writers."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    if GREGORIAN_OFFSET <= seconds < GREGORIAN_OFFSET + 1e10:
        seconds -= GREGORIAN_OFFSET
    elif seconds >= 1e10:  # neither Gregorian nor unix seconds (e.g. milliseconds): unknown
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def number_of(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def text_of(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def map_error(response: httpx.Response, body: Any, *, account_id: str) -> RecfetchError | None:
    """Kazoo's envelope: {"data": ..., "error": "<status>", "message": "<atom>", "status": "error"}."""
    if not isinstance(body, dict):
        return None
    status = response.status_code
    atom = str(body.get("message") or "")
    data = body.get("data")
    path = response.request.url.path if response.request is not None else ""
    ref = path.rstrip("/").rsplit("/", 1)[-1]
    if status in (400, 401) and path.endswith(("/api_auth", "/user_auth")):
        # 400 is Kazoo's schema check (an api_key must be exactly 64 characters): still a
        # credential the server refused, not a malformed request of ours.
        which = "api_key" if path.endswith("/api_auth") else "username, password or account_name"
        # Kazoo checks the key's shape first: its 400 says "validation error", which is not the point.
        shape = "an account API key is 64 characters" if which == "api_key" else "incomplete credentials"
        said = shape if status == 400 else atom or "invalid_credentials"
        return AuthError(
            f"kazoo rejected the {which} ({said})",
            hint="run `recfetch kazoo login` again, or fix RECFETCH_KAZOO_* variables",
        )
    if status == 401:
        return AuthError(
            f"kazoo rejected the auth token even after a fresh login ({atom or 'invalid_credentials'})",
            hint="check the credentials with `recfetch kazoo login`",
        )
    if status == 403:
        return AuthError(
            f"kazoo: these credentials may not access account {account_id} ({atom or 'forbidden'})",
            hint="check account_id, or use a key/user of that account or its reseller",
        )
    if status == 404 and "bad" in atom and "identifier" in atom:
        return _not_found(path, ref)
    if status == 400:
        return _validation_error(atom, data)
    if status == 405:
        method = response.request.method if response.request is not None else "this request"
        if method == "PATCH":
            return UsageError(
                "this Kazoo server does not support tagging (PATCH needs Kazoo 5.x)",
                hint="open-source Kazoo 4.x allows only GET and DELETE on recordings",
            )
        return UsageError(f"this Kazoo server does not allow {method} here ({atom or 'invalid_method'})")
    if status == 429:
        return RateLimitedError(
            "kazoo is still rate limiting after retries (too_many_requests)",
            hint="wait a minute, or lower --jobs",
        )
    return None


def _not_found(path: str, ref: str) -> NotFoundError:
    if "/users/" in path and path.endswith("/recordings"):
        user = path.rsplit("/users/", 1)[-1].split("/", 1)[0]
        return NotFoundError(
            f"kazoo user {user} not found (bad identifier)",
            hint="use the user's 32-hex id from the Kazoo UI, not the user name",
        )
    return NotFoundError(
        f"recording {ref} not found (bad identifier)",
        hint="recording ids look like YYYYMM-<32 hex>; list them with `recfetch kazoo list`",
    )


def _validation_error(atom: str, data: Any) -> RecfetchError:
    messages: list[str] = []
    if isinstance(data, dict):
        for field_errors in data.values():
            if isinstance(field_errors, dict):
                for err in field_errors.values():
                    if isinstance(err, dict) and isinstance(err.get("message"), str):
                        messages.append(err["message"])
            elif isinstance(field_errors, str):
                messages.append(field_errors)
    detail = "; ".join(messages) or atom or "validation error"
    if isinstance(data, dict) and ({"created_from", "created_to"} & set(data)):
        return UsageError(
            f"kazoo rejected the time window: {detail}",
            hint="pass --since/--until; recfetch walks long ranges in 31-day windows",
        )
    return ProviderError(f"kazoo refused the request (validation error): {detail}")


def record_of(doc: Mapping[str, Any], *, profile: str) -> Recording:
    """One Kazoo call_recording doc (a listing item or a single GET) as a Recording."""
    ref = text_of(doc.get("id")) or text_of(doc.get("_id"))
    if ref is None:
        raise ProviderError("kazoo sent a recording without an id")
    read_only = doc.get("_read_only")
    types = read_only.get("content_types") if isinstance(read_only, dict) else None
    if isinstance(types, list):
        content_types = [t for t in types if isinstance(t, str) and t]
        downloadable, status = bool(content_types), ("ready" if content_types else "failed")
    else:  # a single doc GET carries no _read_only: assume media, a 404 at download says otherwise
        content_types, downloadable, status = [], True, "unknown"
    started = from_gregorian(doc.get("start"))
    duration_ms = number_of(doc.get("duration_ms"))
    duration = duration_ms / 1000 if duration_ms is not None else number_of(doc.get("duration"))
    ended = started + timedelta(seconds=duration) if started and duration is not None else None
    extension = (text_of(doc.get("media_type")) or "").lstrip(".").lower()
    media_type = text_of(doc.get("content_type")) or (content_types[0] if content_types else None)
    media_type = media_type or AUDIO_TYPES.get(extension)
    direction = (text_of(doc.get("direction")) or "").lower() or None
    # An external-storage `url` with userinfo or a query (signatures, keys) is not echoed at all.
    raw = {k: v for k, v in doc.items() if not (k == "url" and strip_signed(v) != v)}
    return Recording(
        provider="kazoo",
        profile=profile,
        ref=ref,
        id=ref,
        status=status,
        provider_status=None,
        downloadable=downloadable,
        started_at=started,
        ended_at=ended,
        duration_s=duration,
        size_bytes=None,
        media_type=media_type,
        filename=text_of(doc.get("name")),
        call_id=text_of(doc.get("call_id")),
        direction=direction,
        # SIP `user@realm` as Kazoo wrote it: the realm says which account/site the party is on.
        from_=text_of(doc.get("from")) or text_of(doc.get("caller_id_number")),
        to=text_of(doc.get("to")) or text_of(doc.get("callee_id_number")),
        raw=raw,
        skip_reason=None if downloadable else "no attachment: Kazoo holds no media for this recording",
    )


def check_settings(settings: Mapping[str, str]) -> None:
    """Name exactly what is missing: base_url, account_id, or which half of a login."""
    env = "RECFETCH_KAZOO_"
    for key in ("base_url", "account_id"):
        if not settings.get(key):
            raise ConfigError(
                f"kazoo: {key} is not set for this profile",
                hint=f"run `recfetch kazoo login` or set {env}{key.upper()}",
            )
    if not HEX32.match(settings["account_id"].strip()):
        raise ConfigError(
            f"kazoo: account_id {settings['account_id']!r} is not a Kazoo account id (32 hex characters)",
            hint="copy it from the Kazoo UI or the auth response, then `recfetch config set "
            "kazoo.account_id ID`",
        )
    if settings.get("api_key"):
        return
    login = ("username", "password", "account_name")
    given = [k for k in login if settings.get(k)]
    if not given:
        raise ConfigError(
            "kazoo: no credentials: set api_key, or username + password + account_name",
            hint=f"run `recfetch kazoo login` or set {env}API_KEY",
        )
    missing = [k for k in login if k not in given]
    if missing:
        raise ConfigError(
            f"kazoo: {' and '.join(missing)} not set (a username login needs username, password "
            "and account_name; or set api_key instead)",
            hint="run `recfetch kazoo login` or set " + ", ".join(f"{env}{k.upper()}" for k in missing),
        )
