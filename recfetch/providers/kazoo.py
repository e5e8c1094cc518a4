"""Kazoo (2600Hz) crossbar recordings: token auth, 31-day windows, start_key paging, media from the API."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from recfetch.errors import (
    RUN_LEVEL,
    ConfigError,
    NotFoundError,
    ProviderError,
    RecfetchError,
    UsageError,
)
from recfetch.providers._http import parse_json
from recfetch.providers.base import DownloadTarget, ListQuery, Provider, Recording
from recfetch.providers.catalog import KAZOO
from recfetch.providers.kazoo_wire import (
    GREGORIAN_OFFSET,
    HEX32,
    from_gregorian,
    map_error,
    number_of,
    record_of,
    text_of,
    to_gregorian,
)
from recfetch.providers.kazoo_wire import check_settings as check_kazoo_settings
from recfetch.providers.paging import ListingGuard
from recfetch.redact import register_secret
from recfetch.state import TokenCache

__all__ = [
    "GREGORIAN_OFFSET",
    "MAX_RANGE",
    "WINDOW",
    "KazooProvider",
    "from_gregorian",
    "parse_filters",
    "parse_tags",
    "to_gregorian",
]


MAX_RANGE = 2_682_000
"""crossbar.maximum_range default (31 days + 1 hour): a longer created_from..created_to span is a 400."""

WINDOW = 31 * 86_400
"""The span recfetch asks for per listing request: one hour under MAX_RANGE, so clock skew never trips it."""

PAGE_SIZE = 100
"""Kazoo accepts any positive page_size (default 50); fewer round trips for long histories."""

SAFE_REF = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
FILTER_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TOO_WIDE = re.compile(r"more than (\d+) seconds")


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


class TokenAuth(httpx.Auth):
    """`X-Auth-Token` on every request; a 401 logs in again (once per request) and resends it.

    ``renew(rejected)`` returns a fresh token, or the one another thread already got in
    place of ``rejected``; a second 401 goes back to the caller, which reports it (exit 4).
    """

    def __init__(self, current: Callable[[], str], renew: Callable[[str], str]) -> None:
        self._current = current
        self._renew = renew

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current()
        request.headers["X-Auth-Token"] = token
        response = yield request
        if response.status_code == 401:
            request.headers["X-Auth-Token"] = self._renew(token)
            yield request


class KazooProvider(Provider, info=KAZOO):
    """Kazoo crossbar `/v2`: account or user recordings, media streamed by the API itself."""

    retry_after_floor: ClassVar[float | None] = 1.0
    """Kazoo's 429 (token bucket, ~10 tokens/s refill) carries no Retry-After: wait at least 1 s."""

    def __init__(self, settings: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.account_id = self.config["account_id"].strip().lower()
        self._lock = threading.RLock()
        self._token: str | None = None
        self._minted: dict[str, str] = {}
        self.cache = TokenCache(self.state_dir, self.name, self._identity())

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
        check_kazoo_settings(settings)

    def _identity(self) -> str:
        """Whose token this is: a changed server, account or credential never reuses a token."""
        if self.config.get("api_key"):
            who = "api_key:" + hashlib.sha256(self.config["api_key"].encode()).hexdigest()
        else:
            secret = hashlib.sha256(self.config.get("password", "").encode()).hexdigest()
            who = f"user:{self.config.get('username', '').lower()}@{self.config.get('account_name')}:{secret}"
        return "\n".join((self.profile, self.api.base_url, self.account_id, who))

    # -- auth ---------------------------------------------------------------
    def http_auth(self) -> httpx.Auth:
        return TokenAuth(self._current_token, self._renew)

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

    # -- errors -------------------------------------------------------------

    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        return map_error(response, body, account_id=self.account_id)

    def _record(self, doc: Mapping[str, Any]) -> Recording:
        return record_of(doc, profile=self.profile)

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
        guard = ListingGuard(self.name, sparse=bool(filters))  # Kazoo filters each page after paging
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
                if isinstance(item, dict) and guard.is_new(str(item.get("id"))):
                    yield self._record(item)
            next_key = body.get("next_start_key")
            more = next_key not in (None, "")
            if not guard.next_page(more=more, cursor=str(next_key)):
                return None
            start_key = str(next_key)

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
        echoed = text_of(doc.get("id"))
        if echoed is not None and echoed != ref:
            # Trust the REF the user gave: never show, tag or download another recording in its place.
            raise ProviderError(
                f"kazoo answered the request for recording {ref} with recording {echoed}",
                hint="check base_url and account_id; report it to the Kazoo operator if they are right",
                provider=self.name,
                http_status=200,
            )
        full = dict(doc)
        full["id"] = ref
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
        start = number_of(doc.get("start"))
        call_id = text_of(doc.get("call_id"))
        if start is None or start < GREGORIAN_OFFSET or call_id is None:
            return None
        duration = number_of(doc.get("duration")) or (number_of(doc.get("duration_ms")) or 0) / 1000
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
