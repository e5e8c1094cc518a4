"""Kazoo end to end: the real CLI against the Kazoo stand-in on 127.0.0.1."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from recfetch import config
from recfetch.providers.kazoo import GREGORIAN_OFFSET, MAX_RANGE
from recfetch.sandbox import Sandbox
from recfetch.sandbox import kazoo as standin
from recfetch.sandbox.httpserver import Fault, Response
from tests.conftest import REPO, assert_no_credentials_at_storage


@pytest.fixture
def kz(sandbox_profile: Sandbox) -> Any:
    """The Kazoo stand-in, with the sandbox profile active (api_key login)."""
    return sandbox_profile["kazoo"]


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Back-off waits are recorded instead of slept, so retry tests take no wall time."""
    waits: list[float] = []

    def fake_sleep(seconds: float, stop: Any = None) -> bool:
        waits.append(seconds)
        return True

    monkeypatch.setattr("recfetch.backoff.sleep", fake_sleep)
    return waits


def _use_profile(config_file: Path, table: dict[str, str]) -> None:
    data = config.load(config_file)
    data["profiles"]["sandbox"]["kazoo"] = table
    config.save(config_file, data)


def _listing_requests(kz: Any) -> list[Any]:
    return [r for r in kz.server.requests("/recordings", method="GET") if r.path.endswith("/recordings")]


def _media_requests(kz: Any, ref: str | None = None) -> list[Any]:
    return [
        r
        for r in kz.server.requests(ref or "/recordings/", method="GET")
        if "audio/" in r.headers.get("accept", "")
    ]


def _downloadable(kz: Any) -> str:
    return kz.ids(downloadable=True)[0]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------
# auth: token cache, reuse, renewal


def test_token_is_reused_across_two_invocations(kz: Any, cli: Any) -> None:
    first = cli("kazoo", "list", "--jsonl")
    second = cli("kazoo", "list", "--jsonl")

    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    assert kz.auth_calls == 1
    tokens = {r.headers["x-auth-token"] for r in _listing_requests(kz)}
    assert tokens == set(kz.issued_tokens())


def test_expired_token_is_renewed_once_and_the_listing_succeeds(kz: Any, cli: Any) -> None:
    assert cli("kazoo", "list", "--jsonl").exit_code == 0
    kz.expire_tokens()

    again = cli("kazoo", "list", "--jsonl")

    assert again.exit_code == 0, again.stderr
    assert kz.auth_calls == 2
    assert len(again.jsonl()) == len(cli("kazoo", "list", "--jsonl").jsonl())
    assert kz.auth_calls == 2  # the renewed token was cached and reused


def test_token_rejected_even_after_renewal_exits_4_without_looping(kz: Any, cli: Any) -> None:
    kz.fail_next(401, times=100, path_contains="/recordings")

    result = cli("kazoo", "list")

    assert result.exit_code == 4
    assert "rejected the auth token even after a fresh login" in result.stderr
    assert kz.auth_calls == 2  # the first login and exactly one renewal
    assert len(_listing_requests(kz)) == 2


def test_token_file_is_private_in_the_state_dir_and_never_in_the_toml(
    kz: Any, cli: Any, isolated: Path, config_file: Path
) -> None:
    assert cli("kazoo", "list", "--jsonl").exit_code == 0

    files = list((isolated / "state" / "tokens").glob("kazoo-*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    (token,) = kz.issued_tokens()
    assert json.loads(files[0].read_text())["token"] == token
    assert token not in config_file.read_text()


def test_changed_api_key_never_reuses_the_other_identitys_token(
    kz: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("kazoo", "list", "--jsonl").exit_code == 0
    monkeypatch.setenv("RECFETCH_KAZOO_API_KEY", "0" * 64)

    result = cli("kazoo", "list", "--jsonl")

    assert result.exit_code == 4
    assert "kazoo rejected the api_key (invalid_credentials)" in result.stderr
    assert kz.auth_calls == 2


def test_username_password_login_sends_md5_credentials_and_accepts_a_v2_base_url(
    kz: Any, cli: Any, config_file: Path
) -> None:
    _use_profile(config_file, kz.user_profile())  # base_url ends in /v2

    result = cli("kazoo", "list", "--jsonl")

    assert result.exit_code == 0, result.stderr
    (auth,) = kz.server.requests("/user_auth", method="PUT")
    expected = hashlib.md5(f"{standin.USERNAME.lower()}:{standin.PASSWORD}".encode()).hexdigest()
    assert json.loads(auth.body) == {
        "data": {"credentials": expected, "account_name": standin.ACCOUNT_NAME, "method": "md5"}
    }
    assert all(r.path.startswith("/v2/") and "/v2/v2" not in r.path for r in kz.server.requests())
    assert result.jsonl()


def test_wrong_password_exits_4_naming_the_login(
    kz: Any, cli: Any, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_profile(config_file, kz.user_profile())
    monkeypatch.setenv("RECFETCH_KAZOO_PASSWORD", "not-the-password")

    result = cli("kazoo", "list")

    assert result.exit_code == 4
    assert "rejected the username, password or account_name" in result.stderr
    assert "not-the-password" not in result.output


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"account_id": standin.ACCOUNT_ID, "api_key": "k" * 64}, "base_url is not set"),
        ({"base_url": "http://127.0.0.1:9", "api_key": "k" * 64}, "account_id is not set"),
        (
            {"base_url": "http://127.0.0.1:9", "account_id": "acme", "api_key": "k" * 64},
            "is not a Kazoo account id (32 hex characters)",
        ),
        ({"base_url": "http://127.0.0.1:9", "account_id": standin.ACCOUNT_ID}, "set api_key, or username"),
        (
            {"base_url": "http://127.0.0.1:9", "account_id": standin.ACCOUNT_ID, "username": "bob"},
            "password and account_name not set",
        ),
    ],
)
def test_incomplete_settings_exit_5_naming_what_is_missing(
    kz: Any, cli: Any, config_file: Path, table: dict[str, str], message: str
) -> None:
    _use_profile(config_file, table)

    result = cli("kazoo", "list")

    assert result.exit_code == 5
    assert message in result.stderr
    assert kz.server.requests() == []


