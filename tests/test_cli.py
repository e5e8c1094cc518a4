"""The CLI surface every provider shares: login, SPEC §5 exit codes, error lines and JSON errors."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest

from recfetch import config
from recfetch.providers import REGISTRY
from recfetch.providers.base import Setting

PROVIDERS = sorted(REGISTRY)


def secret_settings(name: str) -> list[Setting]:
    return [s for s in REGISTRY[name].settings if s.secret]


def option(key: str) -> str:
    return "--" + key.replace("_", "-")


def login_args(name: str, table: dict[str, str]) -> tuple[list[str], str | None]:
    """Options for a non-interactive login with ``table``; the first secret goes through stdin."""
    args: list[str] = []
    stdin: str | None = None
    for key, value in table.items():
        is_secret = any(s.key == key for s in secret_settings(name))
        if is_secret and stdin is None:
            args.append(option(key) + "-stdin")
            stdin = value + "\n"
        else:
            args += [option(key), value]
    return args, stdin


def api_requests(sandbox: Any, name: str) -> int:
    return len(sandbox[name].server.requests())


def profile_in_file(config_file: Path, profile: str, name: str) -> dict[str, Any] | None:
    if not config_file.exists():
        return None
    return config.load(config_file).get("profiles", {}).get(profile, {}).get(name)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# login


@pytest.mark.parametrize("name", PROVIDERS)
def test_login_with_options_verifies_with_one_call_then_saves(
    cli, sandbox, config_file: Path, name: str
) -> None:
    table = sandbox[name].profile()
    args, stdin = login_args(name, table)
    before = api_requests(sandbox, name)
    result = cli("-p", "work", name, "login", *args, input=stdin)
    assert result.exit_code == 0, result.output
    assert api_requests(sandbox, name) > before  # verified against the server
    assert "verified" in result.stderr
    assert result.stdout == ""  # stdout carries data only
    assert profile_in_file(config_file, "work", name) == table
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_file.parent.stat().st_mode) == 0o700
    for setting in secret_settings(name):
        if setting.key in table:
            assert table[setting.key] not in result.output


@pytest.mark.parametrize("name", PROVIDERS)
def test_login_with_wrong_secret_exits_4_and_saves_nothing(
    cli, sandbox, config_file: Path, name: str
) -> None:
    table = sandbox[name].profile()
    secret = next(s.key for s in secret_settings(name) if s.key in table)
    table[secret] = table[secret][::-1]  # same shape (Kazoo validates the key's length first)
    args, stdin = login_args(name, table)
    result = cli("-p", "work", name, "login", *args, input=stdin)
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("error: ")
    assert table[secret] not in result.output
    assert profile_in_file(config_file, "work", name) is None


@pytest.mark.parametrize("name", PROVIDERS)
def test_login_no_verify_saves_without_any_request(cli, sandbox, config_file: Path, name: str) -> None:
    table = sandbox[name].profile()
    secret = next(s.key for s in secret_settings(name) if s.key in table)
    table[secret] = "unchecked-secret-1234"
    args, stdin = login_args(name, table)
    before = api_requests(sandbox, name)
    result = cli("-p", "work", name, "login", *args, "--no-verify", input=stdin)
    assert result.exit_code == 0, result.output
    assert api_requests(sandbox, name) == before
    assert profile_in_file(config_file, "work", name) == table


@pytest.mark.parametrize("name", PROVIDERS)
def test_login_missing_required_value_non_interactively_exits_2_naming_the_option(
    cli, config_file: Path, name: str
) -> None:
    result = cli(name, "login", "--no-verify", input="")
    assert result.exit_code == 2, result.output
    assert re.search(r"--[a-z][a-z-]+", result.stderr), result.stderr
    assert len(lines(result.stderr)) == 1
    assert not config_file.exists()


def test_login_names_the_missing_option_and_its_stdin_form(cli) -> None:
    result = cli("kismet", "login", "--client-id", "abc", "--no-verify")
    assert result.exit_code == 2
    assert "--client-secret or --client-secret-stdin" in result.stderr


def test_login_reads_only_one_secret_from_stdin(cli) -> None:
    result = cli("kazoo", "login", "--api-key-stdin", "--password-stdin", input="a\nb\n")
    assert result.exit_code == 2
    assert "only one --*-stdin" in result.stderr


def test_login_with_empty_stdin_secret_is_a_usage_error(cli) -> None:
    result = cli("kismet", "login", "--client-id", "x", "--client-secret-stdin", input="\n")
    assert result.exit_code == 2
    assert "--client-secret-stdin read nothing" in result.stderr


def test_login_keeps_other_profiles_and_providers(cli, sandbox, config_file: Path) -> None:
    sandbox.write_profile(config_file, "sandbox")
    before = config.load(config_file)["profiles"]["sandbox"]
    args, stdin = login_args("kismet", sandbox["kismet"].profile())
    assert cli("-p", "other", "kismet", "login", *args, input=stdin).exit_code == 0
    data = config.load(config_file)
    assert data["profiles"]["sandbox"] == before
    assert set(data["profiles"]["other"]) == {"kismet"}


def _spawn(args: list[str], log: io.BytesIO) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "recfetch", *args],
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
        timeout=30,
    )
    child.logfile_read = log
    return child


@pytest.mark.parametrize("name", PROVIDERS)
def test_interactive_login_prompts_and_hides_secret_input(sandbox, config_file: Path, name: str) -> None:
    cls = REGISTRY[name]
    table = sandbox[name].profile()
    log = io.BytesIO()
    child = _spawn(["-p", "tty", name, "login", "--base-url", table["base_url"]], log)
    # A setting with `unless` is not asked once its alternative is answered (kazoo: no user after api_key).
    asked = [
        s for s in cls.settings if s.prompt and s.key != "base_url" and not (s.unless and table.get(s.unless))
    ]
    for setting in asked:
        child.expect(re.escape(setting.key) + r".*: ")
        child.sendline(table.get(setting.key, ""))
    child.expect(pexpect.EOF)
    child.close()
    output = log.getvalue().decode("utf-8", "replace")
    assert child.exitstatus == 0, output
    assert "verified" in output
    for setting in asked:
        if setting.secret and setting.key in table:
            assert table[setting.key] not in output, f"{setting.key} was echoed"
        elif setting.key in table:
            assert table[setting.key] in output  # plain values echo as typed
    assert profile_in_file(config_file, "tty", name) == table


def test_interactive_login_with_wrong_secret_exits_4(sandbox, config_file: Path) -> None:
    table = sandbox["kismet"].profile()
    log = io.BytesIO()
    child = _spawn(["-p", "tty", "kismet", "login", "--base-url", table["base_url"]], log)
    child.expect("client_id.*: ")
    child.sendline(table["client_id"])
    child.expect("client_secret.*: ")
    child.sendline("not-the-secret")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4, log.getvalue()
    assert profile_in_file(config_file, "tty", "kismet") is None


# ---------------------------------------------------------------------------
# exit codes, one generic path each (provider engineers test their own envelopes)


def test_exit_0_and_data_only_on_stdout(cli, sandbox_profile) -> None:
    result = cli("kismet", "list", "--jsonl")
    assert result.exit_code == 0
    assert all(json.loads(line)["provider"] == "kismet" for line in lines(result.stdout))
    # stderr holds only the note about the sandbox's call whose recordings lack consent
    notes = [json.loads(line) for line in lines(result.stderr)]
    assert [(n["type"], "consented" in n["message"]) for n in notes] == [("info", True)]


class _Boom(RuntimeError):
    pass


def _explode(monkeypatch: pytest.MonkeyPatch, with_secret_in_message: bool = False) -> str:
    """Make kismet's listing crash with a credential held in a local variable."""
    cls = REGISTRY["kismet"]

    def iter_recordings(self: Any, query: Any) -> Any:
        credential = self.config["client_secret"]  # a local a traceback-with-locals would show
        message = f"unexpected shape near {credential}" if with_secret_in_message else "unexpected shape"
        raise _Boom(message)
        yield credential

    monkeypatch.setattr(cls, "iter_recordings", iter_recordings)
    return "kismet-sandbox"


