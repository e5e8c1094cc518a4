"""Stand-in of Kaleyra's recording extraction API (JSON link or 301) and its exported report CSV."""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recfetch.sandbox.httpserver import PLANTED_SECRET, Fault, Request, Response, Server, json_response
from recfetch.sandbox.storage import Storage

SID = "HSANDBOX0071US"
API_KEY = "A3kaleyra-sandbox-api-key-6c1e9d"
DEFAULT_COUNT = 16
EXPIRED_EVERY = 6
"""Every sixth synthetic recording is older than 6 months: Kaleyra answers `Id Expired`."""
MAX_AGE = timedelta(days=183)
SAMPLE_REPORT = Path(__file__).with_name("kaleyra_report.csv")
"""The seed-0 report shipped with the package: `recfetch kaleyra list --from-report` it in the sandbox."""

REPORT_HEADERS = (
    "Call ID",
    "Type",
    "From",
    "To",
    "Start Time",
    "End Time",
    "Duration",
    "Status",
    "Bridge",
    "Credits",
    "Recording ID",
    "Webhook Token",  # INF: a report column holding a credential (never in `raw`)
)


@dataclass
class _Recording:
    rid: str
    key: str
    media_type: str
    call_id: str
    kind: str
    caller: str
    callee: str
    started_at: datetime
    duration: int
    status: str
    bridge: str
    expired: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def _anchor() -> datetime:
    """Today's midnight UTC: data stays deterministic for a day and `--since 7d` stays meaningful."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


class KaleyraStandIn:
    """`POST /v1/{sid}/voice/recordings` checking sid + api-key; ids come from `report_csv()`.

    Documented (DOC/SEED): form fields id/validity/download, `download=1` → 301 to the signed
    link, `download=0` → `{"code","message","data":{"link"},"error":{}}`, `Invalid Id` and
    `Id Expired` bodies, whose `data` is not valid JSON in Kaleyra's own sample (reproduced
    verbatim unless ``strict_json``). Inferred (INF): HTTP 400 for both id errors, 401 with a
    small envelope for a bad sid/api-key pair.
    """

    name = "kaleyra"

    def __init__(
        self, storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None
    ) -> None:
        self.storage = storage
        self.server = Server("kaleyra", port=port)
        self.rng = random.Random(f"kaleyra:{seed}")
        self.strict_json = False
        """Send id errors as valid JSON (Kaleyra's documented sample is not)."""
        self.mint_calls = 0
        self.mints: list[dict[str, Any]] = []
        """Each mint request's sid, query id, form fields and whether the api-key matched."""
        self.recordings: dict[str, _Recording] = {}
        self._lock = threading.Lock()
        self._anchor = _anchor()
        self._populate(DEFAULT_COUNT if recordings is None else max(0, recordings))
        self._routes()

    # -- synthetic data ------------------------------------------------------
    def _new_id(self) -> str:
        while True:
            # Base64-looking like the documented `1xxxxx8axxxxgiu587==`; '+' exercises form encoding.
            rid = base64.b64encode(self.rng.randbytes(13)).decode().replace("/", "+")
            if rid not in self.recordings:
                return rid

    def _populate(self, count: int) -> None:
        for index in range(count):
            expired = index % EXPIRED_EVERY == EXPIRED_EVERY - 1
            if expired:
                started = self._anchor - timedelta(days=190 + index, hours=self.rng.randint(0, 23))
            else:
                started = self._anchor - timedelta(
                    days=index * 2 // 3, hours=self.rng.randint(1, 20), minutes=self.rng.randint(0, 59)
                )
            self.add_recording(started_at=started, expired=expired)

    def add_recording(
        self,
        rid: str | None = None,
        *,
        expired: bool = False,
        size: int | None = None,
        content: bytes | None = None,
        media_type: str | None = None,
        started_at: datetime | None = None,
        status: str = "ANSWER",
    ) -> str:
        """Add a recording (stored media included); returns its id."""
        rng = self.rng
        with self._lock:
            rid = rid or self._new_id()
            media_type = media_type or rng.choice(("audio/mpeg", "audio/mpeg", "audio/wav"))
            ext = "wav" if "wav" in media_type else "mp3"
            key = f"kaleyra/{SID}/{len(self.recordings):05d}.{ext}"
            started = started_at or (self._anchor - timedelta(hours=rng.randint(1, 72)))
            if expired and started > self._anchor - MAX_AGE:
                started = self._anchor - MAX_AGE - timedelta(days=rng.randint(5, 90))
            duration = rng.randint(12, 900)
            self.recordings[rid] = _Recording(
                rid=rid,
                key=key,
                media_type=media_type,
                call_id=f"{rng.randrange(16**12):012x}",
                kind=rng.choice(("Inbound", "Outbound", "Click2Call")),
                caller=f"+9180{rng.randrange(10**8):08d}",
                callee=f"+9198{rng.randrange(10**8):08d}",
                started_at=started,
                duration=duration,
                status=status,
                bridge=f"+9180{rng.randrange(10**8):08d}",
                expired=expired,
            )
        if content is not None:
            self.storage.put_bytes(key, content, media_type=media_type)
        else:
            self.storage.put(
                key,
                size=size or rng.randint(8_000, 200_000),
                seed=f"{self.name}:{rng.randrange(2**31)}",
                media_type=media_type,
            )
        return rid

    def ids(self, *, include_expired: bool = True) -> list[str]:
        return [r.rid for r in self.recordings.values() if include_expired or not r.expired]

    def expired_ids(self) -> list[str]:
        return [r.rid for r in self.recordings.values() if r.expired]

    def key_of(self, rid: str) -> str:
        return self.recordings[rid].key

    def content(self, rid: str) -> bytes:
        return self.storage.content(self.recordings[rid].key)

    # -- the report ------------------------------------------------------------
    def report_csv(
        self,
        *,
        include_expired: bool = False,
        delimiter: str = ",",
        id_header: str = "Recording ID",
        bom: bool = False,
    ) -> str:
        """The recordings report as the Kaleyra platform would export it (column names are INF).

        Expired ids are left out by default so the demo's pull succeeds; a real report
        spanning more than 6 months would include them.
        """
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow([id_header if h == "Recording ID" else h for h in REPORT_HEADERS])
        rows = sorted(self.recordings.values(), key=lambda r: r.started_at, reverse=True)
        for rec in rows:
            if rec.expired and not include_expired:
                continue
            end = rec.started_at + timedelta(seconds=rec.duration)
            writer.writerow(
                [
                    rec.call_id,
                    rec.kind,
                    rec.caller,
                    rec.callee,
                    rec.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                    end.strftime("%Y-%m-%d %H:%M:%S"),
                    str(rec.duration),
                    rec.status,
                    rec.bridge,
                    f"{max(1, rec.duration // 60 + 1) * 0.5:.2f}",
                    rec.rid,
                    PLANTED_SECRET,
                ]
            )
        return ("\ufeff" if bom else "") + out.getvalue()

    # -- test hooks ----------------------------------------------------------
    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        retry_after: str | None = None,
    ) -> Fault:
        """Answer the next ``times`` mint requests with ``status`` (and ``body``, JSON if not bytes)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if isinstance(body, bytes):
            response = Response(status, body, {"Content-Type": "text/plain", **headers})
        else:
            payload = body if body is not None else {"code": f"RBC{status}", "message": "sandbox fault"}
            response = json_response(payload, status, headers)
        return self.server.add_fault(Fault(lambda r: "/voice/recordings" in r.path, response, times))

    def profile(self) -> dict[str, str]:
        return {"base_url": self.server.url, "sid": SID, "api_key": API_KEY}

    # -- routes ----------------------------------------------------------------
    def _routes(self) -> None:
        self.server.route("POST", r"/v1/(?P<sid>[^/]+)/voice/recordings")(self._mint)

    def _error(self, status: int, message: str, error: dict[str, str], data: dict[str, str]) -> Response:
        if self.strict_json:
            return json_response(
                {"code": "RBC3101", "message": message, "data": data, "error": error}, status
            )
        # Kaleyra's documented failure sample puts `"id" : "…"` pairs inside a JSON array.
        pairs = ",\n    ".join(f"{json.dumps(k)} : {json.dumps(v)}" for k, v in data.items())
        errors = ",\n    ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in error.items())
        text = (
            f'{{\n  "code": "RBC3101",\n  "message": {json.dumps(message)},\n  "data": [\n    {pairs}\n  ],\n'
            f'  "error": {{\n    {errors}\n  }}\n}}\n'
        )
        return Response(status, text.encode(), {"Content-Type": "application/json"})

    def _mint(self, request: Request) -> Response:
        form = request.form()
        api_key_ok = request.header("api-key") == API_KEY
        with self._lock:
            self.mint_calls += 1
            self.mints.append(
                {
                    "sid": request.params["sid"],
                    "query_id": request.arg("id"),
                    "form": form,
                    "content_type": request.header("content-type"),
                    "api_key_ok": api_key_ok,
                }
            )
        if request.params["sid"] != SID or not api_key_ok:
            return json_response(
                {
                    "code": "RBC0401",
                    "message": "Invalid API key or SID",
                    "data": {},
                    "error": {"api-key": "Authentication failed"},
                },
                401,
            )
        rid = form.get("id") or request.arg("id") or ""
        validity_text = form.get("validity") or "5"
        download = form.get("download") or "0"
        data = {"id": rid, "validity": validity_text, "download": download}
        try:
            validity = int(validity_text)
        except ValueError:
            validity = 0
        if validity < 1:
            return self._error(400, "Invalid validity", {"validity": "Invalid validity"}, data)
        rec = self.recordings.get(rid)
        if rec is None:
            return self._error(400, "Invalid Id", {"id": "Invalid id"}, data)
        if rec.expired:
            return self._error(400, "Id Expired", {"id": "Id Expired"}, data)
        link, _expires = self.storage.presign(rec.key, expires_in=validity * 60)
        if download == "1":
            return Response(301, b"", {"Location": link, "Content-Length": "0"})
        return json_response(
            {
                "code": "RBC3000",
                "message": "Request successfully executed!",
                "data": {"link": link},
                "error": {},
            }
        )


def create(
    storage: Storage, *, port: int = 0, seed: int = 0, recordings: int | None = None
) -> KaleyraStandIn:
    return KaleyraStandIn(storage, port=port, seed=seed, recordings=recordings)
