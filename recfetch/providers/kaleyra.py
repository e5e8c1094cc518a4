"""Kaleyra voice recordings: ids from an exported report CSV, links minted by the extraction API."""

from __future__ import annotations

import csv
import io
import itertools
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urljoin, urlsplit

import httpx

from recfetch.errors import AuthError, NotFoundError, ProviderError, RecfetchError, UsageError
from recfetch.providers._http import parse_json
from recfetch.providers.base import (
    DownloadTarget,
    ListQuery,
    Provider,
    Recording,
)
from recfetch.providers.catalog import DEFAULT_VALIDITY, KALEYRA, LINK_MODES, MAX_VALIDITY
from recfetch.urls import is_presigned

__all__ = ["DEFAULT_VALIDITY", "MAX_VALIDITY", "KaleyraProvider", "ReportError", "read_report"]

_REDIRECTS = (301, 302, 303, 307, 308)

# Header names are compared after lower-casing and dropping everything but letters and digits,
# so "Recording ID", "recording_id", "RecordingId" and "recording-id" all match "recordingid".
ID_COLUMNS = ("recordingid", "recordid", "recid", "recordingidentifier", "recordinguuid")
START_COLUMNS = (
    "starttime",
    "callstarttime",
    "startedat",
    "startdatetime",
    "calldatetime",
    "calldate",
    "calltime",
    "datetime",
    "start",
    "date",
)
END_COLUMNS = ("endtime", "callendtime", "endedat", "enddatetime", "end")
DURATION_COLUMNS = (
    "duration",
    "durationsec",
    "durationsecs",
    "durationseconds",
    "durations",
    "callduration",
    "calldurationsec",
    "recordingduration",
    "billsec",
    "talktime",
)
FROM_COLUMNS = ("from", "caller", "callerid", "callernumber", "fromnumber", "callfrom", "source", "ani")
TO_COLUMNS = ("to", "callee", "called", "callednumber", "calleenumber", "tonumber", "callto", "destination")
STATUS_COLUMNS = ("status", "callstatus", "recordingstatus")
CALL_ID_COLUMNS = ("callid", "callsid", "calluuid", "uniqueid")
DIRECTION_COLUMNS = ("direction", "calldirection", "calltype", "type")

_INBOUND = {"inbound", "incoming", "in", "inbound call", "incoming call"}
_OUTBOUND = {
    "outbound",
    "outgoing",
    "out",
    "outbound call",
    "outgoing call",
    "click2call",
    "clicktocall",
    "ctc",
}

_TIME_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%d/%m/%Y",
    "%d-%m-%Y",
)


class ReportError(UsageError):
    """The recordings report cannot be read: the user fixes the file or the flags."""


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def _find(headers: list[str], candidates: Iterable[str]) -> str | None:
    by_norm: dict[str, str] = {}
    for header in headers:
        by_norm.setdefault(_norm(header), header)
    for candidate in candidates:
        if candidate in by_norm:
            return by_norm[candidate]
    return None


def report_time(value: str | None) -> datetime | None:
    """A report timestamp: ISO 8601, `DD/MM/YYYY HH:MM:SS` (Kaleyra is India-first) or epoch.

    Times without an offset are taken as UTC; the report does not say its zone.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), tz=UTC)
    if re.fullmatch(r"\d{12,14}", text):  # milliseconds
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def report_duration(value: str | None) -> float | None:
    """Seconds from `312`, `312.5`, `5:12` or `00:05:12`."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = re.fullmatch(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})", text)
    if match:
        hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return float(hours * 3600 + minutes * 60 + seconds)
    return None