def test_login_verifies_then_saves_and_refuses_a_wrong_key(kz: Any, cli: Any, config_file: Path) -> None:
    args = ("--profile", "work", "kazoo", "login", "--base-url", kz.server.url + "/v2/")
    args += ("--account-id", standin.ACCOUNT_ID, "--api-key-stdin")

    wrong = cli(*args, input="f" * 64 + "\n")
    assert wrong.exit_code == 4
    assert not config_file.exists() or "work" not in config.load(config_file).get("profiles", {})

    right = cli(*args, input=standin.API_KEY + "\n")
    assert right.exit_code == 0, right.stderr
    saved = config.load(config_file)["profiles"]["work"]["kazoo"]
    assert saved["api_key"] == standin.API_KEY
    assert standin.API_KEY not in right.output
    assert cli("--profile", "work", "kazoo", "list", "--jsonl").exit_code == 0


@pytest.mark.parametrize("key", ["short", "f" * 63])
def test_a_malformed_api_key_is_a_rejected_credential_naming_api_key(
    kz: Any, cli: Any, config_file: Path, key: str
) -> None:
    args = ("--profile", "work", "kazoo", "login", "--base-url", kz.server.url)
    result = cli(*args, "--account-id", standin.ACCOUNT_ID, "--api-key-stdin", input=key + "\n")

    assert result.exit_code == 4, result.stderr
    assert "api_key" in result.stderr and "validation error" not in result.stderr
    assert key not in result.stderr
    assert not config_file.exists() or "work" not in config.load(config_file).get("profiles", {})


# ---------------------------------------------------------------------------
# listing: windows, paging, filters


def test_a_100_day_since_is_walked_in_legal_windows_newest_first(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "list", "--since", "100d", "--jsonl")

    assert result.exit_code == 0, result.stderr
    windows = list(dict.fromkeys(kz.listing_windows()))
    assert len(windows) == 4  # 100 days in 31-day windows
    assert all(0 <= to - frm <= MAX_RANGE for frm, to in windows)
    assert all(to > 63_000_000_000 for _, to in windows)  # Gregorian, not unix seconds
    for newer, older in itertools.pairwise(windows):
        assert older[1] == newer[0] - 1  # contiguous and newest first
    now_g = standin.gregorian_now()
    assert abs(windows[0][1] - now_g) < 30
    assert abs(windows[-1][0] - (now_g - 100 * 86_400)) < 30
    refs = [r["ref"] for r in result.jsonl()]
    assert len(refs) == len(set(refs))
    expected = {i for i in kz.ids() if kz.doc(i)["start"] + kz.doc(i)["duration"] >= windows[-1][0]}
    assert set(refs) == expected


def test_without_since_one_31_day_window_is_listed(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "list", "--jsonl")

    assert result.exit_code == 0
    (window,) = set(kz.listing_windows())
    assert window[1] - window[0] == 31 * 86_400
    assert result.jsonl()


def test_until_moves_the_newest_window_back(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "list", "--since", "60d", "--until", "20d", "--jsonl")

    assert result.exit_code == 0, result.stderr
    windows = list(dict.fromkeys(kz.listing_windows()))
    now_g = standin.gregorian_now()
    assert abs(windows[0][1] - (now_g - 20 * 86_400)) < 30
    assert abs(windows[-1][0] - (now_g - 60 * 86_400)) < 30
    assert len(windows) == 2
    starts = [kz.doc(r["ref"])["start"] for r in result.jsonl()]
    assert starts and all(now_g - 61 * 86_400 < s < now_g - 20 * 86_400 for s in starts)


