"""Stand-in of Cloudflare RealtimeKit's recordings API: listing, presigned downloads and recording control."""

from __future__ import annotations

import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from recfetch.sandbox.httpserver import PLANTED_SECRET, Fault, Request, Response, Server, json_response
from recfetch.sandbox.realtimekit_bodies import public_storage, start_problem, track_problem
from recfetch.sandbox.storage import Storage

ACCOUNT_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"
APP_ID = "2a95132c15732412d22c1476fa83f27a"  # the spec's example app_id
API_TOKEN = "rtkSandboxToken_0123456789_abcdefghijklm"  # 40 characters, like a Cloudflare API token
PREFIX = r"/client/v4/accounts/(?P<acct>[^/]+)/realtime/kit/(?P<app>[^/]+)/recordings"

STATUSES = ("INVOKED", "RECORDING", "UPLOADING", "UPLOADED", "ERRORED", "PAUSED")
ACTIVE = ("INVOKED", "RECORDING", "PAUSED")
RETENTION = timedelta(days=7)  # DOC: RealtimeKit keeps recordings for 7 days
DEFAULT_PER_PAGE = 20  # undocumented (INF)
MAX_PER_PAGE = 10  # undocumented (INF); small so the default sandbox spans several pages
LIST_PARAMS = {
    "meeting_id",
    "page_no",
    "per_page",
    "expired",
    "search",
    "sort_by",
    "sort_order",
    "start_time",
    "end_time",
    "status",
}
TITLES = ("Weekly triage", "Patient intake", "Cardiology consult", "Team standup", "Board review: Q3/Q4")
AUDIO_MEDIA = {"AAC": ("audio/mp4", ".m4a"), "MP3": ("audio/mpeg", ".mp3")}
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9_-]{40})$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _ts(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z") if value else None


def _uuid(text: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(text)))
    except ValueError:
        return None


def _parse_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _error(status: int, message: str) -> Response:
    """RealtimeKit's own envelope (`realtimekit_GenericErrorResponse`)."""
    return json_response({"success": False, "error": {"code": status, "message": message}}, status)


def _gateway(status: int, code: int, message: str, chain: list[dict[str, Any]] | None = None) -> Response:
    """The Cloudflare API front door's v4 envelope, sent before RealtimeKit sees the request."""
    error: dict[str, Any] = {"code": code, "message": message}
    if chain:
        error["error_chain"] = chain
    return json_response({"success": False, "errors": [error], "messages": [], "result": None}, status)


