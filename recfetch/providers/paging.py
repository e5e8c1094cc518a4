"""What makes every provider's listing end: a page must add something new to be followed.

A server that sends a fresh cursor with the same page, an empty page that claims more,
or the same cursor twice would otherwise keep a pull (and its lock) alive forever, so
every later cron run would fail to get the lock. Each provider's paging loop reports its
pages to a `ListingGuard`; the guard ends the listing with a ProviderError (exit 8)
naming the provider.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from recfetch.errors import ProviderError

__all__ = ["ListingGuard"]

RECENT_PAGES = 16
"""How many pages back an item counts as "already seen": memory stays flat on a 100,000-item
listing, and a server cycling through up to this many pages is still caught."""


class ListingGuard:
    """Tracks one paged listing: which items and cursors it has seen, and whether the page added any."""

    def __init__(self, provider: str, what: str = "recordings listing", *, sparse: bool = False) -> None:
        self.provider = provider
        self.what = what
        self.sparse = sparse
        """The server filters after paging: an empty page may precede more (a repeated cursor,
        or a page that only repeats earlier items, still ends the listing)."""
        self._empty = True
        self.pages = 0
        self._seen: set[Hashable] = set()
        """Keys of the current page and the `RECENT_PAGES` pages before it (one lookup per item)."""
        self._recent: deque[list[Hashable]] = deque()
        self._page: list[Hashable] = []
        self._cursors: set[Hashable] = set()
        self._fresh = 0

    def is_new(self, key: Hashable) -> bool:
        """Record an item of the current page; False when this or a recent page already had it."""
        self._empty = False
        if key in self._seen:
            return False
        self._seen.add(key)
        self._page.append(key)
        self._fresh += 1
        return True

    def next_page(self, *, more: bool, cursor: Hashable | None = None) -> bool:
        """End of a page: True when the listing should fetch the next one.

        ``more`` is whether the server says there is another page; ``cursor`` is what it
        handed out to fetch it (a token, a key or a page number), None when there is none.
        """
        self.pages += 1
        fresh, self._fresh = self._fresh, 0
        empty, self._empty = self._empty, True
        self._recent.append(self._page)
        self._page = []
        if len(self._recent) > RECENT_PAGES:
            self._seen.difference_update(self._recent.popleft())
        if not more:
            return False
        if fresh == 0 and not (empty and self.sparse):
            raise self._stuck(f"page {self.pages} added nothing new but claims there is more")
        if cursor is not None:
            if cursor in self._cursors:
                raise self._stuck(f"page {self.pages} handed out a cursor it had already sent")
            self._cursors.add(cursor)
        return True

    def _stuck(self, why: str) -> ProviderError:
        return ProviderError(
            f"{self.provider} {self.what} does not end: {why}; stopped instead of looping",
            hint=f"try again later; if it persists, report it to {self.provider}",
            provider=self.provider,
        )
