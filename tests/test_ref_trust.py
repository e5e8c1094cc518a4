"""The REF the user gave is the truth: an answer naming another recording is a provider error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recfetch.sandbox import Sandbox
from recfetch.sandbox.httpserver import Fault


@pytest.fixture
def sandbox(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(providers=["realtimekit", "kazoo"]) as sb:
        sb.write_profile(config_file, "sandbox")
        monkeypatch.setenv("RECFETCH_PROFILE", "sandbox")
        yield sb


def _json_error(result: Any) -> dict[str, Any]:
    """The error of `show --json` (on stderr) or of the one file of `download --json` (its event)."""
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("type") == "error"]
    if errors:
        return errors[-1]
    [event] = json.loads(result.stdout)["items"]
    assert event["outcome"] == "failed" and event["path"] is None
    return event["error"]


def test_realtimekit_show_and_download_refuse_an_echo_of_another_recording(
    cli: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    rtk = sandbox["realtimekit"]
    asked, other = rtk.ids(ready_only=True)[:2]
    other_body = json.loads(cli("realtimekit", "show", other, "--json").stdout)["raw"]
    substitute = {"success": True, "data": {**other_body, "download_url": None}}

    for verb in (("show", asked, "--json"), ("download", asked, "-o", str(tmp_path / "out"), "--json")):
        rtk.fail_next(200, body=substitute, path_contains=f"/recordings/{asked}", method="GET")
        result = cli("realtimekit", *verb)
        assert result.exit_code == 8, (verb, result.output)
        error = _json_error(result)
        assert error["code"] == "PROVIDER_ERROR" and asked in error["message"] and other in error["message"]
        assert error.get("provider", "realtimekit") == "realtimekit" and error.get("http_status", 200) == 200
        assert f'"ref": "{other}"' not in result.stdout
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_kazoo_show_and_download_refuse_an_echo_of_another_recording(
    cli: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    kz = sandbox["kazoo"]
    asked, other = kz.ids(downloadable=True)[:2]

    substitute = kz._public(kz._docs[other])

    def other_doc(request: Any) -> Any:
        return kz._envelope(substitute)

    for verb in (("show", asked, "--json"), ("download", asked, "-o", str(tmp_path / "out"), "--json")):
        kz.server.add_fault(
            Fault(
                lambda r: (
                    r.method == "GET"
                    and r.path.endswith(asked)
                    and "audio/" not in r.headers.get("accept", "")
                ),
                other_doc,
            )
        )
        result = cli("kazoo", *verb)
        assert result.exit_code == 8, (verb, result.output)
        error = _json_error(result)
        assert error["code"] == "PROVIDER_ERROR" and asked in error["message"] and other in error["message"]
        assert error.get("provider", "kazoo") == "kazoo" and error.get("http_status", 200) == 200
    assert not [r for r in kz.server.requests(asked) if "audio/" in r.headers.get("accept", "")]
    assert not list((tmp_path / "out").glob("*.mp3"))


def test_negative_sizes_and_durations_become_null(cli: Any, sandbox: Sandbox) -> None:
    rtk = sandbox["realtimekit"]
    rid = rtk.ids(ready_only=True)[0]
    raw = json.loads(cli("realtimekit", "show", rid, "--json").stdout)["raw"]
    body = {"success": True, "data": {**raw, "id": rid, "file_size": -1, "recording_duration": -30}}
    rtk.fail_next(200, body=body, path_contains=f"/recordings/{rid}", method="GET")

    record = json.loads(cli("realtimekit", "show", rid, "--json").stdout)

    assert record["size_bytes"] is None and record["duration_s"] is None
    assert record["raw"]["file_size"] == -1  # the provider's object stays as received


def test_json_errors_name_the_provider_even_when_raised_deep_in_an_adapter(
    cli: Any, sandbox: Sandbox
) -> None:
    kz = sandbox["kazoo"]
    ref = kz.ids(downloadable=True)[0]
    kz.server.add_fault(Fault(lambda r: r.method == "GET" and r.path.endswith(ref), kz._envelope([])))

    result = cli("kazoo", "show", ref, "--json")

    assert result.exit_code == 8
    error = _json_error(result)
    assert error["code"] == "PROVIDER_ERROR" and error["provider"] == "kazoo"
    config = cli("kazoo", "show", ref, "--json", env={"RECFETCH_KAZOO_ACCOUNT_ID": "not hex"})
    assert config.exit_code == 5 and _json_error(config)["provider"] == "kazoo"
