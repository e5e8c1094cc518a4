"""The error tree and exit codes: every failure a user can cause maps to one class here.

Each error's ``str()`` is the sentence the user reads; ``hint`` names the fix.
The CLI prints ``error: <message>`` (and ``hint``) on stderr, or one JSON object
in ``--json``/``--jsonl`` mode, and exits with ``exit_code``.

    RecfetchError            1   INTERNAL        handled but unexpected
    ├─ UsageError            2   USAGE           bad flag value, unparseable date, bad REF
    ├─ AuthError             4   AUTH_FAILED     the provider rejected the credentials
    ├─ ConfigError           5   CONFIG          bad TOML, unknown profile, missing credential
    ├─ NotFoundError         6   NOT_FOUND       recording / user / call / meeting not found
    ├─ RateLimitedError      7   RATE_LIMITED    still 429 after honouring Retry-After
    ├─ TransferError         8   NETWORK         network failure or stall after retries
    │  └─ IntegrityError     8   INTEGRITY       size / checksum mismatch, error body instead of media
    ├─ ProviderError         8   PROVIDER_ERROR  provider 5xx after retries, garbage or refused request
    ├─ NothingNewError       9   NOTHING_NEW     nothing new with --fail-if-empty
    ├─ LocalIOError          10  LOCAL_IO        output folder cannot be created or written, disk full
    ├─ LockedError           11  LOCKED          another pull holds the lock
    └─ InterruptedError_     130 INTERRUPTED     SIGINT / SIGTERM

A batch that finished with at least one failure exits 3 (`batch_exit_code`);
no error class stands for it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes (SPEC §5)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    PARTIAL = 3
    AUTH = 4
    CONFIG = 5
    NOT_FOUND = 6
    RATE_LIMITED = 7
    TRANSFER = 8
    NOTHING_NEW = 9
    LOCAL_IO = 10
    LOCKED = 11
    INTERRUPTED = 130


class RecfetchError(Exception):
    """Base of every error recfetch reports to the person at the terminal."""

    exit_code: ExitCode = ExitCode.INTERNAL
    code: str = "INTERNAL"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        provider: str | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.provider = provider
        self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and its fix as one line."""
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_json(self) -> dict[str, object]:
        """The SPEC §4 error object."""
        return {
            "type": "error",
            "code": self.code,
            "message": self.one_line(),
            "provider": self.provider,
            "http_status": self.http_status,
            "retryable": self.retryable,
        }


class UsageError(RecfetchError):
    """A flag or argument the user gave cannot be used."""

    exit_code = ExitCode.USAGE
    code = "USAGE"


class AuthError(RecfetchError):
    """The provider rejected the credentials (shown to the account owner)."""

    exit_code = ExitCode.AUTH
    code = "AUTH_FAILED"


class ConfigError(RecfetchError):
    """The configuration file, profile or a credential is missing or invalid."""

    exit_code = ExitCode.CONFIG
    code = "CONFIG"


class NotFoundError(RecfetchError):
    """A recording, user, call or meeting does not exist or is not accessible."""

    exit_code = ExitCode.NOT_FOUND
    code = "NOT_FOUND"


class RateLimitedError(RecfetchError):
    """The provider kept answering 429 after we honoured Retry-After and retried."""

    exit_code = ExitCode.RATE_LIMITED
    code = "RATE_LIMITED"
    retryable = True


class TransferError(RecfetchError):
    """A network failure or stall that retries did not cure."""

    exit_code = ExitCode.TRANSFER
    code = "NETWORK"
    retryable = True


class ProviderError(RecfetchError):
    """The provider failed (5xx after retries), refused the request, or sent garbage.

    Not a `TransferError`: the network worked, the other side did not. It shares
    exit 8 with transfer failures (SPEC §5).
    """

    exit_code = ExitCode.TRANSFER
    code = "PROVIDER_ERROR"
    retryable = False


class IntegrityError(TransferError):
    """What arrived is not the whole recording (size/checksum mismatch, error body)."""

    code = "INTEGRITY"
    retryable = False


class NothingNewError(RecfetchError):
    """`--fail-if-empty` and nothing new was downloaded."""

    exit_code = ExitCode.NOTHING_NEW
    code = "NOTHING_NEW"


class LocalIOError(RecfetchError):
    """A local folder cannot be created or written, or the disk is full; stops the run."""

    exit_code = ExitCode.LOCAL_IO
    code = "LOCAL_IO"


class LockedError(RecfetchError):
    """Another `pull` for the same profile and provider is running."""

    exit_code = ExitCode.LOCKED
    code = "LOCKED"


class InterruptedError_(RecfetchError):
    """The run was stopped by SIGINT or SIGTERM; .part files are kept."""

    exit_code = ExitCode.INTERRUPTED
    code = "INTERRUPTED"


RUN_LEVEL = (UsageError, AuthError, ConfigError, LocalIOError, LockedError, InterruptedError_)
"""Errors that stop a batch at once instead of being counted against one recording."""


def batch_exit_code(failures: list[RecfetchError], total_attempted: int) -> ExitCode:
    """SPEC §5: 0 when nothing failed, the shared code when every item failed alike, else 3."""
    if not failures:
        return ExitCode.OK
    codes = {f.exit_code for f in failures}
    if len(failures) == total_attempted and len(codes) == 1:
        return next(iter(codes))
    return ExitCode.PARTIAL
