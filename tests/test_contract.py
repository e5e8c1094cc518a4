"""The contract every provider keeps, parametrized over the registry: shape, laziness, CLI verbs, bytes."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parrot
import pytest
import typer
from conftest import assert_no_credentials_at_storage

from recfetch.cli import app
from recfetch.providers import REGISTRY, get_provider
from recfetch.providers.base import RECORD_FIELDS, DownloadTarget, ListQuery, Provider, Setting
from recfetch.sandbox import Sandbox
from recfetch.sandbox.httpserver import PLANTED_SECRET

PROVIDERS = [*sorted(REGISTRY), "parrot"]
"""Every shipped provider, and Parrot (tests/parrot.py): a sixth one registered by one line, which
gets every common verb, config handling and this whole suite from the shared code."""
COMMON_VERBS = ("login", "list", "show", "url", "download", "pull")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
SIGNATURES = ("X-Signature", "X-Amz-Signature", "Signature=")


@pytest.fixture(params=PROVIDERS)
def name(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "parrot":
        parrot.register(monkeypatch)
    return str(request.param)


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """The sandbox, started after `name` so that a registered Parrot has its stand-in."""
    if "name" in request.fixturenames:
        request.getfixturevalue("name")
    with Sandbox() as sb:
        yield sb


def test_all_five_providers_are_registered() -> None:
    assert list(REGISTRY) == ["kismet", "realtimekit", "kazoo", "kaleyra", "bird"]


# ---------------------------------------------------------------------------
# helpers


def list_args(sandbox: Any, name: str, tmp_path: Path) -> list[str]:
    """What `list` needs besides the profile: Kaleyra has no listing API, only a report export."""
    if name != "kaleyra":
        return []
    report = tmp_path / "kaleyra-report.csv"
    if not report.exists():
        report.write_text(sandbox["kaleyra"].report_csv(), encoding="utf-8")
    return ["--from-report", str(report)]


def listed(cli: Any, sandbox: Any, name: str, tmp_path: Path) -> list[dict[str, Any]]:
    result = cli(name, "list", "--jsonl", *list_args(sandbox, name, tmp_path))
    assert result.exit_code == 0, result.output
    records = result.jsonl()
    assert records, f"the {name} stand-in listed nothing"
    return records


def first_downloadable(records: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in records if r["downloadable"])


def expected_bytes(sandbox: Any, name: str, ref: str) -> bytes:
    """The recording's bytes as the stand-in stores them."""
    standin = sandbox[name]
    if hasattr(standin, "content"):
        return standin.content(ref)
    if hasattr(standin, "media"):
        return standin.media(ref)
    return sandbox.storage.content(standin.storage_key(ref))


def provider_for(sandbox: Any, name: str, tmp_path: Path, **options: Any) -> Provider:
    cls = get_provider(name)
    return cls(sandbox[name].profile(), profile="sandbox", state_dir=tmp_path / "state", options=options)


def secrets_of(sandbox: Any) -> list[str]:
    out = []
    for name, standin in sandbox.standins.items():
        table = standin.profile()
        out += [table[s.key] for s in get_provider(name).settings if s.secret and s.key in table]
    return out


def assert_clean(text: str, sandbox: Any) -> None:
    for secret in secrets_of(sandbox):
        assert secret not in text, "a sandbox credential reached the output"
    for marker in SIGNATURES:
        assert marker not in text, f"a presigned URL ({marker}) reached the output"


def sub_app(name: str) -> Any:
    group = typer.main.get_command(app)
    return group.get_command(typer.Context(group), name)  # type: ignore[attr-defined]


def verbs_of(name: str) -> list[str]:
    """The provider's verbs (built when named, so asked of the group, not its ``commands``)."""
    group = sub_app(name)
    return group.list_commands(typer.Context(group))  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# shape


def test_module_name_registry_key_and_cli_sub_app_agree(name: str) -> None:
    cls = REGISTRY[name]
    assert cls.name == name
    assert cls.__module__ in (f"recfetch.providers.{name}", name)
    assert cls.__name__.endswith("Provider")  # one naming scheme: KismetProvider, KazooProvider, ...
    group = typer.main.get_command(app)
    assert name in group.list_commands(typer.Context(group))  # type: ignore[attr-defined]
    assert sub_app(name).name == name


