"""Every provider's listing ends (issue 8 #4): a server that never lets it end is exit 8 naming the provider.

The stand-ins are told to misbehave forever; the listing must stop after a page or two.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest

from recfetch.sandbox.httpserver import Fault, Request, Response, json_response

_counter = itertools.count(1)


def _fresh() -> str:
    return f"cursor-{next(_counter)}"


def _bird_same_page(request: Request) -> Response:
    item = {"id": "0e7f5c1a-0000-4000-8000-000000000001", "status": "available", "format": "mp3"}
    return json_response({"results": [item], "nextPageToken": _fresh()})


def _bird_empty_claiming_more(request: Request) -> Response:
    return json_response({"results": [], "nextPageToken": _fresh()})


def _kazoo_same_page(request: Request) -> Response:
    doc = {"id": "202601-" + "a" * 32, "name": "x.mp3", "start": 63900000000, "duration": 5}
    return json_response({"status": "success", "data": [doc], "next_start_key": _fresh()})


def _rtk_same_page(request: Request) -> Response:
    item = {"id": "00000000-0000-4000-8000-000000000001", "status": "UPLOADED"}
    return json_response({"success": True, "data": [item], "paging": {"total_count": 10_000}})


def _kismet_empty_claiming_more(request: Request) -> Response:
    return json_response({"organization_users": [], "pagination": {"current_page": 1, "total_pages": 99}})


def _kismet_array(request: Request) -> Response:
    return json_response([])


LISTING_PATH = {
    "bird": re.compile(r"/recordings$"),
    "kazoo": re.compile(r"/recordings$"),
    "realtimekit": re.compile(r"/recordings$"),
    "kismet": re.compile(r"/organization_users$"),
}

CASES: list[tuple[str, Callable[[Request], Response], str]] = [
    ("bird", _bird_same_page, "does not end"),
    ("bird", _bird_empty_claiming_more, "does not end"),
    ("kazoo", _kazoo_same_page, "does not end"),
    ("realtimekit", _rtk_same_page, "does not end"),
    ("kismet", _kismet_empty_claiming_more, "does not end"),
    ("kismet", _kismet_array, "unexpected response"),  # a listing of the wrong shape: never "no users"
]


@pytest.mark.parametrize(("name", "respond", "says"), CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_a_listing_that_would_never_end_is_exit_8_naming_the_provider(
    cli: Any, sandbox_profile: Any, name: str, respond: Callable[[Request], Response], says: str
) -> None:
    server = sandbox_profile[name].server
    path = LISTING_PATH[name]
    server.add_fault(Fault(lambda r: r.method == "GET" and bool(path.search(r.path)), respond, times=None))
    result = cli(name, "list", "--jsonl", "--since", "30d")
    assert result.exit_code == 8, result.output
    assert says in result.stderr and name in result.stderr.lower()
    assert len(server.requests(method="GET")) < 10  # it stopped; it did not page on and on


def test_the_guard_follows_real_pages_and_stops_a_cycle_a_repeated_cursor_and_an_empty_claim() -> None:
    from recfetch.errors import ProviderError
    from recfetch.providers.paging import RECENT_PAGES, ListingGuard

    guard = ListingGuard("demo")
    for page in range(100):  # a long honest listing: memory stays a window of recent pages
        assert all(guard.is_new(f"{page}-{i}") for i in range(3))
        assert guard.next_page(more=True, cursor=f"c{page}")
    # Only a window of recent pages is remembered (flat memory): an item from long ago counts as new.
    assert guard.is_new("0-0") and not guard.is_new(f"{99 - RECENT_PAGES + 1}-0")

    cycling = ListingGuard("demo")
    with pytest.raises(ProviderError, match="demo recordings listing does not end"):
        for page in range(10):
            for i in range(3):
                cycling.is_new(f"{page % 2}-{i}")  # pages A, B, A, ... with fresh cursors
            cycling.next_page(more=True, cursor=f"c{page}")

    repeated = ListingGuard("demo")
    repeated.is_new("a")
    repeated.next_page(more=True, cursor="same")
    repeated.is_new("b")
    with pytest.raises(ProviderError, match="cursor"):
        repeated.next_page(more=True, cursor="same")

    with pytest.raises(ProviderError, match="nothing new"):
        ListingGuard("demo").next_page(more=True, cursor="x")
    sparse = ListingGuard("demo", sparse=True)
    assert sparse.next_page(more=True, cursor="x")  # a filtered-out page may be empty
    assert not sparse.next_page(more=False)
