"""Keeping secrets and presigned URLs out of every sink: messages, logs, tracebacks."""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

_lock = threading.Lock()
_secrets: set[str] = set()

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "x-client-secret",
        "x-client-id",
        "x-auth-token",
        "api-key",
        "x-auth-key",
        "cookie",
        "set-cookie",
    }
)

# The optional marker keeps scrubbing idempotent: an already redacted URL stays as it is.
_URL_RE = re.compile(r"https?://[^\s\"'<>`]+(?:<redacted>)?")
_TRAILING = ").,;:]}"
"""Punctuation that ends a sentence or a bracket after a URL (`(see http://h:8000)`), not part of it."""


def register_secret(value: str | None) -> None:
    """Remember a secret so that `scrub` removes it from any text we emit."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def mask(value: str | None) -> str:
    """`****abcd`: enough to tell two keys apart, never enough to use one."""
    if not value:
        return ""
    return "****" + value[-4:] if len(value) > 8 else "****"


def redact_url(url: str) -> str:
    """The URL without query, fragment or userinfo (presigned signatures live there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # not a number (a typo in base_url): keep what was written, minus userinfo
        host, port = parts.netloc.rpartition("@")[2], None
    if port:
        host = f"{host}:{port}"
    suffix = "?<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + suffix


def scrub(text: str) -> str:
    """Remove registered secrets and URL query strings from ``text``."""
    text = _URL_RE.sub(_redact_match, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


def _redact_match(match: re.Match[str]) -> str:
    url = match.group(0)
    core = url.rstrip(_TRAILING) if not url.endswith("<redacted>") else url
    return redact_url(core) + url[len(core) :]


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("****" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}