class RealtimeKitStandIn:
    """Synthetic meetings and recordings in every status, deterministic per seed.

    Download URLs are presigned by the storage host on every GET and live for
    ``url_ttl`` seconds (7 days by default, capped by the 7-day retention).
    Test hooks: ``add_recording``, ``rate_limit_next``, ``fail_next``; counters
    ``gets`` (GET-one per id, i.e. mints) and ``presigned``.
    """

    name = "realtimekit"

    def __init__(
        self, storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None
    ) -> None:
        self.storage = storage
        self.server = Server("realtimekit", port=port)
        self.rng = random.Random(f"realtimekit:{seed}")
        self.url_ttl: float = RETENTION.total_seconds()
        self.max_per_page = MAX_PER_PAGE
        self.gets: dict[str, int] = {}
        self.presigned = 0
        # DOC: Cloudflare's API budget, 1,200 requests per 5 minutes, then 429 for the rest of the
        # window; every response says what is left: `Ratelimit: "default";r=REMAINING;t=RESET`.
        self.rate_quota = 1200
        self.rate_window = 300.0
        self.rate_limited = 0
        """How many requests this stand-in refused with 429 for exceeding the budget."""
        self._rate_start: float | None = None
        self._rate_used = 0
        self.start_bodies: list[dict[str, Any]] = []
        """Every accepted start and track-recording body, as received (tests check what was sent)."""
        self._lock = threading.RLock()
        self.now = datetime.now(UTC).replace(second=0, microsecond=0)
        self.meetings: dict[str, dict[str, Any]] = {}
        self.recordings: dict[str, dict[str, Any]] = {}
        for index, title in enumerate(TITLES):
            self._add_meeting(title, created=self.now - timedelta(days=30 - index))
        self._order: list[dict[str, Any]] | None = None
        self._populate(24 if recordings is None else max(0, recordings))
        if recordings is not None and recordings > 100:
            self.max_per_page = 100  # benchmarks: keep a 10,000-recording listing to 100 requests
        self._routes()

    # -- synthetic data ---------------------------------------------------------
    def _add_meeting(self, title: str, *, created: datetime) -> str:
        mid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.meetings[mid] = {
            "id": mid,
            "created_at": _ts(created),
            "updated_at": _ts(created + timedelta(hours=1)),
            "title": title,
            "status": "ACTIVE",
            # INF: a meeting's recording config may carry the customer's storage credentials.
            "recording_config": {
                "storage_config": {
                    "type": "aws",
                    "bucket": "acme-recordings",
                    "password": PLANTED_SECRET,
                    "private_key": PLANTED_SECRET,
                    "secret": PLANTED_SECRET,
                    "access_key": PLANTED_SECRET,
                }
            },
            "record_on_start": False,
            "live_stream_on_start": False,
            "persist_chat": False,
            "summarize_on_end": False,
            "transcribe_on_end": False,
            "session_keep_alive_time_in_secs": 60,
        }
        return mid

    def _populate(self, count: int) -> None:
        rng = self.rng
        meetings = list(self.meetings)
        actives = {count - 1: "RECORDING", count - 2: "PAUSED", count - 3: "INVOKED"} if count >= 8 else {}
        done = count - len(actives)
        span = timedelta(days=6)
        for index in range(count):
            if index in actives:
                # One active recording in each of three meetings, started minutes ago.
                self.add_recording(
                    meeting_id=meetings[count - 1 - index],
                    status=actives[index],
                    invoked_time=self.now - timedelta(minutes=5 + 10 * (count - index)),
                )
                continue
            slot = index % 12
            invoked = self.now - span - timedelta(hours=2) + span * index / max(1, done)
            kind: dict[str, Any] = {"status": "UPLOADED"}
            if slot == 3:
                kind = {"status": "ERRORED"}
            elif slot == 5:
                kind["bucket"] = False  # went to the customer's own storage only
            elif slot == 7:
                invoked = self.now - timedelta(days=rng.randint(9, 20), hours=rng.randint(0, 23))
            elif slot == 9:
                kind = {"status": "UPLOADING"}
            elif slot in (0, 4, 8):
                kind["audio"] = "AAC" if slot != 8 else "MP3"
            self.add_recording(
                meeting_id=meetings[rng.randrange(len(meetings))], invoked_time=invoked, **kind
            )

    def add_recording(
        self,
        *,
        meeting_id: str | None = None,
        status: str = "UPLOADED",
        invoked_time: datetime | None = None,
        size: int | None = None,
        content: bytes | None = None,
        audio: str | None = None,
        audio_content: bytes | None = None,
        bucket: bool = True,
        output_file_name: str | None = None,
        duration: int | None = None,
    ) -> str:
        """Add one recording (and its media when UPLOADED on RealtimeKit's bucket); returns its id."""
        rng = self.rng
        with self._lock:
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            mid = meeting_id or next(iter(self.meetings))
            invoked = invoked_time or self.now - timedelta(hours=1)
            started = None if status == "INVOKED" else invoked + timedelta(seconds=rng.randint(2, 8))
            seconds = duration if duration is not None else rng.randint(60, 3600)
            finished = status in ("UPLOADING", "UPLOADED", "ERRORED")
            stopped = started + timedelta(seconds=seconds) if finished and started else None
            title = self.meetings.get(mid, {}).get("title", "meeting")
            rec: dict[str, Any] = {
                "id": rid,
                "meeting_id": mid,
                "session_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "status": status,
                "invoked_time": invoked,
                "started_time": started,
                "stopped_time": stopped,
                "output_file_name": output_file_name or f"{title}_{rid[:8]}.mp4",
                "file_size": None,
                "recording_duration": seconds if finished else None,
                "bucket": bucket,
                "storage_config": None
                if bucket
                else {
                    "type": "aws",
                    "bucket": "acme-recordings",
                    "region": "us-east-1",
                    "path": "meetings/",
                    "secret": PLANTED_SECRET,
                },
                "audio": audio,
                "key": None,
                "audio_key": None,
                "start_reason": {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}},
                "stop_reason": {"reason": "ALL_PEERS_LEFT"} if finished else None,
                "seed": rng.randrange(2**32),
                "nbytes": size if size is not None else rng.randint(8_000, 200_000),
            }
            self.recordings[rid] = rec
            self._order = None
        if status == "UPLOADED":
            self._store_media(rec, content=content, audio_content=audio_content)
        return rid

    def _store_media(
        self, rec: dict[str, Any], *, content: bytes | None = None, audio_content: bytes | None = None
    ) -> None:
        rec["file_size"] = len(content) if content is not None else rec["nbytes"]
        if not rec["bucket"]:
            return
        rec["key"] = f"realtimekit/{APP_ID}/{rec['id']}.mp4"
        if content is not None:
            self.storage.put_bytes(rec["key"], content, media_type="video/mp4")
        else:
            self.storage.put(
                rec["key"], size=rec["nbytes"], seed=f"rtk:{rec['seed']}", media_type="video/mp4"
            )
        if rec["audio"]:
            media_type, ext = AUDIO_MEDIA[rec["audio"]]
            rec["audio_key"] = f"realtimekit/{APP_ID}/{rec['id']}_audio{ext}"
            if audio_content is not None:
                self.storage.put_bytes(rec["audio_key"], audio_content, media_type=media_type)
            else:
                size = max(8_000, rec["nbytes"] // 6)
                self.storage.put(
                    rec["audio_key"], size=size, seed=f"rtk-audio:{rec['seed']}", media_type=media_type
                )

    # -- test hooks ---------------------------------------------------------------
    def profile(self) -> dict[str, str]:
        return {
            "base_url": self.server.url + "/client/v4",
            "account_id": ACCOUNT_ID,
            "app_id": APP_ID,
            "api_token": API_TOKEN,
        }

    def ids(
        self, *, status: str | None = None, ready_only: bool = False, audio: bool | None = None
    ) -> list[str]:
        """Recording ids in listing order (oldest first); ``ready_only``: downloadable now."""
        with self._lock:
            recs = sorted(self.recordings.values(), key=lambda r: (r["invoked_time"], r["id"]))
        out = []
        for rec in recs:
            if status and rec["status"] != status:
                continue
            if ready_only and not self._downloadable(rec):
                continue
            if audio is not None and bool(rec["audio_key"] and self._downloadable(rec)) != audio:
                continue
            out.append(rec["id"])
        return out

    def storage_key(self, rid: str, *, audio: bool = False) -> str:
        key: str = self.recordings[rid]["audio_key" if audio else "key"]
        return key

    def rate_limit_next(self, *, times: int | None = 1, retry_after: int = 1) -> Fault:
        """The gateway's 429 (code 971) with Retry-After, for the next API request(s)."""
        return self.server.add_fault(
            Fault(
                lambda r: True,
                lambda r: _with_header(
                    _gateway(429, 971, "Please wait and consider throttling your request speed"),
                    "Retry-After",
                    str(retry_after),
                ),
                times,
            )
        )

    def fail_next(
        self,
        status: int,
        *,
        times: int | None = 1,
        body: bytes | dict[str, Any] | None = None,
        content_type: str | None = None,
        retry_after: int | None = None,
        path_contains: str = "",
        method: str | None = None,
    ) -> Fault:
        """Answer the next matching API request(s) with ``status`` (RealtimeKit's envelope by default)."""
        if body is None:
            response = _error(status, "Internal Server Error" if status >= 500 else f"sandbox fault {status}")
        elif isinstance(body, dict):
            response = json_response(body, status)
        else:
            response = Response(status, body, {"Content-Type": content_type or "application/json"})
        if retry_after is not None:
            response = _with_header(response, "Retry-After", str(retry_after))

        def match(request: Request) -> bool:
            return path_contains in request.path and (method is None or request.method == method)

        return self.server.add_fault(Fault(match, response, times))

    # -- shapes -------------------------------------------------------------------
    def _expired(self, rec: dict[str, Any]) -> bool:
        ended = rec["stopped_time"] or rec["invoked_time"]
        return rec["status"] == "UPLOADED" and bool(rec["bucket"]) and ended + RETENTION <= self._clock()

    def _downloadable(self, rec: dict[str, Any]) -> bool:
        return rec["status"] == "UPLOADED" and bool(rec["key"]) and not self._expired(rec)

    def _clock(self) -> datetime:
        return datetime.now(UTC)

    def _recording(self, rec: dict[str, Any]) -> dict[str, Any]:
        """`realtimekit_Recording`, with freshly presigned URLs (a new signature on every GET)."""
        url = audio_url = expiry = None
        if rec["status"] == "UPLOADED" and rec["bucket"]:
            end = (rec["stopped_time"] or rec["invoked_time"]) + RETENTION
            if self._downloadable(rec):
                ttl = min(self.url_ttl, (end - self._clock()).total_seconds())
                url, expires_at = self.storage.presign(rec["key"], expires_in=ttl)
                if rec["audio_key"]:
                    audio_url, _ = self.storage.presign(rec["audio_key"], expires_in=ttl)
                with self._lock:
                    self.presigned += 1
                expiry = _ts(expires_at)
            else:
                expiry = _ts(end)  # expired: the URLs are gone, the expiry stays informative
        out = {
            "id": rec["id"],
            "download_url": url,
            "download_url_expiry": expiry,
            "audio_download_url": audio_url,
            "file_size": rec["file_size"],
            "session_id": rec["session_id"],
            "output_file_name": rec["output_file_name"],
            "status": rec["status"],
            "invoked_time": _ts(rec["invoked_time"]),
            "started_time": _ts(rec["started_time"]),
            "stopped_time": _ts(rec["stopped_time"]),
        }
        if rec["recording_duration"] is not None:
            out["recording_duration"] = rec["recording_duration"]
        return out

    def _detail(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = self._recording(rec)
        out["storage_config"] = rec["storage_config"]
        out["start_reason"] = rec["start_reason"]
        if rec["stop_reason"]:
            out["stop_reason"] = rec["stop_reason"]
        return out

    def _list_item(self, rec: dict[str, Any]) -> dict[str, Any]:
        out = self._recording(rec)
        out["storage_config"] = rec["storage_config"]
        out["meeting"] = self.meetings.get(rec["meeting_id"])
        return out

    # -- routes -------------------------------------------------------------------
    def _routes(self) -> None:
        s = self.server
        s.route("GET", PREFIX)(self._guard(self._list))
        s.route("POST", PREFIX)(self._guard(self._start))
        s.route("POST", PREFIX + r"/track")(self._guard(self._track))
        s.route("GET", PREFIX + r"/active-recording/(?P<meeting>[^/]+)")(self._guard(self._active))
        s.route("GET", PREFIX + r"/(?P<rid>[^/]+)")(self._guard(self._get))
        s.route("PUT", PREFIX + r"/(?P<rid>[^/]+)")(self._guard(self._control))

    def _guard(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def guarded(request: Request) -> Response:
            remaining, reset = self._spend()
            if remaining < 0:
                with self._lock:
                    self.rate_limited += 1
                response = _gateway(429, 971, "Please wait and consider throttling your request speed")
                response.headers["Retry-After"] = str(reset)
            else:
                denied = self._check(request)
                response = denied if denied is not None else handler(request)
            response.headers["Ratelimit"] = f'"default";r={max(remaining, 0)};t={reset}'
            response.headers["Ratelimit-Policy"] = f'"default";q={self.rate_quota};w={int(self.rate_window)}'
            return response

        return guarded

    def _spend(self) -> tuple[int, int]:
        """One request against the fixed window: (remaining after it, -1 when over; seconds to reset)."""
        with self._lock:
            now = time.monotonic()
            if self._rate_start is None or now - self._rate_start >= self.rate_window:
                self._rate_start, self._rate_used = now, 0
            self._rate_used += 1
            reset = max(1, math.ceil(self._rate_start + self.rate_window - now))
            return self.rate_quota - self._rate_used, reset

    def _check(self, request: Request) -> Response | None:
        header = request.header("authorization")
        match = _BEARER.match(header or "")
        if match is None:
            return _gateway(
                400,
                6003,
                "Invalid request headers",
                [{"code": 6111, "message": "Invalid format for Authorization header"}],
            )
        account = request.params.get("acct") or ""
        if not _HEX32.match(account):
            return _gateway(
                400,
                7003,
                f"Could not route to {request.path}, perhaps your object identifier is invalid?",
                [{"code": 7000, "message": "No route for that URI"}],
            )
        if match.group(1) != API_TOKEN or account != ACCOUNT_ID:
            return _gateway(403, 10000, "Authentication error")
        if request.params.get("app") != APP_ID:
            return _error(401, "Unauthorized")  # INF: RealtimeKit's answer for an app of another account
        return None

    def _list(self, request: Request) -> Response:
        unknown = sorted(set(request.query) - LIST_PARAMS)
        if unknown:
            return _error(400, f'"{unknown[0]}" is not allowed')
        page = _number(request.arg("page_no"))
        per_page = _number(request.arg("per_page"))
        if page is None or per_page is None:
            return _error(400, '"page_no" and "per_page" must be numbers')
        page = max(1, page)  # page_no 0 is treated like 1 (INF)
        per_page = min(per_page or DEFAULT_PER_PAGE, self.max_per_page)
        sort_by = request.arg("sort_by", "invokedTime")
        order = request.arg("sort_order", "DESC")
        if sort_by != "invokedTime" or order not in ("ASC", "DESC"):
            return _error(400, '"sort_by" must be [invokedTime] and "sort_order" one of [ASC, DESC]')
        statuses: list[str] = []
        if "status" in request.query:
            # Repeated keys `status=A&status=B`, as the official SDK sends them; a comma-joined
            # value is one unknown status.
            statuses = request.query["status"]
            bad = [s for s in statuses if s not in STATUSES]
            if bad:
                return _error(
                    400, f'"status[{statuses.index(bad[0])}]" must be one of [{", ".join(STATUSES)}]'
                )
        meeting = request.arg("meeting_id")
        if meeting is not None and _uuid(meeting) is None:
            return _error(400, '"meeting_id" must be a valid GUID')
        expired = request.arg("expired")
        if expired is not None and expired not in ("true", "false"):
            return _error(400, '"expired" must be a boolean')
        window: dict[str, datetime] = {}
        for name in ("start_time", "end_time"):
            text = request.arg(name)
            if text is not None:
                parsed = _parse_time(text)
                if parsed is None:
                    return _error(400, f'"{name}" must be in ISO 8601 date format')
                window[name] = parsed
        search = (request.arg("search") or "").lower()
        with self._lock:
            if self._order is None:
                self._order = sorted(self.recordings.values(), key=lambda r: (r["invoked_time"], r["id"]))
            recs = self._order
        picked = []
        for rec in recs:
            if statuses and rec["status"] not in statuses:
                continue
            if meeting is not None and rec["meeting_id"] != _uuid(meeting):
                continue
            if expired is not None and self._expired(rec) != (expired == "true"):
                continue
            if "start_time" in window and rec["invoked_time"] < window["start_time"]:
                continue
            if "end_time" in window and rec["invoked_time"] >= window["end_time"]:
                continue
            if search:
                title = str(self.meetings.get(rec["meeting_id"], {}).get("title", "")).lower()
                if search not in rec["meeting_id"] and search not in title:
                    continue
            picked.append(rec)
        if order == "DESC":
            picked.reverse()
        start = (page - 1) * per_page
        items = picked[start : start + per_page]
        return json_response(
            {
                "success": True,
                "data": [self._list_item(rec) for rec in items],
                "paging": {
                    "total_count": len(picked),
                    "start_offset": start + 1 if items else 0,
                    "end_offset": start + len(items),
                },
            }
        )

    def _find(self, request: Request) -> dict[str, Any] | Response:
        rid = _uuid(request.params.get("rid"))
        if rid is None:
            return _error(400, 'BAD_REQUEST "id" must be a valid GUID')
        with self._lock:
            rec = self.recordings.get(rid)
        if rec is None:
            return _error(404, "Error: resource not found")
        return rec

    def _get(self, request: Request) -> Response:
        rec = self._find(request)
        if isinstance(rec, Response):
            return rec
        with self._lock:
            self.gets[rec["id"]] = self.gets.get(rec["id"], 0) + 1
        return json_response({"success": True, "data": self._detail(rec)})

    def _active(self, request: Request) -> Response:
        meeting = _uuid(request.params.get("meeting"))
        with self._lock:
            active = [
                r for r in self.recordings.values() if r["meeting_id"] == meeting and r["status"] in ACTIVE
            ]
        if not active:
            return _error(404, "No active recording found for this meeting")
        latest = max(active, key=lambda r: r["invoked_time"])
        return json_response({"success": True, "data": self._recording(latest)})

    def _start(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "BAD_REQUEST request body must be a JSON object")
        problem = start_problem(body)
        if problem:
            return _error(400, problem)
        meeting = _uuid(body.get("meeting_id"))
        if meeting is None:
            return _error(400, '"meeting_id" must be a valid GUID')
        if meeting not in self.meetings:
            return _error(404, "Meeting not found")
        max_seconds = body.get("max_seconds")
        if max_seconds is not None and (
            not isinstance(max_seconds, int)
            or isinstance(max_seconds, bool)
            or not 60 <= max_seconds <= 86400
        ):
            return _error(400, '"max_seconds" must be an integer from 60 to 86400')
        audio = body.get("audio_config")
        codec = None
        if audio is not None:
            codec = audio.get("codec", "AAC") if isinstance(audio, dict) else None
            if codec not in AUDIO_MEDIA or (audio.get("channel", "stereo") not in ("mono", "stereo")):
                return _error(400, '"audio_config" is invalid')
            if audio.get("export_file") is False:
                codec = None
        prefix = body.get("file_name_prefix")
        if prefix is not None and not isinstance(prefix, str):
            return _error(400, '"file_name_prefix" must be a string')
        with self._lock:
            busy = any(r["meeting_id"] == meeting and r["status"] in ACTIVE for r in self.recordings.values())
        if busy and body.get("allow_multiple_recordings") is not True:
            return _error(409, "A recording is already in progress for this meeting")  # INF
        bucket = (body.get("realtimekit_bucket_config") or {}).get("enabled", True)
        rid = self.add_recording(
            meeting_id=meeting, status="RECORDING", invoked_time=self._clock(), audio=codec, bucket=bucket
        )
        rec = self.recordings[rid]
        rec["storage_config"] = public_storage(body.get("storage_config"))
        if prefix:
            rec["output_file_name"] = f"{prefix}_{rid[:8]}.mp4"
        rec["started_time"] = rec["invoked_time"]
        with self._lock:
            self.start_bodies.append(body)
        return json_response({"success": True, "data": self._detail(rec)})

    def _track(self, request: Request) -> Response:
        """startTrackRecordingForAMeeting: per-participant audio tracks as WebM files."""
        body = request.json()
        problem = track_problem(body)
        if problem:
            return _error(400, problem)
        meeting = _uuid(body["meeting_id"])
        if meeting is None:
            return _error(400, '"meeting_id" must be a valid GUID')
        if meeting not in self.meetings:
            return _error(404, "Meeting not found")
        layer = body["layers"]["default"]
        outputs = layer["outputs"]
        bucket = any(o["type"] == "REALTIMEKIT_BUCKET" for o in outputs)
        storage = next((o["storage_config"] for o in outputs if o["type"] == "STORAGE_CONFIG"), None)
        rid = self.add_recording(
            meeting_id=meeting, status="RECORDING", invoked_time=self._clock(), bucket=bucket
        )
        rec = self.recordings[rid]
        rec["storage_config"] = public_storage(storage)
        rec["output_file_name"] = f"{layer.get('file_name_prefix') or 'tracks'}_{rid[:8]}.webm"
        rec["started_time"] = rec["invoked_time"]
        with self._lock:
            self.start_bodies.append(body)
        return json_response({"success": True, "data": {"recording": self._recording(rec)}})

    def _control(self, request: Request) -> Response:
        rec = self._find(request)
        if isinstance(rec, Response):
            return rec
        body = request.json()
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ("stop", "pause", "resume"):
            return _error(400, '"action" must be one of [stop, pause, resume]')
        with self._lock:
            status = rec["status"]
            allowed = {"stop": ACTIVE, "pause": ("RECORDING",), "resume": ("PAUSED",)}[action]
            if status not in allowed:
                return _error(400, f"Cannot {action} a recording that is {status}")
            if action == "pause":
                rec["status"] = "PAUSED"
            elif action == "resume":
                rec["status"] = "RECORDING"
            else:
                now = self._clock()
                started = rec["started_time"] or now
                rec["started_time"] = started
                rec["stopped_time"] = max(now, started + timedelta(seconds=1))
                rec["recording_duration"] = max(1, int((rec["stopped_time"] - started).total_seconds()))
                rec["status"] = "UPLOADED"
                rec["stop_reason"] = {"reason": "API_CALL", "caller": {"type": "ORGANIZATION"}}
        if action == "stop":
            self._store_media(rec)
        return json_response({"success": True, "data": self._detail(rec)})


def _number(text: str | None) -> int | None:
    """`page_no`/`per_page`: numbers with `allowEmptyValue`; empty means the default (0)."""
    if text is None or text == "":
        return 0
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value >= 0 else None


def _with_header(response: Response, key: str, value: str) -> Response:
    response.headers[key] = value
    return response


def create(
    storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None
) -> RealtimeKitStandIn:
    """The sandbox hook: a RealtimeKit stand-in storing its media in ``storage``."""
    return RealtimeKitStandIn(storage, port=port, seed=seed, recordings=recordings)
