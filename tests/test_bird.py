"""Bird through the real CLI against the sandbox stand-in: paging, filters, the 307, delete, errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
from conftest import REPO, assert_no_credentials_at_storage

from recfetch.sandbox import Sandbox
from recfetch.sandbox.bird import ACCESS_KEY, WORKSPACE_ID, BirdStandIn

SPEC = json.loads((Path(__file__).parent / "specs" / "bird.json").read_text())


@pytest.fixture
def bird(sandbox_profile: Sandbox) -> BirdStandIn:
    return sandbox_profile["bird"]


@pytest.fixture
def big(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A bird-only sandbox with enough recordings for three pages of 99."""
    with Sandbox(providers=["bird"], recordings=250) as box:
        box.write_profile(config_file, "sandbox")
        monkeypatch.setenv("RECFETCH_PROFILE", "sandbox")
        yield box


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("recfetch.backoff.delay_for", lambda attempt, retry_after=None: 0.0)


def list_requests(bird: BirdStandIn) -> list[Any]:
    return [r for r in bird.server.requests("/recordings", method="GET") if r.path.endswith("/recordings")]


def q(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in request.query.items()}


# ---------------------------------------------------------------------------
# list


def test_list_pages_with_page_token_to_the_last_page(big: Sandbox, cli: Any) -> None:
    bird: BirdStandIn = big["bird"]
    res = cli("bird", "list", "--jsonl")
    assert res.exit_code == 0, res.stderr
    refs = [r["ref"] for r in res.jsonl()]
    assert refs == bird.ids() and len(refs) == 250
    sent = [q(r) for r in list_requests(bird)]
    assert [s["limit"] for s in sent] == ["99", "99", "99"]
    assert (
        "pageToken" not in sent[0] and sent[1]["pageToken"] and sent[2]["pageToken"] != sent[1]["pageToken"]
    )
    for request in list_requests(bird):
        assert request.headers["authorization"] == f"AccessKey {ACCESS_KEY}"


def test_limit_stops_early_and_says_so(big: Sandbox, cli: Any) -> None:
    res = cli("bird", "list", "--limit", "5", "--jsonl")
    assert res.exit_code == 0
    assert len(res.jsonl()) == 5 and "--limit 5" in res.stderr
    assert len(list_requests(big["bird"])) == 1