def _direction(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    if text in _INBOUND:
        return "inbound"
    if text in _OUTBOUND:
        return "outbound"
    return None


@contextmanager
def _open_report(source: str) -> Iterator[TextIO]:
    """The report as text; `-` is stdin, which is left open for whoever reads it next."""
    if source == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:
            yield sys.stdin
            return
        wrapper = io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="replace", newline="")
        try:
            yield wrapper
        finally:
            with suppress(ValueError):
                wrapper.detach()
        return
    path = Path(source).expanduser()
    try:
        # Exports from spreadsheet tools often start with a BOM; stray bytes must not stop a pull.
        stream = path.open(encoding="utf-8-sig", errors="replace", newline="")
    except FileNotFoundError:
        raise ReportError(
            f"kaleyra report {source} does not exist",
            hint="export the recordings report from the Kaleyra platform and pass its path to --from-report",
        ) from None
    except IsADirectoryError:
        raise ReportError(f"kaleyra report {source} is a directory", hint="pass the CSV file") from None
    except OSError as exc:
        raise ReportError(f"cannot read kaleyra report {source}: {exc.strerror}") from None
    with stream:
        yield stream


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = None
    first = next((line for line in sample.splitlines() if line.strip()), "")
    if dialect is None or dialect.delimiter not in first:
        # The sniffer guesses from the whole sample; the header line is the better witness.
        counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
        best = max(counts, key=lambda d: counts[d])

        class _Guess(csv.excel):
            delimiter = best if counts[best] else ","

        return _Guess
    return dialect


def read_report(
    stream: TextIO, *, id_column: str | None = None, source: str = "report"
) -> tuple[list[str], str, Iterator[dict[str, str]]]:
    """(headers, id column, rows) from a report CSV; rows stream, the header is checked at once."""
    head: list[str] = []
    size = 0
    for line in stream:
        head.append(line.lstrip("\ufeff") if not head else line)
        size += len(line)
        if size >= 65536:
            break
    sample = "".join(head)
    if not sample.strip():
        raise ReportError(
            f"kaleyra report {source} is empty",
            hint="export the report with the recording details from the Kaleyra platform",
        )
    lines = itertools.chain(head, stream)
    reader = csv.reader(lines, _dialect(sample))
    headers: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            headers = [cell.strip().lstrip("\ufeff") for cell in row]
            break
    if not headers:
        raise ReportError(f"kaleyra report {source} has no header row")
    seen = ", ".join(repr(h) for h in headers if h) or "none"
    if id_column:
        column = next((h for h in headers if h.lower() == id_column.strip().lower()), None)
        if column is None:
            column = _find(headers, [_norm(id_column)])
        if column is None:
            raise ReportError(
                f"kaleyra report {source} has no column {id_column!r} (headers seen: {seen})",
                hint="pass one of those names to --id-column",
            )
    else:
        column = _find(headers, ID_COLUMNS)
        if column is None:
            raise ReportError(
                f"kaleyra report {source} has no recording-id column (headers seen: {seen})",
                hint="name the column with --id-column NAME",
            )

    def rows() -> Iterator[dict[str, str]]:
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                values = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(headers) if h}
                yield values
        except csv.Error as exc:
            raise ReportError(f"kaleyra report {source} is not valid CSV: {exc}") from None

    return headers, column, rows()


