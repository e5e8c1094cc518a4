"""Per-user state outside the user's TOML: cached API tokens (and the archive, locks, watermarks)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from recfetch.config import ensure_private_dir


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write a 0600 file atomically (temp file beside it, fsync, rename)."""
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class TokenCache:
    """Session tokens a provider obtained (e.g. Kazoo's auth_token), one 0600 file each.

    The file name is a hash of the identity (profile, base URL, login), so a
    changed credential never picks up another identity's token; the token
    itself is never written to the user's TOML, logs or output.
    """

    def __init__(self, state_dir: Path, provider: str, identity: str) -> None:
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
        self.path = state_dir / "tokens" / f"{provider}-{digest}.json"

    def load(self) -> dict[str, Any] | None:
        """The cached entry, or None when absent, unreadable or expired."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return None
        expires = data.get("expires_at")
        if isinstance(expires, int | float) and expires <= time.time():
            return None
        return data

    def save(self, token: str, *, expires_at: float | None = None, **extra: Any) -> None:
        entry = {"token": token, "expires_at": expires_at, "saved_at": time.time(), **extra}
        _atomic_write(self.path, json.dumps(entry).encode("utf-8"))

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
