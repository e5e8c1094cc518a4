"""Stand-in of Kismet's external API (users → calls → egresses) with audited presigned-URL minting."""

from __future__ import annotations

import math
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from recfetch.sandbox.httpserver import (
    PLANTED_SECRET,
    Fault,
    Handler,
    Request,
    Response,
    Server,
    json_response,
)
from recfetch.sandbox.storage import Storage

CLIENT_ID = "kismet-sandbox-client-id"
CLIENT_SECRET = "kismet-sandbox-secret-4f9c2a7e"
API = "/api/external/organization_users"
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100  # undocumented upper bound (INF); the effective value is echoed in pagination
URL_TTL = 900  # seconds; Kismet's presigned URLs last 15 minutes
HISTORY = timedelta(days=30)
"""Calls are spread over the 30 days before today (UTC), so `--since 7d` rehearsals find some."""

FIRST_NAMES = ("ada", "ben", "chloe", "dev", "elena", "farid", "grace", "hiro", "ines", "jon", "kemi", "liam")
EGRESS_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz"
ERROR_TEXT = "Start signal not received"


def _ts(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


class KismetStandIn:
    """Synthetic organization, deterministic per seed; test hooks are plain methods and attributes.

    Shapes follow docs.kismethealth.com; error bodies are undocumented, so they are small
    JSON objects (INF). ``audit_counts`` counts egress-show requests per ref: each one is
    an audited URL fetch at Kismet, so recfetch must make them only to download.
    """

    name = "kismet"

    def __init__(
        self, storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None
    ) -> None:
        self.storage = storage
        self.server = Server("kismet", port=port)
        self.rng = random.Random(f"kismet:{seed}")
        self.max_per_page = MAX_PER_PAGE
        self.audit_counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.users: dict[int, dict[str, Any]] = {}
        self.calls: dict[int, dict[int, dict[str, Any]]] = {}  # uid -> cid -> call
        self.egresses: dict[int, dict[int, dict[str, Any]]] = {}  # cid -> eid -> egress
        self.consent: dict[int, bool] = {}  # cid -> every participant consented
        self.keys: dict[int, str] = {}  # eid -> storage key
        self._next_call = 500
        self._next_egress = 9000
        count = 20 if recordings is None else max(0, recordings)
        now = datetime.now(UTC)
        self.today = datetime(now.year, now.month, now.day, tzinfo=UTC)
        self._last = self.today - timedelta(hours=2)  # so even the last egress ended before today
        self._clock = self._last - HISTORY
        # Gaps average 0.75 step, so the calls (one per recording at most, plus four) fill HISTORY.
        self._step = HISTORY / (count + 4) / 0.75
        self._populate(count)
        self._routes()

    # -- synthetic data ------------------------------------------------------
    def _populate(self, count: int) -> None:
        rng = self.rng
        n_users = max(3, math.ceil(count / 5))
        for index in range(n_users + 1):  # the extra, last user has no calls
            self.add_user(f"{FIRST_NAMES[index % len(FIRST_NAMES)]}{index // len(FIRST_NAMES) or ''}")
        callers = list(self.users)[:-1]
        made = 0
        k = 0
        while made < count:
            uid = callers[k % len(callers)]
            n = min(rng.choice((1, 1, 1, 2)), count - made)
            call = self._add_call(uid, ended=True, has_egresses=True)
            for _ in range(n):
                made += 1
                if made == 3:
                    self._add_egress(call, status="egress_starting")
                elif made == 6:
                    self._add_egress(call, status="egress_ended", error=ERROR_TEXT)
                else:
                    self._add_egress(call)
            k += 1
            # A few calls that must not (or cannot) produce recordings, at fixed places.
            if k == 1:
                self._add_call(uid, ended=False, has_egresses=False)  # still active
            elif k == 2:
                self._add_call(uid, ended=True, has_egresses=True, consent=False)  # empty egress array
            elif k == 3:
                self._add_call(uid, ended=True, has_egresses=False)  # nobody pressed record
            elif k == 4:
                self._add_call(uid, ended=False, has_egresses=True)  # live and being recorded

    def add_user(self, handle: str, *, email: str | None = None) -> int:
        with self._lock:
            uid = 101 + len(self.users)
            created = self.today - HISTORY - timedelta(days=90 - len(self.users) % 60)
            self.users[uid] = {
                "id": uid,
                "email": email or f"{handle}@clinic.example",
                "display_name": handle.capitalize(),
                "is_admin": uid == 101,
                "waiting_room_url": f"https://app.kismethealth.example/waiting/{handle}",
                "created_at": _ts(created),
                "updated_at": _ts(created + timedelta(days=1)),
            }
            self.calls[uid] = {}
        return uid

    def _add_call(
        self,
        uid: int,
        *,
        ended: bool,
        has_egresses: bool,
        consent: bool = True,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            self._next_call += 1
            cid = self._next_call
            if created_at is None:
                self._clock = min(self._last, self._clock + self._step * self.rng.uniform(0.5, 1.0))
                created_at = self._clock.replace(microsecond=0)
            call = {
                "id": cid,
                "name": f"Consultation {cid}",
                "livekit_session_id": f"lk-session-{cid:x}{self.rng.randrange(16**6):06x}",
                "state": "ended" if ended else "active",
                "has_egresses": has_egresses,
                "is_recording": not ended and has_egresses,
                "is_canvas_locked": False,
                "is_ended": ended,
                "created_at": _ts(created_at),
                "updated_at": _ts(created_at + timedelta(hours=2)),
                "participants": [
                    {"id": cid * 10 + 1, "participant_type": "Host", "name": self.users[uid]["display_name"]},
                    {"id": cid * 10 + 2, "participant_type": "Recipient", "name": f"Patient {cid}"},
                ],
            }
            self.calls[uid][cid] = call
            self.egresses[cid] = {}
            self.consent[cid] = consent
        return call

    def _add_egress(
        self,
        call: dict[str, Any],
        *,
        status: str = "egress_ended",
        error: str | None = None,
        size: int | None = None,
        content: bytes | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        rng = self.rng
        with self._lock:
            self._next_egress += 1
            eid = self._next_egress
            call_start = datetime.fromisoformat(call["created_at"].replace("Z", "+00:00"))
            started = created_at or call_start + timedelta(minutes=rng.randint(1, 5))
            done = status == "egress_ended"
            ended = started + timedelta(seconds=rng.randint(60, 3600)) if done else None
            egress = {
                "id": eid,
                "egress_id": "EG_" + "".join(rng.choice(EGRESS_ALPHABET) for _ in range(12)),
                "status": status,
                "error": error,
                "is_stopped": done,
                "ended_at": _ts(ended),
                "created_at": _ts(started),
                "updated_at": _ts(ended or started),
                # INF: where the egress was uploaded, with the upload credentials nested inside.
                "destination": {"type": "s3", "credentials": {"api_key": PLANTED_SECRET}},
            }
            self.egresses[call["id"]][eid] = egress
            seed = f"kismet:{eid}:{rng.randrange(2**32)}"
            nbytes = size if size is not None else rng.randint(8_000, 200_000)
        if done and not error:
            key = f"kismet/session-{call['id']}-recording-{eid}.mp4"
            if content is not None:
                self.storage.put_bytes(key, content, media_type="video/mp4")
            else:
                self.storage.put(key, size=nbytes, seed=seed, media_type="video/mp4")
            self.keys[eid] = key
        return egress

    # -- test hooks -------------------------------------------------------------
    def profile(self) -> dict[str, str]:
        return {"base_url": self.server.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}

    def refs(self, *, ready_only: bool = False) -> list[str]:
        """Every listed recording's ref (users → ended, consented calls → egresses), in listing order."""
        out = []
        for uid, calls in self.users_calls():
            for cid, call in calls:
                if not call["is_ended"] or not self.consent[cid]:
                    continue
                for eid, egress in self.egresses[cid].items():
                    if not ready_only or (egress["status"] == "egress_ended" and not egress["error"]):
                        out.append(f"{uid}/{cid}/{eid}")
        return out

    def users_calls(self) -> list[tuple[int, list[tuple[int, dict[str, Any]]]]]:
        with self._lock:
            return [(uid, list(self.calls[uid].items())) for uid in self.users]

    def storage_key(self, ref: str) -> str:
        return self.keys[int(ref.split("/")[2])]

    def add_recording(
        self,
        user_id: int | None = None,
        *,
        status: str = "egress_ended",
        error: str | None = None,
        size: int | None = None,
        content: bytes | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Add an ended call with one egress (media stored when it is ready); returns its ref."""
        uid = user_id if user_id is not None else next(iter(self.users))
        if created_at is None:  # a call that ended a few minutes ago
            created_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        call = self._add_call(uid, ended=True, has_egresses=True, created_at=created_at)
        egress = self._add_egress(
            call, status=status, error=error, size=size, content=content, created_at=created_at
        )
        return f"{uid}/{call['id']}/{egress['id']}"

    def rate_limit_next(self, n: int = 1, retry_after: float | None = 1) -> Fault:
        """The next ``n`` API requests get 429 (Retry-After when given)."""
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return self.server.add_fault(
            Fault(lambda r: True, json_response({"error": "Too Many Requests"}, 429, headers), times=n)
        )

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        retry_after: float | None = None,
        path_contains: str = "",
    ) -> Fault:
        """The next ``times`` API requests (whose path contains ``path_contains``) get ``status``."""
        headers = {"Content-Type": content_type}
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        payload = body if body is not None else b'{"error": "Internal Server Error"}'
        return self.server.add_fault(
            Fault(lambda r: path_contains in r.path, Response(status, payload, headers), times=times)
        )

    def html_next(self, times: int = 1) -> Fault:
        """A proxy's login page with status 200 instead of JSON (garbage the client must reject)."""
        page = b"<!doctype html><html><body><h1>Sign in</h1></body></html>"
        return self.fail_next(200, times, body=page, content_type="text/html; charset=utf-8")

    def requests(self, path_contains: str = "") -> list[Any]:
        return self.server.requests(path_contains)

    @property
    def audited_total(self) -> int:
        with self._lock:
            return sum(self.audit_counts.values())

    # -- HTTP ---------------------------------------------------------------------
    def _routes(self) -> None:
        s = self.server
        seg = r"(?P<{}>[^/]+)"
        users = API
        user = users + "/" + seg.format("uid")
        calls = user + "/calls"
        call = calls + "/" + seg.format("cid")
        egresses = call + "/egresses"
        egress = egresses + "/" + seg.format("eid")
        s.route("GET", users)(self._guard(self._list_users))
        s.route("GET", user)(self._guard(self._show_user))
        s.route("GET", calls)(self._guard(self._list_calls))
        s.route("GET", call)(self._guard(self._show_call))
        s.route("GET", egresses)(self._guard(self._list_egresses))
        s.route("GET", egress)(self._guard(self._show_egress))

    def _guard(self, handler: Handler) -> Handler:
        def wrapped(request: Request) -> Response:
            if (
                request.header("X-Client-ID") != CLIENT_ID
                or request.header("X-Client-Secret") != CLIENT_SECRET
            ):
                return json_response({"error": "Unauthorized"}, 401)
            return handler(request)

        return wrapped

    def _page(self, request: Request, key: str, items: list[dict[str, Any]]) -> Response:
        page = _positive(request.arg("page")) or 1
        per_page = min(_positive(request.arg("per_page")) or DEFAULT_PER_PAGE, self.max_per_page)
        total = len(items)
        chunk = items[(page - 1) * per_page : page * per_page]
        return json_response(
            {
                key: chunk,
                "pagination": {
                    "current_page": page,
                    "per_page": per_page,
                    "total_pages": max(1, math.ceil(total / per_page)),
                    "total_count": total,
                },
            }
        )

    def _find(self, request: Request) -> tuple[dict[str, Any] | None, ...]:
        """(user, call, egress) named by the path; None where absent or not related."""
        with self._lock:
            uid = _positive(request.params.get("uid"))
            user = self.users.get(uid) if uid else None
            cid = _positive(request.params.get("cid"))
            call = self.calls[uid].get(cid) if uid and user and cid else None
            eid = _positive(request.params.get("eid"))
            egress = self.egresses[cid].get(eid) if cid and call and eid else None
        return user, call, egress

    def _list_users(self, request: Request) -> Response:
        email = (request.arg("email") or "").strip().lower()
        with self._lock:
            items = [u for u in self.users.values() if email in u["email"].lower()]
        return self._page(request, "organization_users", items)

    def _show_user(self, request: Request) -> Response:
        user, _, _ = self._find(request)
        if user is None:
            return _not_found()
        slug = user["waiting_room_url"].rsplit("/", 1)[-1]
        return json_response(
            {**user, "waiting_room": {"slug": slug, "name": f"{user['display_name']}'s room"}}
        )

    def _list_calls(self, request: Request) -> Response:
        user, _, _ = self._find(request)
        if user is None:
            return _not_found()
        with self._lock:
            items = list(self.calls[user["id"]].values())
        return self._page(request, "calls", items)

    def _show_call(self, request: Request) -> Response:
        _, call, _ = self._find(request)
        return json_response(call) if call else _not_found()

    def _list_egresses(self, request: Request) -> Response:
        _, call, _ = self._find(request)
        if call is None:
            return _not_found()
        with self._lock:
            visible = call["is_ended"] and self.consent[call["id"]]
            items = list(self.egresses[call["id"]].values()) if visible else []
        return json_response({"egresses": items})

    def _show_egress(self, request: Request) -> Response:
        user, call, egress = self._find(request)
        if egress is None or user is None or call is None or not self.consent[call["id"]]:
            return _not_found()
        ref = f"{user['id']}/{call['id']}/{egress['id']}"
        with self._lock:
            self.audit_counts[ref] = self.audit_counts.get(ref, 0) + 1
        key = self.keys.get(egress["id"])
        url = self.storage.presign(key, expires_in=URL_TTL)[0] if key else None
        return json_response({**egress, "url": url})


def _positive(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    number = int(value)
    return number if number > 0 else None


def _not_found() -> Response:
    return json_response({"error": "Not Found"}, 404)


def create(storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None) -> KismetStandIn:
    """The Kismet stand-in, its media stored in ``storage`` (not started: `Sandbox.start` does that)."""
    return KismetStandIn(storage, port=port, seed=seed, recordings=recordings)
