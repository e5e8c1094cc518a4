"""Kaleyra through the real CLI against the sandbox stand-in: report parsing, both link modes, errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, assert_no_credentials_at_storage

from recfetch.sandbox import Sandbox
from recfetch.sandbox.kaleyra import API_KEY, SAMPLE_REPORT, SID, KaleyraStandIn
from recfetch.sandbox.storage import Storage


@pytest.fixture
def kal(sandbox_profile: Sandbox) -> KaleyraStandIn:
    return sandbox_profile["kaleyra"]


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries still happen, without the wall-clock waits between them."""
    monkeypatch.setattr("recfetch.backoff.delay_for", lambda attempt, retry_after=None: 0.0)


def write(tmp_path: Path, text: str, name: str = "report.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def report(kal: KaleyraStandIn, tmp_path: Path, **kw: Any) -> Path:
    return write(tmp_path, kal.report_csv(**kw))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# list --from-report


def test_list_emits_one_full_record_per_report_row_without_calling_kaleyra(
    kal: KaleyraStandIn, tmp_path: Path, cli: Any
) -> None:
    path = report(kal, tmp_path)
    res = cli("kaleyra", "list", "--from-report", str(path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    records = res.jsonl()
    rows = list(csv.DictReader(io.StringIO(kal.report_csv())))
    assert [r["ref"] for r in records] == [row["Recording ID"] for row in rows]
    first, row = records[0], rows[0]
    assert first["id"] == first["ref"] and first["downloadable"] is True and first["status"] == "ready"
    assert first["started_at"] == row["Start Time"].replace(" ", "T") + "Z"
    assert first["ended_at"] == row["End Time"].replace(" ", "T") + "Z"
    assert first["duration_s"] == float(row["Duration"])
    assert (first["from"], first["to"], first["call_id"]) == (row["From"], row["To"], row["Call ID"])
    assert first["provider_status"] == row["Status"]
    assert (
        first["direction"]
        == {"Inbound": "inbound", "Outbound": "outbound", "Click2Call": "outbound"}[row["Type"]]
    )
    assert first["raw"]["Bridge"] == row["Bridge"] and first["raw"]["Credits"] == row["Credits"]
    assert kal.mint_calls == 0  # listing never mints a link


@pytest.mark.parametrize("verb", ["list", "pull"])
def test_list_and_pull_without_a_report_exit_2_naming_the_fix(
    kal: KaleyraStandIn, cli: Any, verb: str
) -> None:
    res = cli("kaleyra", verb)
    assert res.exit_code == 2
    assert "--from-report" in res.stderr and "no listing API" in res.stderr
    assert kal.mint_calls == 0


@pytest.mark.parametrize(
    "header", ["recording_id", "Recording ID", "recordingid", "recording id", "Recording Id", "RECORDING-ID"]
)
def test_recording_id_column_is_found_whatever_its_spelling(
    kal: KaleyraStandIn, tmp_path: Path, cli: Any, header: str
) -> None:
    path = report(kal, tmp_path, id_header=header)
    res = cli("kaleyra", "list", "--from-report", str(path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    assert sorted(r["ref"] for r in res.jsonl()) == sorted(kal.ids(include_expired=False))


def test_id_column_flag_names_a_column_detection_cannot_guess(tmp_path: Path, cli: Any, kal: Any) -> None:
    path = write(tmp_path, "Caller,Clip,Started\n+91800,abc==,2025-11-20 10:00:00\n+91801,def==,\n")
    res = cli("kaleyra", "list", "--from-report", str(path), "--jsonl")
    assert res.exit_code == 2
    assert "'Caller', 'Clip', 'Started'" in res.stderr and "--id-column" in res.stderr
    res = cli("kaleyra", "list", "--from-report", str(path), "--id-column", "clip", "--jsonl")
    assert res.exit_code == 0, res.stderr
    assert [r["ref"] for r in res.jsonl()] == ["abc==", "def=="]
    assert res.jsonl()[0]["from"] == "+91800"


def test_unknown_id_column_flag_exits_2_listing_the_headers(tmp_path: Path, cli: Any, kal: Any) -> None:
    path = write(tmp_path, "Recording ID,From\nabc==,+9180\n")
    res = cli("kaleyra", "list", "--from-report", str(path), "--id-column", "Rec", "--jsonl")
    assert res.exit_code == 2
    assert "no column 'Rec'" in res.stderr and "'Recording ID', 'From'" in res.stderr
    assert res.stdout == ""


def test_report_with_bom_semicolons_blank_rows_and_duplicates_lists_each_id_once(
    kal: KaleyraStandIn, tmp_path: Path, cli: Any
) -> None:
    text = (
        "\ufeffCall Id;Recording Id;Call Start Time;Duration\r\n"
        "\r\n"
        "c1;abc+/1==;20/11/2025 10:00:00;00:01:02\r\n"
        ";;;\r\n"
        "c2;abc+/1==;20/11/2025 11:00:00;5\r\n"
        "c3;zz9==;2025-11-20T10:00:00+05:30;7\r\n"
        "c4;;2025-11-20 10:00:00;7\r\n"
    )
    res = cli("kaleyra", "list", "--from-report", str(write(tmp_path, text)), "--jsonl")
    assert res.exit_code == 0, res.stderr
    records = res.jsonl()
    assert [r["ref"] for r in records] == ["abc+/1==", "zz9=="]
    assert records[0]["started_at"] == "2025-11-20T10:00:00Z" and records[0]["duration_s"] == 62.0
    assert records[0]["call_id"] == "c1"
    assert records[1]["started_at"] == "2025-11-20T04:30:00Z"


def test_report_from_stdin(kal: KaleyraStandIn, cli: Any) -> None:
    res = cli(
        "kaleyra", "list", "--from-report", "-", "--jsonl", input=kal.report_csv(bom=True, delimiter=";")
    )
    assert res.exit_code == 0, res.stderr
    assert sorted(r["ref"] for r in res.jsonl()) == sorted(kal.ids(include_expired=False))


def test_missing_and_empty_reports_exit_2(tmp_path: Path, cli: Any, kal: Any) -> None:
    res = cli("kaleyra", "list", "--from-report", str(tmp_path / "nope.csv"))
    assert res.exit_code == 2 and "does not exist" in res.stderr
    res = cli("kaleyra", "list", "--from-report", str(write(tmp_path, "\n\n")))
    assert res.exit_code == 2 and "empty" in res.stderr


def test_since_and_until_filter_on_the_report_start_column(tmp_path: Path, cli: Any, kal: Any) -> None:
    text = (
        "Recording ID,Start Time\n"
        "old==,2025-01-05 10:00:00\n"
        "mid==,2025-03-05 10:00:00\n"
        "new==,2025-06-05 10:00:00\n"
        "nodate==,\n"
    )
    path = write(tmp_path, text)
    res = cli(
        "kaleyra", "list", "--from-report", str(path), "--since", "2025-02-01T00:00:00Z",
        "--until", "2025-04-01T00:00:00Z", "--jsonl",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert [r["ref"] for r in res.jsonl()] == ["mid=="]
    res = cli("kaleyra", "list", "--from-report", str(path), "--jsonl")
    assert len(res.jsonl()) == 4  # without a window, rows without a date are listed too


def test_since_on_a_report_without_a_start_column_exits_2(tmp_path: Path, cli: Any, kal: Any) -> None:
    path = write(tmp_path, "Recording ID,From\nabc==,+9180\n")
    res = cli("kaleyra", "list", "--from-report", str(path), "--since", "7d")
    assert res.exit_code == 2 and "start-time column" in res.stderr


def test_presigned_urls_in_report_columns_never_reach_raw(tmp_path: Path, cli: Any, kal: Any) -> None:
    signed = "https://s3.example/rec/abc.mp3?X-Amz-Signature=deadbeef&X-Amz-Expires=300"
    path = write(tmp_path, f"Recording ID,Recording URL,Note\nabc==,{signed},https://example.com/page\n")
    res = cli("kaleyra", "list", "--from-report", str(path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    raw = res.jsonl()[0]["raw"]
    assert "Recording URL" not in raw and raw["Note"] == "https://example.com/page"
    assert res.jsonl()[0]["media_type"] == "audio/mpeg"  # the link's extension still names the format
    assert "deadbeef" not in res.stdout


def test_limit_stops_and_says_so(kal: KaleyraStandIn, tmp_path: Path, cli: Any) -> None:
    res = cli("kaleyra", "list", "--from-report", str(report(kal, tmp_path)), "--limit", "3", "--jsonl")
    assert res.exit_code == 0
    assert len(res.jsonl()) == 3 and "--limit 3" in res.stderr


# ---------------------------------------------------------------------------
# show


def test_show_without_a_report_returns_a_minimal_record_and_calls_nothing(
    kal: KaleyraStandIn, cli: Any
) -> None:
    rid = kal.ids()[0]
    res = cli("kaleyra", "show", rid, "--json")
    assert res.exit_code == 0, res.stderr
    record = res.json()
    assert record["ref"] == record["id"] == rid and record["downloadable"] is True
    assert record["status"] == "unknown" and record["started_at"] is None and record["raw"] == {}
    assert kal.mint_calls == 0


def test_show_with_a_report_finds_the_row(kal: KaleyraStandIn, tmp_path: Path, cli: Any) -> None:
    path = report(kal, tmp_path)
    rid = kal.ids(include_expired=False)[2]
    res = cli("kaleyra", "show", rid, "--from-report", str(path), "--json")
    assert res.exit_code == 0, res.stderr
    assert res.json()["raw"]["Recording ID"] == rid and res.json()["started_at"] is not None
    res = cli("kaleyra", "show", "notthere==", "--from-report", str(path), "--json")
    assert res.exit_code == 6 and "not in the report" in res.stderr


# ---------------------------------------------------------------------------
# url: minting in both modes


def test_url_mints_a_json_link_with_the_documented_form_and_query(kal: KaleyraStandIn, cli: Any) -> None:
    rid = next(r for r in kal.ids(include_expired=False) if "+" in r)  # '+' must survive form encoding
    before = datetime.now(UTC)
    res = cli("kaleyra", "url", rid, "--validity", "10", "--json")
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    expires = datetime.fromisoformat(doc["expires_at"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=10) - timedelta(seconds=2) <= expires
    assert expires <= datetime.now(UTC) + timedelta(minutes=10)
    mint = kal.mints[-1]
    assert mint["sid"] == SID and mint["api_key_ok"] and mint["query_id"] == rid
    assert mint["form"] == {"id": rid, "validity": "10", "download": "0"}
    assert mint["content_type"].startswith("application/x-www-form-urlencoded")
    assert httpx.get(doc["url"]).content == kal.content(rid)


def test_url_in_redirect_mode_reads_the_301_location_without_following_it(
    sandbox_profile: Sandbox, kal: KaleyraStandIn, cli: Any
) -> None:
    rid = kal.ids(include_expired=False)[0]
    res = cli("kaleyra", "url", rid, "--link-mode", "redirect")
    assert res.exit_code == 0, res.stderr
    link = res.stdout.strip()
    assert link.startswith(sandbox_profile.storage.url)
    assert kal.mints[-1]["form"]["download"] == "1"
    assert sandbox_profile.storage.server.requests() == []  # read, not followed
    assert httpx.get(link).content == kal.content(rid)


def test_default_validity_is_five_minutes(kal: KaleyraStandIn, cli: Any) -> None:
    res = cli("kaleyra", "url", kal.ids(include_expired=False)[0], "--json")
    assert res.exit_code == 0
    assert kal.mints[-1]["form"]["validity"] == "5"
    expires = datetime.fromisoformat(res.json()["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)


@pytest.mark.parametrize("value", ["0", "1441", "-3"])
def test_validity_out_of_range_exits_2_before_any_request(kal: KaleyraStandIn, cli: Any, value: str) -> None:
    res = cli("kaleyra", "url", kal.ids()[0], f"--validity={value}")
    assert res.exit_code == 2 and "--validity" in res.stderr
    assert kal.mint_calls == 0


def test_link_mode_must_be_json_or_redirect(kal: KaleyraStandIn, cli: Any) -> None:
    res = cli("kaleyra", "url", kal.ids()[0], "--link-mode", "follow")
    assert res.exit_code == 2 and kal.mint_calls == 0


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("strict_json", [False, True], ids=["documented-body", "valid-json-body"])
def test_invalid_and_expired_ids_exit_6_with_distinct_messages(
    kal: KaleyraStandIn, cli: Any, strict_json: bool
) -> None:
    kal.strict_json = strict_json
    res = cli("kaleyra", "url", "doesnotexist==")
    assert res.exit_code == 6
    assert "Invalid Id" in res.stderr and "does not know recording id doesnotexist==" in res.stderr
    expired = kal.expired_ids()[0]
    res = cli("kaleyra", "url", expired)
    assert res.exit_code == 6
    assert "Id Expired" in res.stderr and "older than 6 months" in res.stderr
    assert "Invalid Id" not in res.stderr


def test_an_id_that_spells_invalidid_is_still_told_apart_by_the_message(
    kal: KaleyraStandIn, cli: Any
) -> None:
    rid = kal.add_recording("InvalidId+expired==", expired=True)
    res = cli("kaleyra", "url", rid)
    assert res.exit_code == 6 and "(Id Expired)" in res.stderr and "(Invalid Id)" not in res.stderr
    res = cli("kaleyra", "url", "IdExpired+x==")
    assert res.exit_code == 6 and "(Invalid Id)" in res.stderr and "(Id Expired)" not in res.stderr


def test_invalid_id_in_json_mode_is_a_not_found_error_object(
    kal: KaleyraStandIn, cli: Any, tmp_path: Path
) -> None:
    res = cli("kaleyra", "download", "doesnotexist==", "-o", str(tmp_path / "out"), "--jsonl")
    assert res.exit_code == 6
    events = res.jsonl()
    assert events[0]["outcome"] == "failed" and events[0]["error"]["code"] == "NOT_FOUND"
    assert "Invalid Id" in events[0]["error"]["message"]
    saved = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and ".part" not in p.name]
    assert saved == []  # no error body saved as a recording


@pytest.mark.parametrize("variable", ["RECFETCH_KALEYRA_API_KEY", "RECFETCH_KALEYRA_SID"])
def test_wrong_credentials_exit_4_and_are_never_echoed(
    kal: KaleyraStandIn, cli: Any, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "WRONGwrongWRONG1234")
    res = cli("-v", "kaleyra", "url", kal.ids()[0])
    assert res.exit_code == 4
    assert "rejected the sid/api-key pair" in res.stderr and "api_key" in res.stderr
    assert API_KEY not in res.output
    # The api key is a secret and is never echoed; the SID is an account identifier that is part
    # of every request path, so `-v` may show it (it was only ever hidden here by a secret that an
    # earlier test had left registered).
    if variable.endswith("API_KEY"):
        assert "WRONGwrongWRONG1234" not in res.output
    else:
        assert "WRONGwrongWRONG1234" not in res.stderr.splitlines()[-1]  # not in the error line


def test_rate_limited_mint_is_retried_then_exits_7(kal: KaleyraStandIn, cli: Any, no_backoff: None) -> None:
    kal.fail_next(429, times=50, retry_after="0")
    res = cli("kaleyra", "url", kal.ids(include_expired=False)[0])
    assert res.exit_code == 7 and "429" in res.stderr
    assert len(kal.server.requests("/voice/recordings")) == 6  # the first try and 5 retries


def test_transient_5xx_is_retried_and_the_link_still_arrives(
    kal: KaleyraStandIn, cli: Any, no_backoff: None
) -> None:
    kal.fail_next(502, times=2)
    rid = kal.ids(include_expired=False)[0]
    res = cli("kaleyra", "url", rid)
    assert res.exit_code == 0, res.stderr
    assert len(kal.server.requests("/voice/recordings")) == 3
    assert httpx.get(res.stdout.strip()).content == kal.content(rid)


def test_persistent_5xx_exits_8(kal: KaleyraStandIn, cli: Any, no_backoff: None) -> None:
    kal.fail_next(500, times=50)
    res = cli("kaleyra", "url", kal.ids(include_expired=False)[0])
    assert res.exit_code == 8 and "HTTP 500" in res.stderr


def test_a_200_without_a_link_is_a_provider_error_not_a_crash(kal: KaleyraStandIn, cli: Any) -> None:
    kal.fail_next(200, body={"code": "RBC3XXX", "message": "Request successfully executed!", "data": []})
    res = cli("kaleyra", "url", kal.ids(include_expired=False)[0])
    assert res.exit_code == 8 and "without a link" in res.stderr
    kal.fail_next(200, body=b"<html>maintenance</html>")
    res = cli("kaleyra", "url", kal.ids(include_expired=False)[0])
    assert res.exit_code == 8 and "Traceback" not in res.output


# ---------------------------------------------------------------------------
# download / pull


@pytest.mark.parametrize("mode", ["json", "redirect"])
def test_download_is_byte_exact_in_both_link_modes_and_keeps_the_key_off_storage(
    sandbox_profile: Sandbox, kal: KaleyraStandIn, cli: Any, tmp_path: Path, mode: str
) -> None:
    rids = kal.ids(include_expired=False)[:3]
    out = tmp_path / "out"
    res = cli("kaleyra", "download", *rids, "-o", str(out), "--link-mode", mode, "--jsonl")
    assert res.exit_code == 0, res.stderr
    files = [e for e in res.jsonl() if e["type"] == "file"]
    assert [e["outcome"] for e in files] == ["downloaded"] * 3
    for event in files:
        data = Path(event["path"]).read_bytes()
        assert data == kal.content(event["ref"]) and event["sha256"] == sha(data)
    assert {m["form"]["download"] for m in kal.mints} == {"1" if mode == "redirect" else "0"}
    assert_no_credentials_at_storage(sandbox_profile)


def test_link_expiring_mid_transfer_is_reminted_and_resumes(
    sandbox_profile: Sandbox, kal: KaleyraStandIn, cli: Any, tmp_path: Path
) -> None:
    storage = sandbox_profile.storage
    rid = kal.add_recording(size=150_000, media_type="audio/mpeg")
    fault = storage.drop_next(60_000)
    drop = fault.response

    def drop_then_expire(request: Any) -> Any:
        response = drop(request)  # type: ignore[operator]
        storage.expire_all()  # the link dies while its bytes are on the wire
        return response

    fault.response = drop_then_expire
    res = cli("kaleyra", "download", rid, "-o", str(tmp_path), "--jsonl")
    assert res.exit_code == 0, res.stderr
    event = res.jsonl()[0]
    assert Path(event["path"]).read_bytes() == kal.content(rid)
    assert kal.mint_calls == 2  # one re-mint after the 403 from the expired link
    gets = storage.server.requests(method="GET")
    assert any(r.headers.get("range", "").startswith("bytes=") for r in gets[1:])  # resumed, not restarted
    assert_no_credentials_at_storage(sandbox_profile)


def test_pull_from_report_downloads_every_id_then_finds_nothing_new(
    sandbox_profile: Sandbox, kal: KaleyraStandIn, cli: Any, tmp_path: Path
) -> None:
    path = report(kal, tmp_path)
    out = tmp_path / "pulled"
    res = cli("kaleyra", "pull", "--from-report", str(path), "-o", str(out), "--jsonl")
    assert res.exit_code == 0, res.stderr
    events = res.jsonl()
    summary = events[-1]
    wanted = kal.ids(include_expired=False)
    assert summary["type"] == "summary" and summary["downloaded"] == len(wanted) and summary["failed"] == 0
    for event in events[:-1]:
        assert Path(event["path"]).read_bytes() == kal.content(event["ref"])
    mints = kal.mint_calls
    res = cli("kaleyra", "pull", "--from-report", str(path), "-o", str(out), "--jsonl", "--fail-if-empty")
    assert res.exit_code == 9
    assert res.jsonl()[-1]["downloaded"] == 0 and kal.mint_calls == mints  # skipped without minting
    assert_no_credentials_at_storage(sandbox_profile)


def test_pull_of_a_report_with_expired_ids_downloads_the_rest_and_exits_3(
    kal: KaleyraStandIn, cli: Any, tmp_path: Path
) -> None:
    path = report(kal, tmp_path, include_expired=True)
    res = cli("kaleyra", "pull", "--from-report", str(path), "-o", str(tmp_path / "o"), "--jsonl")
    assert res.exit_code == 3
    events = res.jsonl()
    failed = {e["ref"]: e for e in events if e.get("outcome") == "failed"}
    assert set(failed) == set(kal.expired_ids())
    assert all("Id Expired" in e["error"]["message"] for e in failed.values())
    assert events[-1]["downloaded"] == len(kal.ids(include_expired=False))


def test_pull_since_only_downloads_recent_rows(kal: KaleyraStandIn, cli: Any, tmp_path: Path) -> None:
    path = report(kal, tmp_path, include_expired=True)
    res = cli(
        "kaleyra", "pull", "--from-report", str(path), "--since", "3d", "-o", str(tmp_path / "o"), "--jsonl"
    )
    assert res.exit_code == 0, res.stderr
    done = [e["ref"] for e in res.jsonl() if e.get("outcome") == "downloaded"]
    assert done and set(done) < set(kal.ids(include_expired=False))
    assert not set(done) & set(kal.expired_ids())


def test_round_trip_list_jq_download_with_the_real_jq(
    sandbox_profile: Sandbox, kal: KaleyraStandIn, tmp_path: Path
) -> None:
    path = report(kal, tmp_path)
    out = tmp_path / "dl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    py = sys.executable
    pipeline = (
        f"'{py}' -m recfetch kaleyra list --from-report '{path}' --jsonl | jq -r .ref | "
        f"'{py}' -m recfetch kaleyra download -o '{out}' -"
    )
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    got = {p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.endswith(".part")}
    assert got == {kal.content(rid) for rid in kal.ids(include_expired=False)}
    assert API_KEY not in proc.stdout + proc.stderr
    assert_no_credentials_at_storage(sandbox_profile)


def test_no_secret_or_link_leaks_into_list_show_download_output(
    kal: KaleyraStandIn, cli: Any, tmp_path: Path
) -> None:
    path = report(kal, tmp_path)
    rid = kal.ids(include_expired=False)[0]
    outputs = [
        cli("-vv", "kaleyra", "list", "--from-report", str(path), "--jsonl"),
        cli("-vv", "kaleyra", "show", rid, "--json"),
        cli("-vv", "kaleyra", "download", rid, "-o", str(tmp_path / "o"), "--jsonl"),
    ]
    for res in outputs:
        assert res.exit_code == 0, res.stderr
        assert API_KEY not in res.output
        assert "X-Signature" not in res.output


# ---------------------------------------------------------------------------
# login and the shipped sample


def test_login_checks_the_pair_with_a_probe_and_saves_only_on_success(
    sandbox: Sandbox, cli: Any, config_file: Path
) -> None:
    kal: KaleyraStandIn = sandbox["kaleyra"]
    base = kal.server.url
    res = cli(
        "kaleyra", "login", "--sid", SID, "--api-key-stdin", "--base-url", base, input="nope-nope-nope\n"
    )
    assert res.exit_code == 4 and not config_file.exists()
    res = cli("kaleyra", "login", "--sid", SID, "--api-key-stdin", "--base-url", base, input=API_KEY + "\n")
    assert res.exit_code == 0, res.stderr
    assert f"sid {SID}" in res.stderr and API_KEY not in res.output
    assert API_KEY in config_file.read_text()
    assert kal.mints[-1]["form"]["id"] == "recfetch-login-check"


def test_shipped_sample_report_names_the_seed_0_stand_in_ids(cli: Any) -> None:
    storage = Storage()
    try:
        standin = KaleyraStandIn(storage, seed=0)
        shipped = list(csv.DictReader(io.StringIO(SAMPLE_REPORT.read_text(encoding="utf-8"))))
        fresh = list(csv.DictReader(io.StringIO(standin.report_csv())))
        assert [r["Recording ID"] for r in shipped] == [r["Recording ID"] for r in fresh]
        assert set(r["Recording ID"] for r in shipped) == set(standin.ids(include_expired=False))
    finally:
        storage.close()


def test_stand_in_scales_to_a_thousand_recordings_quickly(tmp_path: Path) -> None:
    storage = Storage()
    try:
        started = datetime.now(UTC)
        standin = KaleyraStandIn(storage, recordings=1500)
        text = standin.report_csv(include_expired=True)
        assert len(text.splitlines()) == 1501
        assert (datetime.now(UTC) - started).total_seconds() < 5
    finally:
        storage.close()


def test_report_rows_json_shape_is_stable(kal: KaleyraStandIn, tmp_path: Path, cli: Any) -> None:
    res = cli("kaleyra", "list", "--from-report", str(report(kal, tmp_path)), "--json")
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == 1 and len(doc["items"]) == len(kal.ids(include_expired=False))
    assert all(item["provider"] == "kaleyra" and item["profile"] == "sandbox" for item in doc["items"])
