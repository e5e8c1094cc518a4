"""`list`, and the listing half of `pull`: the time window and `--limit`."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from recfetch import timeparse
from recfetch.errors import UsageError
from recfetch.jobs.context import Notifier
from recfetch.providers.base import ListQuery, Recording, iso


def clean_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The provider flags that were actually given."""
    return {k: v for k, v in filters.items() if v not in (None, [], ())}


def build_query(
    *, since: str | None, until: str | None, tz: str | None, limit: int | None, filters: Mapping[str, Any]
) -> ListQuery:
    """The query a listing runs with; a bad date or an empty window is a usage error (exit 2)."""
    timeparse.zone(tz)  # reject a bad --tz even when no date needs it
    start = timeparse.parse_time(since, tz=tz, flag="--since") if since else None
    end = timeparse.parse_time(until, tz=tz, flag="--until") if until else None
    if start and end and start >= end:
        raise UsageError(
            "--since must be before --until", hint=f"the window resolved to {iso(start)} .. {iso(end)}"
        )
    return ListQuery(since=start, until=end, limit=limit, options=clean_filters(filters))


def window_text(query: ListQuery) -> str:
    return f"{iso(query.since) or '-'} .. {iso(query.until) or 'now'}"


class Limited:
    """`--limit N`: stop after N recordings, say so (never a silent cap), and remember it."""

    def __init__(
        self, records: Iterable[Recording], limit: int | None, notify: Notifier, what: str = "recordings"
    ) -> None:
        self.records = records
        self.limit = limit
        self.notify = notify
        self.what = what
        self.truncated = False

    def __iter__(self) -> Iterator[Recording]:
        if self.limit is None:
            yield from self.records
            return
        iterator = iter(self.records)
        yield from itertools.islice(iterator, self.limit)
        if next(iterator, None) is not None:
            self.truncated = True
            self.notify.warn(f"stopped after --limit {self.limit} {self.what}; more are available")
