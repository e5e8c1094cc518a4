"""Kismet end to end: the real CLI against the Kismet stand-in (users → calls → egresses, audited URLs)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import assert_no_credentials_at_storage

from recfetch.providers.base import RECORD_FIELDS, ListQuery
from recfetch.providers.kismet import KismetProvider, _without_urls, url_expiry
from recfetch.sandbox import kismet as standin_module
from recfetch.sandbox.kismet import CLIENT_ID, CLIENT_SECRET

USERS_PATH = "/api/external/organization_users"


@pytest.fixture
def kismet(sandbox_profile: Any) -> Any:
    return sandbox_profile["kismet"]


def listing(cli: Any, *args: str) -> list[dict[str, Any]]:
    result = cli("kismet", "list", "--jsonl", *args)
    assert result.exit_code == 0, result.output
    return result.jsonl()


def pages_asked(kismet: Any, path: str) -> list[int]:
    """`page` values of the requests to exactly ``path`` (a paged listing), in order."""
    return [int(r.query["page"][0]) for r in kismet.requests() if r.path == path and "page" in r.query]


def egress_show_requests(kismet: Any) -> list[Any]:
    return [r for r in kismet.requests("/egresses/") if r.path.rsplit("/", 2)[-2] == "egresses"]


def ready_ref(kismet: Any) -> str:
    return kismet.refs(ready_only=True)[0]


def not_ready_refs(kismet: Any) -> list[str]:
    ready = set(kismet.refs(ready_only=True))
    return [ref for ref in kismet.refs() if ref not in ready]


def saved_file(directory: Path, ref: str) -> Path:
    matches = [p for p in directory.rglob("*") if p.is_file() and ref.replace("/", "-") in p.name]
    assert len(matches) == 1, sorted(directory.rglob("*"))
    return matches[0]


# ---------------------------------------------------------------------------
# list


def test_list_jsonl_has_one_spec_record_per_egress_and_mints_nothing(cli: Any, kismet: Any) -> None:
    records = listing(cli)
    assert [r["ref"] for r in records] == kismet.refs()
    assert len(records) >= 12
    for record in records:
        assert tuple(record) == RECORD_FIELDS
        uid, cid, eid = record["ref"].split("/")
        assert record["provider"] == "kismet"
        assert record["profile"] == "sandbox"
        assert record["id"] == f"{uid}-{cid}-{eid}"
        assert record["call_id"] == cid
        assert record["size_bytes"] is None
        assert record["raw"]["id"] == int(eid)
        assert record["raw"]["call"]["id"] == int(cid)
        assert record["raw"]["organization_user"]["id"] == int(uid)
        assert "url" not in record["raw"]
    ready = [r for r in records if r["downloadable"]]
    assert {r["ref"] for r in ready} == set(kismet.refs(ready_only=True))
    for record in ready:
        assert record["status"] == "ready" and record["provider_status"] == "egress_ended"
        assert record["media_type"] == "video/mp4" and record["filename"].endswith(".mp4")
        assert record["started_at"].endswith("Z") and record["ended_at"].endswith("Z")
        start = datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(record["ended_at"].replace("Z", "+00:00"))
        assert record["duration_s"] == (end - start).total_seconds() > 0
    statuses = {r["provider_status"]: r["status"] for r in records if not r["downloadable"]}
    assert statuses == {"egress_starting": "processing", "egress_ended": "failed"}
    assert kismet.audit_counts == {}
    assert egress_show_requests(kismet) == []


def test_list_skips_calls_that_cannot_have_recordings(cli: Any, kismet: Any) -> None:
    listing(cli)
    asked = {r.path for r in kismet.requests("/egresses")}
    for uid, calls in kismet.users_calls():
        for cid, call in calls:
            path = f"{USERS_PATH}/{uid}/calls/{cid}/egresses"
            # not ended, or has_egresses false: no egress request; ended + consent missing: asked, empty
            assert (path in asked) == (call["is_ended"] and call["has_egresses"]), call
    no_consent = [cid for cid, ok in kismet.consent.items() if not ok]
    assert no_consent and all(f"/calls/{cid}/egresses" in " ".join(asked) for cid in no_consent)


def test_list_pages_to_the_last_page_of_users_and_calls(cli: Any, kismet: Any) -> None:
    kismet.max_per_page = 2  # the server caps per_page and echoes it; the client must follow
    records = listing(cli)
    assert [r["ref"] for r in records] == kismet.refs()
    user_pages = pages_asked(kismet, USERS_PATH)
    assert user_pages == list(range(1, (len(kismet.users) + 1) // 2 + 1))
    busiest = max(kismet.calls, key=lambda uid: len(kismet.calls[uid]))
    n_calls = len(kismet.calls[busiest])
    assert n_calls > 2
    assert pages_asked(kismet, f"{USERS_PATH}/{busiest}/calls") == list(range(1, (n_calls + 1) // 2 + 1))


def test_list_streams_lazily_so_limit_stops_paging_early(cli: Any, kismet: Any) -> None:
    kismet.max_per_page = 1
    result = cli("kismet", "list", "--jsonl", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert len(result.jsonl()) == 1
    assert "--limit 1" in result.stderr
    assert pages_asked(kismet, USERS_PATH) == [1]
    assert len(kismet.requests()) <= 8  # a full listing at per_page=1 takes ~50


def test_limit_caps_records_and_says_so_on_stderr(cli: Any, kismet: Any) -> None:
    result = cli("kismet", "list", "--jsonl", "--limit", "3")
    assert result.exit_code == 0
    assert [r["ref"] for r in result.jsonl()] == kismet.refs()[:3]
    assert "stopped after --limit 3" in result.stderr


def test_user_filter_reaches_the_wire_and_skips_the_organization_listing(cli: Any, kismet: Any) -> None:
    records = listing(cli, "--user", "102", "--user", "103", "--user", "102")
    assert records and {r["ref"].split("/")[0] for r in records} == {"102", "103"}
    assert [r["ref"] for r in records] == [
        ref for ref in kismet.refs() if ref.split("/")[0] in ("102", "103")
    ]
    assert pages_asked(kismet, USERS_PATH) == []
    assert [r.path for r in kismet.requests() if r.path in (f"{USERS_PATH}/102", f"{USERS_PATH}/103")] == [
        f"{USERS_PATH}/102",
        f"{USERS_PATH}/103",
    ]
    assert {r.path.split("/")[4] for r in kismet.requests("/calls")} == {"102", "103"}


def test_call_filter_lists_only_that_call_without_paging_calls(cli: Any, kismet: Any) -> None:
    ref = kismet.refs()[-1]
    uid, cid, _ = ref.split("/")
    records = listing(cli, "--user", uid, "--call", cid)
    assert [r["ref"] for r in records] == [x for x in kismet.refs() if x.startswith(f"{uid}/{cid}/")]
    assert pages_asked(kismet, f"{USERS_PATH}/{uid}/calls") == []
    assert {r.path for r in kismet.requests("/calls/")} == {
        f"{USERS_PATH}/{uid}/calls/{cid}",
        f"{USERS_PATH}/{uid}/calls/{cid}/egresses",
    }


@pytest.mark.parametrize(
    "args",
    [("--call", "501"), ("--user", "101", "--user", "102", "--call", "501")],
    ids=["no-user", "two-users"],
)
def test_call_without_exactly_one_user_is_a_usage_error(cli: Any, kismet: Any, args: tuple[str, ...]) -> None:
    for verb in ("list", "pull"):
        result = cli("kismet", verb, *args)
        assert result.exit_code == 2, result.output
        assert "--call needs exactly one --user" in result.stderr
    assert kismet.requests() == []


@pytest.mark.parametrize("flag", ["--user", "--call"])
def test_non_numeric_ids_are_usage_errors(cli: Any, kismet: Any, flag: str) -> None:
    args = ("--user", "abc") if flag == "--user" else ("--user", "101", "--call", "x1")
    result = cli("kismet", "list", *args)
    assert result.exit_code == 2
    assert f"{flag} " in result.stderr and "is not a Kismet id" in result.stderr
    assert kismet.requests() == []


def test_email_filter_is_sent_to_kismet(cli: Any, kismet: Any) -> None:
    records = listing(cli, "--email", "BEN@clinic")
    assert records and {r["ref"].split("/")[0] for r in records} == {"102"}
    assert [r.query.get("email") for r in kismet.requests() if r.path == USERS_PATH] == [["BEN@clinic"]]


def test_email_and_user_filters_combine(cli: Any, kismet: Any) -> None:
    assert listing(cli, "--email", "clinic.example", "--user", "103")
    assert {r["ref"].split("/")[0] for r in listing(cli, "--email", "clinic.example", "--user", "103")} == {
        "103"
    }
    assert listing(cli, "--email", "ada@", "--user", "103") == []


def test_unknown_user_is_not_found_exit_6(cli: Any, kismet: Any) -> None:
    result = cli("kismet", "list", "--user", "999")
    assert result.exit_code == 6
    assert "Kismet user 999 not found" in result.stderr
    assert "recfetch kismet users" in result.stderr


def test_since_and_until_filter_on_the_egress_start(cli: Any, kismet: Any) -> None:
    everything = listing(cli)
    times = sorted(r["started_at"] for r in everything)
    pivot = times[len(times) // 2]
    after = listing(cli, "--since", pivot)
    before = listing(cli, "--until", pivot)
    assert {r["ref"] for r in after} == {r["ref"] for r in everything if r["started_at"] >= pivot}
    assert {r["ref"] for r in before} == {r["ref"] for r in everything if r["started_at"] < pivot}
    assert len(after) + len(before) == len(everything)
    window = listing(cli, "--since", times[1], "--until", times[-2])
    assert {r["ref"] for r in window} == {
        r["ref"] for r in everything if times[1] <= r["started_at"] < times[-2]
    }


def test_list_table_and_csv_formats(cli: Any, kismet: Any) -> None:
    table = cli("kismet", "list")
    assert table.exit_code == 0
    assert kismet.refs()[0] in table.stdout and "ready" in table.stdout
    csv_out = cli("kismet", "list", "--format", "csv")
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("provider,profile,ref,id,status")
    assert len(lines) == len(kismet.refs()) + 1
    doc = cli("kismet", "list", "--json").json()
    assert doc["schema_version"] == 1 and [r["ref"] for r in doc["items"]] == kismet.refs()


def test_pagination_without_metadata_stops_on_a_short_page(tmp_path: Path) -> None:
    users = [{"id": n, "email": f"u{n}@x"} for n in range(1, 8)]
    asked: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        per_page = 3  # the server ignores the requested 100 and sends no pagination object
        asked.append(page)
        return httpx.Response(
            200, json={"organization_users": users[(page - 1) * per_page : page * per_page]}
        )

    provider = KismetProvider(
        {"client_id": "i", "client_secret": "secret-value", "base_url": "https://kismet.test"},
        profile="t",
        state_dir=tmp_path,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    provider.per_page = 3
    assert [u["id"] for u in provider.iter_users()] == list(range(1, 8))
    assert asked == [1, 2, 3]


def test_lenient_values_are_accepted_and_garbage_items_skipped(tmp_path: Path) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        asked.append(path)
        if path.endswith("/organization_users"):
            return httpx.Response(200, json={"organization_users": [{"id": "7"}, "junk", {"email": "no-id"}]})
        if path.endswith("/calls"):
            calls = [{"id": "8", "is_ended": "true"}, {"id": "10", "is_ended": False}, {"id": 11}]
            return httpx.Response(200, json={"calls": calls, "pagination": None})
        if path.endswith("/calls/11/egresses"):  # no is_ended flag at all: asked anyway
            return httpx.Response(200, json={"egresses": None})
        egress = {"id": "9", "status": "egress_ended", "error": None, "created_at": "2025-10-08T14:00:00"}
        return httpx.Response(200, json={"egresses": [egress], "extra": 1})

    provider = KismetProvider(
        {"client_id": "i", "client_secret": "secret-value", "base_url": "https://kismet.test"},
        profile="t",
        state_dir=tmp_path,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    [record] = provider.iter_recordings(ListQuery())
    assert record.ref == "7/8/9" and record.downloadable
    assert asked == [
        "/api/external/organization_users",
        "/api/external/organization_users/7/calls",
        "/api/external/organization_users/7/calls/8/egresses",
        "/api/external/organization_users/7/calls/11/egresses",
    ]
    assert record.started_at == datetime(2025, 10, 8, 14, tzinfo=UTC)
    assert record.ended_at is None and record.duration_s is None


# ---------------------------------------------------------------------------
# show


def test_show_matches_list_and_uses_listing_endpoints_only(cli: Any, kismet: Any) -> None:
    ref = ready_ref(kismet)
    listed = next(r for r in listing(cli) if r["ref"] == ref)
    result = cli("kismet", "show", ref, "--json")
    assert result.exit_code == 0, result.output
    assert result.json() == listed
    assert kismet.audit_counts == {}
    assert egress_show_requests(kismet) == []
    table = cli("kismet", "show", ref)
    assert table.exit_code == 0 and ref in table.stdout and "egress_ended" in table.stdout


@pytest.mark.parametrize("ref", ["abc", "101/501", "101/501/x", "101/501/9001/1", "1.0/2/3", "1/2/3x", ""])
def test_malformed_ref_is_a_usage_error(cli: Any, kismet: Any, ref: str) -> None:
    result = cli("kismet", "show", ref)
    assert result.exit_code == 2, result.output
    assert "USER_ID/CALL_ID/EGRESS_ID" in result.stderr
    assert kismet.requests() == []


@pytest.mark.parametrize("which", ["egress", "call", "user"])
def test_unknown_ref_is_not_found_exit_6(cli: Any, kismet: Any, which: str) -> None:
    uid, cid, eid = ready_ref(kismet).split("/")
    ref = {"egress": f"{uid}/{cid}/1", "call": f"{uid}/1/{eid}", "user": f"999/{cid}/{eid}"}[which]
    result = cli("kismet", "show", ref)
    assert result.exit_code == 6, result.output
    assert f"Kismet recording {ref} not found" in result.stderr
    assert "check the ref with `recfetch kismet list`" in result.stderr
    assert kismet.audit_counts == {}


def test_not_found_in_json_mode_is_a_json_error_on_stderr(cli: Any, kismet: Any) -> None:
    result = cli("kismet", "show", "101/501/1", "--json")
    assert result.exit_code == 6
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "NOT_FOUND" and error["provider"] == "kismet" and error["http_status"] == 404
    assert result.stdout == ""


# ---------------------------------------------------------------------------
# url


def test_url_prints_a_fresh_presigned_url_and_is_audited_once(cli: Any, kismet: Any, sandbox: Any) -> None:
    ref = ready_ref(kismet)
    result = cli("kismet", "url", ref)
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith(sandbox.storage.url) and "Signature" in url
    assert kismet.audit_counts == {ref: 1}
    assert httpx.get(url).content == sandbox.storage.content(kismet.storage_key(ref))


def test_url_json_gives_url_and_expiry_within_15_minutes(cli: Any, kismet: Any) -> None:
    ref = ready_ref(kismet)
    before = datetime.now(UTC)
    result = cli("kismet", "url", ref, "--json")
    assert result.exit_code == 0
    doc = result.json()
    assert set(doc) == {"url", "expires_at"}
    expires = datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=14) < expires <= before + timedelta(minutes=15, seconds=2)
    assert kismet.audit_counts == {ref: 1}


def test_url_of_a_recording_without_a_file_mints_nothing(cli: Any, kismet: Any) -> None:
    for ref in not_ready_refs(kismet):
        result = cli("kismet", "url", ref)
        assert result.exit_code == 6, result.output  # SPEC §5: it exists, its file does not
        assert "has no file" in result.stderr and result.stdout == ""
    assert kismet.audit_counts == {}


# ---------------------------------------------------------------------------
# download and pull


def test_download_mints_once_and_saves_byte_exact_private_file(cli: Any, kismet: Any, sandbox: Any) -> None:
    ref = ready_ref(kismet)
    out = Path("out")
    result = cli("kismet", "download", ref, "-o", str(out), "--no-archive")
    assert result.exit_code == 0, result.output
    path = saved_file(out, ref)
    assert path.suffix == ".mp4"
    assert path.read_bytes() == sandbox.storage.content(kismet.storage_key(ref))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(out.rglob("*.part"))
    assert kismet.audit_counts == {ref: 1}
    assert len(egress_show_requests(kismet)) == 1
    assert_no_credentials_at_storage(sandbox)


def test_already_downloaded_file_is_skipped_without_an_audited_call(cli: Any, kismet: Any) -> None:
    # Kismet reports no size, so the archive is what proves the file is this recording (SPEC §3).
    ref = ready_ref(kismet)
    first = cli("kismet", "download", ref, "-o", "out")
    assert first.exit_code == 0, first.output
    again = cli("kismet", "download", ref, "-o", "out", "--jsonl")
    assert again.exit_code == 0, again.output
    event = again.jsonl()[0]
    assert event["outcome"] == "skipped" and event["reason"] == "in archive"
    assert kismet.audit_counts == {ref: 1}


def test_downloading_a_recording_without_a_file_is_skipped_unaudited(cli: Any, kismet: Any) -> None:
    refs = not_ready_refs(kismet)
    result = cli("kismet", "download", *refs, "-o", "out", "--jsonl")
    assert result.exit_code == 0, result.output
    events = {e["ref"]: e for e in result.jsonl() if e["type"] == "file"}
    assert {e["outcome"] for e in events.values()} == {"skipped"}
    reasons = " ".join(e["reason"] for e in events.values())
    assert "Start signal not received" in reasons and "still recording" in reasons
    assert kismet.audit_counts == {}
    assert not Path("out").exists() or not list(Path("out").rglob("*.mp4"))


def test_download_unknown_and_malformed_refs(cli: Any, kismet: Any) -> None:
    missing = cli("kismet", "download", "101/501/1", "-o", "out")
    assert missing.exit_code == 6, missing.output
    malformed = cli("kismet", "download", "nonsense", "-o", "out")
    assert malformed.exit_code == 2, malformed.output
    assert kismet.audit_counts == {}


def test_rejected_storage_url_is_reminted_once_more(cli: Any, kismet: Any, sandbox: Any) -> None:
    ref = ready_ref(kismet)
    sandbox.storage.fail_next(403, body=b"<Error><Code>AccessDenied</Code></Error>")
    result = cli("kismet", "download", ref, "-o", "out", "--no-archive")
    assert result.exit_code == 0, result.output
    assert saved_file(Path("out"), ref).read_bytes() == sandbox.storage.content(kismet.storage_key(ref))
    assert kismet.audit_counts == {ref: 2}


def test_pull_downloads_every_ready_recording_and_explains_the_rest(
    cli: Any, kismet: Any, sandbox: Any
) -> None:
    result = cli("kismet", "pull", "-o", "out", "--jsonl")
    assert result.exit_code == 0, result.output
    events = [e for e in result.jsonl() if e["type"] == "file"]
    downloaded = {e["ref"] for e in events if e["outcome"] == "downloaded"}
    assert downloaded == set(kismet.refs(ready_only=True))
    skipped = {e["ref"]: e["reason"] for e in events if e["outcome"] == "skipped"}
    assert set(skipped) == set(not_ready_refs(kismet))
    assert any("Start signal not received" in reason for reason in skipped.values())
    assert kismet.audit_counts == dict.fromkeys(downloaded, 1)
    for ref in downloaded:
        assert saved_file(Path("out"), ref).read_bytes() == sandbox.storage.content(kismet.storage_key(ref))
    assert_no_credentials_at_storage(sandbox)
    again = cli("kismet", "pull", "-o", "out", "--jsonl")
    assert again.exit_code == 0
    assert not [e for e in again.jsonl() if e.get("outcome") == "downloaded"]
    assert kismet.audit_counts == dict.fromkeys(downloaded, 1)


def test_pull_takes_the_list_filters(cli: Any, kismet: Any) -> None:
    result = cli("kismet", "pull", "--user", "102", "-o", "out", "--jsonl")
    assert result.exit_code == 0, result.output
    downloaded = {e["ref"] for e in result.jsonl() if e.get("outcome") == "downloaded"}
    assert downloaded and downloaded == {r for r in kismet.refs(ready_only=True) if r.startswith("102/")}
    later = kismet.add_recording(103, content=b"late consultation recording bytes")
    result = cli("kismet", "pull", "--email", "chloe", "-o", "out", "--jsonl")
    assert later in {e["ref"] for e in result.jsonl() if e.get("outcome") == "downloaded"}
    assert saved_file(Path("out"), later).read_bytes() == b"late consultation recording bytes"


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("wrong", ["RECFETCH_KISMET_CLIENT_SECRET", "RECFETCH_KISMET_CLIENT_ID"])
def test_rejected_credentials_exit_4_without_leaking_the_secret(
    cli: Any, kismet: Any, monkeypatch: pytest.MonkeyPatch, wrong: str
) -> None:
    bad_secret = "wrong-secret-do-not-print-91b7"
    monkeypatch.setenv(wrong, bad_secret if wrong.endswith("SECRET") else "someone-else")
    for args in (("list",), ("show", ready_ref(kismet)), ("download", ready_ref(kismet), "-o", "out")):
        result = cli("-v", "kismet", *args)
        assert result.exit_code == 4, result.output
        assert "Kismet rejected the client id/secret" in result.stderr
        assert "recfetch kismet login" in result.stderr
        for secret in (bad_secret, CLIENT_SECRET):
            assert secret not in result.output
    assert kismet.audit_counts == {}


def test_html_instead_of_json_is_a_provider_error_exit_8(cli: Any, kismet: Any) -> None:
    kismet.html_next()
    result = cli("kismet", "list")
    assert result.exit_code == 8, result.output
    assert "not JSON" in result.stderr and "<html" not in result.output


def test_json_of_the_wrong_shape_is_a_provider_error_exit_8(cli: Any, kismet: Any) -> None:
    kismet.fail_next(200, body=b'{"status": "ok"}')
    result = cli("kismet", "list", "--jsonl")
    assert result.exit_code == 8, result.output
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "PROVIDER_ERROR" and "organization_users" in error["message"]


def test_egress_show_without_url_fails_the_file_with_exit_8(cli: Any, kismet: Any) -> None:
    ref = ready_ref(kismet)
    kismet.fail_next(
        200, body=b'{"id": 1, "status": "egress_ended", "url": null}', path_contains="/egresses/"
    )
    result = cli("kismet", "download", ref, "-o", "out", "--jsonl")
    assert result.exit_code == 8, result.output
    [event] = [e for e in result.jsonl() if e["type"] == "file"]
    assert event["outcome"] == "failed" and "no download URL" in event["error"]["message"]


def test_rate_limit_is_retried_then_succeeds(cli: Any, kismet: Any) -> None:
    kismet.rate_limit_next(2, retry_after=0)
    started = time.monotonic()
    records = listing(cli)
    assert [r["ref"] for r in records] == kismet.refs()
    assert time.monotonic() - started < 5
    kismet.server.clear()
    kismet.rate_limit_next(1, retry_after=1)
    started = time.monotonic()
    assert len(listing(cli, "--user", "101")) > 0
    assert time.monotonic() - started >= 1.0  # Retry-After honoured


def test_persistent_rate_limit_exits_7(cli: Any, kismet: Any) -> None:
    kismet.rate_limit_next(50, retry_after=0)
    result = cli("kismet", "list", "--jsonl")
    assert result.exit_code == 7, result.output
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "RATE_LIMITED" and error["retryable"] is True


def test_server_errors_are_retried_then_exit_8(cli: Any, kismet: Any) -> None:
    kismet.fail_next(503, times=1, retry_after=0)
    assert [r["ref"] for r in listing(cli)] == kismet.refs()
    kismet.fail_next(500, times=50, retry_after=0)
    result = cli("kismet", "list")
    assert result.exit_code == 8, result.output
    assert "HTTP 500" in result.stderr


def test_no_secret_or_signature_in_output_of_list_show_download(cli: Any, kismet: Any, sandbox: Any) -> None:
    ref = ready_ref(kismet)
    outputs = [
        cli("-v", "kismet", "list", "--jsonl"),
        cli("-v", "kismet", "show", ref, "--json"),
        cli("-v", "kismet", "download", ref, "-o", "out", "--jsonl", "--write-metadata"),
        cli("-v", "kismet", "pull", "-o", "out2"),
    ]
    for result in outputs:
        assert result.exit_code == 0, result.output
        for leak in (CLIENT_SECRET, "X-Signature", "Signature="):
            assert leak not in result.output
    for sidecar in Path(".").rglob("*.json"):
        assert "Signature" not in sidecar.read_text() and CLIENT_SECRET not in sidecar.read_text()
    assert_no_credential_headers_anywhere_but_kismet(sandbox)


def assert_no_credential_headers_anywhere_but_kismet(sandbox: Any) -> None:
    assert_no_credentials_at_storage(sandbox)
    assert sandbox.storage.server.requests(), "the test should have fetched media"
    for request in sandbox["kismet"].requests():
        assert request.headers.get("x-client-id") == CLIENT_ID
        assert request.headers.get("x-client-secret") == CLIENT_SECRET


# ---------------------------------------------------------------------------
# users / calls / login


def test_users_lists_the_organization_in_every_format(cli: Any, kismet: Any) -> None:
    kismet.max_per_page = 2
    result = cli("kismet", "users", "--jsonl")
    assert result.exit_code == 0, result.output
    users = result.jsonl()
    assert [u["id"] for u in users] == list(kismet.users)
    assert users[0]["email"] == kismet.users[101]["email"] and users[0]["is_admin"] is True
    assert pages_asked(kismet, USERS_PATH) == list(range(1, (len(kismet.users) + 1) // 2 + 1))
    table = cli("kismet", "users")
    assert "ada@clinic.example" in table.stdout and "display_name" in table.stdout
    csv_lines = cli("kismet", "users", "--format", "csv").stdout.strip().splitlines()
    assert csv_lines[0].startswith("provider,profile,id,email") and len(csv_lines) == len(users) + 1
    filtered = cli("kismet", "users", "--email", "ben", "--json").json()
    assert [u["id"] for u in filtered["items"]] == [102]
    none = cli("kismet", "users", "--email", "nobody")
    assert none.exit_code == 0 and none.stdout == "" and "no users matched" in none.stderr


def test_calls_shows_every_call_of_a_user_with_is_ended_and_has_egresses(cli: Any, kismet: Any) -> None:
    result = cli("kismet", "calls", "--user", "101", "--json")
    assert result.exit_code == 0, result.output
    items = result.json()["items"]
    assert [c["id"] for c in items] == list(kismet.calls[101])
    assert {(c["is_ended"], c["has_egresses"]) for c in items} >= {(True, True), (False, False)}
    assert all(c["user_id"] == 101 for c in items)
    table = cli("kismet", "calls", "--user", "101")
    assert "is_ended" in table.stdout and "has_egresses" in table.stdout
    empty = cli("kismet", "calls", "--user", str(max(kismet.users)))
    assert empty.exit_code == 0 and "has no calls" in empty.stderr


def test_calls_errors(cli: Any, kismet: Any) -> None:
    assert cli("kismet", "calls").exit_code == 2
    bad = cli("kismet", "calls", "--user", "x")
    assert bad.exit_code == 2 and "not a Kismet id" in bad.stderr
    missing = cli("kismet", "calls", "--user", "999", "--jsonl")
    assert missing.exit_code == 6
    assert json.loads(missing.stderr.strip().splitlines()[-1])["code"] == "NOT_FOUND"


def test_providers_lists_the_kismet_only_verbs(cli: Any, kismet: Any) -> None:
    doc = cli("providers", "--json").json()
    kismet_item = next(i for i in doc["items"] if i["provider"] == "kismet")
    assert kismet_item["configured"] is True
    assert kismet_item["verbs"][-2:] == ["users", "calls"]


def test_login_verifies_both_headers_before_saving(cli: Any, sandbox: Any, config_file: Path) -> None:
    url = sandbox["kismet"].server.url
    base = ("kismet", "login", "--client-id", CLIENT_ID, "--base-url", url, "--client-secret-stdin")
    bad = cli(*base, input="not-the-secret\n")
    assert bad.exit_code == 4, bad.output
    assert not config_file.exists() or "kismet" not in config_file.read_text()
    good = cli(*base, input=CLIENT_SECRET + "\n")
    assert good.exit_code == 0, good.output
    assert "Kismet organization (" in good.stderr and CLIENT_SECRET not in good.output
    assert CLIENT_SECRET in config_file.read_text()
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert cli("kismet", "users", "--jsonl").exit_code == 0


# ---------------------------------------------------------------------------
# the shell pipeline


def test_list_jq_download_round_trip(kismet: Any, sandbox: Any, tmp_path: Path) -> None:
    out = tmp_path / "pipe"
    py = f"{sys.executable} -m recfetch"
    pipeline = f"{py} kismet list --jsonl | jq -r .ref | {py} kismet download -o {out} -"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for ref in kismet.refs(ready_only=True):
        assert saved_file(out, ref).read_bytes() == sandbox.storage.content(kismet.storage_key(ref))
    assert len(list(out.rglob("*.mp4"))) == len(kismet.refs(ready_only=True))
    assert kismet.audit_counts == dict.fromkeys(kismet.refs(ready_only=True), 1)
    assert CLIENT_SECRET not in proc.stdout + proc.stderr and "Signature=" not in proc.stdout + proc.stderr
    assert_no_credentials_at_storage(sandbox)


# ---------------------------------------------------------------------------
# units and the stand-in itself


def test_url_expiry_comes_from_the_signed_url() -> None:
    now = datetime(2025, 10, 8, 14, 0, tzinfo=UTC)
    sigv4 = (
        "https://s3.amazonaws.com/r/x.mp4?X-Amz-Date=20251008T140000Z&X-Amz-Expires=600&X-Amz-Signature=ab"
    )
    assert url_expiry(sigv4, now=now) == now + timedelta(minutes=10)
    assert url_expiry("https://h/x.mp4?Expires=1759932300&Signature=ab", now=now) == datetime.fromtimestamp(
        1759932300, UTC
    )
    assert url_expiry("https://h/x.mp4", now=now) == now + timedelta(minutes=15)
    skewed = "https://h/x.mp4?X-Amz-Date=20240101T000000Z&X-Amz-Expires=900"
    assert url_expiry(skewed, now=now) == now + timedelta(minutes=15)


def test_raw_drops_presigned_urls_but_keeps_plain_ones() -> None:
    raw = {
        "id": 1,
        "url": "https://s3/x.mp4",
        "waiting_room_url": "https://app.kismethealth.com/w/ada",
        "nested": {"link": "https://s3/y.mp4?X-Amz-Signature=abc"},
        "list": ["https://s3/z.mp4?Signature=abc", "keep"],
    }
    assert _without_urls(raw) == {
        "id": 1,
        "waiting_room_url": "https://app.kismethealth.com/w/ada",
        "nested": {},
        "list": ["keep"],
    }


def test_stand_in_is_deterministic_and_scales_to_a_thousand_recordings(tmp_path: Path) -> None:
    from recfetch.sandbox.storage import Storage

    storage = Storage()
    try:
        a = standin_module.create(storage, seed=3)
        b = standin_module.create(storage, seed=3)
        assert a.refs() == b.refs() and a.users == b.users and a.calls == b.calls
        big = standin_module.create(storage, recordings=1000).server.start()
        provider = KismetProvider(
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "base_url": big.url},
            profile="bench",
            state_dir=tmp_path,
        )
        started = time.monotonic()
        count = sum(1 for _ in provider.iter_recordings(ListQuery()))
        assert count == 1000
        assert time.monotonic() - started < 10
        big.stop()
    finally:
        storage.close()