class KaleyraProvider(Provider, info=KALEYRA):
    """Kaleyra has no listing API: refs come from a report; each download mints a signed S3 link."""

    def __init__(self, settings: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.validity = self._validity(self.options.get("validity"))
        mode = self.options.get("link_mode") or "json"
        mode = str(mode).lower()
        if mode not in LINK_MODES:
            raise UsageError(f"--link-mode {mode!r} is not one of {', '.join(LINK_MODES)}")
        self.link_mode = mode

    @staticmethod
    def _validity(value: Any) -> int:
        if value in (None, ""):
            return DEFAULT_VALIDITY
        try:
            minutes = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"--validity {value!r} is not a whole number of minutes") from None
        if not 1 <= minutes <= MAX_VALIDITY:
            raise UsageError(
                f"--validity {minutes} is out of range", hint=f"use 1..{MAX_VALIDITY} minutes (default 5)"
            )
        return minutes

    # -- wire ------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.config.get("api_key", "")}

    def _path(self) -> str:
        return f"/v1/{quote(self.config.get('sid', ''), safe='')}/voice/recordings"

    def map_error(self, response: httpx.Response, body: Any) -> RecfetchError | None:
        status = response.status_code
        text = _error_text(response, body)
        if status in (401, 403):
            shown = _message(body) or " ".join(text.split())[:120]
            detail = f": {shown}" if shown else ""
            return AuthError(
                f"kaleyra rejected the sid/api-key pair (HTTP {status}){detail}",
                hint="check sid and api_key (`recfetch kaleyra login`), and the key's IP whitelist",
            )
        if 400 <= status < 500 and status != 429:
            # Kaleyra's status for a bad id is undocumented: the message decides, whatever the status.
            rid = response.request.url.params.get("id") or "?"
            return _id_problem(rid, body, text, status)
        return None

    # -- Provider --------------------------------------------------------
    def verify(self) -> str:
        # There is no read-only endpoint: ask for a link to an id that cannot exist. "Invalid Id"
        # proves the sid/api-key pair works without minting anything.
        try:
            self._mint_response("recfetch-login-check")
        except NotFoundError:
            pass
        return f"sid {self.config.get('sid')}"

    def iter_recordings(self, query: ListQuery) -> Iterator[Recording]:
        source = query.options.get("from_report")
        if not source:
            raise UsageError(
                "kaleyra has no listing API: list and pull need --from-report FILE",
                hint="export the recordings report from the Kaleyra platform and pass it "
                "with --from-report FILE.csv (or - for stdin)",
            )
        return self._rows(str(source), query)

    def _rows(self, source: str, query: ListQuery) -> Iterator[Recording]:
        with _open_report(source) as stream:
            headers, id_column, rows = read_report(
                stream, id_column=query.options.get("id_column"), source=source
            )
            start_column = _find(headers, START_COLUMNS)
            if (query.since or query.until) and start_column is None:
                raise ReportError(
                    f"kaleyra report {source} has no call start-time column to apply --since/--until "
                    "(or --incremental) to",
                    hint="drop those flags, or export the report with the call start time",
                )
            columns = _columns(headers)
            seen: set[str] = set()
            for row in rows:
                ref = row.get(id_column, "").strip()
                if not ref or ref in seen:
                    continue
                record = self._record(ref, row, columns)
                if query.since or query.until:
                    started = record.started_at
                    if started is None:
                        continue
                    if query.since and started < query.since:
                        continue
                    if query.until and started >= query.until:
                        continue
                seen.add(ref)
                yield record

    def _record(self, ref: str, row: Mapping[str, str], columns: Mapping[str, str | None]) -> Recording:
        def col(kind: str) -> str | None:
            header = columns.get(kind)
            value = row.get(header) if header else None
            return value.strip() if value and value.strip() else None

        started = report_time(col("start"))
        ended = report_time(col("end"))
        duration = report_duration(col("duration"))
        if ended is None and started is not None and duration is not None:
            ended = started + timedelta(seconds=duration)
        raw = {k: v for k, v in row.items() if not is_presigned(v.strip())}
        # A report may carry the recording's file name or link; its extension names the format.
        media_type = next((t for t in map(_media_type_of, row.values()) if t), None)
        return Recording(
            provider=self.name,
            profile=self.profile,
            ref=ref,
            id=ref,
            status="ready",
            provider_status=col("status"),
            downloadable=True,
            started_at=started,
            ended_at=ended,
            duration_s=duration,
            media_type=media_type,
            call_id=col("call_id"),
            direction=_direction(col("direction")),
            from_=col("from"),
            to=col("to"),
            raw=raw,
        )

    def get_recording(self, ref: str) -> Recording:
        ref = ref.strip()
        if not ref:
            raise UsageError(
                "empty kaleyra recording id", hint="pass the id from the report's recording-id column"
            )
        source = self.options.get("from_report")
        if source:
            query = ListQuery(options={"from_report": source, "id_column": self.options.get("id_column")})
            for record in self._rows(str(source), query):
                if record.ref == ref:
                    return record
            raise NotFoundError(
                f"kaleyra recording {ref} is not in the report {source}",
                hint="check the id, or drop --from-report to fetch it anyway",
            )
        # Without a report there is no metadata to read: Kaleyra has no lookup endpoint.
        return Recording(
            provider=self.name,
            profile=self.profile,
            ref=ref,
            id=ref,
            status="unknown",
            downloadable=True,
            raw={},
        )

    def mint(self, recording: Recording) -> DownloadTarget:
        minted_at = datetime.now(UTC)
        response = self._mint_response(recording.id)
        link = self._link_of(response, recording.id)
        return DownloadTarget(
            url=link,
            expires_at=minted_at + timedelta(minutes=self.validity),
            filename=recording.filename,
            media_type=recording.media_type or _media_type_of(link),
        )

    # -- minting -----------------------------------------------------------
    def _mint_response(self, rid: str) -> httpx.Response:
        download = "1" if self.link_mode == "redirect" else "0"
        # The documented curl sends the id both in the query and in the form: do the same.
        # follow_redirects is off in the API client, so a 301 is read here and its Location
        # is never requested with the api-key.
        return self.api.request(
            "POST",
            self._path(),
            params={"id": rid},
            data={"id": rid, "validity": str(self.validity), "download": download},
            headers={"Accept": "application/json"},
            ok=(200, 201, *_REDIRECTS),
            idempotent=True,  # minting a link changes nothing at Kaleyra, so retrying is safe
            what=f"link for recording {rid}",
        )

    def _link_of(self, response: httpx.Response, rid: str) -> str:
        if response.status_code in _REDIRECTS:
            location = response.headers.get("location", "").strip()
            if not location:
                raise ProviderError(
                    f"kaleyra redirected the link request for {rid} without a Location header",
                    http_status=response.status_code,
                )
            link = urljoin(str(response.request.url), location)
        else:
            body = parse_json(response)
            problem = _id_problem(rid, body, _error_text(response, body), response.status_code)
            if problem is not None:
                raise problem
            data = body.get("data") if isinstance(body, dict) else None
            link = data.get("link") if isinstance(data, dict) else None
            if not isinstance(link, str) or not link.strip():
                message = _message(body)
                raise ProviderError(
                    f"kaleyra answered the link request for {rid} without a link"
                    + (f": {message}" if message else ""),
                    hint="try again; if it persists, check the id with Kaleyra support",
                    http_status=response.status_code,
                )
            link = link.strip()
        if not link.lower().startswith(("http://", "https://")):
            raise ProviderError(
                f"kaleyra sent a link for {rid} that is not an http(s) URL", http_status=response.status_code
            )
        return str(link)