def test_class_declares_title_and_settings_with_secrets_marked(name: str) -> None:
    cls = REGISTRY[name]
    assert isinstance(cls.title, str) and cls.title.strip()
    assert cls.settings and all(isinstance(s, Setting) for s in cls.settings)
    assert len({s.key for s in cls.settings}) == len(cls.settings)
    assert any(s.secret for s in cls.settings), "every provider authenticates with some secret"
    for setting in cls.settings:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", setting.key)
        assert setting.help.strip()
        assert not setting.key.endswith("_cmd")  # `<secret>_cmd` is derived, never declared


def test_sub_app_has_the_common_verbs_and_exactly_the_declared_extra_verbs(name: str) -> None:
    commands = set(verbs_of(name))
    assert set(COMMON_VERBS) <= commands
    assert commands - set(COMMON_VERBS) == set(REGISTRY[name].extra_verbs)


def test_every_command_has_help(cli, name: str) -> None:
    assert cli(name, "--help").exit_code == 0
    for verb in verbs_of(name):
        result = cli(name, verb, "--help")
        assert result.exit_code == 0, (verb, result.output)
        assert "Usage:" in result.stdout


# ---------------------------------------------------------------------------
# behaviour against the stand-ins


def test_constructor_makes_no_request(sandbox, name: str, tmp_path: Path) -> None:
    before = sum(len(s.requests()) for s in sandbox.servers())
    provider = provider_for(sandbox, name, tmp_path)
    provider.close()
    assert sum(len(s.requests()) for s in sandbox.servers()) == before


def test_iter_recordings_is_lazy(sandbox, name: str, tmp_path: Path) -> None:
    options = {"from_report": list_args(sandbox, name, tmp_path)[1]} if name == "kaleyra" else {}
    provider = provider_for(sandbox, name, tmp_path, **options)
    before = len(sandbox[name].server.requests())
    recordings = provider.iter_recordings(ListQuery(options=options))
    assert isinstance(recordings, Iterator)
    assert len(sandbox[name].server.requests()) == before  # nothing fetched until asked
    first = next(recordings)
    assert first.provider == name
    provider.close()


def test_list_gives_full_spec_records(cli, sandbox_profile, name: str, tmp_path: Path) -> None:
    records = listed(cli, sandbox_profile, name, tmp_path)
    for record in records:
        assert list(record) == list(RECORD_FIELDS)
        assert record["provider"] == name and record["profile"] == "sandbox"
        assert isinstance(record["ref"], str) and record["ref"]
        assert record["status"] in ("ready", "processing", "failed", "unknown")
        assert isinstance(record["downloadable"], bool)
        for key in ("started_at", "ended_at"):
            assert record[key] is None or RFC3339_Z.match(record[key]), (key, record[key])
        assert isinstance(record["raw"], dict)
    assert len({r["ref"] for r in records}) == len(records), "refs must be unique"
    assert any(r["downloadable"] for r in records)
    assert_clean(json.dumps(records), sandbox_profile)


def test_show_matches_the_list_record(cli, sandbox_profile, name: str, tmp_path: Path) -> None:
    record = listed(cli, sandbox_profile, name, tmp_path)[0]
    extra = list_args(sandbox_profile, name, tmp_path)
    result = cli(name, "show", record["ref"], "--json", *extra)
    assert result.exit_code == 0, result.output
    shown = result.json()
    assert (shown["ref"], shown["id"], shown["provider"]) == (record["ref"], record["id"], name)
    assert list(shown) == list(RECORD_FIELDS)


def test_download_is_byte_exact_and_keeps_credentials_off_storage(
    cli, sandbox_profile, name: str, tmp_path: Path
) -> None:
    record = first_downloadable(listed(cli, sandbox_profile, name, tmp_path))
    result = cli(name, "download", record["ref"], "-o", "out", "--jsonl")
    assert result.exit_code == 0, result.output
    event = result.jsonl()[0]
    assert event["outcome"] == "downloaded"
    data = Path(event["path"]).read_bytes()
    expected = expected_bytes(sandbox_profile, name, record["ref"])
    assert data == expected
    assert event["bytes"] == len(expected)
    assert event["sha256"] == hashlib.sha256(expected).hexdigest()
    assert oct(Path(event["path"]).stat().st_mode & 0o777) == oct(0o600)
    assert_no_credentials_at_storage(sandbox_profile)


