"""Kismet Health egresses (LiveKit call recordings): organization users → ended calls → egresses."""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import httpx

from recfetch.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RecfetchError,
    UsageError,
)
from recfetch.providers.base import DownloadTarget, ListQuery, Provider, Recording
from recfetch.providers.catalog import KISMET
from recfetch.providers.paging import ListingGuard
from recfetch.redact import register_secret, scrub_raw
from recfetch.timeparse import parse_provider_time
from recfetch.urls import presigned_expiry

__all__ = ["KismetProvider", "parse_ref"]

log = logging.getLogger("recfetch.kismet")

API = "api/external/organization_users"

URL_TTL = timedelta(minutes=15)
"""Kismet's presigned egress URLs last 15 minutes (docs, "Get Egress Details")."""

READY = "egress_ended"
IN_PROGRESS = frozenset({"egress_starting", "egress_started", "egress_updated", "egress_active", "active"})
# LiveKit's terminal failure states, should Kismet ever pass them through (INF).
FAILED = frozenset({"egress_failed", "egress_aborted"})

MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".ts": "video/mp2t",
}
# LiveKit room-composite egresses are usually MP4 (INF); the URL path overrides at mint time.
DEFAULT_MEDIA_TYPE = "video/mp4"

_REF = re.compile(r"^(\d+)/(\d+)/(\d+)$")
LOGIN_HINT = (
    "check the client id and secret in the Kismet dashboard, then run `recfetch kismet login` "
    "(or set RECFETCH_KISMET_CLIENT_ID and RECFETCH_KISMET_CLIENT_SECRET)"
)
LIST_HINT = "check the ref with `recfetch kismet list`"


def parse_ref(ref: str) -> tuple[int, int, int]:
    """`USER_ID/CALL_ID/EGRESS_ID` → three ints; UsageError otherwise."""
    match = _REF.match(ref.strip())
    if not match:
        raise UsageError(
            f"kismet ref {ref!r} is not USER_ID/CALL_ID/EGRESS_ID (three numbers)",
            hint="copy the ref field from `recfetch kismet list`",
        )
    uid, cid, eid = (int(part) for part in match.groups())
    return uid, cid, eid


def _int(value: Any) -> int | None:
    """Ids and counts arrive as numbers or numeric strings; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _flag(value: Any) -> bool | None:
    """JSON booleans, or the "true"/"false"/1/0 a lenient server might send."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "t", "1", "yes"):
            return True
        if text in ("false", "f", "0", "no", ""):
            return False
    return None


def _without_urls(obj: Any) -> Any:
    """``raw`` never carries a download URL: drop `url` keys, then credentials and presigned URLs."""
    if isinstance(obj, Mapping):
        return scrub_raw({k: _without_urls(v) for k, v in obj.items() if k not in ("url", "download_url")})
    if isinstance(obj, list):
        return scrub_raw([_without_urls(v) for v in obj])
    return obj


def _more_pages(body: Mapping[str, Any], page: int, count: int, per_page: int) -> bool:
    """Whether a page-number listing goes on: by `pagination.total_pages` when the server sends
    it, else (a lenient server) while pages come back full."""
    pagination = body.get("pagination")
    if isinstance(pagination, dict):
        total_pages = _int(pagination.get("total_pages"))
        if total_pages is not None:
            return max(_int(pagination.get("current_page")) or page, page) < total_pages
        per_page = _int(pagination.get("per_page")) or per_page
    return count >= per_page


def _user_context(user: Mapping[str, Any]) -> dict[str, Any]:
    # A fixed subset, so list (index objects) and show (show object with waiting-room details) agree.
    return {k: user.get(k) for k in ("id", "email", "display_name", "is_admin")}


def url_expiry(url: str, *, now: datetime | None = None) -> datetime:
    """When a presigned URL stops working: X-Amz-Date + X-Amz-Expires (SigV4) or an epoch `Expires`.

    Falls back to now + 15 minutes; a derived time already in the past (clock skew
    between us and the signer) is ignored, since the storage host's 403 is the real signal.
    """
    now = now or datetime.now(UTC)
    expiry = presigned_expiry(url, now=now)
    if expiry is None or expiry <= now:
        return now + URL_TTL
    return expiry


