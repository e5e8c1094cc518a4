"""Stand-in of Bird's workspace Recordings API: cursor paging, filters, `.mp3` → 307, delete."""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from recfetch.sandbox.httpserver import Fault, Request, Response, Server, json_response
from recfetch.sandbox.storage import Storage

WORKSPACE_ID = "5f0c7a2e-8d1b-4c3e-9a6f-2b7d4e1c0a99"
ACCESS_KEY = "bird-sandbox-access-key-9Qx4TzL2"
BEARER_TOKEN = "bird-sandbox-bearer-token-Jm3Vq8Rw"
"""Accepted as `Authorization: Bearer …`, the scheme of the seed page's examples."""
DEFAULT_COUNT = 24
DEFAULT_LIMIT = 10  # DOC: "the default page size is 10"
MAX_LIMIT = 99  # DOC: list-recordings `limit` maximum
URL_TTL = 280  # INF: the S3 URLs' X-Amz-Expires was not published; kept short (under 5 minutes,
# so by default a download mints through `.mp3`; tests raise ``url_ttl`` to use the listing's URL)
STATUSES = ("accepted", "processing", "available", "failed")
"""`accepted` and `available` are documented examples; the others are INF."""

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _anchor() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _party(rng: random.Random, number: str) -> dict[str, Any]:
    return {
        "contact": {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "identifierKey": "phonenumber",
            "identifierValue": number,
        },
        "number": {
            "type": "pstn",
            "number": number,
            "anonymous": False,
            "callerIdName": "",
            "identity": number,
            "countryIsoCode": "NL",
        },
    }