def test_mint_returns_a_fresh_target_each_call(sandbox, name: str, tmp_path: Path) -> None:
    options = {"from_report": list_args(sandbox, name, tmp_path)[1]} if name == "kaleyra" else {}
    provider = provider_for(sandbox, name, tmp_path, **options)
    recording = next(r for r in provider.iter_recordings(ListQuery(options=options)) if r.downloadable)
    first, second = provider.mint(recording), provider.mint(recording)
    assert isinstance(first, DownloadTarget) and isinstance(second, DownloadTarget)
    assert first is not second
    assert first.url.startswith(("http://", "https://")) and second.url.startswith(("http://", "https://"))
    assert "X-Signature" not in repr(first)  # the dataclass repr never shows the URL
    provider.close()


def test_url_prints_a_fresh_url_or_refuses_with_exit_2(
    cli, sandbox_profile, name: str, tmp_path: Path
) -> None:
    record = first_downloadable(listed(cli, sandbox_profile, name, tmp_path))
    result = cli(name, "url", record["ref"])
    if result.exit_code == 2:
        # Only a provider whose files need credential headers may refuse, saying what to do instead.
        assert name == "kazoo"
        assert f"recfetch {name} download" in result.stderr
        assert result.stdout == ""
        return
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert re.fullmatch(r"https?://\S+", url)
    assert "X-Signature" in url  # the stand-ins sign like S3: what every other command must hide
    as_json = cli(name, "url", record["ref"], "--json")
    assert as_json.exit_code == 0
    doc = as_json.json()
    assert set(doc) == {"url", "expires_at"} and doc["url"].startswith("http")
    assert doc["expires_at"] is None or RFC3339_Z.match(doc["expires_at"])


def test_no_secret_or_signature_in_any_output_but_url(
    cli, sandbox_profile, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = list_args(sandbox_profile, name, tmp_path)
    record = first_downloadable(listed(cli, sandbox_profile, name, tmp_path))
    runs = [
        cli(name, "list", *extra),
        cli(name, "list", "--json", *extra),
        cli(name, "list", "--format", "csv", *extra),
        cli(name, "show", record["ref"], *extra),
        cli(name, "show", record["ref"], "--json", *extra),
        cli("-vv", name, "download", record["ref"], "-o", "a", "--jsonl", "--no-archive"),
        cli("-vv", name, "pull", "-o", "b", "--no-archive", "--max-files", "2", *extra),
        cli("config", "show"),
        cli("providers", "--json"),
    ]
    for result in runs:
        assert result.exit_code == 0, result.output
        assert_clean(result.output, sandbox_profile)
    # an auth failure must not echo the wrong secret either
    secret_key = next(s.key for s in get_provider(name).settings if s.secret)
    monkeypatch.setenv(f"RECFETCH_{name.upper()}_{secret_key.upper()}", "Wrong-" + "x" * 58)
    failed = cli("-vv", name, "download", record["ref"], "-o", "c", "--no-archive")
    assert failed.exit_code != 0
    assert "Wrong-xxxx" not in failed.output
    assert_clean(failed.output, sandbox_profile)


def test_raw_never_carries_a_nested_secret_in_any_sink(
    cli, sandbox_profile, name: str, tmp_path: Path
) -> None:
    """Every stand-in plants PLANTED_SECRET under credential-named keys nested in its recordings."""
    extra = list_args(sandbox_profile, name, tmp_path)
    runs = [
        cli(name, "list", "--jsonl", *extra),
        cli(name, "list", "--json", *extra),
        cli(name, "list", "--format", "csv", *extra),
        cli(
            name,
            "pull",
            "-o",
            "m",
            "--write-metadata",
            "--no-archive",
            "--max-files",
            "3",
            "--jsonl",
            "--log-file",
            "m.log",
            "--manifest",
            "m.jsonl",
            *extra,
        ),
    ]
    record = first_downloadable(runs[0].jsonl())
    runs.append(cli(name, "show", record["ref"], "--json", *extra))
    for result in runs:
        assert result.exit_code == 0, result.output
        assert PLANTED_SECRET not in result.output
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".log", ".jsonl")]
    assert any(p.name.endswith(".json") for p in written), "no metadata sidecar was written"
    for path in written:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert PLANTED_SECRET not in text, path
        assert "X-Amz-Signature" not in text and "X-Signature" not in text, path


