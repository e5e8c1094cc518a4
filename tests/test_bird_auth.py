"""Bird credentials: an access key goes as `AccessKey …`, a token as `Bearer …` (SPEC §6)."""

from __future__ import annotations

import io
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import pexpect

from recfetch.sandbox import Sandbox
from recfetch.sandbox.bird import ACCESS_KEY, BEARER_TOKEN, WORKSPACE_ID


def _auth_headers(sandbox: Sandbox) -> list[str]:
    return [r.headers.get("authorization", "") for r in sandbox["bird"].server.requests()]


def _write(config_file: Path, sandbox: Sandbox, **creds: str) -> None:
    lines = [f'base_url = "{sandbox["bird"].server.url}"', f'workspace_id = "{WORKSPACE_ID}"']
    lines += [f'{key} = "{value}"' for key, value in creds.items()]
    config_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_file.write_text("[profiles.default.bird]\n" + "\n".join(lines) + "\n")
    config_file.chmod(0o600)


def test_a_token_is_sent_as_bearer_and_an_access_key_as_accesskey(
    sandbox: Sandbox, cli: Any, config_file: Path
) -> None:
    _write(config_file, sandbox, token=BEARER_TOKEN)
    by_token = cli("bird", "list", "--jsonl", "--limit", "2")
    assert by_token.exit_code == 0, by_token.stderr
    assert set(_auth_headers(sandbox)) == {f"Bearer {BEARER_TOKEN}"}
    assert BEARER_TOKEN not in by_token.output

    sandbox["bird"].server.clear()
    _write(config_file, sandbox, access_key=ACCESS_KEY, token="")
    by_key = cli("bird", "list", "--jsonl", "--limit", "2")
    assert by_key.exit_code == 0, by_key.stderr
    assert set(_auth_headers(sandbox)) == {f"AccessKey {ACCESS_KEY}"}
    assert by_key.jsonl() == by_token.jsonl()


def test_neither_credential_is_a_config_error_naming_both(
    sandbox: Sandbox, cli: Any, config_file: Path
) -> None:
    _write(config_file, sandbox)
    result = cli("bird", "list")
    assert result.exit_code == 5
    assert "access_key" in result.stderr and "token" in result.stderr
    assert sandbox["bird"].server.requests() == []


def test_a_wrong_token_is_an_auth_error(sandbox: Sandbox, cli: Any, config_file: Path) -> None:
    _write(config_file, sandbox, token="not-the-token")
    result = cli("bird", "list")
    assert result.exit_code == 4 and "token" in result.stderr


def test_login_on_a_terminal_asks_for_an_access_key_or_a_token(sandbox: Sandbox, config_file: Path) -> None:
    base = sandbox["bird"].server.url
    log = io.BytesIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "recfetch", "bird", "login", "--base-url", base],
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
        timeout=30,
    )
    child.logfile_read = log
    child.expect("workspace_id")
    child.sendline(WORKSPACE_ID)
    child.expect("access_key")
    child.sendline("")  # no access key: the token instead
    child.expect("token")
    child.sendline(BEARER_TOKEN)
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0, log.getvalue()
    assert BEARER_TOKEN.encode() not in log.getvalue()  # hidden input
    saved = tomllib.loads(config_file.read_text())["profiles"]["default"]["bird"]
    assert saved["token"] == BEARER_TOKEN and not saved.get("access_key")
    assert _auth_headers(sandbox)[-1] == f"Bearer {BEARER_TOKEN}"


def test_login_takes_a_token_on_stdin_and_saves_it_only_when_bird_accepts_it(
    sandbox: Sandbox, cli: Any, config_file: Path
) -> None:
    args = ("bird", "login", "--base-url", sandbox["bird"].server.url, "--workspace-id", WORKSPACE_ID)
    refused = cli(*args, "--token-stdin", input="bad\n")
    assert refused.exit_code == 4 and not config_file.exists()
    accepted = cli(*args, "--token-stdin", input=BEARER_TOKEN + "\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert tomllib.loads(config_file.read_text())["profiles"]["default"]["bird"]["token"] == BEARER_TOKEN
    assert _auth_headers(sandbox)[-1] == f"Bearer {BEARER_TOKEN}"
