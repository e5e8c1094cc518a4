"""Kazoo (2600Hz) crossbar recordings: token auth, 31-day windows, start_key paging, media from the API."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Generator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from recfetch.errors import (
    RUN_LEVEL,
    AuthError,
    ConfigError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RecfetchError,
    UsageError,
)
from recfetch.providers._http import parse_json
from recfetch.providers.base import DownloadTarget, ListQuery, Provider, Recording, Setting
from recfetch.redact import register_secret
from recfetch.state import TokenCache

__all__ = [
    "GREGORIAN_OFFSET",
    "MAX_RANGE",
    "WINDOW",
    "Kazoo",
    "from_gregorian",
    "parse_filters",
    "parse_tags",
    "to_gregorian",
]

GREGORIAN_OFFSET = 62_167_219_200
"""Seconds from 0000-01-01 to 1970-01-01: Kazoo timestamps are Gregorian seconds (unix + this)."""

MAX_RANGE = 2_682_000
"""crossbar.maximum_range default (31 days + 1 hour): a longer created_from..created_to span is a 400."""

WINDOW = 31 * 86_400
"""The span recfetch asks for per listing request: one hour under MAX_RANGE, so clock skew never trips it."""

PAGE_SIZE = 100
"""Kazoo accepts any positive page_size (default 50); fewer round trips for long histories."""

SAFE_REF = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
FILTER_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TOO_WIDE = re.compile(r"more than (\d+) seconds")

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


def parse_filters(values: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """`--filter KEY=VALUE` -> {"filter_KEY": VALUE} (Kazoo's query-string filters)."""
    out: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not FILTER_KEY.match(key):
            raise UsageError(
                f"--filter {item!r} is not KEY=VALUE",
                hint="e.g. --filter direction=inbound or --filter custom_channel_vars.queue=sales",
            )
        out[key if key.startswith("filter_") else f"filter_{key}"] = value
    return out


def parse_tags(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs -> a user_metadata object.

    A value that is valid JSON keeps its type (1, 2.5, true, null, {"a": 1}, "\\"007\\""),
    anything else is text; a dotted KEY nests (`tags.important=1` -> {"tags": {"important": 1}}).
    """
    if not pairs:
        raise UsageError("give at least one KEY=VALUE to tag with", hint="e.g. important=true")
    metadata: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise UsageError(f"{pair!r} is not KEY=VALUE", hint="e.g. important=true or tags.team=sales")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        node = metadata
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return metadata


def _root_of(url: str) -> str:
    """The server root, accepting a trailing /v2 (or /v2/) the way users copy it from docs."""
    root = url.strip().rstrip("/")
    if root.lower().endswith("/v2"):
        root = root[: -len("/v2")]
    return root


def _jwt_expiry(token: str) -> float | None:
    """Kazoo 4.3+ issues JWT auth tokens: their `exp` tells us when to stop reusing one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        exp = float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    return exp - 60  # renew a minute early rather than send a token about to die


def _retry_after_floor(response: httpx.Response) -> None:
    """Kazoo's 429 (token bucket, ~10 tokens/s refill) carries no Retry-After: wait at least 1 s."""
    if response.status_code == 429 and "retry-after" not in response.headers:
        response.headers["Retry-After"] = "1"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _url_has_secret(url: Any) -> bool:
    """An external-storage `url` with userinfo or a query (signatures, keys) must not be echoed."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return bool(parts.username or parts.password or parts.query or parts.fragment)


class Kazoo(Provider):
    """Kazoo crossbar `/v2`: account or user recordings, media streamed by the API itself."""

    name: ClassVar[str] = "kazoo"
    title: ClassVar[str] = "Kazoo"
    default_base_url: ClassVar[str | None] = None
    settings: ClassVar[tuple[Setting, ...]] = (
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
        Setting("username", "User name (with password and account_name, instead of api_key)", required=False),
        Setting("password", "User password", secret=True, required=False),
        Setting("account_name", "Account name the user logs in to", required=False),
    )
    auth_headers_hint: ClassVar[str] = "X-Auth-Token from PUT /v2/api_auth or /v2/user_auth"
    extra_verbs: ClassVar[tuple[str, ...]] = ("tag", "delete")

    def __init__(self, settings: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.account_id = self.config["account_id"].strip().lower()
        self._lock = threading.RLock()
        self._token: str | None = None
        self._sent = threading.local()
        self._minted: dict[str, str] = {}
        self.cache = TokenCache(self.state_dir, self.name, self._identity())
        self.api.on_unauthorized = self._renew_after_401
        if kwargs.get("http") is None:  # our own client: safe to add Kazoo's 429 quirk to it
            self.api.http.event_hooks["response"].append(_retry_after_floor)

    # -- settings -----------------------------------------------------------
    def base_url(self) -> str:
        """`<root>/v2/`: every crossbar path is under /v2 (SPEC §6 accepts the root with or without it)."""
        url = self.config.get("base_url")
        if not url:
            raise ConfigError(
                "kazoo: base_url is not set (Kazoo is self-hosted, there is no default)",
                hint="run `recfetch kazoo login` or set RECFETCH_KAZOO_BASE_URL=https://HOST:8000",
            )
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"kazoo: base_url {url!r} is not an http(s) URL",
                hint="fix it with `recfetch config set kazoo.base_url https://HOST:8000`",
            )
        return _root_of(url) + "/v2/"

    @classmethod
    def check_settings(cls, settings: Mapping[str, str]) -> None:
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

    def _identity(self) -> str:
        """Whose token this is: a changed server, account or credential never reuses a token."""
        if self.config.get("api_key"):
            who = "api_key:" + hashlib.sha256(self.config["api_key"].encode()).hexdigest()
        else:
            secret = hashlib.sha256(self.config.get("password", "").encode()).hexdigest()
            who = f"user:{self.config.get('username', '').lower()}@{self.config.get('account_name')}:{secret}"
        return "\n".join((self.profile, self.api.base_url, self.account_id, who))

    # -- auth ---------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        token = self._current_token()
        self._sent.token = token
        return {"X-Auth-Token": token}

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None:
                cached = self.cache.load()
                if cached is not None:
                    self._token = cached["token"]
                    register_secret(self._token)
                else:
                    self._token = self._authenticate()
            return self._token

    def _authenticate(self) -> str:
        """PUT /v2/api_auth or /v2/user_auth; the token is cached 0600 in the state dir."""
        if self.config.get("api_key"):
            path, what = "api_auth", "api_key"
            body: dict[str, Any] = {"data": {"api_key": self.config["api_key"]}}
        else:
            path, what = "user_auth", "username/password"
            # Kazoo's own scheme (doc/user_authentication.md): md5 of "lowercased-user:password".
            pair = f"{self.config['username'].lower()}:{self.config['password']}"
            body = {
                "data": {
                    "credentials": hashlib.md5(pair.encode("utf-8"), usedforsecurity=False).hexdigest(),
                    "account_name": self.config["account_name"],
                    "method": "md5",
                }
            }
        response = self.api.request(
            "PUT",
            path,
            json_body=body,
            authenticated=False,
            ok=tuple(range(200, 300)),
            what=f"login ({path})",
        )
        doc = self.api.json_of(response, what=f"login ({path})")
        token = doc.get("auth_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise ProviderError(
                f"kazoo accepted the {what} but sent no auth_token",
                hint="check that base_url points at the Kazoo crossbar API (port 8000)",
                provider=self.name,
                http_status=response.status_code,
            )
        token = token.strip()
        register_secret(token)
        self.cache.save(token, expires_at=_jwt_expiry(token), account_id=self.account_id)
        return token

    def _renew(self, rejected: str | None) -> str:
        """A fresh token unless another thread already replaced the rejected one."""
        with self._lock:
            if self._token is not None and self._token != rejected:
                return self._token
            self.cache.clear()
            self._token = None
            self._token = self._authenticate()
            return self._token

    def _renew_after_401(self) -> bool:
        """ApiClient calls this once per request on a 401: log in again, then it retries once."""
        self._renew(getattr(self._sent, "token", None))
        return True

    # -- errors -------------------------------------------------------------
    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        """Kazoo's envelope: {"data": ..., "error": "<status>", "message": "<atom>", "status": "error"}."""
        if not isinstance(body, dict):
            return None
        status = response.status_code
        atom = str(body.get("message") or "")
        data = body.get("data")
        path = response.request.url.path if response.request is not None else ""
        ref = path.rstrip("/").rsplit("/", 1)[-1]
        if status == 401 and path.endswith(("/api_auth", "/user_auth")):
            which = "api_key" if path.endswith("/api_auth") else "username, password or account_name"
            return AuthError(
                f"kazoo rejected the {which} ({atom or 'invalid_credentials'})",
                hint="run `recfetch kazoo login` again, or fix RECFETCH_KAZOO_* variables",
            )
        if status == 400 and path.endswith("/api_auth"):
            # Kazoo validates the key's shape (64 characters) before checking it: still a rejected key.
            return AuthError(
                "kazoo rejected the api_key (it must be the 64-character key from the Kazoo UI)",
                hint="run `recfetch kazoo login` again, or fix RECFETCH_KAZOO_API_KEY",
            )
        if status == 401:
            return AuthError(
                f"kazoo rejected the auth token even after a fresh login ({atom or 'invalid_credentials'})",
                hint="check the credentials with `recfetch kazoo login`",
            )
        if status == 403:
            return AuthError(
                f"kazoo: these credentials may not access account {self.account_id} ({atom or 'forbidden'})",
                hint="check account_id, or use a key/user of that account or its reseller",
            )
        if status == 404 and "bad" in atom and "identifier" in atom:
            return self._not_found(path, ref)
        if status == 400:
            return self._validation_error(atom, data)
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

    @staticmethod
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

    @staticmethod
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

    # -- requests -----------------------------------------------------------
    def _send(self, method: str, path: str, *, what: str, **kw: Any) -> tuple[httpx.Response, bool]:
        """One API request; (response, datastore_missing).

        Kazoo answers 503 datastore_missing when the month DB of a window or id does
        not exist: that is an answer, not an outage, so it is reported at once instead
        of being retried. Any other 503 goes through the client's 5xx retries.
        """
        response = self.api.request(method, path, ok=(200, 201, 202, 204, 503), what=what, **kw)
        if response.status_code != 503:
            return response, False
        body = parse_json(response)
        atom = str(body.get("message") or "") if isinstance(body, dict) else ""
        if atom.startswith("datastore_missing") or atom == "datastore missing view":
            return response, True
        return self.api.request(method, path, what=what, **kw), False

    def _get(self, path: str, *, params: Mapping[str, Any] | None = None, what: str) -> tuple[Any, bool]:
        """GET JSON; (body, datastore_missing)."""
        response, missing = self._send("GET", path, params=params, what=what)
        if missing:
            return None, True
        body = self.api.json_of(response, what=what)
        if not isinstance(body, dict):
            raise ProviderError(f"kazoo sent an unexpected {what} response (not a JSON object)")
        return body, False

    @staticmethod
    def _month_missing(ref: str) -> NotFoundError:
        return NotFoundError(
            f"recording {ref} not found (its month database does not exist on this server)",
            hint="check the id with `recfetch kazoo list --since ...`",
            provider="kazoo",
            http_status=503,
        )

    def _doc_path(self, ref: str) -> str:
        return f"accounts/{self.account_id}/recordings/{ref}"

    @staticmethod
    def _check_ref(ref: str) -> str:
        ref = ref.strip()
        if not SAFE_REF.match(ref):
            raise UsageError(
                f"{ref!r} is not a Kazoo recording id",
                hint="recording ids look like YYYYMM-<32 hex>; list them with `recfetch kazoo list`",
            )
        return ref

    # -- Provider -----------------------------------------------------------
    def verify(self) -> str:
        self._renew(self._token)  # log in with exactly these credentials, not a cached session
        params = {"page_size": 1}
        self._get(f"accounts/{self.account_id}/recordings", params=params, what="recordings listing")
        return f"Kazoo account {self.account_id} at {_root_of(self.config['base_url'])}"

    def iter_recordings(self, query: ListQuery) -> Iterator[Recording]:
        user = query.options.get("user")
        filters = parse_filters(query.options.get("filter"))
        if user:
            user = str(user).strip()
            if not HEX32.match(user):
                raise UsageError(
                    f"--user {user!r} is not a Kazoo user id (32 hex characters)",
                    hint="use the user's id from the Kazoo UI, not the user name",
                )
            path = f"accounts/{self.account_id}/users/{user.lower()}/recordings"
        else:
            path = f"accounts/{self.account_id}/recordings"
        until = query.until or datetime.now(UTC)
        # Without --since Kazoo itself shows only its default range; we ask for one 31-day window.
        since = query.since or (until - timedelta(seconds=WINDOW))
        size = WINDOW
        low = to_gregorian(since)
        high = to_gregorian(until)
        while high >= low:
            start = max(low, high - size)
            narrower = yield from self._window(path, filters, start, high)
            if narrower is not None:  # the server's maximum_range is smaller than the default
                size = narrower
                continue
            high = start - 1

    def _window(
        self, path: str, filters: Mapping[str, str], start: int, end: int
    ) -> Generator[Recording, None, int | None]:
        """One created_from..created_to window, paged to its last page; returns a narrower size on 400."""
        start_key: str | None = None
        seen_keys: set[str] = set()
        while True:
            params: dict[str, Any] = {
                "created_from": start,
                "created_to": end,
                "page_size": PAGE_SIZE,
                **filters,
            }
            if start_key is not None:
                params["start_key"] = start_key
            try:
                body, missing = self._get(path, params=params, what="recordings listing")
            except UsageError as exc:
                match = _TOO_WIDE.search(exc.message)
                if match and start_key is None and 0 < int(match.group(1)) < end - start:
                    return int(match.group(1))
                raise
            if missing:  # no month DB for this window: simply no recordings then
                return None
            items = body.get("data")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise ProviderError("kazoo sent a recordings listing whose data is not a list")
            for item in items:
                if isinstance(item, dict):
                    yield self._record(item)
            next_key = body.get("next_start_key")
            if next_key in (None, ""):
                return None
            next_key = str(next_key)
            if next_key in seen_keys or next_key == start_key:
                raise ProviderError("kazoo sent the same next_start_key twice; stopping instead of looping")
            seen_keys.add(next_key)
            start_key = next_key

    def get_recording(self, ref: str) -> Recording:
        ref = self._check_ref(ref)
        body, missing = self._get(self._doc_path(ref), what=f"recording {ref}")
        if missing:
            raise self._month_missing(ref)
        doc = body.get("data")
        if not isinstance(doc, dict):
            raise ProviderError(f"kazoo sent recording {ref} without a data object")
        return self._record(self._with_attachment_info(doc, ref))

    def _with_attachment_info(self, doc: Mapping[str, Any], ref: str) -> dict[str, Any]:
        """The doc with `_read_only.content_types` as a listing would show it, when we can learn it."""
        full = dict(doc)
        full.setdefault("id", ref)
        if not isinstance(full.get("_read_only"), dict):
            types = self._attachment_types(full)
            if types is not None:
                full["_read_only"] = {"content_types": types}
        return full

    def _attachment_types(self, doc: Mapping[str, Any]) -> list[str] | None:
        """The doc's attachment types, which only listing items carry (cb_recordings summary_doc_fun).

        A single GET strips `_attachments`, so ask the listing for the few recordings of
        this call saved around its end (Kazoo saves the doc when the recording stops).
        None when that cannot tell: the recording is then treated as downloadable.
        """
        start = _number(doc.get("start"))
        call_id = _text(doc.get("call_id"))
        if start is None or start < GREGORIAN_OFFSET or call_id is None:
            return None
        duration = _number(doc.get("duration")) or (_number(doc.get("duration_ms")) or 0) / 1000
        params = {
            "created_from": int(start) - 60,
            "created_to": int(start + duration) + 3600,
            "page_size": PAGE_SIZE,
            "filter_call_id": call_id,
        }
        try:
            body, _missing = self._get(
                f"accounts/{self.account_id}/recordings", params=params, what="recordings listing"
            )
        except RecfetchError as exc:
            if isinstance(exc, RUN_LEVEL):
                raise
            return None
        items = body.get("data") if body else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("id") == doc.get("id"):
                read_only = item.get("_read_only")
                types = read_only.get("content_types") if isinstance(read_only, dict) else None
                return [t for t in types if isinstance(t, str)] if isinstance(types, list) else None
        return None

    def mint(self, recording: Recording) -> DownloadTarget:
        """The API URL itself with X-Auth-Token: Kazoo streams the bytes, there is nothing to presign.

        The first target for a recording reuses the current token. The engine asks
        again only when that target was refused, so a repeat first re-checks the
        token with a JSON GET of the doc, which logs in again on a 401 (once).
        """
        ref = self._check_ref(recording.ref)
        with self._lock:
            repeat = ref in self._minted
        if repeat:
            self._get(self._doc_path(ref), what=f"recording {ref}")
        token = self._current_token()
        with self._lock:
            self._minted[ref] = token
        return DownloadTarget(
            url=self.api.url(self._doc_path(ref)),
            headers={"X-Auth-Token": token, "Accept": "audio/mpeg"},
            size_bytes=recording.size_bytes,
            filename=recording.filename,
            media_type=recording.media_type,
            credential_origin=self.api.origin,
        )

    def delete(self, recording: Recording) -> None:
        """DELETE the doc (and an attachment stored on it); external storage copies stay."""
        ref = self._check_ref(recording.ref)
        _response, missing = self._send("DELETE", self._doc_path(ref), what=f"recording {ref}")
        if missing:
            raise self._month_missing(ref)

    def tag(self, ref: str, metadata: Mapping[str, Any]) -> Recording:
        """PATCH user_metadata (Kazoo 5.x merges it into the doc); the updated recording."""
        ref = self._check_ref(ref)
        response, missing = self._send(
            "PATCH",
            self._doc_path(ref),
            json_body={"data": {"user_metadata": dict(metadata)}},
            what=f"recording {ref}",
        )
        if missing:
            raise self._month_missing(ref)
        body = self.api.json_of(response, what=f"tagging {ref}")
        doc = body.get("data") if isinstance(body, dict) else None
        if not isinstance(doc, dict):
            return self.get_recording(ref)
        return self._record(self._with_attachment_info(doc, ref))

    # -- records ------------------------------------------------------------
    def _record(self, doc: Mapping[str, Any]) -> Recording:
        ref = _text(doc.get("id")) or _text(doc.get("_id"))
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
        duration_ms = _number(doc.get("duration_ms"))
        duration = duration_ms / 1000 if duration_ms is not None else _number(doc.get("duration"))
        ended = started + timedelta(seconds=duration) if started and duration is not None else None
        extension = (_text(doc.get("media_type")) or "").lstrip(".").lower()
        media_type = _text(doc.get("content_type")) or (content_types[0] if content_types else None)
        media_type = media_type or AUDIO_TYPES.get(extension)
        direction = (_text(doc.get("direction")) or "").lower() or None
        raw = {k: v for k, v in doc.items() if not (k == "url" and _url_has_secret(v))}
        return Recording(
            provider=self.name,
            profile=self.profile,
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
            filename=_text(doc.get("name")),
            call_id=_text(doc.get("call_id")),
            direction=direction,
            # SIP `user@realm` as Kazoo wrote it: the realm says which account/site the party is on.
            from_=_text(doc.get("from")) or _text(doc.get("caller_id_number")),
            to=_text(doc.get("to")) or _text(doc.get("callee_id_number")),
            raw=raw,
            skip_reason=None if downloadable else "no attachment: Kazoo holds no media for this recording",
        )