class BirdStandIn:
    """Recordings in one workspace, newest first; test hooks are plain methods and attributes.

    DOC: paths, `limit` 1..99 / `pageToken` / `nextPageToken` (absent on the last page), the
    list filters, the Recording shape, 204 on delete, 307 for the media. INF: the error
    envelopes (`{"code","message","details"}` from third-party notes), the opaque token format,
    the statuses beyond `accepted`/`available`, and the URL lifetime (``url_ttl``).
    """

    name = "bird"

    def __init__(
        self, storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None
    ) -> None:
        self.storage = storage
        self.server = Server("bird", port=port)
        self.rng = random.Random(f"bird:{seed}")
        self._token_rng = random.Random(f"bird-tokens:{seed}")  # tokens must not shift the data
        self.url_ttl = URL_TTL
        self.redirect_mp3 = True
        """False: `.mp3` answers 200 with the bytes itself (clients must fall back to `url`)."""
        self.list_calls = 0
        self.metadata_calls = 0
        self.mp3_calls = 0
        self.deleted: list[str] = []
        self.channels = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(2)]
        self.recordings: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()
        self._anchor = _anchor()
        self._populate(DEFAULT_COUNT if recordings is None else max(0, recordings))
        self._routes()

    # -- synthetic data ------------------------------------------------------
    def _populate(self, count: int) -> None:
        for index in range(count):
            status = "available"
            if index % 8 == 3:
                status = "accepted"
            elif index % 11 == 7:
                status = "failed"
            started = self._anchor - timedelta(hours=index * 5 + 1, minutes=self.rng.randint(0, 59))
            self.add_recording(status=status, started_at=started)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_recording(
        self,
        *,
        status: str = "available",
        started_at: datetime | None = None,
        channel_id: str | None = None,
        call_id: str | None = None,
        direction: str | None = None,
        size: int | None = None,
        content: bytes | None = None,
        duration: int | None = None,
    ) -> str:
        """Add a recording (media stored when available); returns its id."""
        rng = self.rng
        with self._lock:
            rid = self._uuid()
            started = started_at or (self._anchor - timedelta(minutes=rng.randint(5, 600)))
            length = duration if duration is not None else rng.randint(8, 600)
            ended = started + timedelta(seconds=length)
            direction = direction or rng.choice(("incoming", "outgoing"))
            caller = f"+3161{rng.randrange(10**7):07d}"
            callee = f"+3120{rng.randrange(10**7):07d}"
            source_id = call_id or self._uuid()
            record: dict[str, Any] = {
                "id": rid,
                "source": "call",
                "sourceId": source_id,
                "channelId": channel_id or rng.choice(self.channels),
                "status": status,
                "direction": direction,
                "originator": _party(rng, caller),
                "receiver": _party(rng, callee),
                "origin": rng.choice(("call-command-record", "create-call")),
                "duration": length,
                "stereo": rng.random() < 0.3,
                "format": "mp3",
                "transcription": False,
                "createdAt": _ts(started),
                "updatedAt": _ts(ended + timedelta(seconds=20)),
                "startedAt": _ts(started),
                "endedAt": _ts(ended),
            }
            self.recordings[rid] = record
            key = f"bird/workspaceID:{WORKSPACE_ID}/sourceID:{source_id}/{rid}.mp3"
            self._keys[rid] = key
        if status == "available":
            if content is not None:
                self.storage.put_bytes(key, content, media_type="audio/mpeg")
            else:
                self.storage.put(
                    key,
                    size=size or rng.randint(8_000, 200_000),
                    seed=f"{self.name}:{rng.randrange(2**31)}",
                    media_type="audio/mpeg",
                )
        return rid

    def ids(self, *, status: str | None = None) -> list[str]:
        return [rid for rid, r in self._sorted() if status is None or r["status"] == status]

    def key_of(self, rid: str) -> str:
        return self._keys[rid]

    def content(self, rid: str) -> bytes:
        return self.storage.content(self._keys[rid])

    def _sorted(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            items = list(self.recordings.items())
        return sorted(items, key=lambda kv: (kv[1]["startedAt"], kv[0]), reverse=True)

    # -- test hooks ----------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        retry_after: str | None = None,
        path_contains: str = "/recordings",
    ) -> Fault:
        """Answer the next ``times`` API requests whose path contains ``path_contains`` with ``status``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        default = {429: ("TooManyRequests", "Too many requests"), 500: ("InternalError", "Internal error")}
        code, message = default.get(status, ("Error", "sandbox fault"))
        payload = body if body is not None else {"code": code, "message": message}
        if isinstance(payload, bytes):
            response = Response(status, payload, {"Content-Type": "text/html", **headers})
        else:
            response = json_response(payload, status, headers)
        return self.server.add_fault(Fault(lambda r: path_contains in r.path, response, times))

    def profile(self) -> dict[str, str]:
        return {"base_url": self.server.url, "workspace_id": WORKSPACE_ID, "access_key": ACCESS_KEY}

    # -- routes ----------------------------------------------------------------
    def _routes(self) -> None:
        base = r"/workspaces/(?P<wid>[^/]+)/recordings"
        self.server.route("GET", base)(self._list)
        self.server.route("GET", base + r"/(?P<rid>[^/]+?)(?P<mp3>\.mp3)?")(self._get)
        self.server.route("DELETE", base + r"/(?P<rid>[^/]+)")(self._delete)

    @staticmethod
    def _invalid(details: dict[str, list[str]]) -> Response:
        return json_response(
            {"code": "InvalidPayload", "message": "The request did not pass validation", "details": details},
            422,
        )

    def _guard(self, request: Request) -> Response | None:
        auth = request.header("authorization") or ""
        scheme, _, credential = auth.partition(" ")
        if scheme not in ("AccessKey", "Bearer") or not credential:
            return json_response({"code": "Unauthorized", "message": "Missing or malformed access key"}, 401)
        if credential != {"AccessKey": ACCESS_KEY, "Bearer": BEARER_TOKEN}[scheme]:
            return json_response({"code": "Unauthorized", "message": "Invalid access key"}, 401)
        if request.params.get("wid") != WORKSPACE_ID:
            return json_response({"code": "NotFound", "message": "Workspace not found"}, 404)
        return None

    def _list(self, request: Request) -> Response:
        with self._lock:
            self.list_calls += 1
        denied = self._guard(request)
        if denied is not None:
            return denied
        problems: dict[str, list[str]] = {}
        limit_text = request.arg("limit", str(DEFAULT_LIMIT)) or str(DEFAULT_LIMIT)
        limit = int(limit_text) if limit_text.isdigit() else 0
        if not 1 <= limit <= MAX_LIMIT:
            problems["limit"] = [f"must be an integer between 1 and {MAX_LIMIT}"]
        offset = 0
        token = request.arg("pageToken")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode() + b"=="))
                offset = int(state["o"])
            except (ValueError, KeyError, TypeError):
                problems["pageToken"] = ["invalid page token"]
        for name in ("channelId", "id", "sourceId"):
            value = request.arg(name)
            if value is not None and not _UUID.match(value):
                problems[name] = ["must be a valid uuid"]
        direction = request.arg("direction")
        if direction is not None and direction not in ("incoming", "outgoing"):
            problems["direction"] = ['must be one of "incoming", "outgoing"']
        status = request.arg("status")
        if status is not None and status not in STATUSES:
            problems["status"] = [f"must be one of {', '.join(STATUSES)}"]
        window: dict[str, datetime] = {}
        for name in ("startAt", "endAt"):
            value = request.arg(name)
            if value is not None:
                parsed = _parse(value)
                if parsed is None:
                    problems[name] = ["must be a RFC 3339 date-time"]
                else:
                    window[name] = parsed
        if problems:
            return self._invalid(problems)

        def keep(rec: dict[str, Any]) -> bool:
            if request.arg("channelId") and rec.get("channelId") != request.arg("channelId"):
                return False
            # `id` is documented as "the ID for the call"; a call recording's sourceId is its call.
            if request.arg("id") and rec.get("sourceId") != request.arg("id"):
                return False
            if request.arg("sourceId") and rec.get("sourceId") != request.arg("sourceId"):
                return False
            if direction and rec.get("direction") != direction:
                return False
            if status and rec.get("status") != status:
                return False
            for party in ("from", "to"):
                wanted = request.arg(party)
                key = "originator" if party == "from" else "receiver"
                if wanted and rec[key]["number"]["number"] != wanted:
                    return False
            started = _parse(rec["startedAt"])
            if "startAt" in window and (started is None or started < window["startAt"]):
                return False
            return not ("endAt" in window and (started is None or started >= window["endAt"]))

        matching = [rec for _, rec in self._sorted() if keep(rec)]
        page = matching[offset : offset + limit]
        # DOC: list returns [Recording], whose optional `url` is the presigned file URL.
        body: dict[str, Any] = {"results": [self._public(rec, with_url=True) for rec in page]}
        if offset + limit < len(matching):
            state = json.dumps({"o": offset + limit, "n": self._token_rng.randrange(10**6)})
            body["nextPageToken"] = base64.urlsafe_b64encode(state.encode()).decode().rstrip("=")
        return json_response(body)

    def _public(self, rec: dict[str, Any], *, with_url: bool) -> dict[str, Any]:
        out = dict(rec)
        if with_url and rec["status"] == "available":
            out["url"], _ = self.storage.presign(self._keys[rec["id"]], expires_in=self.url_ttl)
        return out

    def _lookup(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        denied = self._guard(request)
        if denied is not None:
            return None, denied
        rid = request.params["rid"]
        if not _UUID.match(rid):
            return None, self._invalid({"recordingId": ["must be a valid uuid"]})
        rec = self.recordings.get(rid)
        if rec is None:
            return None, json_response({"code": "NotFound", "message": "Recording not found"}, 404)
        return rec, None

    def _get(self, request: Request) -> Response:
        mp3 = bool(request.params.get("mp3"))
        with self._lock:
            if mp3:
                self.mp3_calls += 1
            else:
                self.metadata_calls += 1
        rec, problem = self._lookup(request)
        if problem is not None or rec is None:
            return problem or json_response({}, 500)
        if not mp3:
            return json_response(self._public(rec, with_url=True))
        if rec["status"] != "available":
            return json_response({"code": "NotFound", "message": "Recording media is not available"}, 404)
        if not self.redirect_mp3:
            data = self.storage.content(self._keys[rec["id"]])
            return Response(200, data, {"Content-Type": "audio/mpeg"})
        url, _ = self.storage.presign(self._keys[rec["id"]], expires_in=self.url_ttl)
        return Response(307, b"", {"Location": url})

    def _delete(self, request: Request) -> Response:
        rec, problem = self._lookup(request)
        if problem is not None or rec is None:
            return problem or json_response({}, 500)
        with self._lock:
            self.recordings.pop(rec["id"], None)
            self.deleted.append(rec["id"])
        if rec["status"] == "available":
            self.storage.delete(self._keys[rec["id"]])
        return Response(204, b"")


def create(storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None) -> BirdStandIn:
    return BirdStandIn(storage, port=port, seed=seed, recordings=recordings)
