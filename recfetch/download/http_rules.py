"""The HTTP rules of a download, as pure functions: no I/O, no state, table-testable.

RFC 9110 §14.4 (Content-Range of a 206), §15.5.17 (416 Range Not Satisfiable),
what a status code means for a transfer, and how to tell an error page from media.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "ContentRange",
    "ResumeMismatch",
    "StatusClass",
    "classify_status",
    "content_codings",
    "content_length",
    "error_code",
    "is_error_media_type",
    "looks_like_error_page",
    "media_essence",
    "parse_content_range",
    "range_not_satisfiable",
    "resume_headers",
]

_CONTENT_RANGE = re.compile(r"bytes[ \t]+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE | re.ASCII)
_UNSATISFIED_RANGE = re.compile(r"bytes[ \t]+\*/(\d+)", re.IGNORECASE | re.ASCII)
_XML_CODE = re.compile(rb"<Code>\s*([A-Za-z0-9._-]{1,64})\s*</Code>")
_JSON_CODE = re.compile(r"[A-Za-z0-9._ -]{1,64}")
_ERROR_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"<error>", b'{"')
_ERROR_MEDIA_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "application/json",
        "application/problem+json",
        "application/xml",
        "text/xml",
    }
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REJECTED = frozenset({400, 401, 403})


class ResumeMismatch(ValueError):
    """A resume answer cannot be trusted: the .part must be discarded and the transfer restarted."""


class ContentRange(NamedTuple):
    """A validated ``Content-Range: bytes first-last/total`` of a 206."""

    first: int
    last: int
    total: int


def parse_content_range(
    value: str | None,
    *,
    offset: int,
    expected: int | None = None,
    known_total: int | None = None,
    content_length: int | None = None,
) -> ContentRange:
    """RFC 9110 §14.4: the 206 must be exactly the rest of the object we asked for.

    ``offset`` is where we asked to resume (``Range: bytes=<offset>-``);
    ``expected`` the provider's size, ``known_total`` the total an earlier
    response gave for this .part, ``content_length`` the 206's own length.
    Raises `ResumeMismatch` naming what is wrong.
    """
    text = (value or "").strip()
    match = _CONTENT_RANGE.fullmatch(text)
    if not match or match.group(3) == "*":
        raise ResumeMismatch(f"unusable Content-Range {value!r}")
    first, last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if first != offset:
        raise ResumeMismatch(f"asked to resume at byte {offset} but got bytes from {first}")
    if last < first or last >= total:
        raise ResumeMismatch(f"inconsistent Content-Range {value!r}")
    if expected is not None and total != expected:
        raise ResumeMismatch(f"the object is {total} bytes, expected {expected}")
    if known_total is not None and total != known_total:
        raise ResumeMismatch("the recording changed on the server (new size)")
    if content_length is not None and content_length != last - first + 1:
        raise ResumeMismatch("Content-Length disagrees with Content-Range")
    return ContentRange(first, last, total)


def range_not_satisfiable(value: str | None, *, offset: int, expected: int | None) -> int:
    """RFC 9110 §15.5.17: a 416 to ``bytes=<offset>-`` means the .part is whole when it names
    ``*/<offset>`` (or names nothing and the provider's size is ``offset``).

    Returns the object's total size, or raises `ResumeMismatch`.
    """
    match = _UNSATISFIED_RANGE.fullmatch((value or "").strip())
    total = int(match.group(1)) if match else None
    if offset > 0:
        if total is not None and total == offset and expected in (None, total):
            return total
        if total is None and expected == offset:
            return offset
    raise ResumeMismatch("the storage host cannot resume this partial file (HTTP 416)")


def resume_headers(offset: int, etag: str | None) -> dict[str, str]:
    """Request headers for a transfer that already holds ``offset`` bytes.

    Always the stored bytes, never a re-encoding. RFC 9110 §14.2: ask for the
    rest; §13.1.5: only if the object is unchanged, which needs a strong validator.
    """
    headers = {"Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if etag and not etag.startswith("W/"):
            headers["If-Range"] = etag
    return headers


class StatusClass(enum.Enum):
    """What a storage host's status code means for the transfer."""

    BODY = "body"
    """200 or 206: the bytes follow."""
    UNSATISFIABLE = "unsatisfiable"
    """416: the .part may already be whole (`range_not_satisfiable`)."""
    REDIRECT = "redirect"
    """Follow by hand, so credentials never leave their origin."""
    REJECTED = "rejected"
    """400/401/403: the URL expired or was refused: mint a new one, no retry spent."""
    NOT_FOUND = "not found"
    """404/410: the object is gone; retrying will not help."""
    RETRY = "retry"
    """429/5xx: back off and try again; spends a retry."""
    REFUSED = "refused"
    """Anything else: a permanent refusal."""


def classify_status(status: int) -> StatusClass:
    """The `StatusClass` of a storage host's HTTP status code."""
    if status in (200, 206):
        return StatusClass.BODY
    if status == 416:
        return StatusClass.UNSATISFIABLE
    if status in _REDIRECTS:
        return StatusClass.REDIRECT
    if status in _REJECTED:
        return StatusClass.REJECTED
    if status in (404, 410):
        return StatusClass.NOT_FOUND
    if status == 429 or 500 <= status <= 599:
        return StatusClass.RETRY
    return StatusClass.REFUSED


def content_length(headers: Mapping[str, str]) -> int | None:
    """The Content-Length as an int; None when absent or not a plain decimal number."""
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit() or not value.strip().isascii():
        return None
    return int(value)


def content_codings(value: str | None) -> list[str]:
    """The codings of a Content-Encoding header in the order applied, ``identity`` left out."""
    codings = [c.strip().lower() for c in (value or "").split(",")]
    return [c for c in codings if c and c != "identity"]


def media_essence(content_type: str | None) -> str:
    """``type/subtype`` of a Content-Type in lower case, parameters dropped."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_error_media_type(essence: str) -> bool:
    """An HTML, JSON or XML media type: a page about the recording, never the recording."""
    return essence in _ERROR_MEDIA_TYPES or essence.endswith(("+json", "+xml"))


def looks_like_error_page(head: bytes) -> bool:
    """True when a body's first bytes are an HTML, XML or JSON document."""
    start = head.lstrip(b" \t\r\n\xef\xbb\xbf").lower()
    return start.startswith(_ERROR_PREFIXES)


def error_code(body: bytes) -> str | None:
    """The S3-style ``<Code>`` or a JSON ``code`` of an error body (never the body: it can
    echo the presigned URL)."""
    match = _XML_CODE.search(body)
    if match:
        return match.group(1).decode("ascii")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(parsed, dict):
        for key in ("code", "error", "Code"):
            value = parsed.get(key)
            if isinstance(value, str) and _JSON_CODE.fullmatch(value):
                return value
    return None
