"""Kismet withholds the recordings of a call without every participant's consent: say so."""

from __future__ import annotations

import json
from typing import Any


def _withheld(kismet: Any) -> list[tuple[int, int]]:
    return [
        (uid, cid)
        for uid, calls in kismet.calls.items()
        for cid, call in calls.items()
        if call["is_ended"] and call["has_egresses"] and not kismet.consent[cid]
    ]


def test_list_says_which_ended_calls_had_their_recordings_withheld(cli: Any, sandbox_profile: Any) -> None:
    kismet = sandbox_profile["kismet"]
    [(uid, cid)] = _withheld(kismet)

    quiet_log = cli("kismet", "list", "--jsonl")
    verbose = cli("-v", "kismet", "list", "--jsonl")

    for result in (quiet_log, verbose):
        assert result.exit_code == 0, result.stderr
        assert f"1 ended call reported recordings that Kismet did not list (call {cid} of user {uid})" in (
            result.stderr
        )
        assert "every participant consented" in result.stderr
    assert f"call {cid} of user {uid} ended with recordings, but Kismet lists none" in verbose.stderr
    assert "ended with recordings, but Kismet lists none" not in quiet_log.stderr
    assert len(verbose.jsonl()) == len(kismet.refs())  # stdout stays data only


def test_an_empty_listing_of_such_a_call_is_not_a_bare_no_recordings_matched(
    cli: Any, sandbox_profile: Any
) -> None:
    [(uid, cid)] = _withheld(sandbox_profile["kismet"])

    table = cli("kismet", "list", "--user", str(uid), "--call", str(cid))
    as_json = cli("kismet", "list", "--user", str(uid), "--call", str(cid), "--json")
    quiet = cli("-q", "kismet", "list", "--user", str(uid), "--call", str(cid))

    assert table.exit_code == 0 and len(table.stdout.splitlines()) <= 1  # at most the header line
    assert "no recordings matched" in table.stderr and "consented" in table.stderr
    notes = [json.loads(line) for line in as_json.stderr.splitlines() if line.startswith("{")]
    assert any("consented" in note.get("message", "") for note in notes), as_json.stderr
    assert json.loads(as_json.stdout)["items"] == []
    assert quiet.stderr == ""


def test_pull_says_so_too(cli: Any, sandbox_profile: Any, tmp_path: Any) -> None:
    [(uid, cid)] = _withheld(sandbox_profile["kismet"])
    result = cli("kismet", "pull", "--user", str(uid), "-o", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert f"(call {cid} of user {uid})" in result.stderr and "consented" in result.stderr
