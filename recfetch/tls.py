"""One verifying SSL context for the whole process, shared by the API and storage clients.

Building a context loads the CA bundle (about 17 ms and a few MiB); every httpx
client used to build its own. Honours SSL_CERT_FILE / SSL_CERT_DIR as httpx does.
"""

from __future__ import annotations

import ssl
import threading

__all__ = ["CERTIFICATE_HINT", "certificate_problem", "shared_ssl_context"]

_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """The process's SSL context, built on first use."""
    global _context
    with _lock:
        if _context is None:
            import httpx  # deferred: `recfetch --version` must not import httpx

            _context = httpx.create_ssl_context()
        return _context


def certificate_problem(exc: BaseException) -> str | None:
    """Why the peer's TLS certificate was refused, if that is what ``exc`` (or its cause) is.

    A certificate that does not verify will not verify on a retry: callers fail at once
    and name the fix instead of retrying it as a network error.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or current.reason or "certificate verify failed"
        current = current.__cause__ or current.__context__
    return None


CERTIFICATE_HINT = (
    "if the host uses a private certificate authority, point SSL_CERT_FILE at its CA bundle"
)
