"""Destructive verbs ask on a real terminal: `delete` and `pull --delete-after` under a pty."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pexpect

from recfetch.sandbox import Sandbox


def _spawn(args: list[str]) -> tuple[pexpect.spawn, io.BytesIO]:
    log = io.BytesIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "recfetch", *args],
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
        timeout=30,
    )
    child.logfile_read = log
    return child, log


def _finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_declining_the_prompt_deletes_nothing_and_exits_0(sandbox_profile: Sandbox) -> None:
    bird = sandbox_profile["bird"]
    rid = bird.ids(status="available")[0]
    child, log = _spawn(["bird", "delete", rid])
    child.expect(r"Delete .* at bird\?")
    child.sendline("n")
    assert _finish(child) == 0, log.getvalue()
    assert bird.deleted == []
    assert b"nothing deleted" in log.getvalue()


def test_accepting_the_prompt_deletes_the_recording(sandbox_profile: Sandbox) -> None:
    kazoo = sandbox_profile["kazoo"]
    rid = kazoo.ids(downloadable=True)[0]
    child, log = _spawn(["kazoo", "delete", rid])
    child.expect(r"Delete .* at kazoo\?")
    child.sendline("y")
    assert _finish(child) == 0, log.getvalue()
    assert kazoo.is_deleted(rid)


def test_pull_delete_after_asks_once_on_a_terminal_and_a_no_downloads_nothing(
    sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    bird = sandbox_profile["bird"]
    out = tmp_path / "out"
    child, log = _spawn(["bird", "pull", "-o", str(out), "--delete-after"])
    child.expect(r"Delete .* at bird\?")
    child.sendline("n")
    assert _finish(child) == 0, log.getvalue()
    assert bird.deleted == []
    assert not out.exists() or not any(out.rglob("*.mp3"))