def test_listing_pages_with_start_key_until_next_start_key_is_absent(kz: Any, cli: Any) -> None:
    kz.page_cap = 2

    result = cli("kazoo", "list", "--jsonl")

    assert result.exit_code == 0
    listed = result.jsonl()
    requests = _listing_requests(kz)
    assert len(requests) == (len(listed) + 1) // 2 >= 3
    assert "start_key" not in requests[0].query
    assert all("start_key" in r.query for r in requests[1:])
    assert {r.query["created_from"][0] for r in requests} == {requests[0].query["created_from"][0]}
    assert [r["ref"] for r in listed] == sorted(
        (r["ref"] for r in listed), key=lambda ref: -kz.doc(ref)["start"]
    )


def test_records_carry_the_spec_fields_from_the_kazoo_doc(kz: Any, cli: Any) -> None:
    records = {r["ref"]: r for r in cli("kazoo", "list", "--since", "100d", "--jsonl").jsonl()}
    ref = _downloadable(kz)
    doc = kz.doc(ref)
    record = records[ref]

    assert record["id"] == ref and record["provider"] == "kazoo" and record["profile"] == "sandbox"
    assert record["status"] == "ready" and record["downloadable"] is True
    start_unix = doc["start"] - GREGORIAN_OFFSET
    assert record["started_at"] == _iso(start_unix)
    assert record["duration_s"] == doc["duration_ms"] / 1000
    assert (record["call_id"], record["direction"]) == (doc["call_id"], doc["direction"])
    assert (record["from"], record["to"]) == (doc["from"], doc["to"])  # SIP user@realm, kept as given
    assert record["media_type"] == doc["content_type"]
    assert record["filename"] == doc.get("name")
    assert record["raw"]["_read_only"] == {"content_types": [doc["content_type"]]}
    for ref in kz.ids(downloadable=False):
        if ref in records:
            assert records[ref]["downloadable"] is False and records[ref]["status"] == "failed"


def _iso(unix: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_raw_drops_an_external_storage_url_that_carries_a_signature(kz: Any, cli: Any) -> None:
    signed = kz.add_recording(start=kz.now - 3600, external_url="signed")
    plain = kz.add_recording(start=kz.now - 7200, external_url="plain")

    result = cli("kazoo", "list", "--jsonl")

    records = {r["ref"]: r for r in result.jsonl()}
    assert "url" not in records[signed]["raw"]
    assert records[plain]["raw"]["url"] == kz.doc(plain)["url"]
    assert "X-Amz-Signature" not in result.stdout


def test_user_flag_lists_that_users_recordings_on_the_user_path(kz: Any, cli: Any) -> None:
    user = standin.USERS[1]

    result = cli("kazoo", "list", "--since", "100d", "--user", user, "--jsonl")

    assert result.exit_code == 0, result.stderr
    assert result.jsonl()
    assert {r["raw"]["owner_id"] for r in result.jsonl()} == {user}
    assert all(f"/users/{user}/recordings" in r.path for r in _listing_requests(kz))


def test_filters_reach_the_wire_as_filter_key_and_apply(kz: Any, cli: Any) -> None:
    result = cli(
        "kazoo", "list", "--since", "100d", "--jsonl",
        "--filter", "direction=inbound", "--filter", "custom_channel_vars.queue=sales",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    for request in _listing_requests(kz):
        assert request.query["filter_direction"] == ["inbound"]
        assert request.query["filter_custom_channel_vars.queue"] == ["sales"]
    records = result.jsonl()
    assert records
    assert all(
        r["direction"] == "inbound" and r["raw"]["custom_channel_vars"]["queue"] == "sales" for r in records
    )


def test_limit_stops_early_and_says_so(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "list", "--since", "100d", "--limit", "3", "--jsonl")

    assert result.exit_code == 0
    assert len(result.jsonl()) == 3
    assert "stopped after --limit 3" in result.stderr


def test_months_without_a_database_are_simply_empty(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "list", "--since", "400d", "--jsonl")

    assert result.exit_code == 0, result.stderr
    assert len(result.jsonl()) == len(kz.ids())
    assert len(set(kz.listing_windows())) == 13


def test_a_server_with_a_smaller_maximum_range_is_walked_in_its_windows(kz: Any, cli: Any) -> None:
    kz.max_range = 10 * 86_400

    result = cli("kazoo", "list", "--since", "60d", "--jsonl")

    assert result.exit_code == 0, result.stderr
    accepted = [w for w in dict.fromkeys(kz.listing_windows()) if w[1] - w[0] <= kz.max_range]
    assert len(accepted) == 6
    assert result.jsonl()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--filter", "direction"), "--filter 'direction' is not KEY=VALUE"),
        (("--filter", "=inbound"), "is not KEY=VALUE"),
        (("--user", "alice"), "--user 'alice' is not a Kazoo user id"),
        (("--since", "yesterday-ish"), "cannot read --since"),
    ],
)
def test_bad_list_flags_exit_2_with_the_fix(kz: Any, cli: Any, args: tuple[str, ...], message: str) -> None:
    result = cli("kazoo", "list", *args)

    assert result.exit_code == 2
    assert message in result.stderr
    assert _listing_requests(kz) == []


# ---------------------------------------------------------------------------
# error envelopes -> exit codes


