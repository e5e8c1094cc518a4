"""Polling for a condition another process or thread brings about (tests only)."""

from __future__ import annotations

import time
from typing import Any


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    """The first truthy value of ``predicate()``, polled every 20 ms; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")
