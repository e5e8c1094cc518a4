"""The API lane (SPEC §3, issue 10): per-provider concurrency, AIMD on 429, budgets kept before a 429."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from recfetch.providers import get_provider
from recfetch.providers.base import Provider
from recfetch.providers.limiter import ApiLimiter, Budget, parse_ratelimit
from recfetch.sandbox import Sandbox
from recfetch.sandbox.httpserver import Fault, Request, Response, json_response


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with Sandbox(providers=["bird", "realtimekit"]) as sb:
        yield sb


def make(box: Sandbox, name: str, tmp_path: Path, **kw: Any) -> Provider:
    return get_provider(name)(box[name].profile(), profile="t", state_dir=tmp_path, **kw)


class Gauge:
    """Counts the requests a stand-in is serving at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def slow(self, respond: Callable[[Request], Response], seconds: float = 0.15) -> Callable[..., Response]:
        def handler(request: Request) -> Response:
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            time.sleep(seconds)
            with self.lock:
                self.now -= 1
            return respond(request)

        return handler


def _bird_recording(request: Request) -> Response:
    rid = request.path.rsplit("/", 1)[-1]
    return json_response({"id": rid, "status": "available", "format": "mp3"})


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_at_most_api_concurrency_requests_reach_the_api_at_once(
    box: Sandbox, tmp_path: Path, concurrency: int
) -> None:
    gauge = Gauge()
    bird = box["bird"]
    bird.server.add_fault(
        Fault(lambda r: r.method == "GET" and "/recordings/" in r.path, gauge.slow(_bird_recording), None)
    )
    provider = make(box, "bird", tmp_path, api_concurrency=concurrency)
    ids = bird.ids()[:10]
    with ThreadPoolExecutor(10) as pool:  # ten threads share one provider, as a pull's workers do
        records = list(pool.map(provider.get_recording, ids))
    assert [r.id for r in records] == ids
    assert gauge.peak == concurrency  # never more, and the lane is actually used
    assert provider.api.limiter.peak == concurrency


def test_a_429_halves_the_lane_for_the_rest_of_the_run_and_it_returns_gradually(
    box: Sandbox, tmp_path: Path
) -> None:
    bird = box["bird"]
    provider = make(box, "bird", tmp_path, api_concurrency=4)
    limiter = provider.api.limiter
    rid = bird.ids()[0]
    bird.fail_next(429, retry_after="0", path_contains=f"/recordings/{rid}")
    provider.get_recording(rid)  # the 429, then the retry that succeeds
    assert limiter.decreases == 1
    assert 2.0 <= limiter.window < 3.0  # halved, then one success's worth back
    for _ in range(3):
        provider.get_recording(rid)
    assert 3.0 <= limiter.window < 4.0  # additive: a little per success, not all at once
    for _ in range(20):
        provider.get_recording(rid)
    assert limiter.window == 4.0  # back to --api-concurrency, never above


def test_the_remaining_quota_in_ratelimit_headers_is_paced_so_no_429_comes(
    box: Sandbox, tmp_path: Path
) -> None:
    rtk = box["realtimekit"]
    rtk.rate_quota, rtk.rate_window = 8, 2.0  # Cloudflare's 1,200 per 300 s, shrunk
    provider = make(box, "realtimekit", tmp_path, api_concurrency=4)
    ids = rtk.ids()[:6]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(provider.get_recording, ids * 2))  # 12 requests for a budget of 8 per window
    assert rtk.rate_limited == 0  # paced on `Ratelimit`, never blocked
    assert len(rtk.server.requests(method="GET")) == 12


def test_ratelimit_header_parsing() -> None:
    assert parse_ratelimit('"default";r=50;t=30') == (50, 30.0)
    assert parse_ratelimit('"burst"; r=0; t=7') == (0, 7.0)
    assert parse_ratelimit("garbage") is None
    assert parse_ratelimit(None) is None