def _media_type_of(link: str) -> str | None:
    """Kaleyra serves MP3 or WAV (DOC); the signed S3 link's path says which."""
    try:
        path = urlsplit(link.strip()).path.lower()
    except ValueError:
        return None
    if path.endswith(".mp3"):
        return "audio/mpeg"
    if path.endswith(".wav"):
        return "audio/wav"
    return None


def _columns(headers: list[str]) -> dict[str, str | None]:
    return {
        "start": _find(headers, START_COLUMNS),
        "end": _find(headers, END_COLUMNS),
        "duration": _find(headers, DURATION_COLUMNS),
        "from": _find(headers, FROM_COLUMNS),
        "to": _find(headers, TO_COLUMNS),
        "status": _find(headers, STATUS_COLUMNS),
        "call_id": _find(headers, CALL_ID_COLUMNS),
        "direction": _find(headers, DIRECTION_COLUMNS),
    }


def _message(body: Any) -> str | None:
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    return None


def _error_text(response: httpx.Response, body: Any) -> str:
    """Everything that may name the problem. Kaleyra's documented error bodies are not valid JSON
    (`"data": ["id" : …]`), so when parsing fails the raw text is searched instead."""
    parts: list[str] = []
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str):
            parts.append(message)
        error = body.get("error")
        if isinstance(error, dict):
            parts.extend(str(v) for v in error.values() if isinstance(v, str))
        elif isinstance(error, str):
            parts.append(error)
        return " | ".join(parts)
    try:
        text = response.text
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return ""
    return text[:2000] if "<html" not in text[:200].lower() else ""


def _id_problem(rid: str, body: Any, text: str, status: int) -> RecfetchError | None:
    # The raw text echoes the id back (`"id" : "…"`); an id spelling "invalidid" must not match.
    lowered = (text.replace(rid, " ") if rid else text).lower()
    if re.search(r"\bid\s*expired|\bexpired\s*id\b", lowered):
        return NotFoundError(
            f"kaleyra recording {rid} is older than 6 months and can no longer be fetched (Id Expired)",
            hint="Kaleyra keeps recordings for 6 months; remove old ids from the report or use --since",
            provider="kaleyra",
            http_status=status,
        )
    if re.search(r"\binvalid\s*id\b", lowered):
        return NotFoundError(
            f"kaleyra does not know recording id {rid} (Invalid Id)",
            hint="copy the id exactly from the report's recording-id column",
            provider="kaleyra",
            http_status=status,
        )
    return None
