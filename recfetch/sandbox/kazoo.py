"""A local Kazoo crossbar stand-in: token auth, monthly DBs, the 31-day window rule, media with Range.

Behaviour follows `2600hz/kazoo` (cb_recordings.erl, crossbar_view.erl, cb_context.erl,
api_util.erl) as summarised in providers/README.md §3. Where the sources are silent
the choice is marked INF (inference) beside the code.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from recfetch.sandbox.httpserver import PLANTED_SECRET, Fault, Request, Response, Server, json_response
from recfetch.sandbox.storage import UNSATISFIABLE, parse_range, without_range

GREGORIAN_OFFSET = 62_167_219_200
MAX_RANGE = 2_682_000
"""crossbar.maximum_range default: 31 days + 1 hour."""

ACCOUNT_ID = "4c2b7f0e9a1d4e6f8b3c5a7d9e1f2a3b"
API_KEY = "5a3f" * 16
"""64 characters, like a real Kazoo account API key (api_auth schema: min/maxLength 64)."""
USERNAME = "Sandbox.Admin"
PASSWORD = "sandbox-kazoo-password"
ACCOUNT_NAME = "recfetch-sandbox"
REALM = "sandbox.sip.example"
USERS = (
    "8d1e4a6b2c3f4d5e9a0b1c2d3e4f5a6b",
    "1f2e3d4c5b6a79880a9b8c7d6e5f4a3b",
    "a0b1c2d3e4f5061728394a5b6c7d8e9f",
)
VERSION = "4.3.142"

DEFAULT_COUNT = 24
HISTORY_DAYS = 110
"""The synthetic account is this old: older months have no MODB (503 datastore_missing)."""


def gregorian_now() -> int:
    return int(time.time()) + GREGORIAN_OFFSET


def month_of(gregorian: int) -> str:
    return datetime.fromtimestamp(gregorian - GREGORIAN_OFFSET, tz=UTC).strftime("%Y%m")


def modb_name(month: str) -> str:
    """`account%2F4c%2F2b%2F7f0e...-YYYYMM`, the way Kazoo names an account's monthly DB."""
    a = ACCOUNT_ID
    return f"account%2F{a[:2]}%2F{a[2:4]}%2F{a[4:]}-{month}"