def test_a_known_budget_holds_the_next_request_until_the_window_moves() -> None:
    now = [0.0]
    limiter = ApiLimiter(4, budget=Budget(3, 10.0), clock=lambda: now[0])
    for _ in range(3):
        with limiter.slot():
            pass
    done = threading.Event()

    def fourth() -> None:
        with limiter.slot():
            done.set()

    worker = threading.Thread(target=fourth, daemon=True)
    worker.start()
    assert not done.wait(0.3)  # the budget is spent: the fourth request waits
    now[0] = 10.5
    assert done.wait(2.0)  # the window moved on: it goes
    worker.join(2.0)


def test_realtimekit_declares_cloudflares_budget() -> None:
    assert get_provider("realtimekit").api_budget == Budget(1200, 300.0)


# ---------------------------------------------------------------------------
# no wasted round trips: the listing's URL, when it lives long enough (SPEC §3)


def test_bird_pull_uses_the_listings_url_when_it_lives_5_minutes_more_and_mints_otherwise(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    bird = sandbox_profile["bird"]
    ready = bird.ids(status="available")
    short = cli("bird", "pull", "-o", "short", "--no-archive", "--jsonl")
    assert short.exit_code == 0, short.output
    assert bird.mp3_calls == len(ready)  # URLs of under 5 minutes: each file minted through .mp3
    bird.url_ttl = 3600
    long = cli("bird", "pull", "-o", "long", "--no-archive", "--jsonl")
    assert long.exit_code == 0, long.output
    assert long.jsonl()[-1]["downloaded"] == len(ready)
    assert bird.mp3_calls == len(ready)  # not one more API request: the listing's URLs served them
    for rid in ready:
        assert any(p.read_bytes() == bird.content(rid) for p in (tmp_path / "long").rglob(f"*{rid}*"))


def test_a_rejected_listing_url_is_reminted_through_the_api_once(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    bird = sandbox_profile["bird"]
    bird.url_ttl = 3600
    sandbox_profile.storage.fail_next(403, times=1)  # the storage host refuses the listing's URL
    result = cli("bird", "pull", "-o", "out", "--no-archive", "--jsonl", "-j", "1", "--max-files", "1")
    assert result.exit_code == 0, result.output
    event = next(e for e in result.jsonl() if e.get("outcome") == "downloaded")
    assert Path(event["path"]).read_bytes() == bird.content(event["ref"])
    assert bird.mp3_calls == 1  # the one re-mint


def test_kismets_audited_show_endpoint_is_called_exactly_once_per_downloaded_file(
    cli: Any, sandbox_profile: Sandbox
) -> None:
    kismet = sandbox_profile["kismet"]
    result = cli("kismet", "pull", "-o", "out", "--no-archive", "--jsonl")
    assert result.exit_code == 0, result.output
    downloaded = [e["ref"] for e in result.jsonl() if e.get("outcome") == "downloaded"]
    assert downloaded
    assert kismet.audit_counts == dict.fromkeys(downloaded, 1)


def test_api_concurrency_reaches_the_provider_from_the_command_line(
    cli: Any, sandbox_profile: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    original = ApiLimiter.__init__

    def spy(self: ApiLimiter, concurrency: int = 4, **kw: Any) -> None:
        seen.append(concurrency)
        original(self, concurrency, **kw)

    monkeypatch.setattr(ApiLimiter, "__init__", spy)
    result = cli("bird", "pull", "-o", "out", "--no-archive", "--api-concurrency", "2", "--max-files", "1")
    assert result.exit_code == 0, result.output
    assert seen == [2]
    assert cli("bird", "pull", "--api-concurrency", "0").exit_code == 2  # at least one


def test_loopback_api_traffic_never_goes_through_the_callers_proxy(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    provider = make(box, "bird", tmp_path)
    rid = box["bird"].ids()[0]
    assert provider.get_recording(rid).id == rid
