"""One verifying SSL context for the whole process, shared by the API and storage clients.

Building a context loads the CA bundle (about 17 ms and a few MiB); every httpx
client used to build its own. Honours SSL_CERT_FILE / SSL_CERT_DIR as httpx does.
"""

from __future__ import annotations

import ssl
import threading

from recfetch.errors import TransferError

__all__ = ["refused_certificate", "shared_ssl_context"]

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


def refused_certificate(
    exc: BaseException, host: str, *, provider: str | None = None
) -> TransferError | None:
    """The error to stop with when ``exc`` (or its cause) is a TLS certificate that did not verify.

    It will not verify on a retry either: callers fail at once, naming ``host`` and the fix,
    instead of retrying it as a network error. None for any other failure.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            problem = current.verify_message or current.reason or "certificate verify failed"
            return TransferError(
                f"the TLS certificate of {host} was refused ({problem})",
                hint="if the host uses a private certificate authority, point SSL_CERT_FILE at its CA bundle",
                provider=provider,
            )
        current = current.__cause__ or current.__context__
    return None
