"""The download engine: .part files, Range resume, just-in-time URL minting, retries, verification.

One `Downloader` is shared by the `--jobs` threads of a run. Each `fetch` moves
one recording from a freshly minted URL into place and reports what happened
as a `FileResult`; per-file failures are returned, never raised.

    engine.py      Downloader and the per-recording loop (mint, attempt, retry, commit)
    receive.py     one request: redirects followed by hand, the body into the .part
    http_rules.py  RFC 9110 rules as pure functions (Content-Range, 416, status classes)
    failures.py    how an attempt ends, and the sentence the user reads for it
    partfile.py    the .part file with its writer and hasher threads, .part.meta
    transport.py   the storage client: credential-free, large socket reads, public APIs only
    report.py      FileResult and the Reporter protocol
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recfetch.download.report import FileResult, NullReporter, Reporter

if TYPE_CHECKING:
    from recfetch.download.engine import Downloader
    from recfetch.download.transport import make_client

__all__ = ["Downloader", "FileResult", "NullReporter", "Reporter", "make_client"]


def __getattr__(name: str) -> Any:
    # The engine (httpx, the storage client) loads on first use, not with `report`: the output
    # layer imports `report`, and `--help` must not pay for an HTTP stack.
    if name == "Downloader":
        from recfetch.download.engine import Downloader

        return Downloader
    if name == "make_client":
        from recfetch.download.transport import make_client

        return make_client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