def test_exit_1_on_a_bug_shows_internal_error_without_traceback_or_locals(
    cli, sandbox_profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    _explode(monkeypatch, with_secret_in_message=True)
    secret = sandbox_profile["kismet"].profile()["client_secret"]
    result = cli("kismet", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: internal error: _Boom: unexpected shape near ****")
    assert "-v" in result.stderr
    assert "Traceback" not in result.output
    assert secret not in result.output


def test_exit_1_with_verbose_shows_a_traceback_but_never_locals(
    cli, sandbox_profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    _explode(monkeypatch, with_secret_in_message=True)
    secret = sandbox_profile["kismet"].profile()["client_secret"]
    result = cli("-v", "kismet", "list")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "raise _Boom(message)" in result.stderr
    assert secret not in result.output  # locals (rich/pretty tracebacks) would show it


def test_exit_1_in_json_mode_is_a_json_internal_error(
    cli, sandbox_profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    _explode(monkeypatch)
    result = cli("kismet", "list", "--jsonl")
    assert result.exit_code == 1
    error = json.loads(result.stderr)
    assert error["type"] == "error" and error["code"] == "INTERNAL"
    assert result.stdout == ""


def test_exit_1_from_a_real_process_has_no_python_traceback(
    sandbox_profile, cli_proc, tmp_path: Path
) -> None:
    # The real entry point, not CliRunner: a sitecustomize breaks kismet's listing in the child.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "from recfetch.providers import kismet\n"
        "def boom(self, query):\n"
        "    secret = self.config['client_secret']\n"
        "    raise KeyError('no such field')\n"
        "    yield secret\n"
        "for v in vars(kismet).values():\n"
        "    if isinstance(v, type) and getattr(v, 'name', None) == 'kismet':\n"
        "        v.iter_recordings = boom\n"
    )
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = cli_proc("kismet", "list", env=env)
    assert result.exit_code == 1, result.output
    assert lines(result.stderr) == [
        "error: internal error: KeyError: 'no such field' (run again with -v for a traceback and report it)"
    ]
    verbose = cli_proc("-v", "kismet", "list", env=env)
    assert "Traceback" in verbose.stderr
    assert sandbox_profile["kismet"].profile()["client_secret"] not in verbose.output


@pytest.mark.parametrize(
    "args",
    [
        ["kismet", "list", "--bogus"],
        ["kismet", "list", "--since", "last tuesday"],
        ["kismet", "list", "--since", "2025-02-30"],
        ["kismet", "list", "--until", "2025-11-20T10:00:00"],
        ["kismet", "list", "--since", "2025-11-20", "--tz", "Mars/Olympus"],
        ["kismet", "list", "--tz", "../etc/passwd"],
        ["kismet", "list", "--since", "2025-11-20", "--until", "2025-11-19"],
        ["kismet", "list", "--since", "2025-11-20T00:00:00Z", "--until", "2025-11-20T00:00:00Z"],
        ["kismet", "list", "--limit", "0"],
        ["kismet", "list", "--format", "xml"],
        ["kismet", "download", "x", "--jobs", "0"],
        ["kismet", "download", "x", "--name", "{nosuchfield}"],
        ["kismet", "pull", "--overlap", "soon"],
        ["nosuchprovider", "list"],
        ["--color", "sometimes", "providers"],
    ],
    ids=lambda args: " ".join(args),
)
def test_exit_2_for_usage_errors(cli, sandbox_profile, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert not sandbox_profile["kismet"].server.requests()  # refused before any request


def test_usage_error_message_names_the_fix(cli, sandbox_profile) -> None:
    result = cli("kismet", "list", "--since", "last tuesday")
    assert lines(result.stderr) == [
        "error: cannot read --since 'last tuesday' (use RFC 3339 (2025-11-20T14:00:00Z), "
        "a date (2025-11-20) or an age (90m, 12h, 7d))"
    ]
    window = cli("kismet", "list", "--since", "2025-11-20T00:00:00Z", "--until", "2025-11-19T00:00:00Z")
    assert "2025-11-20T00:00:00Z .. 2025-11-19T00:00:00Z" in window.stderr


def test_verbose_echoes_the_resolved_utc_window(cli, sandbox_profile) -> None:
    result = cli("-v", "kismet", "list", "--since", "2025-11-20", "--tz", "Europe/Rome", "--until", "2d")
    assert result.exit_code == 0, result.output
    assert "time window (UTC): 2025-11-19T23:00:00Z .." in result.stderr


def test_exit_3_when_some_recordings_of_a_batch_fail(cli, sandbox_profile) -> None:
    kismet = sandbox_profile["kismet"]
    good = kismet.refs(ready_only=True)[0]
    result = cli("kismet", "download", good, "999999/999999/999999", "-o", "out", "--jsonl")
    assert result.exit_code == 3, result.output
    events = result.jsonl()
    outcomes = {e["ref"]: e["outcome"] for e in events if e["type"] == "file"}
    assert outcomes == {good: "downloaded", "999999/999999/999999": "failed"}
    assert events[-1]["type"] == "summary" and events[-1]["exit_code"] == 3


def test_exit_4_when_the_provider_rejects_the_credentials(
    cli, sandbox_profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFETCH_KISMET_CLIENT_SECRET", "not-the-secret")
    result = cli("kismet", "list")
    assert result.exit_code == 4
    assert lines(result.stderr)[0].startswith("error: ")
    assert "login" in result.stderr  # the fix
    assert "not-the-secret" not in result.output


def test_exit_5_when_nothing_is_configured(cli) -> None:
    result = cli("realtimekit", "list")
    assert result.exit_code == 5
    assert "recfetch realtimekit login" in result.stderr


def test_exit_6_for_an_unknown_recording(cli, sandbox_profile) -> None:
    result = cli("kismet", "show", "999999/999999/999999")
    assert result.exit_code == 6, result.output
    assert lines(result.stderr)[0].startswith("error: ")
    assert result.stdout == ""


def test_exit_7_when_still_rate_limited_after_retries(cli, sandbox_profile) -> None:
    kismet = sandbox_profile["kismet"]
    kismet.rate_limit_next(100, retry_after=0)
    result = cli("kismet", "list")
    assert result.exit_code == 7, result.output
    assert "rate limit" in result.stderr
    assert 1 < len(kismet.requests()) <= 10  # retried, honouring Retry-After, then gave up


def test_exit_8_when_the_storage_host_keeps_failing(cli, sandbox_profile) -> None:
    ref = sandbox_profile["kismet"].refs(ready_only=True)[0]
    sandbox_profile.storage.fail_next(500, times=None, retry_after=0)
    result = cli("kismet", "download", ref, "-o", "out", "--retries", "1")
    assert result.exit_code == 8, result.output
    assert not [p for p in Path("out").rglob("*") if p.is_file() and not p.name.endswith(".part")]


def test_exit_8_when_an_html_page_arrives_instead_of_media(cli, sandbox_profile) -> None:
    ref = sandbox_profile["kismet"].refs(ready_only=True)[0]
    sandbox_profile.storage.html_next(times=None)
    result = cli("kismet", "download", ref, "-o", "out", "--retries", "0", "--jsonl")
    assert result.exit_code == 8, result.output
    event = result.jsonl()[0]
    assert event["outcome"] == "failed" and event["error"]["code"] == "INTEGRITY"
    assert not [p for p in Path("out").rglob("*") if p.is_file() and not p.name.endswith(".part")]


def test_exit_9_when_nothing_is_new_with_fail_if_empty(cli, sandbox_profile) -> None:
    ref = sandbox_profile["kismet"].refs(ready_only=True)[0]
    assert cli("kismet", "download", ref, "-o", "out").exit_code == 0
    assert cli("kismet", "download", ref, "-o", "out").exit_code == 0
    assert cli("kismet", "download", ref, "-o", "out", "--fail-if-empty").exit_code == 9


# ---------------------------------------------------------------------------
# error shapes


def test_human_error_is_one_line_on_stderr(cli, sandbox_profile) -> None:
    result = cli("kismet", "show", "999999/999999/999999")
    assert len(lines(result.stderr)) == 1
    assert "\x1b[" not in result.stderr  # not a terminal: no colour


@pytest.mark.parametrize("flag", ["--json", "--jsonl", "--format=json", "--format=jsonl"])
def test_json_mode_errors_are_one_json_object_on_stderr(cli, sandbox_profile, flag: str) -> None:
    result = cli("kismet", "show", "999999/999999/999999", flag)
    assert result.exit_code == 6
    assert result.stdout == ""
    (line,) = lines(result.stderr)
    error = json.loads(line)
    assert error == {
        "type": "error",
        "code": "NOT_FOUND",
        "message": error["message"],
        "provider": "kismet",
        "http_status": 404,
        "retryable": False,
    }
    assert "kismet" in error["message"]


def test_json_mode_auth_and_config_errors(cli, sandbox_profile, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFETCH_KISMET_CLIENT_SECRET", "nope-nope")
    auth = json.loads(cli("kismet", "list", "--jsonl").stderr)
    assert (auth["code"], auth["http_status"], auth["retryable"]) == ("AUTH_FAILED", 401, False)
    config_error = json.loads(cli("-p", "nosuch", "kismet", "list", "--json").stderr)
    assert config_error["code"] == "CONFIG" and config_error["provider"] == "kismet"  # the command's


@pytest.mark.parametrize(
    "args",
    [
        ["kismet", "list", "--jsonl", "--since", "yesterday-ish"],
        ["kismet", "list", "--jsonl", "--bogus"],
        ["kismet", "list", "--format", "jsonl", "--limit", "0"],
        ["kismet", "show", "--json"],
        ["nosuch", "list", "--json"],
    ],
    ids=["recfetch-check", "unknown-option", "out-of-range", "missing-argument", "unknown-provider"],
)
def test_json_mode_usage_errors_are_json_even_from_option_parsing(
    cli, sandbox_profile, args: list[str]
) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    (line,) = lines(result.stderr)
    error = json.loads(line)
    assert error["type"] == "error" and error["code"] == "USAGE" and error["retryable"] is False
    if "--since" not in args:  # Click knows the command path; recfetch's own checks run before any provider
        assert error["provider"] == (None if args[0] == "nosuch" else "kismet")
    assert result.stdout == ""


def test_usage_errors_outside_json_mode_keep_clicks_usage_text(cli) -> None:
    result = cli("kismet", "list", "--bogus")
    assert result.exit_code == 2
    assert "Usage: recfetch kismet list" in result.stderr and "No such option: --bogus" in result.stderr


def test_json_mode_warnings_are_json_too(cli, sandbox_profile) -> None:
    result = cli("kismet", "list", "--jsonl", "--limit", "1")
    assert result.exit_code == 0
    assert len(result.jsonl()) == 1
    notes = [json.loads(line) for line in lines(result.stderr)]
    assert notes and notes[0]["type"] == "warning" and "--limit 1" in notes[0]["message"]


def test_limit_says_so_on_stderr_in_human_mode(cli, sandbox_profile) -> None:
    result = cli("kismet", "list", "--limit", "2", "--format", "csv")
    assert result.exit_code == 0
    assert len(lines(result.stdout)) == 3  # header + 2
    assert "stopped after --limit 2" in result.stderr


def test_quiet_hides_notes_but_not_errors(cli, sandbox_profile) -> None:
    assert cli("-q", "kismet", "list", "--limit", "1", "--jsonl").stderr == ""
    assert cli("-q", "kismet", "show", "1/2/3").stderr.startswith("error: ")


def test_version(cli) -> None:
    from recfetch import __version__

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"recfetch {__version__}"


def test_cloudflare_is_an_alias_of_realtimekit(cli, sandbox_profile) -> None:
    a = cli("realtimekit", "list", "--jsonl")
    b = cli("cloudflare", "list", "--jsonl")
    assert a.exit_code == b.exit_code == 0
    assert [r["ref"] for r in a.jsonl()] == [r["ref"] for r in b.jsonl()]
    assert "cloudflare" not in cli("--help").stdout  # hidden alias


# ---------------------------------------------------------------------------
# time values (--since/--until and what providers send)


def test_since_until_forms_resolve_to_utc() -> None:
    from datetime import UTC, datetime, timedelta

    from recfetch.timeparse import parse_time

    now = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_time("90m", now=now) == now - timedelta(minutes=90)
    assert parse_time("7d", now=now) == now - timedelta(days=7)
    assert parse_time("2025-11-20", tz="Europe/Rome") == datetime(2025, 11, 19, 23, 0, tzinfo=UTC)
    assert parse_time("2025-11-20", tz="UTC") == datetime(2025, 11, 20, tzinfo=UTC)
    assert parse_time("2025-11-20T14:00:00+02:00") == datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_time("2025-11-20T14:00:00z") == datetime(2025, 11, 20, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-20T14:03:11Z", "2025-11-20T14:03:11Z"),
        ("2025-11-20T14:03:11.1234567+02:00", "2025-11-20T12:03:11.123Z"),
        ("2025-11-20 14:03:11", "2025-11-20T14:03:11Z"),
        (1763647391, "2025-11-20T14:03:11Z"),
        ("1763647391", "2025-11-20T14:03:11Z"),
        (1763647391000, "2025-11-20T14:03:11Z"),
        (None, None),
        ("", None),
        (0, None),
        (True, None),
        ("garbage", None),
        ({"at": 1}, None),
        ("0001-01-01T00:00:00Z", None),
        (float("nan"), None),
        (1e300, None),
    ],
)
def test_provider_times_are_read_liberally_and_never_crash(value: object, expected: str | None) -> None:
    from recfetch.providers.base import iso
    from recfetch.timeparse import parse_provider_time

    assert iso(parse_provider_time(value)) == expected


def test_a_bug_outside_any_command_body_is_still_an_internal_error(cli_proc, tmp_path: Path) -> None:
    # Breaking logging setup makes the root group itself fail, before any command body is in charge.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import recfetch.cli._app\n"
        "def broken(verbose):\n"
        "    token = 'hook-held-token-9f8e'\n"
        "    raise ValueError('ui exploded')\n"
        "recfetch.cli._app.setup_logging = broken\n"
    )
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = cli_proc("providers", env=env)
    assert result.exit_code == 1
    assert lines(result.stderr) == [
        "error: internal error: ValueError: ui exploded (run again with -v for a traceback and report it)"
    ]
    verbose = cli_proc("-v", "providers", env=env)
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "hook-held-token-9f8e" not in verbose.output  # no locals in the traceback


# ---------------------------------------------------------------------------
# global options anywhere on the line (SPEC §1)


def test_global_options_after_the_verb_are_the_same_as_before_it(cli, sandbox, config_file, tmp_path) -> None:
    sandbox.write_profile(config_file, "sandbox")
    # The README's cron line, with the global options before and after the verb (own state each).
    before = cli(
        *("-q", "-p", "sandbox", "kazoo", "pull", "--incremental", "-o", str(tmp_path / "a")),
        env={"RECFETCH_STATE_DIR": str(tmp_path / "state-a")},
    )
    after = cli(
        *("kazoo", "pull", "--incremental", "--quiet", "-o", str(tmp_path / "b"), "-p", "sandbox"),
        env={"RECFETCH_STATE_DIR": str(tmp_path / "state-b")},
    )
    assert before.exit_code == after.exit_code == 0, after.output
    assert before.stderr == after.stderr == ""  # --quiet: no notes, no summary chatter
    names = [sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("a", "b")]
    assert names[0] == names[1] and names[0]


def test_profile_after_the_verb_selects_the_profile(cli, sandbox, config_file) -> None:
    sandbox.write_profile(config_file, "sandbox")
    assert cli("bird", "list", "--jsonl").exit_code == 5  # no profile chosen: bird is not configured
    result = cli("bird", "list", "--jsonl", "-p", "sandbox")
    assert result.exit_code == 0, result.output
    assert {r["provider"] for r in result.jsonl()} == {"bird"}


def test_config_after_the_verb_names_the_file(cli, tmp_path) -> None:
    path = tmp_path / "elsewhere.toml"
    result = cli("config", "path", "--config", str(path))
    assert result.exit_code == 0
    assert result.stdout.strip() == str(path)


def test_verbose_counts_wherever_it_appears(cli, sandbox_profile) -> None:
    quiet = cli("kismet", "list", "--limit", "1")
    loud = cli("-v", "kismet", "list", "--limit", "1", "-v")
    assert quiet.exit_code == loud.exit_code == 0
    assert "recfetch.api: GET" not in quiet.stderr
    assert "recfetch.api: GET" in loud.stderr


def test_color_and_no_progress_are_accepted_after_the_verb(cli, sandbox_profile, tmp_path) -> None:
    result = cli(
        "kazoo", "pull", "-o", str(tmp_path), "--no-progress", "--color", "never", "--max-files", "1"
    )
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.output


def test_every_verb_help_lists_the_global_options(cli) -> None:
    for words in (["kazoo", "pull"], ["kismet", "users"], ["config", "set"], ["verify"], ["kazoo"]):
        result = cli(*words, "--help")
        assert result.exit_code == 0
        for flag in ("--profile", "--config", "--quiet", "--verbose", "--no-progress", "--color"):
            assert flag in result.stdout, (words, flag)


def test_a_bad_global_value_after_the_verb_is_a_usage_error(cli) -> None:
    result = cli("kazoo", "list", "--color", "purple")
    assert result.exit_code == 2
    assert "purple" in result.stderr


def test_json_usage_error_after_the_verb_is_one_json_object(cli) -> None:
    result = cli("kazoo", "list", "--jsonl", "--no-such-flag")
    assert result.exit_code == 2
    error = json.loads(result.stderr)
    assert error["code"] == "USAGE" and error["provider"] == "kazoo"
    assert "--no-such-flag" in error["message"]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flags(cli_proc, flag: str) -> None:
    result = cli_proc(flag)
    assert result.exit_code == 0
    assert re.fullmatch(r"recfetch \d+\.\d+\.\d+\n", result.stdout)


# ---------------------------------------------------------------------------
# base_url mistakes are configuration errors naming base_url (issue 9 #2)


def test_base_url_without_a_scheme_is_exit_5_at_load(cli, config_file) -> None:
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(
        '[profiles.default.kazoo]\nbase_url = "kazoo.example.com:8000"\n'
        'account_id = "0123456789abcdef0123456789abcdef"\napi_key = "abcdefabcdefabcdef"\n'
    )
    config_file.chmod(0o600)
    result = cli("kazoo", "list")
    assert result.exit_code == 5
    assert lines(result.stderr) == [
        "error: kazoo: base_url 'kazoo.example.com:8000' is not an http(s) URL (give the whole URL, "
        "with scheme and a numeric port, in `recfetch config set kazoo.base_url https://kazoo.example.com:8000`)"
    ]


def test_login_refuses_to_save_a_base_url_without_a_scheme(cli, config_file) -> None:
    result = cli(
        *("kazoo", "login", "--no-verify", "--base-url", "kazoo.example.com:8000"),
        *("--account-id", "0123456789abcdef0123456789abcdef", "--api-key", "abcdefabcdefabcdef"),
    )
    assert result.exit_code == 5
    assert (
        "base_url 'kazoo.example.com:8000'" in result.stderr
        and "https://kazoo.example.com:8000" in result.stderr
    )
    assert not config_file.exists()
    assert cli("config", "set", "kazoo.base_url", "kazoo.example.com").exit_code == 5


def test_a_port_that_is_not_a_number_is_exit_5_naming_the_variable(cli, monkeypatch) -> None:
    monkeypatch.setenv("RECFETCH_KAZOO_BASE_URL", "http://kazoo.example.com:8000)")
    monkeypatch.setenv("RECFETCH_KAZOO_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("RECFETCH_KAZOO_API_KEY", "abcdefabcdefabcdef")
    result = cli("kazoo", "list")
    assert result.exit_code == 5, result.output
    assert "has a port that is not a number" in result.stderr and "RECFETCH_KAZOO_BASE_URL" in result.stderr
    assert "internal error" not in result.stderr


def test_login_reads_settings_from_the_environment_and_says_it_did_not_save_them(
    cli, sandbox, config_file, monkeypatch
) -> None:
    bird = sandbox.profiles()["bird"]
    monkeypatch.setenv("RECFETCH_BIRD_BASE_URL", bird["base_url"])  # the sandbox, not api.bird.com
    result = cli(
        "bird",
        "login",
        "--workspace-id",
        bird["workspace_id"],
        "--access-key-stdin",
        input=bird["access_key"] + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "verified" in result.stderr
    assert "used from the environment and not saved: base_url (RECFETCH_BIRD_BASE_URL)" in result.stderr
    saved = config.load(config_file)["profiles"]["default"]["bird"]
    assert saved == {"workspace_id": bird["workspace_id"], "access_key": bird["access_key"]}
    # An option still wins over the environment.
    monkeypatch.setenv("RECFETCH_BIRD_WORKSPACE_ID", "not-this-one")
    again = cli(
        "bird",
        "login",
        "--workspace-id",
        bird["workspace_id"],
        "--access-key-stdin",
        input=bird["access_key"] + "\n",
    )
    assert again.exit_code == 0, again.output


# ---------------------------------------------------------------------------
# config mistakes (issue 9 #6)


def test_a_missing_config_file_given_with_config_is_said_plainly(cli, tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    result = cli("--config", str(missing), "kazoo", "list")
    assert result.exit_code == 5
    assert lines(result.stderr) == [
        f"error: config file {missing} (given with --config) does not exist (check the path, "
        f"or create it with `recfetch --config {missing} PROVIDER login`)"
    ]
    assert cli("--config", str(missing), "config", "set", "kazoo.account_id", "a" * 32).exit_code == 0
    assert missing.exists()


def test_typod_keys_and_provider_tables_are_warned_with_the_likely_intent(cli, config_file) -> None:
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(
        '[profiles.work.kazo]\napi_key = "x"\n\n[profiles.work.bird]\nworkspace_id = "w"\naccess_kye = "k"\n'
    )
    config_file.chmod(0o600)
    result = cli("-p", "work", "config", "show", "bird")
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {config_file}: [profiles.work.kazo] is not a provider and is ignored "
        "(did you mean 'kazoo'?)" in result.stderr
    )
    assert (
        f"warning: {config_file}: [profiles.work.bird] has unknown key 'access_kye' "
        "(did you mean 'access_key'?)" in result.stderr
    )
    assert len(lines(result.stderr)) == 2  # once each


# ---------------------------------------------------------------------------
# repeated and misclassified messages (issue 9 #9)


def test_one_rejected_key_is_reported_once(cli, sandbox_profile, monkeypatch) -> None:
    monkeypatch.setenv("RECFETCH_KALEYRA_API_KEY", "not-the-key-at-all")
    ref = sandbox_profile["kaleyra"].ids()[0]
    result = cli("kaleyra", "download", ref, "-o", "out")
    assert result.exit_code == 4
    assert result.stderr.count("rejected") == 1, result.stderr
    assert lines(result.stderr)[-1].startswith("error: kaleyra rejected")


def test_a_cron_pull_with_a_rejected_key_prints_no_success_looking_summary(
    cli, sandbox_profile, monkeypatch
) -> None:
    monkeypatch.setenv("RECFETCH_KISMET_CLIENT_SECRET", "not-the-secret")
    result = cli("kismet", "pull", "--incremental", "-o", "out")
    assert result.exit_code == 4
    assert "0 downloaded" not in result.stderr
    assert len(lines(result.stderr)) == 1 and result.stderr.startswith("error: ")


def test_url_of_a_recording_that_has_no_file_yet_is_exit_6(cli, sandbox_profile) -> None:
    kismet = sandbox_profile["kismet"]
    pending = [ref for ref in kismet.refs() if ref not in kismet.refs(ready_only=True)]
    result = cli("kismet", "url", pending[0])
    assert result.exit_code == 6, result.output
    assert "has no file to download" in result.stderr
    assert result.stdout == ""


def test_a_name_template_given_to_o_asks_whether_name_was_meant(cli, sandbox_profile, tmp_path) -> None:
    result = cli("kazoo", "pull", "-o", "{date}_{id}{ext}")
    assert result.exit_code == 2
    assert "did you mean --name '{date}_{id}{ext}'?" in result.stderr
    assert not any(tmp_path.glob("{*"))  # no folder with the literal name


def test_every_verbs_help_shows_example_commands(cli) -> None:
    import typer

    from recfetch.cli._app import app

    def leaves(group: Any, words: list[str]) -> list[list[str]]:
        found: list[list[str]] = []
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):  # providers are built when asked for, not in .commands
            cmd = group.get_command(ctx, name)
            if cmd.hidden or name == "cloudflare":
                continue
            found += leaves(cmd, [*words, name]) if hasattr(cmd, "commands") else [[*words, name]]
        return found

    verbs = leaves(typer.main.get_command(app), [])
    assert ["kismet", "users"] in verbs and ["realtimekit", "pause"] in verbs and ["config", "path"] in verbs
    for words in verbs:
        text = cli(*words, "--help").stdout
        examples = text.split("Examples:", 1)[1].splitlines()[1:]
        assert examples and examples[0].strip().startswith("recfetch "), words
        assert all(len(line) <= 80 for line in text.splitlines()), words
