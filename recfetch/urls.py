"""URL rules in one place: who may receive credentials, and which URLs are credentials themselves.

A presigned URL carries its authority in the query (S3 SigV2/SigV4, GCS, CloudFront,
the sandbox's `X-Signature`) or in userinfo: anyone holding it can fetch the file until
it expires. So it is printed only by `url`, and every other sink gets `redact_url` of it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["is_loopback", "is_presigned", "origin_of", "presigned_expiry", "redact_url", "strip_signed"]

Origin = tuple[str, str, int]

_SIGNED_QUERY = re.compile(
    r"(?:^|&)(?:x-amz-[^=&]*|x-goog-[^=&]*|x-signature|x-expires|signature|sig|expires|se|sp|sv|"
    r"token|access_token|policy|key-pair-id|awsaccesskeyid)=",
    re.IGNORECASE,
)
"""Query parameters that sign or authorise a URL (S3, GCS, Azure SAS, CloudFront, bearer-in-URL)."""


def origin_of(url: str) -> Origin:
    """(scheme, host, port): two URLs share credentials only when these match (RFC 6454)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ::1, localhost): never sent via a proxy."""
    host = origin_of(url)[1]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """The URL without query, fragment or userinfo (where signatures live); `?<redacted>` marks a query."""
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


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def is_presigned(value: Any) -> bool:
    """Whether ``value`` is an http(s) URL that authorises whoever holds it (signed query or userinfo).

    An unparsable URL counts as presigned: it is safer hidden than shown.
    """
    if not _is_url(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return True
    return bool(parts.username or parts.password) or bool(_SIGNED_QUERY.search(parts.query))


def strip_signed(value: Any) -> Any:
    """``value`` (any JSON-like structure) with every URL that has a query or userinfo redacted."""
    if isinstance(value, str):
        if value[:1] in ("h", "H") and _is_url(value) and ("?" in value or "@" in value or "#" in value):
            return redact_url(value)
        return value
    if value is None or type(value) in (int, float, bool):
        return value
    if type(value) is dict or isinstance(value, Mapping):
        return {k: strip_signed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_signed(v) for v in value]
    return value


def presigned_expiry(url: str, *, now: datetime | None = None) -> datetime | None:
    """When a presigned URL stops working, read from its query; None when it does not say.

    SigV4: `X-Amz-Date` + `X-Amz-Expires` (without a date: ``now`` + expires). SigV2,
    CloudFront and the sandbox: an epoch `Expires` / `X-Expires`.
    """
    try:
        query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    except ValueError:
        return None
    try:
        if "x-amz-expires" in query:
            start = now or datetime.now(UTC)
            if "x-amz-date" in query:
                try:
                    start = datetime.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                except ValueError:
                    pass
            return start + timedelta(seconds=int(query["x-amz-expires"]))
        epoch = query.get("expires") or query.get("x-expires")
        if epoch:
            return datetime.fromtimestamp(int(float(epoch)), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
