"""Kazoo conformance: what the adapter sends and what the stand-in answers, checked against the spec extract.

`tests/specs/kazoo.json` keeps the structure of Kazoo's published swagger.json and the
call_recordings CouchDB schema (2600hz/kazoo @ dcf86cbc). Its `x-derived` section is
not in the published spec (query parameters, envelopes, paging keys come from Kazoo's
docs and code); tests that use it say so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from recfetch.sandbox import Sandbox
from recfetch.sandbox import kazoo as standin_module

SPEC: dict[str, Any] = json.loads((Path(__file__).parent / "specs" / "kazoo.json").read_text())
BASE = SPEC["basePath"]


def _validator(pointer: str) -> jsonschema.Draft4Validator:
    """A draft-4 validator for a schema inside the extract (swagger 2.0 schemas are draft-4)."""
    root = {**SPEC, "$ref": pointer}  # draft 4 ignores $ref siblings, so the root resolves refs
    return jsonschema.Draft4Validator(root)


def _param_schema(name: str) -> dict[str, Any]:
    param = SPEC["parameters"][name]
    return {k: v for k, v in param.items() if k not in ("in", "name", "required")}


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


SPEC_PATHS = [(t, _template_regex(BASE + t), ops) for t, ops in SPEC["paths"].items()]
USER_LISTING = re.compile(rf"^{BASE}/accounts/(?P<ACCOUNT_ID>[^/]+)/users/(?P<USER_ID>[^/]+)/recordings$")
"""Documented in doc/recordings.md but absent from the generated swagger (x-origin caveat)."""


def _operation(method: str, path: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    for template, regex, ops in SPEC_PATHS:
        match = regex.match(path)
        if match and method.lower() in ops:
            return template, match.groupdict(), ops[method.lower()]
    match = USER_LISTING.match(path)
    if match and method == "GET":
        listing = SPEC["paths"]["/accounts/{ACCOUNT_ID}/recordings"]["get"]
        return "/accounts/{ACCOUNT_ID}/users/{USER_ID}/recordings", match.groupdict(), listing
    if method == "PATCH" and _template_regex(BASE + "/accounts/{ACCOUNT_ID}/recordings/{RECORDING_ID}").match(
        path
    ):
        # 5.x only (docs.2600hz.com), not in the open-source spec: checked against x-derived below.
        get = SPEC["paths"]["/accounts/{ACCOUNT_ID}/recordings/{RECORDING_ID}"]["get"]
        groups = _template_regex(BASE + "/accounts/{ACCOUNT_ID}/recordings/{RECORDING_ID}").match(path)
        assert groups is not None
        return "PATCH /accounts/{ACCOUNT_ID}/recordings/{RECORDING_ID}", groups.groupdict(), get
    raise AssertionError(f"{method} {path} is not an operation of the Kazoo spec extract")


def _query_value(text: str) -> Any:
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def assert_request_conforms(request: Any) -> str:
    """Path, path parameters, auth header and body of one logged request against the extract."""
    template, path_params, op = _operation(request.method, request.path)
    for ref in op.get("parameters", []):
        if "$ref" in ref:
            name = ref["$ref"].rsplit("/", 1)[-1]
            param = SPEC["parameters"][name]
            if param["in"] == "path":
                jsonschema.validate(path_params[name], _param_schema(name))
            elif param["in"] == "header":
                value = request.headers.get(param["name"].lower())
                assert value is not None, f"{request.method} {request.path} lacks {param['name']}"
                jsonschema.validate(value, _param_schema(name))
        elif ref.get("in") == "body":
            body = json.loads(request.body)
            # Crossbar wraps every request body in {"data": ...}; the schema describes `data`.
            assert set(body) == {"data"}, body.keys()
            _validator(ref["schema"]["$ref"]).validate(body["data"])
    if "USER_ID" in path_params:
        assert re.fullmatch(r"[0-9a-f]{32}", path_params["USER_ID"])
    if template.endswith("/recordings") and request.method == "GET":
        query = {k: _query_value(v[0]) for k, v in request.query.items()}
        jsonschema.validate(query, SPEC["x-derived"]["listing_query"])
        span = query["created_to"] - query["created_from"]
        assert 0 <= span <= SPEC["x-derived"]["listing_query"]["x-max-range"]
    if template.startswith("PATCH"):
        jsonschema.validate(json.loads(request.body), SPEC["x-derived"]["patch_body"])
    return template


def _strip_crossbar_fields(item: dict[str, Any]) -> dict[str, Any]:
    """Crossbar adds `id` and `_read_only` to the stored doc; validate those separately."""
    doc = dict(item)
    jsonschema.validate(doc.pop("id"), SPEC["x-derived"]["recording_id"])
    read_only = doc.pop("_read_only", None)
    if read_only is not None:
        jsonschema.validate(read_only, SPEC["x-derived"]["listed_recording_read_only"])
    return doc


@pytest.fixture
def kazoo(sandbox_profile: Sandbox) -> Any:
    return sandbox_profile["kazoo"]


def test_every_request_the_adapter_sends_conforms_to_the_spec(kazoo: Any, cli: Any, tmp_path: Path) -> None:
    user = standin_module.USERS[0]
    listed = cli("kazoo", "list", "--since", "70d", "--jsonl", "--filter", "direction=inbound")
    assert listed.exit_code == 0, listed.stderr
    assert cli("kazoo", "list", "--user", user, "--jsonl").exit_code == 0
    ref = next(r["ref"] for r in listed.jsonl() if r["downloadable"])
    assert cli("kazoo", "show", ref, "--json").exit_code == 0
    assert cli("kazoo", "tag", ref, "important=true").exit_code == 0
    assert cli("kazoo", "download", ref, "-o", str(tmp_path / "out")).exit_code == 0
    assert cli("kazoo", "delete", ref, "--yes").exit_code == 0

    seen = {assert_request_conforms(r) for r in kazoo.server.requests()}

    assert seen == {
        "/api_auth",
        "/accounts/{ACCOUNT_ID}/recordings",
        "/accounts/{ACCOUNT_ID}/users/{USER_ID}/recordings",
        "/accounts/{ACCOUNT_ID}/recordings/{RECORDING_ID}",
        "PATCH /accounts/{ACCOUNT_ID}/recordings/{RECORDING_ID}",
    }
    media = [r for r in kazoo.server.requests(ref, method="GET") if "audio/" in r.headers.get("accept", "")]
    jsonschema.validate(media[0].headers["accept"], SPEC["x-derived"]["media_request_accept"])


def test_user_auth_request_body_conforms_to_the_user_auth_schema(
    kazoo: Any, cli: Any, config_file: Path
) -> None:
    from recfetch import config

    data = config.load(config_file)
    data["profiles"]["sandbox"]["kazoo"] = kazoo.user_profile()
    config.save(config_file, data)

    assert cli("kazoo", "list", "--jsonl").exit_code == 0

    auth = kazoo.server.requests("/user_auth", method="PUT")
    assert len(auth) == 1
    assert assert_request_conforms(auth[0]) == "/user_auth"


def test_stand_in_listing_items_validate_against_call_recordings_schema(kazoo: Any) -> None:
    with httpx.Client(base_url=kazoo.server.url, trust_env=False) as http:
        token = http.put("/v2/api_auth", json={"data": {"api_key": standin_module.API_KEY}}).json()
        _validator("#/x-derived/auth_envelope").validate(token)
        headers = {"X-Auth-Token": token["auth_token"]}
        now = standin_module.gregorian_now()
        params: dict[str, Any] = {"created_from": now - 2_678_400, "created_to": now, "page_size": 3}
        pages = 0
        while True:
            body = http.get(
                f"/v2/accounts/{standin_module.ACCOUNT_ID}/recordings", params=params, headers=headers
            ).json()
            _validator("#/x-derived/listing_envelope").validate(body)
            assert body["page_size"] == len(body["data"])
            for item in body["data"]:
                jsonschema.Draft4Validator(SPEC["call_recordings"]).validate(_strip_crossbar_fields(item))
            pages += 1
            if "next_start_key" not in body:
                break
            params["start_key"] = body["next_start_key"]
        assert pages >= 2
        one = http.get(
            f"/v2/accounts/{standin_module.ACCOUNT_ID}/recordings/{body['data'][0]['id']}", headers=headers
        ).json()
        _validator("#/x-derived/success_envelope").validate(one)
        jsonschema.Draft4Validator(SPEC["call_recordings"]).validate(_strip_crossbar_fields(one["data"]))


def _error_cases(kazoo: Any, http: httpx.Client, headers: dict[str, str]) -> dict[int, httpx.Response]:
    acct = f"/v2/accounts/{standin_module.ACCOUNT_ID}"
    now = standin_module.gregorian_now()
    known = kazoo.ids(downloadable=False)[0]
    cases = {
        400: http.get(
            f"{acct}/recordings", params={"created_from": now - 5_000_000, "created_to": now}, headers=headers
        ),
        401: http.get(f"{acct}/recordings", headers={"X-Auth-Token": "0" * 64}),
        403: http.get(f"/v2/accounts/{'f' * 32}/recordings", headers=headers),
        404: http.get(f"{acct}/recordings/{known[:7]}{'0' * 32}", headers=headers),
        503: http.get(f"{acct}/recordings/199001-{'0' * 32}", headers=headers),
    }
    kazoo.oss_mode = True
    cases[405] = http.patch(
        f"{acct}/recordings/{known}", json={"data": {"user_metadata": {"a": 1}}}, headers=headers
    )
    kazoo.fail_next(429, path_contains="/recordings")
    cases[429] = http.get(f"{acct}/recordings", headers=headers)
    return cases


def test_stand_in_error_envelopes_conform_and_carry_the_documented_atoms(kazoo: Any) -> None:
    with httpx.Client(base_url=kazoo.server.url, trust_env=False) as http:
        token = http.put("/v2/api_auth", json={"data": {"api_key": standin_module.API_KEY}}).json()
        cases = _error_cases(kazoo, http, {"X-Auth-Token": token["auth_token"]})
        no_media = http.get(
            f"/v2/accounts/{standin_module.ACCOUNT_ID}/recordings/{kazoo.ids(downloadable=False)[0]}",
            headers={"X-Auth-Token": token["auth_token"], "Accept": "audio/mpeg"},
        )
        no_prefix = http.get(
            f"/v2/accounts/{standin_module.ACCOUNT_ID}/recordings/nothex",
            headers={"X-Auth-Token": token["auth_token"]},
        )

    envelope = _validator("#/x-derived/error_envelope")
    atoms = SPEC["x-derived"]["error_atoms"]
    for status, response in {**cases, 4040: no_media, 4041: no_prefix}.items():
        code = status if status < 1000 else 404
        assert response.status_code == code
        body = response.json()
        envelope.validate(body)
        assert body["error"] == str(code)
        expected = atoms[str(code)]
        assert body["message"] in (expected if isinstance(expected, list) else [expected])
    assert "more than 2682000 seconds" in cases[400].json()["data"]["created_from"]["date_range"]["message"]
    assert no_media.json()["data"]["details"].startswith(kazoo.ids(downloadable=False)[0][:6])
    assert no_prefix.json()["data"] == ["nothex"]
    assert cases[503].json()["data"]["cause"].endswith("-199001")
