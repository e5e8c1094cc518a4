"""The API lane: how many requests one provider's API gets at once, and how fast (SPEC §3).

One `ApiLimiter` per provider client, shared by every thread that lists, mints or deletes:

- at most ``concurrency`` requests in flight (``--api-concurrency``, default 4);
- AIMD on 429: the allowed concurrency halves (at most once per ``cooldown``) and then
  grows back by one request per window of successes, for the rest of the run; a
  Retry-After holds every thread, not only the one that got the 429;
- a known budget (``Budget``: RealtimeKit's Cloudflare API allows 1,200 requests per 300 s,
  then blocks for 5 minutes) is kept with a sliding window, before the provider has to say 429;
- Cloudflare's `Ratelimit: "default";r=REMAINING;t=RESET` header paces the remaining quota
  over the time left once it runs low.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from recfetch.errors import InterruptedError_

__all__ = ["ApiLimiter", "Budget", "parse_ratelimit"]

_RATELIMIT_PARAM = re.compile(r";\s*([rt])\s*=\s*(\d+)")


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``requests`` per ``seconds``, as the provider documents it."""

    requests: int
    seconds: float


def parse_ratelimit(value: str | None) -> tuple[int, float] | None:
    """(remaining, seconds to reset) from an IETF `RateLimit` field: `"default";r=50;t=30`."""
    if not value:
        return None
    params = dict(_RATELIMIT_PARAM.findall(value))
    if "r" not in params or "t" not in params:
        return None
    return int(params["r"]), float(params["t"])


class ApiLimiter:
    """Concurrency and pacing for one provider's API, shared by all threads of a run."""

    def __init__(
        self,
        concurrency: int = 4,
        *,
        budget: Budget | None = None,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = max(1, concurrency)
        self.window = float(self.ceiling)
        """Requests allowed in flight now: the ceiling, less after a 429, growing back."""
        self.budget = budget
        self.cooldown = cooldown
        self.in_flight = 0
        self.peak = 0
        """Most requests ever in flight at once (what a test or a benchmark checks)."""
        self.decreases = 0
        self._clock = clock
        self._cond = threading.Condition()
        self._not_before = 0.0
        self._last_decrease = -math.inf
        self._starts: deque[float] = deque()
        self._pace = 0.0
        self._last_start = -math.inf

    @contextmanager
    def slot(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold one request slot: waits for room and for the pace, then releases on exit."""
        self.acquire(stop)
        try:
            yield
        finally:
            self.release()

    def acquire(self, stop: threading.Event | None = None) -> None:
        with self._cond:
            while True:
                if stop is not None and stop.is_set():
                    raise InterruptedError_("interrupted while waiting for an API slot")
                wait = self._wait_needed()
                if wait <= 0:
                    break
                self._cond.wait(min(wait, 0.5))
            now = self._clock()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._last_start = now
            if self.budget is not None:
                self._starts.append(now)

    def _wait_needed(self) -> float:
        """Seconds before another request may start (0: now); called with the lock held."""
        now = self._clock()
        if self.in_flight >= max(1, math.floor(self.window)):
            return 0.5  # woken by release() as soon as a slot frees
        waits = [self._not_before - now, self._last_start + self._pace - now]
        if self.budget is not None:
            horizon = now - self.budget.seconds
            while self._starts and self._starts[0] <= horizon:
                self._starts.popleft()
            if len(self._starts) >= self.budget.requests:
                waits.append(self._starts[0] + self.budget.seconds - now)
        return max(waits)

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def observe(self, status: int, headers: Mapping[str, str], retry_after: float | None = None) -> None:
        """Learn from a response: 429 cuts the window, success grows it back; headers set the pace."""
        with self._cond:
            now = self._clock()
            if status == 429:
                if now - self._last_decrease >= self.cooldown:
                    self.window = max(1.0, self.window / 2)
                    self._last_decrease = now
                    self.decreases += 1
                if retry_after is not None:
                    self._not_before = max(self._not_before, now + retry_after)
            elif status < 400 and self.window < self.ceiling:
                self.window = min(float(self.ceiling), self.window + 1 / self.window)
            quota = parse_ratelimit(headers.get("ratelimit"))
            if quota is not None:
                remaining, reset = quota
                # Plenty left: no pacing. Running low: spread what is left over the time left,
                # so the run slows down instead of being blocked for the whole window.
                low = remaining <= max(2 * self.ceiling, 10)
                self._pace = reset / max(remaining, 1) if low else 0.0
            self._cond.notify_all()
