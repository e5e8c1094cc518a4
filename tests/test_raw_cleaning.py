"""One walk cleans every recording's `raw` (SPEC §4), exactly as the step-by-step rules would.

`clean_raw` is the listing's hot path: these tests hold it to the plain definitions it replaces
(`scrub_raw`, then `valid_text`; with ``redact_urls`` after `strip_signed`), byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from recfetch.providers.base import RECORD_FIELDS, Recording
from recfetch.redact import LazyRaw, ScrubbedRaw, clean_raw, scrub_raw, valid_text
from recfetch.timeparse import parse_provider_time
from recfetch.urls import strip_signed

KEYS = st.sampled_from(
    [
        "id",
        "title",
        "url",
        "meeting",
        "password",
        "X-Api-Key",
        "refresh_token",
        "privateKey",
        "héllo",
        "k\ud800",
    ]
)
TEXTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "https://h/k?X-Amz-Signature=1",
            "HTTPS://h/k?sig=abc",
            "http://user:pw@h/k",
            "https://h/page?page=2",
            "https://h/page#frag",
            "https://h/page",
            "hello world",
            "h",
            "",
            "caf\u00e9 \ud83d",
            "\ud800https://h/k?Signature=1",
            "ftp://h/k?Signature=1",
        ]
    ),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXTS)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(KEYS, inner, max_size=5),
    ),
    max_leaves=20,
)


EDGES = {
    "page": "https://h/page?page=2",
    "X-Auth": "t",
    "items": [
        "https://h/k?X-Amz-Signature=1",
        ("http://u:p@h/x", "caf\u00e9 \ud83d"),
        {"k\ud800": "HTTPS://h/#f"},
    ],
}


def _bytes(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(JSONISH)
@example(EDGES)
def test_one_walk_equals_scrubbing_then_valid_text_byte_for_byte(value: Any) -> None:
    assert _bytes(clean_raw(value)) == _bytes(valid_text(scrub_raw(value)))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(JSONISH)
@example(EDGES)
def test_with_redact_urls_it_equals_strip_signed_first(value: Any) -> None:
    assert _bytes(clean_raw(value, redact_urls=True)) == _bytes(valid_text(scrub_raw(strip_signed(value))))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(KEYS, JSONISH, max_size=6))
@example(EDGES)
def test_a_cleaned_raw_is_kept_as_it_is_and_a_recording_never_holds_a_dirty_one(raw: dict[str, Any]) -> None:
    cleaned = clean_raw(raw)
    assert isinstance(cleaned, ScrubbedRaw)
    assert clean_raw(cleaned) is cleaned  # cleaning twice walks it once
    expected = _bytes(valid_text(scrub_raw(raw)))
    rec = Recording(provider="p", profile="x", ref="r", id="r", raw=raw)
    assert _bytes(rec.raw) == expected
    assert _bytes(rec.replace(filename="f").raw) == expected
    assert _bytes(Recording(provider="p", profile="x", ref="r", id="r", raw=cleaned).raw) == expected


def test_secrets_and_presigned_urls_never_survive_at_any_depth() -> None:
    raw = {
        "id": "r1",
        "meeting": {"recording_config": {"storage_config": {"bucket": "b", "secret_key": "s", "Token": "t"}}},
        "links": ["https://h/k?X-Amz-Signature=1", ("https://u:p@h/x", "ok")],
        "preview": "https://h/k?Signature=1",
        "page": "https://h/list?page=2",
        "title": "caf\u00e9 \ud83d",
    }
    text = _bytes(clean_raw(raw))
    for leaked in ("secret_key", "Token", "Signature", "u:p@", "\\ud83d"):
        assert leaked not in text
    assert "https://h/list?page=2" in text  # an unsigned query is kept without redact_urls...
    assert "https://h/list?page=2" not in _bytes(clean_raw(raw, redact_urls=True))  # ...and redacted with it
    assert raw["meeting"]["recording_config"]["storage_config"]["secret_key"] == "s"  # input untouched


def test_the_record_has_every_field_in_spec_order() -> None:
    assert tuple(Recording(provider="p", profile="x", ref="r", id="r").to_dict()) == RECORD_FIELDS


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dictionaries(KEYS, JSONISH, max_size=6), st.booleans())
@example(EDGES, True)
def test_a_lazy_raw_reads_only_as_the_clean_copy(raw: dict[str, Any], redact: bool) -> None:
    expected = _bytes(clean_raw(raw, redact_urls=redact))
    lazy = LazyRaw(raw, redact_urls=redact)
    assert clean_raw(lazy) is lazy  # a recording keeps it lazy
    rec = Recording(provider="p", profile="x", ref="r", id="r", raw=lazy)
    assert _bytes(rec.to_dict()["raw"]) == expected
    assert type(lazy.copy()) is dict and _bytes(lazy.copy()) == expected  # what to_dict hands on
    assert _bytes(dict(rec.replace(filename="f").raw)) == expected
    assert repr(lazy) == repr(clean_raw(raw, redact_urls=redact))
    assert sorted(map(repr, lazy)) == sorted(map(repr, clean_raw(raw, redact_urls=redact)))
    assert len(lazy) == len(clean_raw(raw, redact_urls=redact))
    assert lazy == clean_raw(raw, redact_urls=redact)
    without = LazyRaw(raw, redact_urls=redact, drop=frozenset({"url", "password"}))
    rest = {k: v for k, v in raw.items() if k not in ("url", "password")}
    assert _bytes(dict(without)) == _bytes(clean_raw(rest, redact_urls=redact))


def test_a_lazy_raw_never_shows_what_it_was_given() -> None:
    raw = {
        "id": "r1",
        "storage_config": {"type": "aws", "secret": "s3cr3t-value"},
        "preview": "https://h/k?X-Amz-Signature=abc",
        "page": "https://h/list?page=2",
    }
    lazy = LazyRaw(raw, redact_urls=True)
    rec = Recording(provider="p", profile="x", ref="r", id="r", raw=lazy)
    for text in (repr(rec), repr(lazy), _bytes(rec.to_dict()), str(dict(lazy)), str(list(lazy.items()))):
        for leaked in ("s3cr3t-value", "Signature", "page=2"):
            assert leaked not in text
    assert "secret" not in lazy["storage_config"] and lazy["preview"] == "https://h/k?<redacted>"
    assert "storage_config" in lazy and lazy.get("id") == "r1"
    assert raw["storage_config"]["secret"] == "s3cr3t-value"  # input untouched


def _provider_time_in_general(text: str) -> Any:
    """`parse_provider_time` of a string without its fast path (its definition before it had one)."""
    from datetime import UTC, datetime

    text = text.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


ISO_TIMES = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z"),
    st.sampled_from(
        [
            "2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00.123456789Z",
            "2026-11-21",
            "2026-11-21 10:00:00",
            "2026-11-21T10:00:00+0530",
            "2026-11-21T10:00:00Z ",
            "2026-11-21T10:00:00Zjunk",
            "2026-11-21T10:00:00z",
            "0001-01-01T00:00:00Z",
            "2026-W47-1",
            "1234-",
        ]
    ),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ISO_TIMES)
def test_an_iso_provider_time_reads_as_it_does_in_general(text: str) -> None:
    got = parse_provider_time(text)
    want = _provider_time_in_general(text)
    assert got == want and (got is None or got.tzinfo is want.tzinfo)


def _iso_by_isoformat(value: Any) -> str:
    """`iso` by its definition (before it formatted the fields itself)."""
    from datetime import UTC

    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds").replace("+00:00", "Z")


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.datetimes(timezones=st.one_of(st.none(), st.timezones())))
def test_iso_writes_what_isoformat_would(value: Any) -> None:
    from recfetch.providers.base import iso

    try:
        want = _iso_by_isoformat(value)
    except OverflowError:  # a time at the very edge of the calendar that has no UTC equivalent
        return
    assert iso(value) == want


class _Unreadable(dict):  # type: ignore[type-arg]
    """A provider object that fails the test if anything reads it."""

    def items(self) -> Any:
        raise AssertionError("raw was read")

    def __iter__(self) -> Any:
        raise AssertionError("raw was read")


def test_a_record_without_raw_never_cleans_it() -> None:
    rec = Recording(provider="p", profile="x", ref="r", id="r", raw=LazyRaw(_Unreadable(secret="s")))
    assert tuple(rec.to_dict(raw=False)) == tuple(f for f in RECORD_FIELDS if f != "raw")