def test_every_filter_reaches_the_wire_in_birds_format(bird: BirdStandIn, cli: Any) -> None:
    channel = bird.channels[0]
    call = "1b2c3d4e-0000-4000-8000-000000000001"
    rid = bird.add_recording(channel_id=channel, call_id=call, direction="incoming")
    res = cli(
        "bird", "list", "--channel", channel, "--call", call, "--direction", "incoming",
        "--status", "available", "--since", "2020-01-01T00:00:00+02:00", "--until", "2999-01-01",
        "--tz", "UTC", "--jsonl",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert [r["ref"] for r in res.jsonl()] == [rid]
    sent = q(list_requests(bird)[-1])
    assert sent == {
        "limit": "99",
        "channelId": channel,
        "id": call,
        "direction": "incoming",
        "status": "available",
        "startAt": "2019-12-31T22:00:00Z",
        "endAt": "2999-01-01T00:00:00Z",
    }


def test_filters_narrow_the_listing(bird: BirdStandIn, cli: Any) -> None:
    res = cli("bird", "list", "--direction", "outgoing", "--status", "accepted", "--jsonl")
    assert res.exit_code == 0
    records = res.jsonl()
    expected = [r for r in bird.ids() if bird.recordings[r]["direction"] == "outgoing"]
    expected = [r for r in expected if bird.recordings[r]["status"] == "accepted"]
    assert [r["ref"] for r in records] == expected
    assert all(r["direction"] == "outbound" and not r["downloadable"] for r in records)


def test_relative_since_is_sent_as_rfc3339(bird: BirdStandIn, cli: Any) -> None:
    res = cli("bird", "list", "--since", "12h", "--jsonl")
    assert res.exit_code == 0
    start = datetime.fromisoformat(q(list_requests(bird)[-1])["startAt"].replace("Z", "+00:00"))
    assert abs(start - (datetime.now(UTC) - timedelta(hours=12))) < timedelta(minutes=1)
    assert all(datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")) >= start for r in res.jsonl())


def test_bad_direction_exits_2_before_any_request(bird: BirdStandIn, cli: Any) -> None:
    res = cli("bird", "list", "--direction", "sideways")
    assert res.exit_code == 2
    assert list_requests(bird) == []


@pytest.mark.parametrize(
    ("args", "field"),
    [(["--status", "bogus"], "status"), (["--channel", "not-a-uuid"], "channelId"), (["--call", "x"], "id")],
)
def test_filter_value_bird_rejects_with_422_exits_2_with_its_details(
    bird: BirdStandIn, cli: Any, args: list[str], field: str
) -> None:
    res = cli("bird", "list", *args)
    assert res.exit_code == 2
    assert "bird rejected the list filters" in res.stderr and f"{field}:" in res.stderr


def test_422_without_filters_is_a_provider_error(bird: BirdStandIn, cli: Any) -> None:
    bird.fail_next(422, body={"code": "InvalidPayload", "message": "bad", "details": {".x": ["y"]}})
    res = cli("bird", "list")
    assert res.exit_code == 8 and "InvalidPayload" in res.stderr


def test_records_map_status_parties_and_drop_presigned_urls(bird: BirdStandIn, cli: Any) -> None:
    res = cli("bird", "list", "--jsonl")
    assert res.exit_code == 0
    for record in res.jsonl():
        source = bird.recordings[record["ref"]]
        assert record["downloadable"] is (source["status"] == "available")
        assert (
            record["status"]
            == {"available": "ready", "accepted": "processing", "failed": "failed"}[source["status"]]
        )
        assert record["provider_status"] == source["status"]
        assert record["call_id"] == source["sourceId"]
        assert record["from"] == source["originator"]["number"]["number"]
        assert record["to"] == source["receiver"]["number"]["number"]
        assert record["duration_s"] == float(source["duration"])
        assert record["media_type"] == "audio/mpeg"
        assert record["started_at"] == source["startedAt"].replace(".000Z", "Z")
        assert "url" not in record["raw"]
    statuses = {r["status"] for r in res.jsonl()}
    assert statuses == {"ready", "processing", "failed"}


def test_pages_tolerate_missing_and_extra_fields(bird: BirdStandIn, cli: Any) -> None:
    odd = {"id": "0e7f5c1a-1111-4222-8333-444455556666", "status": "available", "duration": "12", "new": 1}
    bird.fail_next(200, body={"results": [odd, {"no": "id"}], "nextPageToken": ""})
    res = cli("bird", "list", "--jsonl")
    assert res.exit_code == 8 and "without an id" in res.stderr
    bird.fail_next(200, body={"results": [odd]})
    res = cli("bird", "list", "--jsonl")
    assert res.exit_code == 0, res.stderr
    record = res.jsonl()[0]
    assert record["duration_s"] == 12.0 and record["from"] is None and record["raw"]["new"] == 1


def test_garbage_page_is_a_clear_provider_error(bird: BirdStandIn, cli: Any) -> None:
    bird.fail_next(200, body=b"<html>gateway</html>")
    res = cli("bird", "list")
    assert res.exit_code == 8 and "not JSON" in res.stderr and "Traceback" not in res.output


# ---------------------------------------------------------------------------
# show / url


def test_show_prints_the_record_without_the_presigned_url(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any
) -> None:
    rid = bird.ids(status="available")[0]
    res = cli("bird", "show", rid, "--json")
    assert res.exit_code == 0, res.stderr
    assert res.json()["ref"] == rid and "url" not in res.json()["raw"]
    assert sandbox_profile.storage.url not in res.stdout
    assert bird.metadata_calls == 1 and bird.mp3_calls == 0


def test_url_takes_the_307_location_without_following_it(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any
) -> None:
    rid = bird.ids(status="available")[0]
    res = cli("bird", "url", rid, "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["url"].startswith(sandbox_profile.storage.url) and doc["expires_at"]
    expires = datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=4) <= expires - datetime.now(UTC) <= timedelta(seconds=bird.url_ttl + 2)
    assert bird.mp3_calls == 1
    assert sandbox_profile.storage.server.requests() == []  # the redirect was read, not followed
    assert httpx.get(doc["url"]).content == bird.content(rid)


def test_url_of_a_recording_still_processing_exits_6(bird: BirdStandIn, cli: Any) -> None:
    res = cli("bird", "url", bird.ids(status="accepted")[0])
    assert res.exit_code == 6 and "no file to download" in res.stderr  # SPEC §5: exists, no file
    assert bird.mp3_calls == 0


@pytest.mark.parametrize(
    ("ref", "code", "text"),
    [
        ("0e7f5c1a-0000-4000-8000-000000000000", 6, "not found"),
        ("not-a-uuid", 6, "does not accept 'not-a-uuid'"),
    ],
)
def test_unknown_or_malformed_ref_exits_6(
    bird: BirdStandIn, cli: Any, ref: str, code: int, text: str
) -> None:
    for verb in ("show", "url"):
        res = cli("bird", verb, ref)
        assert res.exit_code == code and text in res.stderr


# ---------------------------------------------------------------------------
# download / pull


def test_download_is_byte_exact_and_never_sends_the_access_key_to_storage(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any, tmp_path: Path
) -> None:
    rids = bird.ids(status="available")[:4]
    res = cli("bird", "download", *rids, "-o", str(tmp_path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    files = [e for e in res.jsonl() if e["type"] == "file"]
    assert sorted(e["ref"] for e in files) == sorted(rids)
    for event in files:
        data = Path(event["path"]).read_bytes()
        assert data == bird.content(event["ref"]) and event["sha256"] == hashlib.sha256(data).hexdigest()
        assert event["path"].endswith(".mp3")
    assert bird.mp3_calls == 4
    assert_no_credentials_at_storage(sandbox_profile)


def test_download_falls_back_to_the_metadata_url_when_mp3_does_not_redirect(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any, tmp_path: Path
) -> None:
    bird.redirect_mp3 = False
    rid = bird.ids(status="available")[0]
    res = cli("bird", "download", rid, "-o", str(tmp_path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    assert Path(res.jsonl()[0]["path"]).read_bytes() == bird.content(rid)
    mp3 = bird.server.requests(".mp3")
    assert mp3 and mp3[-1].headers.get("range") == "bytes=0-0"  # the API never sent the whole file
    assert sandbox_profile.storage.server.requests(method="GET")
    assert_no_credentials_at_storage(sandbox_profile)


def test_expired_storage_url_is_reminted_through_the_mp3_endpoint(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any, tmp_path: Path
) -> None:
    storage = sandbox_profile.storage
    rid = bird.add_recording(size=120_000)
    fault = storage.drop_next(50_000)
    drop = fault.response

    def drop_then_expire(request: Any) -> Any:
        response = drop(request)  # type: ignore[operator]
        storage.expire_all()
        return response

    fault.response = drop_then_expire
    res = cli("bird", "download", rid, "-o", str(tmp_path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    assert Path(res.jsonl()[0]["path"]).read_bytes() == bird.content(rid)
    assert bird.mp3_calls == 2
    assert_no_credentials_at_storage(sandbox_profile)


def test_pull_downloads_available_recordings_and_skips_the_rest_with_a_reason(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any, tmp_path: Path
) -> None:
    res = cli("bird", "pull", "-o", str(tmp_path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    events = res.jsonl()
    done = {e["ref"] for e in events if e.get("outcome") == "downloaded"}
    skipped = {e["ref"]: e["reason"] for e in events if e.get("outcome") == "skipped"}
    assert done == set(bird.ids(status="available"))
    assert set(skipped) == set(bird.ids()) - done
    assert all("status" in reason for reason in skipped.values())
    for event in events[:-1]:
        if event["outcome"] == "downloaded":
            assert Path(event["path"]).read_bytes() == bird.content(event["ref"])
    assert_no_credentials_at_storage(sandbox_profile)


def test_pull_delete_after_deletes_each_recording_once_its_file_is_verified(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any, tmp_path: Path
) -> None:
    available = bird.ids(status="available")
    contents = {rid: bird.content(rid) for rid in available}
    res = cli("bird", "pull", "-o", str(tmp_path), "--delete-after", "--yes", "--jsonl")
    assert res.exit_code == 0, res.stderr
    assert sorted(bird.deleted) == sorted(available)  # never the processing or failed ones
    for event in res.jsonl()[:-1]:
        if event["outcome"] == "downloaded":
            assert Path(event["path"]).read_bytes() == contents[event["ref"]]
    res = cli("bird", "pull", "-o", str(tmp_path / "again"), "--delete-after")
    assert res.exit_code == 2 and "--yes" in res.stderr  # no terminal to ask on


def test_round_trip_list_jq_download_with_the_real_jq(
    sandbox_profile: Sandbox, bird: BirdStandIn, tmp_path: Path
) -> None:
    out = tmp_path / "dl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    py = sys.executable
    pipeline = (
        f"'{py}' -m recfetch bird list --status available --jsonl | jq -r .ref | "
        f"'{py}' -m recfetch bird download -o '{out}' -"
    )
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    got = {p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == {bird.content(rid) for rid in bird.ids(status="available")}
    assert ACCESS_KEY not in proc.stdout + proc.stderr
    assert_no_credentials_at_storage(sandbox_profile)


# ---------------------------------------------------------------------------
# delete


def test_delete_with_yes_deletes_and_a_second_delete_is_not_found(bird: BirdStandIn, cli: Any) -> None:
    rid = bird.ids(status="available")[0]
    res = cli("bird", "delete", rid, "--yes")
    assert res.exit_code == 0, res.stderr
    assert bird.deleted == [rid] and f"deleted {rid}" in res.stderr
    assert bird.server.requests(rid, method="DELETE")[0].headers["authorization"] == f"AccessKey {ACCESS_KEY}"
    res = cli("bird", "delete", rid, "--yes")
    assert res.exit_code == 6 and "not found" in res.stderr
    res = cli("bird", "show", rid)
    assert res.exit_code == 6


def test_delete_without_yes_off_a_terminal_refuses_and_deletes_nothing(bird: BirdStandIn, cli: Any) -> None:
    rid = bird.ids()[0]
    res = cli("bird", "delete", rid)
    assert res.exit_code == 2 and "--yes" in res.stderr
    assert bird.deleted == [] and bird.server.requests(method="DELETE") == []


def test_declined_confirmation_deletes_nothing_and_exits_0(
    bird: BirdStandIn, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[list[str]] = []

    def decline(provider: str, refs: list[str], *, yes: bool) -> bool:
        asked.append(refs)
        return False

    monkeypatch.setattr("recfetch.cli._confirm.confirm_delete", decline)
    rid = bird.ids()[0]
    res = cli("bird", "delete", rid)
    assert res.exit_code == 0 and "nothing deleted" in res.stderr
    assert asked == [[rid]] and bird.server.requests(method="DELETE") == []


def test_delete_of_several_refs_from_stdin_reports_each_and_exits_3_on_a_miss(
    bird: BirdStandIn, cli: Any
) -> None:
    good = bird.ids()[:2]
    missing = "0e7f5c1a-0000-4000-8000-00000000dead"
    res = cli("bird", "delete", "-", "--yes", "--json", input="\n".join([good[0], missing, good[1]]) + "\n")
    assert res.exit_code == 3
    doc = json.loads(res.stdout)
    assert doc["deleted"] == good and [f["ref"] for f in doc["failed"]] == [missing]
    assert sorted(bird.deleted) == sorted(good)


def test_delete_of_piped_refs_stops_at_an_unreadable_line_before_deleting_anything(
    bird: BirdStandIn, cli: Any
) -> None:
    good = bird.ids()[0]
    res = cli("bird", "delete", "-", "--yes", input=f'{good}\n{{"ref": 1}}\n')
    assert res.exit_code == 2, res.output
    assert 'stdin line 2 has no "ref" field' in res.stderr
    assert bird.deleted == [] and bird.server.requests(method="DELETE") == []


# ---------------------------------------------------------------------------
# errors


def test_wrong_access_key_exits_4_and_is_never_echoed(
    bird: BirdStandIn, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFETCH_BIRD_ACCESS_KEY", "wrong-key-0123456789")
    for args in (("list",), ("show", bird.ids()[0]), ("delete", bird.ids()[0], "--yes")):
        res = cli("-v", "bird", *args)
        assert res.exit_code == 4, args
        assert "rejected the access key" in res.stderr and "Invalid access key" in res.stderr
        assert "wrong-key-0123456789" not in res.output and ACCESS_KEY not in res.output


@pytest.mark.parametrize(
    ("status", "body", "code", "text"),
    [
        (403, {"code": "Forbidden", "message": "access role lacks recordings"}, 4, "access role lacks"),
        (404, {"code": "NotFound", "message": "Workspace not found"}, 6, "workspace"),
        (429, None, 7, "rate limiting"),
        (500, None, 8, "HTTP 500"),
        (503, b"<html>down</html>", 8, "HTTP 503"),
    ],
)
def test_error_envelopes_map_to_exit_codes(
    bird: BirdStandIn, cli: Any, no_backoff: None, status: int, body: Any, code: int, text: str
) -> None:
    bird.fail_next(status, times=50, body=body)
    res = cli("bird", "list", "--json")
    assert res.exit_code == code, res.stderr
    error = json.loads(res.stderr.strip().splitlines()[-1])
    assert error["type"] == "error" and error["http_status"] == status and text in error["message"]
    attempts = len(list_requests(bird))
    assert attempts == (6 if status >= 429 else 1)  # 429/5xx were retried 5 times


def test_rate_limit_is_retried_honouring_retry_after_then_succeeds(bird: BirdStandIn, cli: Any) -> None:
    bird.fail_next(429, times=2, retry_after="0")
    res = cli("bird", "list", "--jsonl")
    assert res.exit_code == 0, res.stderr
    assert len(res.jsonl()) == len(bird.ids()) and len(list_requests(bird)) == 3


def test_wrong_workspace_exits_6_naming_the_setting(
    bird: BirdStandIn, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFETCH_BIRD_WORKSPACE_ID", "00000000-0000-4000-8000-000000000000")
    res = cli("bird", "list")
    assert res.exit_code == 6 and "workspace_id" in res.stderr


def test_login_verifies_with_one_list_call_and_saves_only_on_success(
    sandbox: Sandbox, cli: Any, config_file: Path
) -> None:
    bird: BirdStandIn = sandbox["bird"]
    base = bird.server.url
    args = ("bird", "login", "--workspace-id", WORKSPACE_ID, "--access-key-stdin", "--base-url", base)
    res = cli(*args, input="not-the-key\n")
    assert res.exit_code == 4 and not config_file.exists()
    res = cli(*args, input=ACCESS_KEY + "\n")
    assert res.exit_code == 0, res.stderr
    assert f"workspace {WORKSPACE_ID}" in res.stderr and ACCESS_KEY not in res.output
    assert q(list_requests(bird)[-1]) == {"limit": "1"}


def test_no_secret_or_presigned_url_in_list_show_download_output(
    sandbox_profile: Sandbox, bird: BirdStandIn, cli: Any, tmp_path: Path
) -> None:
    rid = bird.ids(status="available")[0]
    for res in (
        cli("-vv", "bird", "list", "--jsonl"),
        cli("-vv", "bird", "show", rid, "--json"),
        cli("-vv", "bird", "download", rid, "-o", str(tmp_path), "--jsonl"),
        cli("-vv", "bird", "list", "--format", "csv"),
    ):
        assert res.exit_code == 0, res.stderr
        assert ACCESS_KEY not in res.output and "X-Signature" not in res.output


# ---------------------------------------------------------------------------
# conformance with the published (partial) spec


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}


def _parameters() -> dict[str, dict[str, Any]]:
    params = {}
    for entry in SPEC["paths"]["/workspaces/{workspaceId}/recordings"]["get"]["parameters"]:
        if "$ref" in entry:
            entry = SPEC["components"]["parameters"][entry["$ref"].rsplit("/", 1)[1]]
        params[entry["name"]] = entry
    return params


def test_stand_in_recordings_match_the_published_recording_schema(
    sandbox_profile: Sandbox, bird: BirdStandIn
) -> None:
    headers = {"Authorization": f"AccessKey {ACCESS_KEY}"}
    base = f"{bird.server.url}/workspaces/{WORKSPACE_ID}/recordings"
    page = httpx.get(base, params={"limit": 99}, headers=headers).json()
    assert set(page) <= {"results", "nextPageToken"}
    validator = jsonschema.Draft7Validator(_schema("Recording"))
    for item in page["results"]:
        validator.validate(item)
    one = httpx.get(f"{base}/{page['results'][0]['id']}", headers=headers).json()
    validator.validate(one)


def test_list_requests_the_cli_sends_match_the_published_parameters(big: Sandbox, cli: Any) -> None:
    bird: BirdStandIn = big["bird"]
    channel = bird.channels[1]
    res = cli(
        "bird", "list", "--channel", channel, "--call", "1b2c3d4e-0000-4000-8000-000000000001",
        "--direction", "outgoing", "--status", "available", "--since", "30d", "--until", "1d",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert cli("bird", "list", "--jsonl").exit_code == 0
    params = _parameters()
    checker = jsonschema.FormatChecker()
    sent_any = False
    for request in list_requests(bird):
        for name, values in request.query.items():
            assert name in params, f"{name} is not a documented list parameter"
            schema = dict(params[name]["schema"], components=SPEC["components"])
            value: Any = int(values[0]) if schema.get("type") == "integer" else values[0]
            jsonschema.Draft7Validator(schema, format_checker=checker).validate(value)
            sent_any = True
        assert urlsplit(request.path).path == f"/workspaces/{WORKSPACE_ID}/recordings"
    assert sent_any and len(list_requests(bird)) >= 4  # the second listing paged three times
