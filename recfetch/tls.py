"""One verifying SSL context for the whole process, shared by the API and storage clients.

Building a context loads the CA bundle (about 17 ms and a few MiB); every httpx
client used to build its own. Honours SSL_CERT_FILE / SSL_CERT_DIR as httpx does.
"""

from __future__ import annotations

import ssl
import threading

__all__ = ["shared_ssl_context"]

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
