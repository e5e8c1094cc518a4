"""Retry timing shared by the API client and the download engine."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from datetime import UTC

MAX_HONOURED_WAIT = 120.0
"""Longest Retry-After we sleep through; a longer one is reported instead."""

BASE_DELAY = 0.5
MAX_DELAY = 30.0


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def delay_for(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; Retry-After is a floor, never shortened."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (2 ** max(0, attempt - 1)))
    jittered = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        return max(retry_after, 0.0) + random.uniform(0, 0.25)
    return jittered


def sleep(seconds: float, stop: threading.Event | None = None) -> bool:
    """Sleep, waking early when ``stop`` is set. Returns False if stopped."""
    if stop is None:
        time.sleep(seconds)
        return True
    return not stop.wait(seconds)

