"""Keeping secrets and presigned URLs out of every sink: messages, logs, tracebacks."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from recfetch.urls import is_presigned, redact_url

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


def forget_secrets() -> None:
    """Forget every registered secret: for a process that runs several commands (tests, embedding),
    so one command's secrets neither leak into nor silently protect the next one's output."""
    with _lock:
        _secrets.clear()


def mask(value: str | None) -> str:
    """`****abcd`: enough to tell two keys apart, never enough to use one."""
    if not value:
        return ""
    return "****" + value[-4:] if len(value) > 8 else "****"


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


_CREDENTIAL_KEY = re.compile(
    r"passw(?:or)?d|passphrase|secret|privatekey|accesskey|apikey|token|authorization|credential|"
    r"signature|cookie|sessionkey|sastoken"
)
"""Key names (lowercased, without `_`, `-`, spaces) whose values are credentials (SPEC §4)."""


def is_credential_key(key: object) -> bool:
    """Whether a key of a provider object names a credential: `password`, `privateKey`, `X-Api-Key`..."""
    return isinstance(key, str) and bool(_CREDENTIAL_KEY.search(re.sub(r"[\W_]", "", key.lower())))


def scrub_raw(value: Any) -> Any:
    """A provider object made safe for any sink: at every depth, values under credential-like keys
    and presigned URLs are removed (SPEC §4). The input is not modified."""
    if isinstance(value, Mapping):
        return {
            k: scrub_raw(v) for k, v in value.items() if not is_credential_key(k) and not is_presigned(v)
        }
    if isinstance(value, list | tuple):
        return [scrub_raw(v) for v in value if not is_presigned(v)]
    return value