def test_unknown_user_exits_6(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "list", "--user", "f" * 32)

    assert result.exit_code == 6
    assert f"kazoo user {'f' * 32} not found" in result.stderr


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("202601-" + "0" * 32, "not found (bad identifier)"),  # well-formed, unknown: data.cause
        ("nothex", "recording nothex not found (bad identifier)"),  # no YYYYMM- prefix: data is a list
        ("199001-" + "0" * 32, "its month database does not exist"),  # 503 datastore_missing
    ],
)
def test_show_of_a_missing_recording_exits_6(kz: Any, cli: Any, ref: str, message: str) -> None:
    if ref.startswith("202601"):
        ref = kz.ids()[0][:7] + "0" * 32
    result = cli("kazoo", "show", ref)

    assert result.exit_code == 6
    assert message in result.stderr


@pytest.mark.parametrize("verb", ["show", "download", "delete", "tag"])
def test_an_id_whose_month_database_is_missing_exits_6_at_once(kz: Any, cli: Any, verb: str) -> None:
    ref = "199001-" + "0" * 32
    extra = {"download": ("-o", "out"), "delete": ("--yes",), "tag": ("a=1",)}.get(verb, ())

    result = cli("kazoo", verb, ref, *extra)

    assert result.exit_code == 6
    assert "its month database does not exist" in result.output
    assert len(kz.server.requests(ref)) == 1  # an answer, not an outage: never retried


def test_a_ref_that_is_not_an_id_exits_2_before_any_request(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "show", "../../accounts")

    assert result.exit_code == 2
    assert "is not a Kazoo recording id" in result.stderr
    assert kz.server.requests("/recordings") == []


def test_forbidden_exits_4_naming_the_account(kz: Any, cli: Any) -> None:
    kz.fail_next(403, path_contains="/recordings")

    result = cli("kazoo", "list", "--json")

    assert result.exit_code == 4
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "AUTH_FAILED" and error["http_status"] == 403
    assert standin.ACCOUNT_ID in error["message"]


def test_window_validation_error_exits_2_and_other_validation_errors_exit_8(kz: Any, cli: Any) -> None:
    window = {"created_from": {"date_range": {"message": "created_to 9 is prior to created_from 10"}}}
    kz.fail_next(400, path_contains="/recordings", data=window)
    by_window = cli("kazoo", "list")
    kz.fail_next(400, path_contains="/recordings/", data={"name": {"type": {"message": "bad doc"}}})
    by_server = cli("kazoo", "show", _downloadable(kz))

    assert by_window.exit_code == 2
    assert "kazoo rejected the time window: created_to 9 is prior to created_from 10" in by_window.stderr
    assert by_server.exit_code == 8
    assert "validation error): bad doc" in by_server.stderr


def test_rate_limit_is_retried_after_at_least_a_second_then_succeeds(
    kz: Any, cli: Any, no_sleep: list[float]
) -> None:
    kz.fail_next(429, times=2, path_contains="/recordings")

    result = cli("kazoo", "list", "--jsonl")

    assert result.exit_code == 0, result.stderr
    assert len(no_sleep) == 2 and all(wait >= 1.0 for wait in no_sleep)
    assert result.jsonl()


def test_rate_limit_that_never_ends_exits_7(kz: Any, cli: Any, no_sleep: list[float]) -> None:
    kz.fail_next(429, times=100, path_contains="/recordings")

    result = cli("kazoo", "list")

    assert result.exit_code == 7
    assert "too_many_requests" in result.stderr
    assert len(_listing_requests(kz)) == 6  # the first try and 5 retries


def test_a_non_json_answer_is_a_provider_error_not_a_crash(kz: Any, cli: Any) -> None:
    page = Response(200, b"<html><body>proxy login</body></html>", {"Content-Type": "text/html"})
    kz.server.add_fault(Fault(lambda r: r.path.endswith("/recordings"), page))

    result = cli("kazoo", "list")

    assert result.exit_code == 8
    assert "not JSON" in result.stderr


def test_garbage_listing_data_is_a_provider_error(kz: Any, cli: Any) -> None:
    body = Response(200, json.dumps({"data": "oops", "status": "success"}).encode(), {})
    kz.server.add_fault(Fault(lambda r: r.path.endswith("/recordings"), body))

    result = cli("kazoo", "list")

    assert result.exit_code == 8
    assert "data is not a list" in result.stderr


# ---------------------------------------------------------------------------
# show, url


def test_show_knows_whether_a_recording_has_media(kz: Any, cli: Any) -> None:
    with_media = cli("kazoo", "show", _downloadable(kz), "--json").json()
    without = cli("kazoo", "show", kz.ids(downloadable=False)[0], "--json").json()

    assert (with_media["status"], with_media["downloadable"]) == ("ready", True)
    assert (without["status"], without["downloadable"]) == ("failed", False)


def test_url_exits_2_explaining_why_and_prints_no_token(kz: Any, cli: Any) -> None:
    ref = _downloadable(kz)

    result = cli("kazoo", "url", ref)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "only to requests carrying your credentials" in result.stderr
    assert f"use `recfetch kazoo download {ref}`" in result.stderr
    for secret in [*kz.issued_tokens(), standin.API_KEY]:
        assert secret not in result.output


