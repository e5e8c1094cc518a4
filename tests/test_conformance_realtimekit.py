"""RealtimeKit against its published OpenAPI: what the adapter sends and what the stand-in answers."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from recfetch.sandbox import Sandbox
from recfetch.sandbox.realtimekit import API_TOKEN, RealtimeKitStandIn

SPEC: dict[str, Any] = json.loads((Path(__file__).parent / "specs" / "realtimekit.json").read_text())
SERVER_PATH = "/client/v4"  # the path of the spec's server URL
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


# ---------------------------------------------------------------------------
# OpenAPI 3.0 -> JSON Schema


def _deref(node: Any) -> Any:
    """Inline every `#/components/...` reference (the extract has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            _, _, kind, name = node["$ref"].split("/")
            return _deref(SPEC["components"][kind][name])
        return {k: _deref(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v) for v in node]
    return node


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects to JSON Schema: `nullable` becomes a "null" type."""
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "readOnly", "writeOnly")}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


def schema_of(node: Any) -> dict[str, Any]:
    return _json_schema(_deref(node))


def declared(schema: dict[str, Any]) -> set[str]:
    """Every property name a schema (and its allOf parts) declares."""
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        names |= declared(part)
    return names


def operation(method: str, path: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The spec operation a logged request hit, and its path parameters."""
    assert path.startswith(SERVER_PATH), path
    rel = path[len(SERVER_PATH) :]
    for template, item in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        match = re.match(pattern, rel)
        if match and method.lower() in item:
            return item[method.lower()], match.groupdict()
    raise AssertionError(f"{method} {path} is not an operation of the spec")


def response_schema(method: str, path: str, status: int) -> dict[str, Any]:
    op, _ = operation(method, path)
    response = _deref(op["responses"][str(status)])
    return schema_of(response["content"]["application/json"]["schema"])


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """A query string value as the type its schema names (how a server would read it)."""
    kind = schema.get("type")
    if kind == "number" or kind == "integer":
        return float(value)
    if kind == "boolean":
        assert value in ("true", "false"), f"boolean query value {value!r}"
        return value == "true"
    return value


def check_request(req: Any) -> None:
    """Path, query and body of one logged request against the operation's definition."""
    op, path_params = operation(req.method, req.path)
    params = [_deref(p) for p in op.get("parameters", [])]
    by_place: dict[str, dict[str, Any]] = {}
    for p in params:
        by_place.setdefault(p["in"], {})[p["name"]] = p
    for name, value in path_params.items():
        jsonschema.validate(value, schema_of(by_place["path"][name]["schema"]), format_checker=FORMATS)
    query_defs = by_place.get("query", {})
    unknown = set(req.query) - set(query_defs)
    assert not unknown, f"{req.method} {req.path} sends undocumented query parameters {unknown}"
    for name, values in req.query.items():
        spec_param = query_defs[name]
        schema = schema_of(spec_param["schema"])
        if schema.get("type") == "array":
            # form style with explode (the default): one `name=value` pair per item
            assert spec_param.get("explode", True) is True
            jsonschema.validate([_coerce(v, schema["items"]) for v in values], schema, format_checker=FORMATS)
        else:
            assert len(values) == 1, f"query parameter {name} sent {len(values)} times"
            jsonschema.validate(_coerce(values[0], schema), schema, format_checker=FORMATS)
    for p in params:
        if p.get("required") and p["in"] == "query":
            assert p["name"] in req.query
    assert req.headers.get("authorization", "").startswith("Bearer "), "security scheme api_token: bearer"
    if "requestBody" in op:
        body_def = _deref(op["requestBody"])
        schema = schema_of(body_def["content"]["application/json"]["schema"])
        assert req.headers.get("content-type", "").startswith("application/json")
        body = json.loads(req.body)
        jsonschema.validate(body, schema, format_checker=FORMATS)
        assert set(body) <= declared(schema), f"undocumented body fields {set(body) - declared(schema)}"
    else:
        assert not req.body


# ---------------------------------------------------------------------------
# (a) what the adapter sends, as the stand-in logged it during real CLI runs


def test_every_request_the_cli_sends_matches_the_spec(rtk_profile: Sandbox, cli: Any, tmp_path: Path) -> None:
    rtk = rtk_profile["realtimekit"]
    meeting = next(iter(rtk.meetings))
    ready = rtk.ids(ready_only=True)
    audio = rtk.ids(audio=True)
    runs = [
        ("list", "--jsonl"),
        (
            "list",
            "--jsonl",
            "--meeting",
            meeting,
            "--status",
            "uploaded",
            "--status",
            "Errored",
            "--search",
            "triage",
            "--expired",
            "--since",
            "2020-01-01T00:00:00Z",
            "--until",
            "2099-01-01",
        ),
        ("list", "--jsonl", "--no-expired", "--status", "RECORDING,paused"),
        ("show", ready[0], "--json"),
        ("url", ready[0], "--json"),
        ("download", ready[1], "-o", str(tmp_path / "dl")),
        ("download", audio[0], "--audio", "-o", str(tmp_path / "dl")),
        ("active", meeting, "--json"),
        (
            "start",
            "--meeting",
            list(rtk.meetings)[4],
            "--max-seconds",
            "600",
            "--file-name-prefix",
            "weekly",
            "--audio-codec",
            "mp3",
            "--audio-channel",
            "mono",
            "--allow-multiple",
            "--json",
        ),
    ]
    storage = tmp_path / "storage.json"
    storage.write_text(json.dumps({"type": "gcs", "bucket": "b", "path": "p/", "secret": "k"}))
    runs += [
        (
            "start",
            "--meeting",
            list(rtk.meetings)[2],
            "--allow-multiple",
            "--storage-config",
            str(storage),
            "--no-realtimekit-bucket",
            "--video-config",
            '{"codec": "H264", "width": 1920, "height": 1080, "export_file": true}',
            "--interactive",
            "--rtmp-url",
            "rtmps://live.example.com/app/k",
            "--url",
            "https://example.com/view",
        ),
        ("start-tracks", "--meeting", list(rtk.meetings)[4]),
        ("start-tracks", "--meeting", list(rtk.meetings)[4], "--max-seconds", "60", "--file-name-prefix=x"),
        ("start-tracks", "--meeting", list(rtk.meetings)[4], "--storage-config", str(storage)),
    ]
    for args in runs:
        result = cli("realtimekit", *args)
        assert result.exit_code == 0, (args, result.stderr)
    started = json.loads(cli("realtimekit", "start", "--meeting", list(rtk.meetings)[3], "--json").stdout)
    for action in ("pause", "resume", "stop"):
        assert cli("realtimekit", action, started["ref"], "--json").exit_code == 0
    logged = rtk.server.requests()
    assert {(r.method, r.path.rsplit("/", 1)[-1]) for r in logged} >= {
        ("GET", "recordings"),
        ("POST", "recordings"),
        ("POST", "track"),
    }
    assert any(r.method == "PUT" for r in logged)
    for req in logged:
        check_request(req)
    status_values = [r.query["status"] for r in logged if "status" in r.query]
    assert ["UPLOADED", "ERRORED"] in status_values and ["RECORDING", "PAUSED"] in status_values
    assert any(r.query.get("expired") == ["false"] for r in logged)
    assert any(r.query.get("end_time") for r in logged)


def test_a_comma_joined_status_would_be_caught() -> None:
    """The check above is not vacuous: `status=A,B` is not how the official SDK sends the array."""
    fake = type("Req", (), {})()
    fake.method, fake.path = "GET", f"{SERVER_PATH}/accounts/{'a' * 32}/realtime/kit/{'b' * 32}/recordings"
    fake.query = {"status": ["UPLOADED,ERRORED"]}
    fake.headers, fake.body = {"authorization": "Bearer x"}, b""
    with pytest.raises(jsonschema.ValidationError):
        check_request(fake)
    fake.query = {"status": ["UPLOADED", "DONE"]}
    with pytest.raises(jsonschema.ValidationError):
        check_request(fake)
    fake.query = {"status": ["UPLOADED", "ERRORED"], "search": ["a", "b"]}
    with pytest.raises(AssertionError):
        check_request(fake)


# ---------------------------------------------------------------------------
# (b) what the stand-in answers, validated against the response schemas


@pytest.fixture
def rtk_sandbox() -> Iterator[Sandbox]:
    with Sandbox(providers=["realtimekit"]) as sb:
        yield sb


@pytest.fixture
def rtk_profile(rtk_sandbox: Sandbox, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    rtk_sandbox.write_profile(config_file, "sandbox")
    monkeypatch.setenv("RECFETCH_PROFILE", "sandbox")
    return rtk_sandbox


@pytest.fixture
def api(rtk_sandbox: Sandbox) -> Iterator[tuple[RealtimeKitStandIn, httpx.Client, str]]:
    rtk = rtk_sandbox["realtimekit"]
    profile = rtk.profile()
    root = f"/client/v4/accounts/{profile['account_id']}/realtime/kit/{profile['app_id']}/recordings"
    client = httpx.Client(
        base_url=rtk.server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, trust_env=False
    )
    yield rtk, client, root
    client.close()


def _check(method: str, path: str, response: httpx.Response) -> Any:
    body = response.json()
    jsonschema.validate(body, response_schema(method, path, response.status_code), format_checker=FORMATS)
    return body


def _strict_recording(obj: dict[str, Any], *, extra: set[str]) -> None:
    recording = declared(schema_of({"$ref": "#/components/schemas/realtimekit_Recording"}))
    assert set(obj) <= recording | extra, f"undocumented fields {set(obj) - recording - extra}"


def test_list_pages_match_the_get_recordings_schema(api: Any) -> None:
    rtk, client, root = api
    seen = 0
    page = 1
    while True:
        response = client.get(root, params={"page_no": page, "per_page": 100})
        body = _check("GET", root, response)
        for item in body["data"]:
            _strict_recording(item, extra={"storage_config", "meeting"})
        seen += len(body["data"])
        if body["paging"]["end_offset"] >= body["paging"]["total_count"]:
            break
        page += 1
    assert seen == len(rtk.recordings) and page > 1
    statuses = {
        item["status"] for item in _check("GET", root, client.get(root, params={"per_page": 0}))["data"]
    }
    assert statuses  # page of the default size validates too
    filtered = client.get(root, params={"status": ["UPLOADED", "ERRORED"], "expired": "true"})
    assert {item["status"] for item in _check("GET", root, filtered)["data"]} <= {"UPLOADED", "ERRORED"}
    joined = client.get(root, params={"status": "UPLOADED,ERRORED"})
    assert joined.status_code == 400  # the stand-in accepts exactly the SDK's repeated keys


def test_get_one_matches_the_get_recording_schema_in_every_status(api: Any) -> None:
    rtk, client, root = api
    seen = set()
    for rid, rec in rtk.recordings.items():
        body = _check("GET", f"{root}/{rid}", client.get(f"{root}/{rid}"))
        _strict_recording(body["data"], extra={"storage_config", "start_reason", "stop_reason"})
        seen.add(rec["status"])
    assert seen == {"INVOKED", "RECORDING", "PAUSED", "UPLOADING", "UPLOADED", "ERRORED"}


def test_active_recording_and_its_404_match_the_spec(api: Any) -> None:
    rtk, client, root = api
    meetings = list(rtk.meetings)
    body = _check(
        "GET", f"{root}/active-recording/{meetings[0]}", client.get(f"{root}/active-recording/{meetings[0]}")
    )
    _strict_recording(body["data"], extra=set())
    missing = client.get(f"{root}/active-recording/{uuid.uuid4()}")
    assert missing.status_code == 404
    _check("GET", f"{root}/active-recording/x", missing)


def test_start_and_pause_resume_stop_answers_match_the_spec(api: Any) -> None:
    rtk, client, root = api
    meeting = list(rtk.meetings)[3]
    op, _ = operation("POST", root)
    body = {"meeting_id": meeting, "max_seconds": 120, "audio_config": {"codec": "AAC", "export_file": True}}
    jsonschema.validate(body, schema_of(_deref(op["requestBody"])["content"]["application/json"]["schema"]))
    started = _check("POST", root, client.post(root, json=body))["data"]
    assert started["status"] == "RECORDING"
    for action, status in (("pause", "PAUSED"), ("resume", "RECORDING"), ("stop", "UPLOADED")):
        path = f"{root}/{started['id']}"
        data = _check("PUT", path, client.put(path, json={"action": action}))["data"]
        assert data["status"] == status
    assert data["download_url"] and data["audio_download_url"] and data["file_size"]


def test_track_recording_answer_matches_the_spec(api: Any) -> None:
    rtk, client, root = api
    op, _ = operation("POST", f"{root}/track")
    body = {
        "meeting_id": list(rtk.meetings)[4],
        "layers": {"default": {"file_name_prefix": "x", "outputs": [{"type": "REALTIMEKIT_BUCKET"}]}},
        "max_seconds": 120,
    }
    jsonschema.validate(body, schema_of(_deref(op["requestBody"])["content"]["application/json"]["schema"]))
    data = _check("POST", f"{root}/track", client.post(f"{root}/track", json=body))["data"]
    _strict_recording(data["recording"], extra=set())
    assert data["recording"]["status"] == "RECORDING"
    bad = client.post(f"{root}/track", json={"meeting_id": body["meeting_id"], "layers": {}})
    assert bad.status_code == 400
    error_schema = schema_of({"$ref": "#/components/schemas/realtimekit_GenericErrorResponse"})
    jsonschema.validate(bad.json(), error_schema)


def test_error_bodies_match_the_generic_error_schema(api: Any) -> None:
    _, client, root = api
    schema = schema_of({"$ref": "#/components/schemas/realtimekit_GenericErrorResponse"})
    for response in (
        client.get(f"{root}/{uuid.uuid4()}"),
        client.get(f"{root}/not-a-uuid"),
        client.put(f"{root}/{uuid.uuid4()}", json={"action": "stop"}),
        client.get(root, params={"status": "DONE"}),
    ):
        assert response.status_code in (400, 404)
        jsonschema.validate(response.json(), schema)


def test_the_converted_schemas_are_not_vacuous() -> None:
    schema = schema_of({"$ref": "#/components/schemas/realtimekit_Recording"})
    good = {
        "id": str(uuid.uuid4()),
        "download_url": None,
        "download_url_expiry": None,
        "audio_download_url": None,
        "file_size": None,
        "session_id": None,
        "output_file_name": "x.mp4",
        "status": "UPLOADED",
        "invoked_time": "2025-01-01T00:00:00Z",
        "started_time": None,
        "stopped_time": None,
    }
    jsonschema.validate(good, schema, format_checker=FORMATS)
    for broken in ({"status": "DONE"}, {"invoked_time": "yesterday"}, {"id": "nope"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**copy.deepcopy(good), **broken}, schema, format_checker=FORMATS)
    missing = dict(good)
    del missing["download_url"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, schema, format_checker=FORMATS)