def _env_for_subprocess(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "RECFETCH_PROFILE": "sandbox", **(extra or {})}


def test_jq_round_trip_list_to_download(cli, sandbox_profile, name: str, tmp_path: Path) -> None:
    extra = " ".join(shlex.quote(a) for a in list_args(sandbox_profile, name, tmp_path))
    rf = f"{shlex.quote(sys.executable)} " + (
        shlex.quote(parrot.__file__) if name == "parrot" else "-m recfetch"
    )
    out = tmp_path / "dl"
    pipeline = (
        f"set -o pipefail; {rf} {name} list --jsonl {extra} | jq -r .ref | "
        f"{rf} {name} download -o {shlex.quote(str(out))} --jsonl -"
    )
    proc = subprocess.run(
        ["bash", "-c", pipeline], capture_output=True, text=True, env=_env_for_subprocess(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    files = [e for e in events if e["type"] == "file"]
    listed_refs = [r["ref"] for r in listed(cli, sandbox_profile, name, tmp_path)]
    assert sorted(e["ref"] for e in files) == sorted(listed_refs)  # every ref made the trip
    downloaded = [e for e in files if e["outcome"] == "downloaded"]
    assert downloaded and all(Path(e["path"]).is_file() for e in downloaded)
    assert all(e["outcome"] in ("downloaded", "skipped") for e in files), files
    assert events[-1]["type"] == "summary" and events[-1]["failed"] == 0
    assert_no_credentials_at_storage(sandbox_profile)


def test_download_accepts_jsonl_records_on_stdin(cli, sandbox_profile, name: str, tmp_path: Path) -> None:
    record = first_downloadable(listed(cli, sandbox_profile, name, tmp_path))
    result = cli(name, "download", "-", "-o", "out", "--jsonl", input=json.dumps(record) + "\n")
    assert result.exit_code == 0, result.output
    assert result.jsonl()[0]["outcome"] == "downloaded"


# ---------------------------------------------------------------------------
# `recfetch providers`


def test_providers_lists_every_provider_with_its_verbs_and_configuration(cli, sandbox, config_file) -> None:
    sandbox.write_profile(config_file, "sandbox")
    doc = cli("-p", "sandbox", "providers", "--json").json()
    assert doc["profile"] == "sandbox"
    items = {item["provider"]: item for item in doc["items"]}
    assert list(items) == list(REGISTRY)
    for name, item in items.items():
        cls = REGISTRY[name]
        assert item["title"] == cls.title
        assert item["verbs"] == [*COMMON_VERBS, *cls.extra_verbs] or set(item["verbs"]) == set(
            COMMON_VERBS
        ) | set(cls.extra_verbs)
        assert item["verbs"][:6] == list(COMMON_VERBS)
        assert item["configured"] is True

    config_file.write_text(
        config_file.read_text() + '\n[profiles.partial.kismet]\nclient_id = "only-the-id"\n'
    )
    partial = {
        i["provider"]: i["configured"] for i in cli("-p", "partial", "providers", "--json").json()["items"]
    }
    assert not any(partial.values())


def test_providers_counts_environment_settings_as_configured(
    cli, sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in sandbox["bird"].profile().items():
        monkeypatch.setenv(f"RECFETCH_BIRD_{key.upper()}", value)
    result = cli("providers")
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(rows) == set(REGISTRY)
    assert " configured " in rows["bird"] + " "
    assert "not configured" in rows["kismet"]
    assert "users" in rows["kismet"] and "delete" in rows["bird"]
    assert all(len(row) <= 80 for row in rows.values())  # fits an 80-column terminal
    assert "profile 'default'" in result.stderr and "login list show url download pull" in result.stderr


def test_registry_is_lazy_about_nothing_and_typed() -> None:
    for name, cls in REGISTRY.items():
        assert inspect.isclass(cls) and issubclass(cls, Provider)
        assert get_provider(name) is cls
    assert get_provider("cloudflare") is REGISTRY["realtimekit"]
    with pytest.raises(KeyError):
        get_provider("nosuch")
