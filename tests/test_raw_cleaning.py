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
from recfetch.redact import ScrubbedRaw, clean_raw, scrub_raw, valid_text
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