class KismetProvider(Provider, info=KISMET):
    """Kismet's external API: both X-Client-ID and X-Client-Secret on every request.

    A recording is one egress. ``ref`` is ``USER_ID/CALL_ID/EGRESS_ID`` (the API's
    path needs all three); ``id`` is the same with ``-`` instead of ``/`` so it is
    unique (egress ids are Kismet primary keys), derivable from the ref, always
    present (unlike the LiveKit ``egress_id``) and safe in file names.
    """

    per_page: ClassVar[int] = 100
    """Asked for on every paged request; the server may cap it and echoes what it used (INF)."""

    def __init__(self, settings: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        register_secret(self.config.get("client_secret"))
        # `show`/`download REF` resolve refs through the listing endpoints; refs from one
        # user or call share these lookups instead of re-asking Kismet for each.
        self._users: dict[int, dict[str, Any]] = {}
        self._calls: dict[tuple[int, int], dict[str, Any]] = {}
        self._egresses: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self._withheld: list[tuple[int, int]] = []
        """(user, call) of ended calls that report egresses but list none: consent was missing."""

    # -- auth and errors ---------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {
            "X-Client-ID": self.config.get("client_id", ""),
            "X-Client-Secret": self.config.get("client_secret", ""),
            "Accept": "application/json",
            "Content-Type": "application/json",  # as in every example request of the docs
        }

    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        # Error bodies are undocumented (INF): decisions rest on the status alone.
        status = response.status_code
        if status in (401, 403):
            verb = (
                "rejected the client id/secret" if status == 401 else "refused access with these credentials"
            )
            return AuthError(f"Kismet {verb} (HTTP {status})", hint=LOGIN_HINT, http_status=status)
        if status == 404:
            return NotFoundError(
                f"Kismet: {_describe(response.request.url.path)} not found or not accessible (HTTP 404)",
                hint=LIST_HINT,
                http_status=status,
            )
        if status == 429:
            return RateLimitedError(
                "Kismet is still rate limiting after retries (HTTP 429)",
                hint="wait a few minutes and try again, or lower --jobs; Kismet support can raise the limit",
                http_status=status,
            )
        return None

    # -- paging ------------------------------------------------------------
    def _page_items(self, body: Any, key: str, what: str) -> list[dict[str, Any]]:
        if isinstance(body, dict) and key in body:
            raw_items = body[key] or []
        elif isinstance(body, dict) and isinstance(body.get("data"), list):
            raw_items = body["data"]
        else:
            raise ProviderError(
                f"Kismet sent an unexpected response for {what}: no {key!r} list",
                hint="check that base_url points at the Kismet API",
                provider=self.name,
            )
        if not isinstance(raw_items, list):
            raise ProviderError(
                f"Kismet sent an unexpected response for {what}: {key!r} is not a list",
                hint="check that base_url points at the Kismet API",
                provider=self.name,
            )
        items: list[dict[str, Any]] = []
        for item in raw_items:
            if isinstance(item, dict) and _int(item.get("id")) is not None:
                items.append(item)
            else:  # cannot be addressed (no id): say so rather than drop it silently
                log.warning("kismet: skipping an entry without a numeric id in %s", what)
        return items

    def _paged(
        self, path: str, key: str, *, what: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a page-number listing, fetched page by page as the caller consumes them.

        Stops at current_page >= total_pages, on an empty page, or — when a lenient
        server sends no pagination — on a page shorter than per_page.
        """
        page = 1
        guard = ListingGuard(self.name, what)
        while True:
            query = {**(params or {}), "page": page, "per_page": self.per_page}
            body = self.api.get_json(path, params=query, what=f"{what} (page {page})")
            items = self._page_items(body, key, what)
            yield from (item for item in items if guard.is_new(_int(item.get("id"))))
            if not guard.next_page(more=_more_pages(body, page, len(items), self.per_page)):
                return
            page += 1

    # -- lookups -----------------------------------------------------------
    def _object(self, body: Any, key: str, what: str) -> dict[str, Any]:
        """A show endpoint's object, bare (as documented) or wrapped in ``{key: {...}}``."""
        if isinstance(body, dict) and isinstance(body.get(key), dict):
            body = body[key]
        if not isinstance(body, dict) or _int(body.get("id")) is None:
            raise ProviderError(
                f"Kismet sent an unexpected response for {what}",
                hint="check that base_url points at the Kismet API",
                provider=self.name,
            )
        return body

    def _user(self, uid: int) -> dict[str, Any]:
        if uid not in self._users:
            try:
                body = self.api.get_json(f"{API}/{uid}", what=f"user {uid}")
            except NotFoundError:
                raise NotFoundError(
                    f"Kismet user {uid} not found in this organization",
                    hint="list the users with `recfetch kismet users`",
                    provider=self.name,
                    http_status=404,
                ) from None
            self._users[uid] = self._object(body, "organization_user", f"user {uid}")
        return self._users[uid]

    def _call(self, uid: int, cid: int) -> dict[str, Any]:
        if (uid, cid) not in self._calls:
            try:
                body = self.api.get_json(f"{API}/{uid}/calls/{cid}", what=f"call {cid}")
            except NotFoundError:
                raise NotFoundError(
                    f"Kismet call {cid} of user {uid} not found",
                    hint=f"list the user's calls with `recfetch kismet calls --user {uid}`",
                    provider=self.name,
                    http_status=404,
                ) from None
            self._calls[(uid, cid)] = self._object(body, "call", f"call {cid}")
        return self._calls[(uid, cid)]

    def _egress_list(self, uid: int, cid: int) -> list[dict[str, Any]]:
        # Unpaged (docs show no pagination); an empty list means not every participant consented.
        what = f"egresses of call {cid}"
        body = self.api.get_json(f"{API}/{uid}/calls/{cid}/egresses", what=what)
        return self._page_items(body, "egresses", what)

    # -- records -----------------------------------------------------------
    # -- Provider interface -------------------------------------------------
    def verify(self) -> str:
        body = self.api.get_json(API, params={"per_page": 1}, what="organization users")
        items = self._page_items(body, "organization_users", "organization users")
        pagination = body.get("pagination") if isinstance(body, dict) else None
        total = _int(pagination.get("total_count")) if isinstance(pagination, dict) else None
        if total is None:
            return "Kismet organization" + (" (users visible)" if items else "")
        return f"Kismet organization ({total} user{'s' if total != 1 else ''})"

    def iter_recordings(self, query: ListQuery) -> Iterator[Recording]:
        """Validates the filters at once (usage errors before any request), then streams."""
        options = query.options
        users = _id_list(options.get("user"), "--user")
        call = _id_list(options.get("call"), "--call")
        email = options.get("email") or None
        if call and len(users) != 1:
            raise UsageError(
                "--call needs exactly one --user (a Kismet call belongs to one organization user)",
                hint="e.g. `recfetch kismet list --user 101 --call 5`; "
                "find call ids with `recfetch kismet calls --user ID`",
            )
        if len(call) > 1:
            raise UsageError("--call can be given once", hint="run one listing per call")
        return self._walk(users, call[0] if call else None, email, query.since, query.until)

    def _walk(
        self,
        users: list[int],
        call_id: int | None,
        email: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Iterator[Recording]:
        for user in self._selected_users(users, email):
            uid = _int(user["id"])
            assert uid is not None
            if call_id is not None:
                # An explicitly named call is listed even if not ended: its egresses then show why.
                calls: Iterator[dict[str, Any]] = iter([self._call(uid, call_id)])
                explicit = True
            else:
                calls = self._paged(f"{API}/{uid}/calls", "calls", what=f"calls of user {uid}")
                explicit = False
            for call in calls:
                # Only ended calls have egresses, and has_egresses=false saves a request. A call
                # missing either flag is asked anyway: a wasted request beats a missed recording.
                if not explicit and (
                    _flag(call.get("is_ended")) is False or _flag(call.get("has_egresses")) is False
                ):
                    continue
                call_created = parse_provider_time(call.get("created_at"))
                if until and call_created and call_created >= until:
                    continue  # its egresses start no earlier than the call
                cid = _int(call["id"])
                assert cid is not None
                egresses = self._egress_list(uid, cid)
                if not egresses and _flag(call.get("is_ended")) and _flag(call.get("has_egresses")):
                    self._withheld.append((uid, cid))
                    log.info(
                        "call %s of user %s ended with recordings, but Kismet lists none: not every "
                        "participant consented to recording",
                        cid,
                        uid,
                    )
                for egress in egresses:
                    record = _record_of(self.name, self.profile, user, call, egress)
                    when = record.started_at
                    if when is not None and ((since and when < since) or (until and when >= until)):
                        continue
                    yield record

    def listing_notes(self) -> list[str]:
        if not self._withheld:
            return []
        shown = ", ".join(f"call {cid} of user {uid}" for uid, cid in self._withheld[:5])
        more = f" and {len(self._withheld) - 5} more" if len(self._withheld) > 5 else ""
        count = len(self._withheld)
        return [
            f"{count} ended call{'s' if count > 1 else ''} reported recordings that Kismet did not list "
            f"({shown}{more}): Kismet withholds the recordings of a call unless every participant "
            "consented to recording"
        ]

    def _selected_users(self, users: list[int], email: str | None) -> Iterator[dict[str, Any]]:
        if email:
            wanted = set(users)
            for user in self._paged(
                API, "organization_users", what="organization users", params={"email": email}
            ):
                if not wanted or _int(user["id"]) in wanted:
                    yield user
            return
        if users:
            for uid in users:
                yield self._user(uid)
            return
        yield from self._paged(API, "organization_users", what="organization users")

    def get_recording(self, ref: str) -> Recording:
        uid, cid, eid = parse_ref(ref)
        try:
            user = self._user(uid)
            call = self._call(uid, cid)
            if (uid, cid) not in self._egresses:
                self._egresses[(uid, cid)] = self._egress_list(uid, cid)
        except NotFoundError as exc:
            raise NotFoundError(
                f"Kismet recording {ref} not found ({exc.message})",
                hint=LIST_HINT,
                provider=self.name,
                http_status=404,
            ) from None
        for egress in self._egresses[(uid, cid)]:
            if _int(egress.get("id")) == eid:
                return _record_of(self.name, self.profile, user, call, egress)
        raise NotFoundError(
            f"Kismet recording {ref} not found (call {cid} has no egress {eid})",
            hint=LIST_HINT,
            provider=self.name,
            http_status=404,
        )

    def mint(self, recording: Recording) -> DownloadTarget:
        """One request to the egress show endpoint, which Kismet audits: call it only to download."""
        uid, cid, eid = parse_ref(recording.ref)
        what = f"download URL of {recording.ref}"
        try:
            body = self.api.get_json(f"{API}/{uid}/calls/{cid}/egresses/{eid}", what=what)
        except NotFoundError:
            raise NotFoundError(
                f"Kismet recording {recording.ref} not found",
                hint=LIST_HINT,
                provider=self.name,
                http_status=404,
            ) from None
        egress = self._object(body, "egress", what)
        url = egress.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            status = egress.get("status") or "unknown"
            raise ProviderError(
                f"Kismet gave no download URL for {recording.ref} (egress status {status})",
                hint="the recording may still be processing; try again later",
                provider=self.name,
            )
        name = posixpath.basename(unquote(urlsplit(url).path))
        ext = posixpath.splitext(name)[1].lower()
        media_type = MEDIA_TYPES.get(ext)
        return DownloadTarget(
            url=url,
            expires_at=url_expiry(url),
            headers={},  # presigned S3 URL: Kismet credentials never go to the storage host
            size_bytes=None,
            filename=name if media_type else None,
            media_type=media_type or recording.media_type,
            credential_origin=None,
        )

    # -- provider-only verbs -------------------------------------------------
    def iter_users(self, *, email: str | None = None) -> Iterator[dict[str, Any]]:
        """`recfetch kismet users`: the organization's users, paged."""
        params = {"email": email} if email else None
        for user in self._paged(API, "organization_users", what="organization users", params=params):
            yield {
                "provider": self.name,
                "profile": self.profile,
                "id": _int(user.get("id")),
                "email": user.get("email"),
                "display_name": user.get("display_name"),
                "is_admin": _flag(user.get("is_admin")),
                "created_at": _iso(user.get("created_at")),
                "updated_at": _iso(user.get("updated_at")),
                "raw": _without_urls(user),
            }

    def iter_calls(self, user: str) -> Iterator[dict[str, Any]]:
        """`recfetch kismet calls --user ID`: every call of one user (ended or not), paged."""
        uid = _id_list(user, "--user")[0]
        self._user(uid)  # a clear "user not found" before paging
        for call in self._paged(f"{API}/{uid}/calls", "calls", what=f"calls of user {uid}"):
            participants = call.get("participants")
            yield {
                "provider": self.name,
                "profile": self.profile,
                "user_id": uid,
                "id": _int(call.get("id")),
                "name": call.get("name"),
                "state": call.get("state"),
                "is_ended": _flag(call.get("is_ended")),
                "has_egresses": _flag(call.get("has_egresses")),
                "is_recording": _flag(call.get("is_recording")),
                "participants": len(participants) if isinstance(participants, list) else None,
                "created_at": _iso(call.get("created_at")),
                "updated_at": _iso(call.get("updated_at")),
                "raw": _without_urls(call),
            }


def _record_of(
    name: str, profile: str, user: Mapping[str, Any], call: Mapping[str, Any], egress: Mapping[str, Any]
) -> Recording:
    """One egress as a SPEC §4 record; only `egress_ended` without an error is downloadable."""
    uid, cid, eid = _int(user.get("id")), _int(call.get("id")), _int(egress.get("id"))
    ref = f"{uid}/{cid}/{eid}"
    provider_status = egress.get("status") if isinstance(egress.get("status"), str) else None
    error = egress.get("error")
    error_text = error.strip() if isinstance(error, str) else (str(error) if error else "")
    skip_reason: str | None = None
    if error_text:
        status, skip_reason = "failed", f"egress failed: {error_text}"
    elif provider_status == READY:
        status = "ready"
    elif provider_status in IN_PROGRESS:
        status, skip_reason = "processing", f"still recording (status {provider_status})"
    elif provider_status in FAILED:
        status, skip_reason = "failed", f"egress failed (status {provider_status})"
    else:
        status, skip_reason = "unknown", f"no file yet (status {provider_status or 'missing'})"
    started = parse_provider_time(egress.get("created_at")) or parse_provider_time(call.get("created_at"))
    ended = parse_provider_time(egress.get("ended_at"))
    duration = (ended - started).total_seconds() if started and ended and ended >= started else None
    label = egress.get("egress_id") if isinstance(egress.get("egress_id"), str) else None
    raw = {
        **_without_urls(egress),
        "call": _without_urls(dict(call)),
        "organization_user": _without_urls(_user_context(user)),
    }
    return Recording(
        provider=name,
        profile=profile,
        ref=ref,
        id=ref.replace("/", "-"),
        status=status,
        provider_status=provider_status,
        downloadable=status == "ready",
        started_at=started,
        ended_at=ended,
        duration_s=duration,
        size_bytes=None,  # Kismet reports no size; the download verifies Content-Length
        media_type=DEFAULT_MEDIA_TYPE,
        filename=f"{label or 'egress-' + str(eid)}.mp4",
        call_id=str(cid),
        raw=raw,
        skip_reason=skip_reason,
    )


def _iso(value: Any) -> str | None:
    parsed = parse_provider_time(value)
    return parsed.isoformat().replace("+00:00", "Z") if parsed else None


def _id_list(value: Any, flag: str) -> list[int]:
    """Numeric ids from a flag (one value or repeated), de-duplicated in order."""
    if value is None or value == "":
        return []
    values = [value] if isinstance(value, str | int) else list(value)
    out: list[int] = []
    for item in values:
        number = _int(item)
        if number is None:
            raise UsageError(
                f"{flag} {item!r} is not a Kismet id (a number)",
                hint="find user ids with `recfetch kismet users` "
                "and call ids with `recfetch kismet calls --user ID`",
            )
        if number not in out:
            out.append(number)
    return out


def _describe(path: str) -> str:
    """`…/organization_users/1/calls/2/egresses/3` → "egress 3 of call 2 (user 1)"."""
    parts = path.strip("/").split("/")
    found: dict[str, str] = {}
    for name, key in (("organization_users", "user"), ("calls", "call"), ("egresses", "egress")):
        if name in parts:
            index = parts.index(name)
            found[key] = parts[index + 1] if index + 1 < len(parts) else ""
    if found.get("egress"):
        return f"egress {found['egress']} of call {found.get('call')} (user {found.get('user')})"
    if "egress" in found:
        return f"call {found.get('call')} of user {found.get('user')}"
    if found.get("call"):
        return f"call {found['call']} of user {found.get('user')}"
    if found.get("user"):
        return f"user {found['user']}"
    return "resource"
