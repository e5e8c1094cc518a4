"""How one attempt ends when it does not end well, and the sentence the user reads for it.

The engine's loop catches these signals and decides: mint a new URL, restart,
back off and retry, or give up with a `RecfetchError`.
"""

from __future__ import annotations

import errno
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from recfetch import backoff
from recfetch.download.http_rules import StatusClass, classify_status
from recfetch.errors import (
    AuthError,
    LocalIOError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RecfetchError,
    TransferError,
)
from recfetch.tls import refused_certificate
from recfetch.urls import redact_url

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

RetryKind = type[TransferError] | type[RateLimitedError] | type[ProviderError]


class Stopped(Exception):
    """The stop event was set."""


class Fail(Exception):
    """Give up on this recording with ``error``; ``discard`` drops the .part too."""

    def __init__(self, error: RecfetchError, reason: str, *, discard: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason
        self.discard = discard


class Rejected(Exception):
    """The storage host refused this URL (or sent an error page): mint a new one."""

    def __init__(self, detail: str, *, page: bool = False, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.page = page
        self.status = status


class Restart(Exception):
    """The resume cannot be trusted: discard the .part and start from byte 0."""


class Retry(Exception):
    """A transient failure that spends one retry."""

    def __init__(
        self,
        kind: RetryKind,
        detail: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        stall: bool = False,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after
        self.status = status
        self.stall = stall
        """A timeout: these are counted even when the .part grew (`Downloader` bounds them)."""


def status_failure(
    status: int,
    *,
    code: str | None,
    where: str,
    key: str,
    provider: str,
    retry_after: str | None,
) -> Exception:
    """The signal for a storage answer that carries no recording (not 2xx, 3xx or 416)."""
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    kind = classify_status(status)
    if kind is StatusClass.REJECTED:
        return Rejected(f"{where} answered {detail}", status=status)
    if kind is StatusClass.NOT_FOUND:
        return Fail(
            NotFoundError(
                f"the storage host has no such file ({detail}) at {where}",
                hint=f"the recording may have been deleted; check `recfetch {provider} "
                f"show {key}`",
                provider=provider,
                http_status=status,
            ),
            "not found",
        )
    if kind is StatusClass.RETRY:
        wait = backoff.retry_after_seconds(retry_after)
        retry_kind: RetryKind = RateLimitedError if status == 429 else ProviderError
        if wait is not None and wait > backoff.MAX_HONOURED_WAIT:
            return Fail(
                retry_kind(
                    f"{where} answered {detail} and asks to wait {wait:.0f}s",
                    hint="try again later",
                    provider=provider,
                    http_status=status,
                ),
                "rate limited" if status == 429 else "storage host error",
            )
        return Retry(retry_kind, f"{where} answered {detail}", retry_after=wait, status=status)
    return Fail(
        ProviderError(
            f"the storage host refused the download ({detail}) at {where}",
            provider=provider,
            http_status=status,
        ),
        "refused",
    )


def rejected_error(rejected: Rejected, *, provider: str, on_credential_origin: bool) -> RecfetchError:
    """Why fresh URLs kept being refused: the provider's credentials, or the storage host."""
    if on_credential_origin:
        return AuthError(
            f"{provider} rejected the credentials while downloading ({rejected.detail})",
            hint=f"run `recfetch {provider} login`",
            provider=provider,
            http_status=rejected.status,
        )
    return TransferError(
        f"the storage host keeps rejecting freshly minted download URLs ({rejected.detail})",
        hint="check this computer's clock; the provider may be failing",
        provider=provider,
        http_status=rejected.status,
        retryable=False,
    )


def exhausted_error(retry: Retry, *, retries: int, provider: str) -> RecfetchError:
    """The last transient failure, once every retry is spent."""
    tail = f"; gave up after {retries} retr{'y' if retries == 1 else 'ies'}"
    hint = "run the command again later; the partial file is kept and will be resumed"
    if retry.kind is RateLimitedError:
        hint = "wait a few minutes or lower --jobs; the partial file is kept"
    return retry.kind(
        retry.detail + tail,
        hint=hint,
        provider=provider,
        http_status=retry.status,
        retryable=True,
    )


def local_io_error(exc: OSError, path: Path, *, provider: str) -> LocalIOError:
    """A write to the output folder failed: name the folder and the cause (SPEC §5, exit 10)."""
    directory = path.parent
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _NO_SPACE:
        return LocalIOError(
            f"no space left to write {path.name} in {directory} ({reason}): "
            "free some space and run the command again; the partial file is kept "
            "and will be resumed",
            provider=provider,
        )
    return LocalIOError(
        f"could not write {path.name} in {directory} ({reason})",
        hint="check that the folder exists and is writable",
        provider=provider,
    )


def transport_signal(exc: httpx.TransportError, url: str, *, stall_timeout: float) -> Fail | Retry:
    """What a request that failed below HTTP means: retry it, or give up at once."""
    if isinstance(exc, httpx.TimeoutException):
        what = "could not connect to" if isinstance(exc, httpx.ConnectTimeout) else (
            f"no data for {stall_timeout:g}s from"
        )
        return Retry(TransferError, f"{what} {redact_url(url)}", stall=True)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Fail(ProviderError(f"unsupported download URL {redact_url(url)}"), "bad url")
    refused = refused_certificate(exc, urlsplit(url).netloc)
    if refused is not None:
        return Fail(refused, "certificate refused")
    return Retry(TransferError, f"connection to {redact_url(url)} failed ({_describe(exc)})")


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed before the whole body arrived"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.ReadError):
        return "read error"
    return type(exc).__name__