# ---------------------------------------------------------------------------
# downloads


def test_download_is_byte_exact_and_asks_the_api_for_audio_mpeg(
    kz: Any, sandbox_profile: Sandbox, cli: Any, tmp_path: Path
) -> None:
    refs = kz.ids(downloadable=True)[:3]
    out = tmp_path / "out"

    result = cli("kazoo", "download", *refs, "-o", str(out), "--jsonl")

    assert result.exit_code == 0, result.stderr
    events = [e for e in result.jsonl() if e["type"] == "file"]
    assert {e["outcome"] for e in events} == {"downloaded"}
    for event in events:
        data = Path(event["path"]).read_bytes()
        assert data == kz.media(event["ref"])
        assert event["sha256"] == kz.sha256(event["ref"])
        assert stat.S_IMODE(Path(event["path"]).stat().st_mode) == 0o600
    media = _media_requests(kz)
    assert len(media) == 3
    assert all(r.headers["accept"] == "audio/mpeg" and r.headers["x-auth-token"] for r in media)
    assert_no_credentials_at_storage(sandbox_profile)
    assert sandbox_profile.storage.server.requests() == []  # Kazoo streams media itself


def test_wav_recordings_keep_their_type_and_extension(kz: Any, cli: Any, tmp_path: Path) -> None:
    ref = kz.add_recording(start=kz.now - 600, fmt="wav")

    result = cli("kazoo", "download", ref, "-o", str(tmp_path), "--jsonl")

    assert result.exit_code == 0, result.stderr
    path = Path(result.jsonl()[0]["path"])
    assert path.suffix == ".wav"
    assert path.read_bytes() == kz.media(ref)


def test_download_of_a_recording_without_media_is_skipped_with_the_reason(
    kz: Any, cli: Any, tmp_path: Path
) -> None:
    ref = kz.ids(downloadable=False)[0]

    result = cli("kazoo", "download", ref, "-o", str(tmp_path), "--jsonl")

    assert result.exit_code == 0
    (event,) = [e for e in result.jsonl() if e["type"] == "file"]
    assert event["outcome"] == "skipped" and "no attachment" in event["reason"]
    assert _media_requests(kz) == []


def test_media_404_bad_identifier_fails_that_file_with_exit_6(kz: Any, cli: Any, tmp_path: Path) -> None:
    ref = _downloadable(kz)
    kz.server.add_fault(
        Fault(
            lambda r: "audio/" in r.headers.get("accept", ""),
            lambda r: kz._error(404, "bad_identifier", {"details": ref, "message": "bad identifier"}),
        )
    )

    result = cli("kazoo", "download", ref, "-o", str(tmp_path))

    assert result.exit_code == 6
    assert not list(tmp_path.glob("*.mp3"))


def test_dropped_media_transfer_resumes_with_a_206_from_where_it_stopped(
    kz: Any, cli: Any, tmp_path: Path, no_sleep: list[float]
) -> None:
    ref = max(kz.ids(downloadable=True), key=lambda i: len(kz.media(i)))
    kz.drop_next_media(after_bytes=5000)

    result = cli("kazoo", "download", ref, "-o", str(tmp_path), "--jsonl")

    assert result.exit_code == 0, result.stderr
    first, second = _media_requests(kz, ref)
    assert "range" not in first.headers
    assert second.headers["range"] == "bytes=5000-"
    assert kz.ranges_served == [(ref, 5000)]  # Kazoo (api_resource.erl) answered 206 with the rest
    path = Path(result.jsonl()[0]["path"])
    assert path.read_bytes() == kz.media(ref)
    assert result.jsonl()[0]["sha256"] == kz.sha256(ref)
    assert not list(tmp_path.glob("*.part*"))


def test_a_server_that_ignores_range_restarts_the_file_cleanly(
    kz: Any, cli: Any, tmp_path: Path, no_sleep: list[float]
) -> None:
    ref = max(kz.ids(downloadable=True), key=lambda i: len(kz.media(i)))
    kz.drop_next_media(after_bytes=5000)
    kz.ignore_range_next()  # a proxy in front of Kazoo that drops Range: 200 and the whole file

    result = cli("kazoo", "download", ref, "-o", str(tmp_path), "--jsonl")

    assert result.exit_code == 0, result.stderr
    assert _media_requests(kz, ref)[1].headers["range"] == "bytes=5000-"
    assert kz.ranges_served == []
    assert Path(result.jsonl()[0]["path"]).read_bytes() == kz.media(ref)  # not 5000 bytes + whole file
    assert not list(tmp_path.glob("*.part*"))


