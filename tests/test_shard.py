"""SPEC §9 partition: fixed by SHA-256 of the ref, every ref in exactly one shard; bad values exit 2."""

from __future__ import annotations

import hashlib

import pytest

from recfetch.errors import ExitCode, UsageError
from recfetch.shard import INDEX_ENV, Shard, parse_shard, shard_of


def test_shard_of_is_the_spec_formula_on_known_values() -> None:
    # Worked by hand from the SPEC §9 formula, so a change of hash, byte order or
    # width (or Python's salted hash()) would break these.
    ref = "kazoo:acct1/rec-0001"
    digest = hashlib.sha256(ref.encode("utf-8")).digest()
    assert shard_of(ref, 7) == int.from_bytes(digest[:8], "big") % 7
    assert shard_of("a", 1_000_003) == 0xCA978112CA1BBDCA % 1_000_003
    assert shard_of("a", 2) == 0xCA978112CA1BBDCA % 2 == 0
    assert shard_of("ü", 10) == int.from_bytes(hashlib.sha256("ü".encode()).digest()[:8], "big") % 10


def test_every_ref_lands_in_exactly_one_shard_and_spreads() -> None:
    refs = [f"bird:ws/{i}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    for ref in refs:
        assert sum(s.takes(ref) for s in shards) == 1
    counts = [sum(s.takes(r) for r in refs) for s in shards]
    assert all(800 < c < 1200 for c in counts), counts


@pytest.mark.parametrize(
    ("text", "expected"), [("0/1", Shard(0, 1)), ("2/3", Shard(2, 3)), (" 1 / 4 ", Shard(1, 4))]
)
def test_parse_valid(text: str, expected: Shard) -> None:
    assert parse_shard(text, {}) == expected


@pytest.mark.parametrize("text", ["3/3", "x/2", "1", "-1/2", "0/0", "1/2/3", "auto", ""])
def test_parse_invalid_is_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_shard(text, {})
    assert info.value.exit_code == ExitCode.USAGE == 2
    assert "--shard" in str(info.value)


def test_auto_reads_job_completion_index() -> None:
    assert parse_shard("auto/5", {INDEX_ENV: "4"}) == Shard(4, 5)
    assert str(parse_shard("auto/5", {INDEX_ENV: "0"})) == "0/5"


@pytest.mark.parametrize("env", [{}, {INDEX_ENV: ""}, {INDEX_ENV: "5"}, {INDEX_ENV: "x"}, {INDEX_ENV: "-1"}])
def test_auto_without_a_usable_index_names_it(env: dict[str, str]) -> None:
    with pytest.raises(UsageError) as info:
        parse_shard("auto/5", env)
    assert INDEX_ENV in str(info.value)
