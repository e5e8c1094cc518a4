"""Property tests for the file-name sanitizer: any Unicode a provider sends becomes one safe component."""

from __future__ import annotations

import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

from recfetch.naming import MAX_COMPONENT_BYTES, sanitize_component

# Every code point, lone surrogates included (a JavaScript backend that cuts inside an emoji sends one).
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=400)
HOSTILE = [
    "\ud83d",
    "a\udc00b.mp4",
    "\x1b[31mred\x1b[0m\r\n",
    "evil\u202egpj.exe",
    "\u200f\u200e\u2067name\u2069",
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "\x00",
    "é" * 300 + ".mp4",
    "🎙" * 100,
    "x" * 300,
    " . . . ",
]


def _assert_safe(out: str, max_bytes: int = MAX_COMPONENT_BYTES) -> None:
    encoded = out.encode("utf-8")  # strict: raises on a lone surrogate
    assert 0 < len(encoded) <= max_bytes
    assert "/" not in out and "\\" not in out and "\x00" not in out
    assert out not in (".", "..") and not out.startswith(".")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in out)


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_any_unicode_becomes_a_valid_bounded_traversal_free_component(name: str) -> None:
    _assert_safe(sanitize_component(name))


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
@example("é" * 300 + ".mp4")
@example("a\ud83d.mp3")
@example("0 \x1b\r0")  # dropping a control must not leave two spaces (found by Hypothesis)
def test_the_same_input_always_gives_the_same_name_and_a_safe_name_stays_as_it_is(name: str) -> None:
    first = sanitize_component(name)
    assert sanitize_component(name) == first
    assert sanitize_component(first) == first


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, st.integers(min_value=16, max_value=MAX_COMPONENT_BYTES))
def test_a_smaller_byte_budget_is_kept_too(name: str, max_bytes: int) -> None:
    _assert_safe(sanitize_component(name, max_bytes=max_bytes), max_bytes)


def test_hostile_examples() -> None:
    for name in HOSTILE:
        _assert_safe(sanitize_component(name))
    assert sanitize_component("é" * 300 + ".mp4").endswith(".mp4")  # the extension survives truncation