def test_part_file_from_an_interrupted_run_is_resumed_by_the_next_run(
    kz: Any, cli: Any, tmp_path: Path, no_sleep: list[float]
) -> None:
    ref = max(kz.ids(downloadable=True), key=lambda i: len(kz.media(i)))
    kz.drop_next_media(after_bytes=7000)
    failed = cli("kazoo", "download", ref, "-o", str(tmp_path), "--retries", "0")
    assert failed.exit_code == 8
    (part,) = tmp_path.glob("*.part")
    assert part.stat().st_size == 7000

    again = cli("kazoo", "download", ref, "-o", str(tmp_path), "--jsonl")

    assert again.exit_code == 0, again.stderr
    path = Path(again.jsonl()[0]["path"])
    assert path.read_bytes() == kz.media(ref)
    assert _media_requests(kz, ref)[-1].headers["range"] == "bytes=7000-"
    assert kz.ranges_served == [(ref, 7000)]


def test_token_that_dies_mid_run_is_renewed_by_reminting(kz: Any, cli: Any, tmp_path: Path) -> None:
    ref = _downloadable(kz)
    assert cli("kazoo", "show", ref).exit_code == 0  # a cached token now exists
    kz.expire_tokens_at_next_media()

    result = cli("kazoo", "download", ref, "-o", str(tmp_path), "--jsonl")

    assert result.exit_code == 0, result.stderr
    assert kz.auth_calls == 2
    tokens = [r.headers["x-auth-token"] for r in _media_requests(kz, ref)]
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert Path(result.jsonl()[0]["path"]).read_bytes() == kz.media(ref)


def test_parallel_downloads_with_a_dead_token_log_in_again_only_once(
    kz: Any, cli: Any, tmp_path: Path
) -> None:
    kz.expire_tokens_at_next_media()  # the session dies after the listing, under four download threads

    result = cli("kazoo", "pull", "--since", "120d", "-o", str(tmp_path), "-j", "4", "--jsonl")

    assert result.exit_code == 0, result.stderr
    assert kz.auth_calls == 2  # one renewal shared by every thread, no stampede
    events = [e for e in result.jsonl() if e["type"] == "file"]
    downloaded = [e for e in events if e["outcome"] == "downloaded"]
    assert {e["ref"] for e in downloaded} == set(kz.ids(downloadable=True))
    assert all(Path(e["path"]).read_bytes() == kz.media(e["ref"]) for e in downloaded)
    rejected = [r for r in _media_requests(kz) if r.headers["x-auth-token"] == kz.issued_tokens()[0]]
    assert len(rejected) >= 1


def test_pull_downloads_every_recording_with_media_and_skips_the_rest(
    kz: Any, cli: Any, tmp_path: Path
) -> None:
    result = cli("kazoo", "pull", "--since", "120d", "-o", str(tmp_path), "--jsonl")

    assert result.exit_code == 0, result.stderr
    events = [e for e in result.jsonl() if e["type"] == "file"]
    downloaded = {e["ref"] for e in events if e["outcome"] == "downloaded"}
    skipped = {e["ref"]: e["reason"] for e in events if e["outcome"] == "skipped"}
    assert downloaded == set(kz.ids(downloadable=True))
    assert set(skipped) == set(kz.ids(downloadable=False))
    assert all("no attachment" in reason for reason in skipped.values())
    for event in events:
        if event["outcome"] == "downloaded":
            assert Path(event["path"]).read_bytes() == kz.media(event["ref"])