def encode_key(created: int, doc_id: str) -> str:
    """Opaque URL-safe base64 like Kazoo's encoded Erlang term (here: JSON inside)."""
    raw = json.dumps([created, doc_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(b"g2" + raw).decode().rstrip("=")


def decode_key(text: str) -> tuple[int, str] | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        created, doc_id = json.loads(raw[2:])
        return int(created), str(doc_id)
    except (ValueError, TypeError):
        return None


@dataclass
class Doc:
    """One call_recording doc in a MODB; `attachment` is (name, content_type, size) or None."""

    public: dict[str, Any]
    created: int
    month: str
    attachment: tuple[str, str, int] | None
    media_seed: str
    deleted: bool = False
    user_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.public["id"])

    @property
    def key(self) -> tuple[int, str]:
        return (self.created, self.id)


class KazooStandIn:
    """The crossbar API for one account, with test hooks (auth_calls, expire_tokens, faults...)."""

    name = "kazoo"

    def __init__(
        self,
        storage: Any = None,
        *,
        port: int = 0,
        seed: int = 0,
        recordings: int | None = None,
        now: float | None = None,
    ) -> None:
        self.storage = storage  # unused: Kazoo streams media itself, never via a storage host
        self.server = Server("kazoo", port=port)
        self.seed = seed
        self.now = time.time() if now is None else now
        self.token_ttl = 3600.0
        self.max_range = MAX_RANGE
        self.page_cap: int | None = 5 if recordings is None else None
        """Serve at most this many rows per page, so the small default data set still pages."""
        self.oss_mode = False
        """True: behave like open-source Kazoo 4.x, where PATCH on a recording is 405."""
        self.ranges_served: list[tuple[str, int]] = []
        """(recording id, first byte) of every 206 media answer: media GETs honour Range as
        crossbar's api_resource.erl does; `ignore_range_next` is the fault of a proxy that does not."""
        self.auth_calls = 0
        self.media_calls = 0
        self.deleted: list[str] = []
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._docs: dict[str, Doc] = {}
        self._order: list[tuple[int, str]] = []  # ascending (created, id) for bisecting windows
        self.modbs: set[str] = set()
        self._rng = random.Random(f"kazoo:{seed}")
        self._build(DEFAULT_COUNT if recordings is None else recordings)
        self._routes()

    # ------------------------------------------------------------------
    # data
    def _build(self, count: int) -> None:
        now_g = int(self.now) + GREGORIAN_OFFSET
        first = now_g - HISTORY_DAYS * 86_400
        month = first
        while month <= now_g + 86_400:
            self.modbs.add(month_of(month))
            month += 20 * 86_400
        span = (HISTORY_DAYS - 2) * 86_400
        for index in range(count):
            age = int((index + self._rng.random()) * span / max(count, 1)) + 600
            self._add_generated(now_g - age, index)

    def _add_generated(self, end_g: int, index: int) -> None:
        rng = self._rng
        duration = rng.randint(8, 900)
        has_media = index % 6 != 4  # every sixth recording kept its metadata but lost its media
        fmt = "wav" if index % 7 == 3 else "mp3"
        self.add_recording(
            start=end_g - duration - GREGORIAN_OFFSET,
            duration=duration,
            attachment=has_media,
            owner_id=USERS[index % 4] if index % 4 < len(USERS) else None,
            direction="inbound" if rng.random() < 0.6 else "outbound",
            size=rng.randint(8 * 1024, 200 * 1024),
            fmt=fmt,
            named=index % 5 != 2,  # some docs carry no `name`: the file name comes from Content-Disposition
            external_url=("signed" if index % 8 == 1 else "plain" if index % 8 == 5 else None),
        )

    def add_recording(
        self,
        *,
        start: float,
        duration: int = 60,
        attachment: bool = True,
        owner_id: str | None = None,
        direction: str = "inbound",
        size: int = 16 * 1024,
        fmt: str = "mp3",
        named: bool = True,
        external_url: str | None = None,
        custom_channel_vars: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Add one recording that started at unix time ``start``; returns its id."""
        rng = self._rng
        start_g = int(start) + GREGORIAN_OFFSET
        created = start_g + int(duration)
        month = month_of(created)
        self.modbs.add(month)
        doc_id = f"{month}-{rng.getrandbits(128):032x}"
        call_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        content_type = "audio/wav" if fmt == "wav" else "audio/mpeg"
        media_name = f"{rng.getrandbits(128):032x}.{fmt}"
        ext_number = f"+1415555{rng.randint(0, 9999):04d}"
        ext_user = f"{rng.randint(1000, 1099)}"
        caller, callee = (ext_number, ext_user) if direction == "inbound" else (ext_user, ext_number)
        public: dict[str, Any] = {
            "id": doc_id,
            "call_id": call_id,
            "callee_id_name": f"Sandbox {callee}",
            "callee_id_number": callee,
            "caller_id_name": f"Caller {caller}",
            "caller_id_number": caller,
            "cdr_id": f"{month}-{call_id}",
            "content_type": content_type,
            "custom_channel_vars": custom_channel_vars
            if custom_channel_vars is not None
            # INF: channel vars are free-form; an integration may leave a credential in them.
            else {"queue": rng.choice(["sales", "support", "billing"]), "crm": {"api_key": PLANTED_SECRET}},
            "description": f"recording {media_name}",
            "direction": direction,
            "duration": int(duration),
            "duration_ms": int(duration) * 1000 + rng.randint(0, 999),
            "from": f"{caller}@{REALM}",
            "interaction_id": f"{start_g}-{rng.getrandbits(32):08x}",
            "media_source": "recorded",
            "media_type": fmt,
            "origin": "inbound from offnet" if direction == "inbound" else "outbound resource",
            "request": f"{callee}@{REALM}",
            "source_type": "media_recording",
            "start": start_g,
            "to": f"{callee}@{REALM}",
        }
        if named:
            public["name"] = media_name
        if owner_id:
            public["owner_id"] = owner_id
        if external_url == "signed":
            public["url"] = (
                f"https://recordings.storage.example/{ACCOUNT_ID}/{media_name}"
                f"?X-Amz-Signature={rng.getrandbits(160):040x}&X-Amz-Credential=AKIASANDBOX"
            )
        elif external_url == "plain":
            public["url"] = f"https://recordings.storage.example/{ACCOUNT_ID}/{media_name}"
        if extra:
            public.update(extra)
        doc = Doc(
            public=public,
            created=created,
            month=month,
            attachment=(media_name, content_type, int(size)) if attachment else None,
            media_seed=f"kazoo-media:{self.seed}:{doc_id}",
        )
        with self._lock:
            self._docs[doc_id] = doc
            bisect.insort(self._order, doc.key)
        return doc_id

    # -- test hooks ---------------------------------------------------------
    def profile(self) -> dict[str, str]:
        """The profile table: server root (recfetch adds /v2) and the API-key login."""
        return {"base_url": self.server.url, "account_id": ACCOUNT_ID, "api_key": API_KEY}

    def user_profile(self) -> dict[str, str]:
        """The same account through a username/password login (PUT /v2/user_auth)."""
        return {
            "base_url": self.server.url + "/v2",
            "account_id": ACCOUNT_ID,
            "username": USERNAME,
            "password": PASSWORD,
            "account_name": ACCOUNT_NAME,
        }

    def expire_tokens(self) -> None:
        """Every token issued so far is rejected from now on (401 invalid_credentials)."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def ids(self, *, downloadable: bool | None = None, include_deleted: bool = False) -> list[str]:
        """Recording ids, newest first."""
        with self._lock:
            docs = sorted(self._docs.values(), key=lambda d: d.key, reverse=True)
        return [
            d.id
            for d in docs
            if (include_deleted or not d.deleted)
            and (downloadable is None or (d.attachment is not None) == downloadable)
        ]

    def doc(self, doc_id: str) -> dict[str, Any]:
        """The public doc as the API returns it (with user_metadata once tagged)."""
        return self._public(self._docs[doc_id])

    def is_deleted(self, doc_id: str) -> bool:
        return self._docs[doc_id].deleted

    def media(self, doc_id: str) -> bytes:
        """The attachment's bytes: a real-looking header, then seeded noise."""
        doc = self._docs[doc_id]
        if doc.attachment is None:
            raise KeyError(doc_id)
        _, content_type, size = doc.attachment
        body = random.Random(doc.media_seed).randbytes(size)
        header = (
            b"RIFF" + (size - 8).to_bytes(4, "little") + b"WAVEfmt "
            if content_type == "audio/wav"
            else b"ID3\x04\x00\x00\x00\x00\x00\x00"
        )
        return header + body[len(header) :]

    def sha256(self, doc_id: str) -> str:
        return hashlib.sha256(self.media(doc_id)).hexdigest()

    def remove_modb(self, month: str) -> None:
        """Pretend the account's DB for ``month`` (YYYYMM) was never created."""
        self.modbs.discard(month)

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        path_contains: str = "/v2/",
        method: str | None = None,
        message: str | None = None,
        data: Any = None,
    ) -> Fault:
        """The next ``times`` matching requests get Kazoo's error envelope for ``status``."""
        atom = message or {
            400: "validation error",
            401: "invalid_credentials",
            403: "forbidden",
            404: "bad_identifier",
            405: "invalid_method",
            429: "too_many_requests",
            500: "internal_error",
            503: "datastore_missing",
        }.get(status, "error")
        default_data = {
            401: {"message": "invalid credentials"},
            403: {"message": "forbidden"},
            405: {"message": "method not allowed"},
            429: {"message": "too many requests"},
            503: {"cause": modb_name(month_of(gregorian_now()))},
        }.get(status, {"message": atom})
        body = data if data is not None else default_data

        def match(request: Request) -> bool:
            return path_contains in request.path and (method is None or request.method == method)

        return self.server.add_fault(Fault(match, lambda _r: self._error(status, atom, body), times=times))

    def expire_tokens_at_next_media(self) -> Fault:
        """The next media GET finds every token expired (a session that dies mid-run): 401."""

        def match(request: Request) -> bool:
            return request.method == "GET" and self._wants_media(request) and "/recordings/" in request.path

        def respond(_request: Request) -> Response:
            self.expire_tokens()
            return self._unauthorized()

        return self.server.add_fault(Fault(match, respond, times=1))

    def issued_tokens(self) -> list[str]:
        """Every auth token handed out so far (tests check none of them leaks)."""
        with self._lock:
            return list(self._tokens)

    def drop_next_media(self, after_bytes: int, times: int = 1) -> Fault:
        """The next media response closes the connection after ``after_bytes`` body bytes."""

        def match(request: Request) -> bool:
            return request.method == "GET" and self._wants_media(request) and "/recordings/" in request.path

        def respond(request: Request) -> Response:
            denied = self._check(request)
            if denied:
                return denied
            response = self._recording(request, request.path.rsplit("/", 1)[-1])
            response.drop_after = after_bytes
            return response

        return self.server.add_fault(Fault(match, respond, times=times))

    def ignore_range_next(self, times: int | None = 1) -> Fault:
        """The next media GET(s) answer 200 with the whole attachment even when a Range was asked."""

        def match(request: Request) -> bool:
            return request.method == "GET" and self._wants_media(request) and "/recordings/" in request.path

        def respond(request: Request) -> Response:
            denied = self._check(request)
            if denied:
                return denied
            return self._recording(without_range(request), request.path.rsplit("/", 1)[-1])

        return self.server.add_fault(Fault(match, respond, times=times))

    def listing_windows(self) -> list[tuple[int, int]]:
        """(created_from, created_to) of every listing request, in the order they arrived."""
        out = []
        for r in self.server.requests("/recordings", method="GET"):
            if r.path.endswith("/recordings") and "created_from" in r.query and "created_to" in r.query:
                out.append((int(r.query["created_from"][0]), int(r.query["created_to"][0])))
        return out

    # ------------------------------------------------------------------
    # HTTP
    def _envelope(self, data: Any, *, status: int = 200, token: str | None = None, **extra: Any) -> Response:
        body: dict[str, Any] = {
            "data": data,
            "revision": "1-" + hashlib.md5(json.dumps(data, sort_keys=True).encode()).hexdigest(),
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": VERSION,
            "node": "sandbox-kazoo",
            "request_id": uuid.uuid4().hex,
            "status": "success",
            "tokens": {"consumed": 1, "remaining": 99},
            **extra,
        }
        if token is not None:
            body["auth_token"] = token
        return json_response(body, status, {"X-Request-ID": body["request_id"]})

    def _error(self, status: int, atom: str, data: Any) -> Response:
        body = {
            "data": data,
            "error": str(status),
            "message": atom,
            "status": "error",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": VERSION,
            "node": "sandbox-kazoo",
            "request_id": uuid.uuid4().hex,
            "auth_token": "",
        }
        return json_response(body, status)

    def _unauthorized(self) -> Response:
        return self._error(401, "invalid_credentials", {"message": "invalid credentials"})

    def _bad_identifier(self, ref: str) -> Response:
        return self._error(404, "bad_identifier", {"cause": ref, "message": "bad identifier"})

    def _token_of(self, request: Request) -> str | None:
        token = request.header("x-auth-token") or request.arg("auth_token")
        bearer = request.header("authorization") or ""
        if not token and bearer.lower().startswith("bearer "):
            token = bearer[7:].strip()
        return token

    def _check(self, request: Request) -> Response | None:
        """401 unless the request carries a live token; 403 for another account."""
        token = self._token_of(request)
        with self._lock:
            expiry = self._tokens.get(token or "")
        if expiry is None or expiry <= time.time():
            return self._unauthorized()
        parts = request.path.split("/")  # /v2/accounts/{ACCOUNT_ID}/...
        if len(parts) < 4 or parts[3] != ACCOUNT_ID:
            return self._error(403, "forbidden", {"message": "forbidden"})
        return None

    def _issue(self) -> Response:
        token = secrets.token_hex(32)
        with self._lock:
            self._tokens[token] = time.time() + self.token_ttl
        data = {
            "account_id": ACCOUNT_ID,
            "owner_id": USERS[0],
            "reseller_id": "b" * 32,
            "is_reseller": False,
            "account_name": ACCOUNT_NAME,
            "language": "en-us",
            "apps": [],
        }
        return self._envelope(data, status=201, token=token)

    def _routes(self) -> None:
        srv = self.server
        acct = r"/v2/accounts/(?P<account>[^/]+)"

        @srv.route("PUT", r"/v2/api_auth")
        def api_auth(request: Request) -> Response:
            with self._lock:
                self.auth_calls += 1
            data = (request.json() or {}).get("data") if isinstance(request.json(), dict) else None
            key = data.get("api_key") if isinstance(data, dict) else None
            if not isinstance(key, str) or len(key) != 64:
                return self._error(
                    400,
                    "validation error",
                    {"api_key": {"required": {"message": "Field is required but missing"}}},
                )
            if key != API_KEY:
                return self._unauthorized()
            return self._issue()

        @srv.route("PUT", r"/v2/user_auth")
        def user_auth(request: Request) -> Response:
            with self._lock:
                self.auth_calls += 1
            body = request.json()
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict) or not data.get("credentials"):
                return self._error(
                    400,
                    "validation error",
                    {"credentials": {"required": {"message": "Field is required but missing"}}},
                )
            expected = hashlib.md5(f"{USERNAME.lower()}:{PASSWORD}".encode()).hexdigest()
            method = data.get("method", "md5")
            if (
                method != "md5"
                or data.get("credentials") != expected
                or str(data.get("account_name", "")).lower() != ACCOUNT_NAME
            ):
                return self._unauthorized()
            return self._issue()

        @srv.route("GET", acct + r"/recordings")
        def account_listing(request: Request) -> Response:
            return self._check(request) or self._listing(request, owner=None)

        @srv.route("GET", acct + r"/users/(?P<user>[^/]+)/recordings")
        def user_listing(request: Request) -> Response:
            denied = self._check(request)
            if denied:
                return denied
            user = request.params["user"]
            if user not in USERS:  # INF: unknown user -> bad_identifier like any unknown id
                return self._bad_identifier(user)
            return self._listing(request, owner=user)

        @srv.route("GET", acct + r"/recordings/(?P<rid>[^/]+)")
        def get_recording(request: Request) -> Response:
            return self._check(request) or self._recording(request, request.params["rid"])

        @srv.route("PATCH", acct + r"/recordings/(?P<rid>[^/]+)")
        def patch_recording(request: Request) -> Response:
            return self._check(request) or self._patch(request, request.params["rid"])

        @srv.route("DELETE", acct + r"/recordings/(?P<rid>[^/]+)")
        def delete_recording(request: Request) -> Response:
            return self._check(request) or self._delete(request.params["rid"])

    # -- listing --------------------------------------------------------------
    def _listing(self, request: Request, *, owner: str | None) -> Response:
        now_g = gregorian_now()
        try:
            created_to = int(request.arg("created_to") or now_g)
            created_from = int(request.arg("created_from") or created_to - self.max_range)
        except ValueError:
            return self._error(
                400, "validation error", {"created_from": {"type": {"message": "must be an integer"}}}
            )
        if created_to < created_from:
            msg = f"created_to {created_to} is prior to created_from {created_from}"
            return self._error(
                400,
                "validation error",
                {"created_from": {"date_range": {"message": msg, "cause": created_from}}},
            )
        if created_to - created_from > self.max_range:
            msg = (
                f"created_to {created_to} is more than {self.max_range} seconds "
                f"from created_from {created_from}"
            )
            return self._error(
                400,
                "validation error",
                {"created_from": {"date_range": {"message": msg, "cause": created_to}}},
            )
        page_text = request.arg("page_size")
        page_size = 50
        if page_text is not None:
            try:
                page_size = int(page_text)
            except ValueError:
                return self._error(404, "faulty_request", {"message": "invalid page size"})
            if page_size < 1:
                return self._error(404, "faulty_request", {"message": "page size must be at least 1"})
        if self.page_cap:
            page_size = min(page_size, self.page_cap)
        months = self._months(created_from, created_to)
        existing = [m for m in months if m in self.modbs]
        if not existing:
            return self._error(503, "datastore_missing", {"cause": modb_name(months[-1])})
        start_key = request.arg("start_key")
        position: tuple[int, str] | None = None
        if start_key is not None:
            position = decode_key(start_key)
            if position is None:
                return self._error(
                    400, "validation error", {"start_key": {"type": {"message": "invalid start_key"}}}
                )
        with self._lock:
            low = bisect.bisect_left(self._order, (created_from, ""))
            high = bisect.bisect_right(self._order, (created_to, "~"))
            keys = self._order[low:high]
            if position is not None:
                keys = [k for k in keys if k <= position]
            keys.reverse()  # Kazoo lists newest first by default
            rows: list[Doc] = []
            next_key: tuple[int, str] | None = None
            for key in keys:
                doc = self._docs[key[1]]
                if doc.deleted or doc.month not in self.modbs:
                    continue
                if owner is not None and doc.public.get("owner_id") != owner:
                    continue
                if len(rows) == page_size:
                    next_key = key
                    break
                rows.append(doc)
        # Filters run after the view query, so a page may hold fewer items than it read (crossbar_view).
        filters = {k: v[0] for k, v in request.query.items() if k.startswith(("filter_", "has_key"))}
        items = [self._listed(d) for d in rows if self._matches(d, filters)]
        extra: dict[str, Any] = {"page_size": len(items)}
        if rows:
            extra["start_key"] = encode_key(*rows[0].key)
        if next_key is not None:
            extra["next_start_key"] = encode_key(*next_key)
        return self._envelope(items, token=self._token_of(request), **extra)

    @staticmethod
    def _months(created_from: int, created_to: int) -> list[str]:
        months: list[str] = []
        cursor = created_from
        while True:
            month = month_of(cursor)
            if month not in months:
                months.append(month)
            if cursor >= created_to:
                break
            cursor = min(created_to, cursor + 86_400)
        return months

    @staticmethod
    def _lookup(doc: dict[str, Any], dotted: str) -> Any:
        node: Any = doc
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def _matches(self, doc: Doc, filters: dict[str, str]) -> bool:
        public = self._public(doc)
        for key, expected in filters.items():
            if key == "has_key":
                if self._lookup(public, expected) is None:
                    return False
                continue
            negate = key.startswith("filter_not_")
            path = key[len("filter_not_") :] if negate else key[len("filter_") :]
            value = self._lookup(public, path)
            shown = json.dumps(value) if isinstance(value, bool) else (None if value is None else str(value))
            if (shown == expected) == negate:
                return False
        return True

    def _public(self, doc: Doc) -> dict[str, Any]:
        public = dict(doc.public)
        if doc.user_metadata:
            public["user_metadata"] = json.loads(json.dumps(doc.user_metadata))
        return public

    def _listed(self, doc: Doc) -> dict[str, Any]:
        public = self._public(doc)
        types = [doc.attachment[1]] if doc.attachment else []
        public["_read_only"] = {"content_types": types}
        return public

    # -- one recording -------------------------------------------------------
    def _find(self, ref: str) -> Doc | Response:
        if len(ref) < 8 or not ref[:6].isdigit() or ref[6] != "-":  # no YYYYMM- prefix
            return self._error(404, "bad identifier", [ref])
        if ref[:6] not in self.modbs:
            return self._error(503, "datastore_missing", {"cause": modb_name(ref[:6])})
        with self._lock:
            doc = self._docs.get(ref)
        if doc is None or doc.deleted:
            return self._bad_identifier(ref)
        return doc

    @staticmethod
    def _wants_media(request: Request) -> bool:
        """cb_recordings action_lookup: tunneled ?accept= wins, then Accept by q-value."""
        value = request.arg("accept") or request.header("accept") or "application/json"
        ranked: list[tuple[float, int, str]] = []
        for index, part in enumerate(value.split(",")):
            pieces = [p.strip() for p in part.split(";")]
            quality = 1.0
            for param in pieces[1:]:
                if param.startswith("q="):
                    try:
                        quality = float(param[2:])
                    except ValueError:
                        quality = 0.0
            ranked.append((-quality, index, pieces[0].lower()))
        for _q, _i, media in sorted(ranked):
            if media in ("application/json", "application/x-json", "*/*"):
                return False
            if media in ("audio/mpeg", "audio/mp3"):
                return True
        return False

    def _recording(self, request: Request, ref: str) -> Response:
        found = self._find(ref)
        if isinstance(found, Response):
            return found
        token = self._token_of(request)
        if not self._wants_media(request):
            return self._envelope(self._public(found), token=token)
        with self._lock:
            self.media_calls += 1
        if found.attachment is None:
            return self._error(404, "bad_identifier", {"details": ref, "message": "bad identifier"})
        name, content_type, _size = found.attachment
        inline = (request.arg("inline") or "").lower() == "true"
        data = self.media(ref)
        headers = {
            "Content-Type": content_type,
            "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename={name}",
        }
        asked = request.header("range")
        if asked is None:
            return Response(200, data, headers)
        window = parse_range(asked, len(data))
        if window == UNSATISFIABLE:
            return Response(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        if not isinstance(window, tuple):
            return Response(200, data, headers)  # a Range it cannot serve: the whole attachment
        start, end = window
        with self._lock:
            self.ranges_served.append((ref, start))
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(206, data[start : end + 1], headers)

    def _patch(self, request: Request, ref: str) -> Response:
        if self.oss_mode:
            return self._error(405, "invalid_method", {"message": "method not allowed"})
        found = self._find(ref)
        if isinstance(found, Response):
            return found
        body = request.json()
        data = body.get("data") if isinstance(body, dict) else None
        metadata = data.get("user_metadata") if isinstance(data, dict) else None
        if not isinstance(metadata, dict):
            return self._error(
                400,
                "validation error",
                {"user_metadata": {"type": {"message": "Value is not of type object"}}},
            )
        with self._lock:
            _merge(found.user_metadata, metadata)
        return self._envelope(self._public(found), token=self._token_of(request))

    def _delete(self, ref: str) -> Response:
        found = self._find(ref)
        if isinstance(found, Response):
            return found
        with self._lock:
            found.deleted = True
            self.deleted.append(ref)
        data = self._public(found)
        data["_read_only"] = {"deleted": True}
        return self._envelope(data)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Deep merge, like kz_json:merge on a PATCH."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def create(storage: Any, *, port: int = 0, seed: int = 0, recordings: int | None = None) -> KazooStandIn:
    """The sandbox entry point (see recfetch/sandbox/__init__.py)."""
    return KazooStandIn(storage, port=port, seed=seed, recordings=recordings)
