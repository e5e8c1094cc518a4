"""RealtimeKit end to end: the real CLI against the RealtimeKit stand-in and the storage host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import assert_no_credentials_at_storage

from recfetch.errors import ConfigError, NotFoundError, ProviderError, UsageError
from recfetch.providers.base import RECORD_FIELDS, ListQuery
from recfetch.providers.realtimekit import RealtimeKitProvider
from recfetch.sandbox import Sandbox
from recfetch.sandbox.realtimekit import ACCOUNT_ID, API_TOKEN, APP_ID

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sandbox_rtk() -> Iterator[Sandbox]:
    """Only the RealtimeKit stand-in and the storage host (faster to start and stop)."""
    with Sandbox(providers=["realtimekit"]) as sb:
        yield sb


@pytest.fixture
def rtk(sandbox_rtk: Sandbox, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    sandbox_rtk.write_profile(config_file, "sandbox")
    monkeypatch.setenv("RECFETCH_PROFILE", "sandbox")
    return sandbox_rtk["realtimekit"]


def listing(cli: Any, *args: str) -> list[dict[str, Any]]:
    result = cli("realtimekit", "list", "--jsonl", *args)
    assert result.exit_code == 0, result.output
    return result.jsonl()


def list_requests(rtk: Any) -> list[Any]:
    return [r for r in rtk.server.requests() if r.method == "GET" and r.path.endswith("/recordings")]


def content(sandbox: Sandbox, rtk: Any, rid: str, *, audio: bool = False) -> bytes:
    return sandbox.storage.content(rtk.storage_key(rid, audio=audio))


def saved(directory: Path, rid: str) -> Path:
    matches = [
        p for p in directory.rglob("*") if p.is_file() and p.name.endswith(tuple(EXTS)) and rid in p.name
    ]
    assert len(matches) == 1, sorted(directory.rglob("*"))
    return matches[0]


EXTS = (".mp4", ".m4a", ".mp3")


def no_secret(result: Any) -> None:
    assert API_TOKEN not in result.output
    assert "X-Signature" not in result.output


# ---------------------------------------------------------------------------
# list


def test_list_pages_to_the_last_page_in_listing_order(cli: Any, rtk: Any) -> None:
    records = listing(cli)
    assert [r["ref"] for r in records] == rtk.ids()
    assert len(records) == 24
    pages = [r.query["page_no"] for r in list_requests(rtk)]
    # The server caps per_page at 10: 24 recordings are 3 pages, and nothing is asked after the last.
    assert pages == [["1"], ["2"], ["3"]]
    assert all(r.query["per_page"] == ["100"] for r in list_requests(rtk))
    for record in records:
        assert list(record) == list(RECORD_FIELDS)


def test_limit_stops_early_and_says_so(cli: Any, rtk: Any) -> None:
    result = cli("realtimekit", "list", "--jsonl", "--limit", "4")
    assert result.exit_code == 0
    assert [r["ref"] for r in result.jsonl()] == rtk.ids()[:4]
    assert "--limit 4" in result.stderr
    assert len(list_requests(rtk)) == 1


def test_records_map_every_field_and_strip_presigned_urls(cli: Any, rtk: Any) -> None:
    records = {r["ref"]: r for r in listing(cli)}
    rid = rtk.ids(ready_only=True)[0]
    rec = rtk.recordings[rid]
    record = records[rid]
    assert record["status"] == "ready" and record["downloadable"] is True
    assert record["provider_status"] == "UPLOADED"
    assert record["size_bytes"] == rec["file_size"]
    assert record["duration_s"] == float(rec["recording_duration"])
    assert record["call_id"] == rec["session_id"]
    assert record["filename"] == rec["output_file_name"]
    assert record["media_type"] == "video/mp4"
    assert record["started_at"] == rec["started_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert record["ended_at"] == rec["stopped_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "download_url" not in record["raw"] and "audio_download_url" not in record["raw"]
    assert record["raw"]["download_url_expiry"]  # not a secret: kept
    assert record["raw"]["meeting"]["id"] == rec["meeting_id"]
    by_status = {r["provider_status"]: r for r in records.values()}
    assert by_status["RECORDING"]["status"] == "processing" and not by_status["RECORDING"]["downloadable"]
    assert by_status["UPLOADING"]["status"] == "processing"
    assert by_status["ERRORED"]["status"] == "failed"
    assert by_status["PAUSED"]["status"] == "processing" and by_status["INVOKED"]["status"] == "processing"
    uploaded_without_file = [
        r for r in records.values() if r["provider_status"] == "UPLOADED" and not r["downloadable"]
    ]
    assert len(uploaded_without_file) == 4  # two expired, two stored in the customer's own bucket
    listing_text = json.dumps(list(records.values()))
    assert "X-Signature" not in listing_text and rtk.server.url not in listing_text


def test_every_filter_reaches_the_wire_in_realtimekit_form(cli: Any, rtk: Any) -> None:
    meeting = next(iter(rtk.meetings))
    records = listing(
        cli,
        "--meeting",
        meeting.upper(),
        "--status",
        "uploaded",
        "--status",
        "Errored,UPLOADED",
        "--search",
        "triage",
        "--no-expired",
        "--since",
        "2020-01-02T03:04:05+02:00",
        "--until",
        "2099-12-31",
        "--tz",
        "UTC",
    )
    [request] = list_requests(rtk)
    assert request.query["meeting_id"] == [meeting]
    assert request.query["status"] == ["UPLOADED", "ERRORED"]  # repeated keys, as the official SDK sends
    assert request.query["search"] == ["triage"]
    assert request.query["expired"] == ["false"]
    assert request.query["start_time"] == ["2020-01-02T01:04:05Z"]
    assert request.query["end_time"] == ["2099-12-31T00:00:00Z"]
    assert records and all(r["provider_status"] in ("UPLOADED", "ERRORED") for r in records)
    assert all(r["raw"]["meeting"]["id"] == meeting for r in records)


def test_expired_flag_sends_true_and_is_omitted_when_not_given(cli: Any, rtk: Any) -> None:
    expired = listing(cli, "--expired")
    assert len(expired) == 2 and not any(r["downloadable"] for r in expired)
    assert all(r["provider_status"] == "UPLOADED" for r in expired)
    assert list_requests(rtk)[0].query["expired"] == ["true"]
    rtk.server.clear()
    listing(cli)
    assert "expired" not in list_requests(rtk)[0].query
    assert "status" not in list_requests(rtk)[0].query


def test_since_and_until_select_by_invocation_time(cli: Any, rtk: Any) -> None:
    ordered = sorted(rtk.recordings.values(), key=lambda r: r["invoked_time"])
    since = ordered[5]["invoked_time"]
    until = ordered[15]["invoked_time"]
    records = listing(cli, "--since", since.isoformat(), "--until", until.isoformat(), "--status", "UPLOADED")
    wanted = [r["id"] for r in ordered[5:15] if r["status"] == "UPLOADED"]
    assert [r["ref"] for r in records] == wanted


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--status", "done"), "not a RealtimeKit recording status"),
        (("--meeting", "weekly-triage"), "not a RealtimeKit meeting id"),
        (("--since", "last tuesday"), "cannot read --since"),
    ],
)
def test_bad_filters_are_usage_errors_before_any_request(
    cli: Any, rtk: Any, args: tuple[str, ...], says: str
) -> None:
    result = cli("realtimekit", "list", *args)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert rtk.server.requests() == []


def test_cloudflare_alias_is_the_same_app(cli: Any, rtk: Any) -> None:
    assert [r["ref"] for r in cli("cloudflare", "list", "--jsonl").jsonl()] == rtk.ids()
    result = cli("cloudflare", "show", rtk.ids(ready_only=True)[0], "--json")
    assert result.exit_code == 0 and result.json()["provider"] == "realtimekit"


def test_list_table_and_csv_formats(cli: Any, rtk: Any) -> None:
    table = cli("realtimekit", "list", "--status", "UPLOADED")
    assert table.exit_code == 0 and rtk.ids(ready_only=True)[0] in table.stdout
    csv_out = cli("realtimekit", "list", "--format", "csv", "--status", "ERRORED")
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("provider,profile,ref,id,status") and len(lines) == 1 + 2


# ---------------------------------------------------------------------------
# show / url


def test_show_prints_one_record_and_never_a_url(cli: Any, rtk: Any) -> None:
    rid = rtk.ids(ready_only=True)[0]
    result = cli("realtimekit", "show", rid, "--json")
    assert result.exit_code == 0
    record = result.json()
    assert record["ref"] == rid and record["downloadable"] is True
    assert record["raw"]["start_reason"]["reason"] == "API_CALL"
    table = cli("realtimekit", "show", rid)
    assert table.exit_code == 0 and "UPLOADED" in table.stdout
    no_secret(result)
    no_secret(table)


def test_show_unknown_recording_exits_6_and_malformed_ref_exits_2(cli: Any, rtk: Any) -> None:
    missing = cli("realtimekit", "show", "0b5f2d8e-1c1a-4c4c-9a9a-000000000000")
    assert missing.exit_code == 6
    assert "RealtimeKit has no recording 0b5f2d8e-1c1a-4c4c-9a9a-000000000000" in missing.stderr
    requests_before = len(rtk.server.requests())
    malformed = cli("realtimekit", "show", "../../etc/passwd")
    assert malformed.exit_code == 2 and "not a RealtimeKit recording ref" in malformed.stderr
    assert len(rtk.server.requests()) == requests_before
    as_json = cli("realtimekit", "show", "0b5f2d8e-1c1a-4c4c-9a9a-000000000000", "--json")
    error = json.loads(as_json.stderr.strip().splitlines()[-1])
    assert error["code"] == "NOT_FOUND" and error["http_status"] == 404


def test_url_prints_a_fresh_url_and_json_gives_its_expiry(cli: Any, rtk: Any, sandbox_rtk: Sandbox) -> None:
    rid = rtk.ids(ready_only=True)[0]
    plain = cli("realtimekit", "url", rid)
    assert plain.exit_code == 0
    url = plain.stdout.strip()
    assert url.startswith(sandbox_rtk.storage.url) and "X-Signature=" in url
    assert httpx.get(url).content == content(sandbox_rtk, rtk, rid)
    doc = cli("realtimekit", "url", rid, "--json").json()
    assert set(doc) == {"url", "expires_at"} and httpx.get(doc["url"]).status_code == 200
    # download_url_expiry: 7 days from now, but never past the 7-day retention of the upload.
    expires = datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00"))
    retention_end = rtk.recordings[rid]["stopped_time"] + timedelta(days=7)
    expected = min(datetime.now(UTC) + timedelta(days=7), retention_end)
    assert abs((expires - expected).total_seconds()) < 5 and expires > datetime.now(UTC)
    assert rtk.gets[rid] == 2  # one GET per `url`: the recording's own fresh URL is the one minted


def test_url_expiry_follows_the_servers_download_url_expiry(cli: Any, rtk: Any) -> None:
    rtk.url_ttl = 120
    doc = cli("realtimekit", "url", rtk.ids(ready_only=True)[-1], "--json").json()
    expires = datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - datetime.now(UTC)).total_seconds() - 120) < 5
    assert f"X-Expires={int(expires.timestamp())}" in doc["url"]


def test_url_audio_gives_the_audio_export(cli: Any, rtk: Any, sandbox_rtk: Sandbox) -> None:
    rid = rtk.ids(audio=True)[0]
    url = cli("realtimekit", "url", rid, "--audio").stdout.strip()
    assert httpx.get(url).content == content(sandbox_rtk, rtk, rid, audio=True)
    assert cli("realtimekit", "url", f"{rid}_audio").stdout.strip().split("?")[0] == url.split("?")[0]


def test_url_audio_without_an_audio_export_exits_6_with_the_fix(cli: Any, rtk: Any) -> None:
    rid = next(r for r in rtk.ids(ready_only=True) if r not in rtk.ids(audio=True))
    result = cli("realtimekit", "url", rid, "--audio")
    assert result.exit_code == 6
    assert "has no audio export" in result.stderr and "without --audio" in result.stderr
    assert result.stdout == ""


def test_url_of_a_recording_without_a_file_is_refused(cli: Any, rtk: Any) -> None:
    result = cli("realtimekit", "url", rtk.ids(status="RECORDING")[0])
    assert result.exit_code == 6 and "still recording" in result.stderr and result.stdout == ""


# ---------------------------------------------------------------------------
# download / pull


def test_download_is_byte_exact_and_sends_no_credential_to_storage(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    refs = rtk.ids(ready_only=True)[:3]
    result = cli("-v", "realtimekit", "download", *refs, "-o", str(tmp_path / "out"), "--jsonl")
    assert result.exit_code == 0, result.output
    events = [e for e in result.jsonl() if e["type"] == "file"]
    assert {e["outcome"] for e in events} == {"downloaded"}
    for rid in refs:
        path = saved(tmp_path / "out", rid)
        assert path.suffix == ".mp4"
        assert path.read_bytes() == content(sandbox_rtk, rtk, rid)
    assert_no_credentials_at_storage(sandbox_rtk)
    no_secret(result)


def test_download_audio_is_a_distinct_byte_exact_file(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    aac, mp3 = (
        next(r for r in rtk.ids(audio=True) if rtk.recordings[r]["audio"] == codec)
        for codec in ("AAC", "MP3")
    )
    out = tmp_path / "out"
    video = cli("realtimekit", "download", aac, "-o", str(out))
    assert video.exit_code == 0, video.output
    audio = cli("realtimekit", "download", aac, mp3, "--audio", "-o", str(out), "--jsonl")
    assert audio.exit_code == 0, audio.output
    events = [e for e in audio.jsonl() if e["type"] == "file"]
    assert sorted(e["ref"] for e in events) == sorted([f"{aac}_audio", f"{mp3}_audio"])
    assert [e["outcome"] for e in events] == [
        "downloaded",
        "downloaded",
    ]  # the video in the archive is no reason
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 3
    assert saved(out, f"{aac}_audio").suffix == ".m4a" and saved(out, f"{mp3}_audio").suffix == ".mp3"
    assert saved(out, f"{aac}_audio").read_bytes() == content(sandbox_rtk, rtk, aac, audio=True)
    assert saved(out, f"{mp3}_audio").read_bytes() == content(sandbox_rtk, rtk, mp3, audio=True)
    assert next(p for p in out.iterdir() if p.suffix == ".mp4").read_bytes() == content(sandbox_rtk, rtk, aac)
    assert_no_credentials_at_storage(sandbox_rtk)


def test_pull_downloads_every_ready_recording_and_explains_the_rest(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    result = cli("realtimekit", "pull", "-o", str(tmp_path / "out"), "--jsonl")
    assert result.exit_code == 0, result.output
    events = result.jsonl()
    files = {e["ref"]: e for e in events if e["type"] == "file"}
    ready = rtk.ids(ready_only=True)
    assert sorted(r for r, e in files.items() if e["outcome"] == "downloaded") == sorted(ready)
    reasons = {
        rtk.recordings[r]["status"]: e["reason"] for r, e in files.items() if e["outcome"] == "skipped"
    }
    assert "still recording" in reasons["RECORDING"] and "ERRORED" in reasons["ERRORED"]
    skipped_uploaded = [e["reason"] for r, e in files.items() if e["outcome"] == "skipped" and r not in ready]
    assert any("expired" in r and "7 days" in r for r in skipped_uploaded)
    assert any("your own aws storage" in r for r in skipped_uploaded)
    for rid in ready:
        assert saved(tmp_path / "out", rid).read_bytes() == content(sandbox_rtk, rtk, rid)
    assert events[-1]["type"] == "summary" and events[-1]["downloaded"] == len(ready)
    # The listing's URLs (7 days from expiry) serve the downloads: no GET per file (SPEC §3).
    assert rtk.gets == {}
    again = cli("realtimekit", "pull", "-o", str(tmp_path / "out"), "--jsonl")
    assert again.exit_code == 0 and again.jsonl()[-1]["downloaded"] == 0
    assert rtk.gets == {}  # nothing minted for files already there


def test_pull_audio_fetches_only_audio_exports(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    result = cli(
        "realtimekit", "pull", "--audio", "--status", "UPLOADED", "-o", str(tmp_path / "a"), "--jsonl"
    )
    assert result.exit_code == 0, result.output
    files = [e for e in result.jsonl() if e["type"] == "file"]
    downloaded = sorted(e["ref"] for e in files if e["outcome"] == "downloaded")
    assert downloaded == sorted(f"{r}_audio" for r in rtk.ids(audio=True))
    assert any("no audio export" in (e["reason"] or "") for e in files if e["outcome"] == "skipped")
    assert {tuple(r.query["status"]) for r in list_requests(rtk)} == {("UPLOADED",)}
    for rid in rtk.ids(audio=True):
        assert saved(tmp_path / "a", f"{rid}_audio").read_bytes() == content(
            sandbox_rtk, rtk, rid, audio=True
        )


def test_expired_url_mid_pull_is_reminted_and_resumes_from_the_part(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    storage = sandbox_rtk.storage
    # The first transfer (whichever recording the pool starts with) breaks after 4 kB (every
    # file is at least 8 kB), and at that moment every URL handed out so far expires.
    fault = storage.drop_next(4_000)
    cut = fault.response
    cut_paths: list[str] = []

    def cut_and_expire(request: Any) -> Any:
        cut_paths.append(request.path)
        response = cut(request)
        storage.expire_all()
        return response

    fault.response = cut_and_expire
    result = cli("realtimekit", "pull", "-o", str(tmp_path / "out"), "-j", "1", "--jsonl")
    assert result.exit_code == 0, result.output
    ready = rtk.ids(ready_only=True)
    for rid in ready:
        assert saved(tmp_path / "out", rid).read_bytes() == content(sandbox_rtk, rtk, rid)
    (cut_path,) = cut_paths
    (first,) = [rid for rid in ready if rid in cut_path]
    # URLs from the listing that were expired by then were re-minted once each, through the API;
    # the cut file among them.
    assert rtk.gets[first] == 1 and set(rtk.gets.values()) == {1} and set(rtk.gets) <= set(ready)
    gets = [r for r in storage.server.requests() if first in r.path]
    assert len(gets) == 3  # the cut transfer, the expired URL (403), the resumed one
    assert gets[1].query["X-Signature"] == gets[0].query["X-Signature"]
    assert gets[2].query["X-Signature"] != gets[0].query["X-Signature"]
    resumed_from = int(gets[2].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= 4_000
    assert_no_credentials_at_storage(sandbox_rtk)


def test_a_url_that_expires_between_list_and_download_is_minted_fresh(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    rid = rtk.ids(ready_only=True)[0]
    stale = cli("realtimekit", "url", rid).stdout.strip()
    sandbox_rtk.storage.expire_all()
    assert httpx.get(stale).status_code == 403
    result = cli("realtimekit", "download", rid, "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert saved(tmp_path / "o", rid).read_bytes() == content(sandbox_rtk, rtk, rid)


def test_list_jq_download_round_trip(rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "pipe"
    py = f"{sys.executable} -m recfetch"
    pipeline = f"{py} realtimekit list --jsonl | jq -r .ref | {py} realtimekit download -o {out} --jsonl -"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    ready = rtk.ids(ready_only=True)
    for rid in ready:
        assert saved(out, rid).read_bytes() == content(sandbox_rtk, rtk, rid)
    assert len(list(out.rglob("*.mp4"))) == len(ready)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(e["ref"] for e in events if e["type"] == "file") == sorted(rtk.ids())
    assert rtk.gets == dict.fromkeys(rtk.ids(), 1)  # one GET per ref; its fresh URL serves the download
    assert API_TOKEN not in proc.stdout + proc.stderr and "X-Signature" not in proc.stdout + proc.stderr
    assert_no_credentials_at_storage(sandbox_rtk)


def test_download_reads_jsonl_records_from_stdin(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    records = cli("realtimekit", "list", "--jsonl", "--status", "UPLOADED", "--no-expired").stdout
    result = cli("realtimekit", "download", "-", "-o", str(tmp_path / "o"), input=records)
    assert result.exit_code == 0, result.output
    assert sorted(p.stem.split("_")[-1] for p in (tmp_path / "o").iterdir()) == sorted(
        r for r in rtk.ids(ready_only=True)
    )


# ---------------------------------------------------------------------------
# errors: every envelope to its exit code, never the token


def test_wrong_token_is_gateway_403_code_10000_exit_4(cli: Any, rtk: Any) -> None:
    wrong = "x" * 40
    result = cli("realtimekit", "list", env={"RECFETCH_REALTIMEKIT_API_TOKEN": wrong})
    assert result.exit_code == 4
    assert "Realtime or Realtime Admin permission" in result.stderr and "code 10000" in result.stderr
    assert wrong not in result.output and API_TOKEN not in result.output


def test_malformed_token_is_gateway_400_code_6003_exit_4(cli: Any, rtk: Any) -> None:
    result = cli(
        "realtimekit", "show", rtk.ids()[0], "--json", env={"RECFETCH_REALTIMEKIT_API_TOKEN": "short-tok"}
    )
    assert result.exit_code == 4
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "AUTH_FAILED" and error["http_status"] == 400
    assert "not in the expected format" in error["message"] and "6111" in error["message"]
    assert "short-tok" not in result.output


def test_token_with_line_break_is_a_config_error_before_any_request(cli: Any, rtk: Any) -> None:
    result = cli("realtimekit", "list", env={"RECFETCH_REALTIMEKIT_API_TOKEN": "abc def\nghi"})
    assert result.exit_code == 5 and "api_token contains spaces" in result.stderr
    assert rtk.server.requests() == []


def test_token_pasted_with_bearer_prefix_still_works(cli: Any, rtk: Any) -> None:
    result = cli(
        "realtimekit", "list", "--jsonl", env={"RECFETCH_REALTIMEKIT_API_TOKEN": f"Bearer {API_TOKEN}"}
    )
    assert result.exit_code == 0 and len(result.jsonl()) == 24


def test_unroutable_account_is_a_config_error_exit_5(cli: Any, rtk: Any) -> None:
    result = cli("realtimekit", "list", env={"RECFETCH_REALTIMEKIT_ACCOUNT_ID": "my-account"})
    assert result.exit_code == 5
    assert "could not route to account my-account" in result.stderr and "7003" in result.stderr


def test_app_of_another_account_exits_4(cli: Any, rtk: Any) -> None:
    result = cli("realtimekit", "list", env={"RECFETCH_REALTIMEKIT_APP_ID": "f" * 32})
    assert result.exit_code == 4 and "app_id belongs to account_id" in result.stderr


def test_malformed_app_id_is_a_config_error_before_any_request(cli: Any, rtk: Any) -> None:
    result = cli("realtimekit", "list", env={"RECFETCH_REALTIMEKIT_APP_ID": "../../zones"})
    assert result.exit_code == 5 and "not a RealtimeKit app ID" in result.stderr
    assert rtk.server.requests() == []


def test_rate_limit_429_is_retried_after_retry_after(cli: Any, rtk: Any) -> None:
    rtk.rate_limit_next(times=2, retry_after=0)
    result = cli("realtimekit", "list", "--jsonl")
    assert result.exit_code == 0 and len(result.jsonl()) == 24
    assert [r.query["page_no"] for r in list_requests(rtk)][:3] == [["1"], ["1"], ["1"]]


def test_persistent_rate_limit_exits_7(cli: Any, rtk: Any) -> None:
    rtk.rate_limit_next(times=None, retry_after=300)  # Cloudflare blocks a token for 5 minutes
    result = cli("realtimekit", "list")
    assert result.exit_code == 7
    assert "1,200 requests per 5 minutes" in result.stderr and "code 971" in result.stderr
    no_secret(result)


def test_server_errors_are_retried_then_exit_8(cli: Any, rtk: Any) -> None:
    rtk.fail_next(503, times=1, retry_after=0)
    assert cli("realtimekit", "show", rtk.ids()[0]).exit_code == 0
    rtk.server.clear()
    rtk.fail_next(502, times=None, retry_after=0)
    result = cli("realtimekit", "show", rtk.ids()[0])
    assert result.exit_code == 8 and "HTTP 502 after retries" in result.stderr
    assert len(rtk.server.requests()) == 6  # the first try and five retries


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", "not JSON"),
        (b'["not", "an", "envelope"]', "application/json", "not a JSON object"),
        (b'{"success": true, "data": "garbage"}', "application/json", "without a `data` list"),
        (b'{"success": true, "data": [{"status": "UPLOADED"}]}', "application/json", "without an id"),
        (b'{"success": false, "error": {"code": 200, "message": "odd"}}', "application/json", "odd"),
    ],
)
def test_garbage_from_the_api_exits_8_with_one_line(
    cli: Any, rtk: Any, body: bytes, content_type: str, says: str
) -> None:
    rtk.fail_next(200, body=body, content_type=content_type)
    result = cli("realtimekit", "list")
    assert result.exit_code == 8, result.output
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_400_on_user_input_is_a_usage_error_naming_the_flag(cli: Any, rtk: Any) -> None:
    refusal = {"success": False, "error": {"code": 400, "message": '"search" length must be at most 100'}}
    rtk.fail_next(400, body=refusal)
    result = cli("realtimekit", "list", "--search", "s" * 300)
    assert result.exit_code == 2 and "--search" in result.stderr and "length must be" in result.stderr
    rtk.fail_next(400, body=refusal)
    unprompted = cli("realtimekit", "list")
    assert unprompted.exit_code == 8 and "refused the request (HTTP 400)" in unprompted.stderr


def test_download_of_unknown_refs_exits_6_and_mixed_batch_exits_3(cli: Any, rtk: Any, tmp_path: Path) -> None:
    unknown = "0b5f2d8e-1c1a-4c4c-9a9a-000000000000"
    only = cli("realtimekit", "download", unknown, "-o", str(tmp_path), "--jsonl")
    assert only.exit_code == 6
    mixed = cli(
        "realtimekit", "download", unknown, rtk.ids(ready_only=True)[0], "-o", str(tmp_path), "--jsonl"
    )
    assert mixed.exit_code == 3
    outcomes = [e["outcome"] for e in mixed.jsonl() if e["type"] == "file"]
    assert sorted(outcomes) == ["downloaded", "failed"]


# ---------------------------------------------------------------------------
# recording control


def test_active_shows_the_running_recording_and_exits_6_when_none(cli: Any, rtk: Any) -> None:
    meetings = list(rtk.meetings)
    result = cli("realtimekit", "active", meetings[0], "--json")
    assert result.exit_code == 0
    assert result.json()["ref"] == rtk.ids(status="RECORDING")[0]
    assert result.json()["provider_status"] == "RECORDING"
    jsonl = cli("realtimekit", "active", meetings[1], "--jsonl")
    assert jsonl.jsonl()[0]["provider_status"] == "PAUSED"
    none = cli("realtimekit", "active", meetings[4])
    assert none.exit_code == 6
    assert f"no active recording for meeting {meetings[4]}" in none.stderr
    assert "realtimekit start --meeting" in none.stderr


def test_start_pause_resume_stop_then_download_it(
    cli: Any, rtk: Any, sandbox_rtk: Sandbox, tmp_path: Path
) -> None:
    meeting = list(rtk.meetings)[4]
    started = cli(
        "realtimekit",
        "start",
        "--meeting",
        meeting,
        "--max-seconds",
        "300",
        "--file-name-prefix",
        "board",
        "--audio-codec",
        "mp3",
        "--json",
    )
    assert started.exit_code == 0, started.output
    record = started.json()
    assert record["provider_status"] == "RECORDING" and record["filename"].startswith("board_")
    [post] = rtk.server.requests(method="POST")
    assert json.loads(post.body) == {
        "meeting_id": meeting,
        "max_seconds": 300,
        "file_name_prefix": "board",
        "audio_config": {"export_file": True, "codec": "MP3"},
    }
    ref = record["ref"]
    assert cli("realtimekit", "active", meeting, "--json").json()["ref"] == ref
    assert cli("realtimekit", "pause", ref, "--json").json()["provider_status"] == "PAUSED"
    assert cli("realtimekit", "resume", ref, "--json").json()["provider_status"] == "RECORDING"
    stopped = cli("realtimekit", "stop", ref, "--json").json()
    assert stopped["provider_status"] == "UPLOADED" and stopped["downloadable"] is True
    assert [json.loads(r.body) for r in rtk.server.requests(method="PUT")] == [
        {"action": "pause"},
        {"action": "resume"},
        {"action": "stop"},
    ]
    result = cli("realtimekit", "download", ref, "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert saved(tmp_path / "o", ref).read_bytes() == content(sandbox_rtk, rtk, ref)
    audio = cli("realtimekit", "download", ref, "--audio", "-o", str(tmp_path / "o"))
    assert audio.exit_code == 0, audio.output
    assert saved(tmp_path / "o", f"{ref}_audio").suffix == ".mp3"
    table = cli("realtimekit", "active", meeting)
    assert table.exit_code == 6


def test_start_on_a_meeting_being_recorded_needs_allow_multiple(cli: Any, rtk: Any) -> None:
    meeting = next(iter(rtk.meetings))
    refused = cli("realtimekit", "start", "--meeting", meeting)
    assert refused.exit_code == 2
    assert "already in progress" in refused.stderr and "--allow-multiple" in refused.stderr
    allowed = cli("realtimekit", "start", "--meeting", meeting, "--allow-multiple", "--json")
    assert allowed.exit_code == 0 and allowed.json()["provider_status"] == "RECORDING"
    assert json.loads(rtk.server.requests(method="POST")[-1].body)["allow_multiple_recordings"] is True


def test_start_validates_its_input(cli: Any, rtk: Any) -> None:
    assert cli("realtimekit", "start", "--meeting", "nope").exit_code == 2
    assert (
        cli("realtimekit", "start", "--meeting", next(iter(rtk.meetings)), "--max-seconds", "5").exit_code
        == 2
    )
    assert rtk.server.requests() == []
    unknown = cli("realtimekit", "start", "--meeting", "0b5f2d8e-1c1a-4c4c-9a9a-000000000000")
    assert unknown.exit_code == 6 and "has no meeting" in unknown.stderr


def test_control_in_the_wrong_state_or_of_an_unknown_recording(cli: Any, rtk: Any) -> None:
    uploaded = rtk.ids(ready_only=True)[0]
    wrong = cli("realtimekit", "pause", uploaded)
    assert wrong.exit_code == 2
    assert "Cannot pause a recording that is UPLOADED" in wrong.stderr and f"show {uploaded}" in wrong.stderr
    assert rtk.recordings[uploaded]["status"] == "UPLOADED"
    assert cli("realtimekit", "stop", "0b5f2d8e-1c1a-4c4c-9a9a-000000000000").exit_code == 6
    assert cli("realtimekit", "resume", "not-a-uuid").exit_code == 2


def test_control_post_and_put_are_not_retried_on_a_502(cli: Any, rtk: Any) -> None:
    """A retried start could start a second recording: only 429/503 say "not processed"."""
    rtk.fail_next(502, times=1, method="POST")
    result = cli("realtimekit", "start", "--meeting", list(rtk.meetings)[4])
    assert result.exit_code == 8
    assert len(rtk.server.requests(method="POST")) == 1


def test_provider_verbs_are_declared() -> None:
    assert RealtimeKitProvider.extra_verbs == ("active", "start", "start-tracks", "stop", "pause", "resume")


# ---------------------------------------------------------------------------
# login


def test_login_verifies_then_saves_without_echoing_the_token(
    cli: Any, sandbox_rtk: Sandbox, config_file: Path
) -> None:
    base = sandbox_rtk["realtimekit"].profile()["base_url"]
    args = ("realtimekit", "login", "--account-id", ACCOUNT_ID, "--app-id", APP_ID, "--base-url", base)
    bad = cli(*args, "--api-token-stdin", input="y" * 40 + "\n")
    assert bad.exit_code == 4 and not config_file.exists()
    good = cli(*args, "--api-token-stdin", input=API_TOKEN + "\n")
    assert good.exit_code == 0, good.output
    assert API_TOKEN not in good.output
    assert API_TOKEN in config_file.read_text()
    assert cli("realtimekit", "list", "--jsonl").exit_code == 0


# ---------------------------------------------------------------------------
# parsing units (MockTransport): what a stand-in cannot easily be made to send


def _provider(handler: Any, **options: Any) -> RealtimeKitProvider:
    settings = {"account_id": ACCOUNT_ID, "app_id": APP_ID, "api_token": API_TOKEN}
    return RealtimeKitProvider(
        settings,
        profile="t",
        state_dir=Path("."),
        options=options,
        retries=0,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_paging_without_a_paging_block_reads_until_an_empty_page() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = request.url.params["page_no"]
        asked.append(page)
        data = (
            [{"id": f"00000000-0000-4000-8000-00000000000{page}", "status": "UPLOADED"}] if page < "3" else []
        )
        return httpx.Response(200, json={"success": True, "data": data})

    ids = [r.id for r in _provider(handler).iter_recordings(ListQuery())]
    assert len(ids) == 2 and asked == ["1", "2", "3"]


def test_a_page_served_again_is_an_error_not_a_loop() -> None:
    item = {"id": "00000000-0000-4000-8000-000000000001", "status": "UPLOADED"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "data": [item], "paging": {"total_count": 9}})

    with pytest.raises(ProviderError, match="realtimekit recordings listing does not end"):
        list(_provider(handler).iter_recordings(ListQuery()))


def test_liberal_parsing_of_strings_nulls_and_missing_keys() -> None:
    obj = {
        "id": "00000000-0000-4000-8000-000000000001",
        "status": "uploaded",
        "file_size": "1234",
        "recording_duration": "61",
        "download_url": "https://r2.example/x/rec.webm?sig=1",
        "download_url_expiry": None,
        "started_time": None,
        "invoked_time": "2025-11-20T10:00:00Z",
        "storage_config": {"type": "aws", "secret": "s3cr3t", "bucket": "b"},
        "extra": {"nested_url": "https://cdn.example/a?token=zzz"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "data": obj})

    rec = _provider(handler).get_recording(obj["id"].upper())
    assert rec.downloadable and rec.status == "ready" and rec.size_bytes == 1234 and rec.duration_s == 61.0
    assert rec.media_type == "video/webm" and rec.started_at == datetime(2025, 11, 20, 10, tzinfo=UTC)
    assert "download_url" not in rec.raw and "secret" not in rec.raw["storage_config"]
    assert rec.raw["extra"]["nested_url"] == "https://cdn.example/a?<redacted>"
    bare = {"id": obj["id"]}
    rec = _provider(lambda r: httpx.Response(200, json={"data": bare})).get_recording(obj["id"])
    assert (
        rec.status == "unknown"
        and not rec.downloadable
        and "unknown RealtimeKit status" in (rec.skip_reason or "")
    )


def test_settings_are_checked_before_they_reach_a_url_path() -> None:
    good = {"account_id": ACCOUNT_ID, "app_id": APP_ID, "api_token": API_TOKEN}
    RealtimeKitProvider.check_settings(good)
    for key, value in (("account_id", "a/b"), ("app_id", "xyz"), ("api_token", "a b")):
        with pytest.raises(ConfigError):
            RealtimeKitProvider.check_settings({**good, key: value})
    with pytest.raises(ConfigError, match="api_token is not set"):
        RealtimeKitProvider.check_settings({**good, "api_token": ""})


def test_unknown_status_filter_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError) as info:
        list(
            _provider(lambda r: httpx.Response(500)).iter_recordings(ListQuery(options={"status": ["done"]}))
        )
    assert "UPLOADED" in (info.value.hint or "")


def test_mint_refuses_a_url_whose_expiry_has_passed() -> None:
    obj = {
        "id": "00000000-0000-4000-8000-000000000001",
        "status": "UPLOADED",
        "download_url": "https://r2.example/x/rec.mp4?sig=1",
        "download_url_expiry": "2020-01-01T00:00:00Z",
    }
    provider = _provider(lambda r: httpx.Response(200, json={"success": True, "data": obj}))
    recording = provider.get_recording(obj["id"])
    with pytest.raises(NotFoundError, match="expired at 2020-01-01T00:00:00Z") as info:
        provider.mint(recording)
    assert "clock" in (info.value.hint or "")


@pytest.mark.parametrize(
    "name",
    [
        "cut in an emoji \ud83d.mp4",  # a lone UTF-16 surrogate, as a JavaScript backend sends it
        "\x1b[31mred\x1b[0m\r\nnext line\x00.mp4",
        "\u202eevil\u200f\u2067 rtl.mp4",
        "é" * 300 + ".mp4",
    ],
)
def test_hostile_names_from_the_provider_never_crash_any_output_and_make_valid_files(
    cli: Any, rtk: Any, tmp_path: Path, name: str
) -> None:
    rid = rtk.add_recording(output_file_name=name)
    for fmt in ("jsonl", "json", "csv", "table"):
        result = cli("realtimekit", "list", "--format", fmt)
        assert result.exit_code == 0, (fmt, result.output)
        result.stdout.encode("utf-8")  # strict: a surrogate would not encode
        assert "\x1b[31m" not in result.stdout and "\x00" not in result.stdout
    record = next(r for r in listing(cli) if r["ref"] == rid)
    assert "\ud83d" not in json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass").decode()
    pulled = cli("realtimekit", "pull", "-o", "out", "--name", "{name}{ext}", "--no-archive", "--jsonl")
    assert pulled.exit_code == 0, pulled.output
    event = next(e for e in pulled.jsonl() if e.get("ref") == rid)
    path = Path(event["path"])
    assert event["outcome"] == "downloaded" and path.is_file()
    assert path.resolve().parent == (tmp_path / "out").resolve()
    assert len(path.name.encode("utf-8")) <= 255 and path.name.endswith(".mp4")