def test_jq_round_trip_downloads_every_listed_recording(
    kz: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "jq"
    python = f'"{sys.executable}" -m recfetch'
    pipeline = f"{python} kazoo list --since 100d --jsonl | jq -r .ref | {python} kazoo download -o '{out}' -"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    proc = subprocess.run(
        pipeline, shell=True, capture_output=True, text=True, env=env, timeout=60, check=False
    )

    assert proc.returncode == 0, proc.stderr
    listed = [i for i in kz.ids() if kz.doc(i)["start"] >= standin.gregorian_now() - 100 * 86_400 + 900]
    with_media = [i for i in listed if i in set(kz.ids(downloadable=True))]
    files = _files(out)
    assert len(files) >= len(with_media) > 5
    contents = set(files.values())
    assert all(kz.media(i) in contents for i in with_media)
    assert "no attachment" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------
# tag, delete


def test_tag_patches_user_metadata_with_typed_values_on_kazoo_5(kz: Any, cli: Any) -> None:
    ref = _downloadable(kz)

    result = cli(
        "kazoo", "tag", ref, "important=true", "count=3", "score=2.5", "note=call back", "tags.team=sales",
        "zip=007", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    expected = {
        "important": True,
        "count": 3,
        "score": 2.5,
        "note": "call back",
        "tags": {"team": "sales"},
        "zip": "007",
    }
    (patch,) = kz.server.requests(ref, method="PATCH")
    assert json.loads(patch.body) == {"data": {"user_metadata": expected}}
    assert kz.doc(ref)["user_metadata"] == expected
    assert result.json()["raw"]["user_metadata"] == expected


def test_tag_on_open_source_kazoo_exits_2_saying_patch_needs_5x(kz: Any, cli: Any) -> None:
    kz.oss_mode = True

    result = cli("kazoo", "tag", _downloadable(kz), "important=true")

    assert result.exit_code == 2
    assert "this Kazoo server does not support tagging (PATCH needs Kazoo 5.x)" in result.stderr


def test_tag_without_key_value_exits_2(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "tag", _downloadable(kz), "important")

    assert result.exit_code == 2
    assert "is not KEY=VALUE" in result.stderr
    assert kz.server.requests(method="PATCH") == []


def test_delete_with_yes_deletes_at_kazoo(kz: Any, cli: Any) -> None:
    refs = kz.ids()[:2]

    result = cli("kazoo", "delete", *refs, "--yes", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.json() == {"deleted": refs, "failed": []}
    assert all(kz.is_deleted(r) for r in refs)
    assert cli("kazoo", "show", refs[0]).exit_code == 6


def test_delete_without_yes_off_a_terminal_refuses_and_deletes_nothing(kz: Any, cli: Any) -> None:
    ref = kz.ids()[0]

    result = cli("kazoo", "delete", ref)

    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert not kz.is_deleted(ref)
    assert kz.server.requests(method="DELETE") == []


def test_delete_of_an_unknown_recording_exits_6(kz: Any, cli: Any) -> None:
    result = cli("kazoo", "delete", kz.ids()[0][:7] + "0" * 32, "--yes")

    assert result.exit_code == 6
    assert "not found (bad identifier)" in result.stderr


def test_pull_delete_after_removes_only_verified_recordings(kz: Any, cli: Any, tmp_path: Path) -> None:
    result = cli("kazoo", "pull", "-o", str(tmp_path), "--delete-after", "--yes", "--jsonl")

    assert result.exit_code == 0, result.stderr
    events = [e for e in result.jsonl() if e.get("type") == "file"]
    downloaded = {e["ref"]: Path(e["path"]) for e in events if e["outcome"] == "downloaded"}
    assert downloaded
    assert set(kz.deleted) == set(downloaded)  # recordings without media are never deleted
    assert all(path.read_bytes() == kz.media(ref) for ref, path in downloaded.items())


# ---------------------------------------------------------------------------
# secrets


def test_no_secret_reaches_any_output_even_with_verbose_logs(kz: Any, cli: Any, tmp_path: Path) -> None:
    ref = _downloadable(kz)
    outputs = [
        cli("-vv", "kazoo", "list", "--jsonl"),
        cli("-vv", "kazoo", "show", ref, "--json"),
        cli("-vv", "kazoo", "url", ref, "--json"),
        cli("-vv", "kazoo", "download", ref, "-o", str(tmp_path), "--jsonl"),
        cli("-vv", "kazoo", "tag", ref, "a=1"),
    ]
    kz.expire_tokens()
    outputs.append(cli("-vv", "kazoo", "list", "--jsonl"))

    secrets = [standin.API_KEY, *kz.issued_tokens()]
    assert len(secrets) == 3
    for result in outputs:
        for secret in secrets:
            assert secret not in result.output
    assert any("GET" in r.stderr for r in outputs)  # the debug log really ran


def test_no_password_reaches_any_output_with_a_user_login(
    kz: Any, cli: Any, config_file: Path, tmp_path: Path
) -> None:
    _use_profile(config_file, kz.user_profile())
    ref = _downloadable(kz)

    results = [
        cli("-vv", "kazoo", "list", "--jsonl"),
        cli("-vv", "kazoo", "download", ref, "-o", str(tmp_path), "--jsonl"),
        cli("config", "show", "kazoo"),
    ]

    for result in results:
        assert result.exit_code == 0, result.stderr
        for secret in [standin.PASSWORD, *kz.issued_tokens()]:
            assert secret not in result.output


def test_large_account_lists_quickly(cli: Any, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(providers=("kazoo",), recordings=1500) as big:
        big.write_profile(config_file, "big")
        monkeypatch.setenv("RECFETCH_PROFILE", "big")

        result = cli("kazoo", "list", "--since", "120d", "--jsonl")

        assert result.exit_code == 0, result.stderr
        assert len(result.jsonl()) == 1500


# ---------------------------------------------------------------------------
# parsing units (httpx.MockTransport): liberal with what Kazoo sends, never a crash


def _mock_kazoo(tmp_path: Path, listing: Any, *, auth: Any = None) -> Any:
    from recfetch.providers.kazoo import KazooProvider

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api_auth"):
            return httpx.Response(
                201, json=auth if auth is not None else {"auth_token": "t" * 40, "data": {}}
            )
        return httpx.Response(200, json=listing)

    settings = {
        "base_url": "https://kazoo.test:8000/v2/",
        "account_id": standin.ACCOUNT_ID,
        "api_key": "k" * 64,
    }
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return KazooProvider(settings, profile="unit", state_dir=tmp_path, http=http)


def test_numbers_as_strings_nulls_and_odd_items_are_accepted(tmp_path: Path) -> None:
    from recfetch.providers.base import ListQuery

    doc = {
        "id": "202511-" + "a" * 32,
        "start": str(1_763_647_391 + GREGORIAN_OFFSET),
        "duration_ms": None,
        "duration": "30",
        "direction": "INBOUND",
        "media_type": ".wav",
        "_read_only": {"content_types": None},
        "brand_new_field": {"x": 1},
    }
    listing = {"data": [doc, "not-a-doc", None], "next_start_key": "", "page_size": "3"}

    (record,) = list(_mock_kazoo(tmp_path, listing).iter_recordings(ListQuery()))

    assert record.started_at is not None and record.started_at.isoformat() == "2025-11-20T14:03:11+00:00"
    assert record.duration_s == 30.0
    assert record.direction == "inbound"
    assert record.media_type == "audio/wav"  # from the `.wav` media_type when content_type is absent
    assert (record.status, record.downloadable) == ("unknown", True)
    assert record.raw["brand_new_field"] == {"x": 1}


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        ({"data": {"id": "x"}}, "data is not a list"),
        ({"data": [{"name": "no id"}]}, "recording without an id"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_garbage_listings_raise_a_provider_error(tmp_path: Path, listing: Any, message: str) -> None:
    from recfetch.errors import ProviderError
    from recfetch.providers.base import ListQuery

    with pytest.raises(ProviderError, match=message):
        list(_mock_kazoo(tmp_path, listing).iter_recordings(ListQuery()))


def test_a_login_answer_without_auth_token_is_a_provider_error(tmp_path: Path) -> None:
    from recfetch.errors import ProviderError
    from recfetch.providers.base import ListQuery

    provider = _mock_kazoo(tmp_path, {"data": []}, auth={"data": {"account_id": standin.ACCOUNT_ID}})

    with pytest.raises(ProviderError, match="accepted the api_key but sent no auth_token"):
        list(provider.iter_recordings(ListQuery()))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (63_900_000_000, "2024-11-28T08:00:00+00:00"),
        ("63900000000", "2024-11-28T08:00:00+00:00"),
        (1_732_780_800, "2024-11-28T08:00:00+00:00"),  # unix seconds from an odd writer
        (1_732_780_800_000, None),  # milliseconds: unknown rather than wrong
        (None, None),
        ("soon", None),
        (-5, None),
    ],
)
def test_start_times_are_read_as_gregorian_seconds(value: Any, expected: str | None) -> None:
    from recfetch.providers.kazoo import from_gregorian

    parsed = from_gregorian(value)
    assert (parsed.isoformat() if parsed else None) == expected


def test_token_renewal_is_an_auth_flow_that_works_with_an_injected_client(tmp_path: Path) -> None:
    """A 401 inside the auth flow logs in again once and resends, even on a client we did not build."""
    from recfetch.providers.kazoo import KazooProvider

    tokens = iter(["first-token-" + "a" * 30, "second-token-" + "b" * 30])
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("X-Auth-Token")))
        if request.url.path.endswith("/api_auth"):
            assert "X-Auth-Token" not in request.headers  # logging in sends no token
            return httpx.Response(201, json={"auth_token": next(tokens), "data": {}})
        if request.headers["X-Auth-Token"].startswith("first"):
            return httpx.Response(401, json={"error": "401", "message": "invalid_credentials"})
        return httpx.Response(200, json={"data": {"name": "acme"}, "status": "success"})

    settings = {"base_url": "https://kazoo.test:8000", "account_id": standin.ACCOUNT_ID, "api_key": "k" * 64}
    http = httpx.Client(transport=httpx.MockTransport(handler))
    provider = KazooProvider(settings, profile="unit", state_dir=tmp_path, http=http)
    assert provider.api.get_json(f"accounts/{standin.ACCOUNT_ID}")["data"]["name"] == "acme"
    paths = [path.rsplit("/", 1)[-1] for path, _ in seen]
    assert paths == ["api_auth", standin.ACCOUNT_ID, "api_auth", standin.ACCOUNT_ID]
    assert seen[-1][1] is not None and seen[-1][1].startswith("second")


@pytest.mark.parametrize("key", ["short", "f" * 64])
def test_login_with_a_short_or_wrong_api_key_exits_4_naming_api_key(
    cli: Any, sandbox: Any, key: str
) -> None:
    kazoo = sandbox["kazoo"]
    result = cli(
        "kazoo", "login", "--base-url", kazoo.server.url, "--account-id", standin.ACCOUNT_ID,
        "--api-key-stdin", input=key + "\n",
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "rejected the api_key" in result.stderr
    assert key not in result.output


def test_interactive_login_stops_asking_for_a_user_once_an_api_key_is_given(
    sandbox: Any, isolated: Path
) -> None:
    import io
    import os
    import sys

    import pexpect

    kazoo = sandbox["kazoo"]
    log = io.BytesIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "recfetch", "kazoo", "login", "--base-url", kazoo.server.url,
         "--account-id", standin.ACCOUNT_ID],
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
        timeout=30,
    )
    child.logfile_read = log
    child.expect("api_key")
    child.sendline(standin.API_KEY)
    child.expect(pexpect.EOF)
    child.close()
    transcript = log.getvalue().decode("utf-8", "replace")
    assert child.exitstatus == 0, transcript
    assert "username" not in transcript and "password" not in transcript and "account_name" not in transcript
    saved = (isolated / "config" / "config.toml").read_text()
    assert "api_key" in saved and "username" not in saved
