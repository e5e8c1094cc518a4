"""The download engine's HTTP rules as tables, plus property tests for Content-Range parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recfetch.download.http_rules import (
    ContentRange,
    ResumeMismatch,
    StatusClass,
    classify_status,
    content_length,
    error_code,
    is_error_media_type,
    looks_like_error_page,
    media_essence,
    parse_content_range,
    range_not_satisfiable,
    resume_headers,
)

# ---------------------------------------------------------------------------
# Content-Range of a 206 (RFC 9110 §14.4)


@pytest.mark.parametrize(
    ("header", "offset", "expected", "known_total", "length", "result"),
    [
        ("bytes 100-199/200", 100, None, None, None, ContentRange(100, 199, 200)),
        ("bytes 100-199/200", 100, 200, 200, 100, ContentRange(100, 199, 200)),
        ("BYTES 0-0/1", 0, None, None, 1, ContentRange(0, 0, 1)),
        ("  bytes 5-9/10  ", 5, None, None, None, ContentRange(5, 9, 10)),
        # a short window is valid; the engine asks for the rest afterwards
        ("bytes 100-149/200", 100, 200, None, 50, ContentRange(100, 149, 200)),
    ],
)
def test_valid_content_ranges(
    header: str,
    offset: int,
    expected: int | None,
    known_total: int | None,
    length: int | None,
    result: ContentRange,
) -> None:
    got = parse_content_range(
        header, offset=offset, expected=expected, known_total=known_total, content_length=length
    )
    assert got == result


@pytest.mark.parametrize(
    ("header", "offset", "expected", "known_total", "length", "why"),
    [
        (None, 100, None, None, None, "unusable"),
        ("", 100, None, None, None, "unusable"),
        ("bytes 100-199/*", 100, None, None, None, "unusable"),  # unknown total
        ("bytes */200", 100, None, None, None, "unusable"),  # a 416's form in a 206
        ("items 100-199/200", 100, None, None, None, "unusable"),
        ("bytes=100-199/200", 100, None, None, None, "unusable"),
        ("bytes 100-199", 100, None, None, None, "unusable"),
        ("bytes 100-199/200, bytes 0-1/200", 100, None, None, None, "unusable"),
        ("bytes -1-199/200", 100, None, None, None, "unusable"),
        ("bytes １00-199/200", 100, None, None, None, "unusable"),  # non-ASCII digits
        ("bytes 101-199/200", 100, None, None, None, "resume at byte 100"),  # late start
        ("bytes 0-199/200", 100, None, None, None, "resume at byte 100"),  # whole object
        ("bytes 100-99/200", 100, None, None, None, "inconsistent"),  # last < first
        ("bytes 100-200/200", 100, None, None, None, "inconsistent"),  # last >= total
        ("bytes 100-199/300", 100, 200, None, None, "expected 200"),  # not the provider's size
        ("bytes 100-199/300", 100, None, 200, None, "changed"),  # not the .part's object
        ("bytes 100-199/200", 100, None, None, 99, "Content-Length"),
    ],
)
def test_invalid_content_ranges_restart_the_transfer(
    header: str | None,
    offset: int,
    expected: int | None,
    known_total: int | None,
    length: int | None,
    why: str,
) -> None:
    with pytest.raises(ResumeMismatch, match=why):
        parse_content_range(
            header, offset=offset, expected=expected, known_total=known_total,
            content_length=length,
        )


windows = st.tuples(
    st.integers(0, 2**63), st.integers(0, 2**40), st.integers(1, 2**40)
).map(lambda t: (t[0], t[0] + t[1], t[0] + t[1] + t[2]))


@given(windows)
def test_every_well_formed_window_round_trips(window: tuple[int, int, int]) -> None:
    first, last, total = window
    header = f"bytes {first}-{last}/{total}"
    got = parse_content_range(
        header, offset=first, expected=total, known_total=total, content_length=last - first + 1
    )
    assert got == ContentRange(first, last, total)


@given(windows, st.integers(-(2**20), 2**20).filter(lambda d: d != 0))
def test_a_window_that_does_not_start_at_the_offset_is_never_accepted(
    window: tuple[int, int, int], shift: int
) -> None:
    first, last, total = window
    with pytest.raises(ResumeMismatch):
        parse_content_range(f"bytes {first}-{last}/{total}", offset=first + shift)


@given(st.text(max_size=60), st.integers(0, 2**40))
def test_any_header_text_is_either_a_consistent_window_or_a_restart(
    header: str, offset: int
) -> None:
    try:
        got = parse_content_range(header, offset=offset)
    except ResumeMismatch:
        return
    # Whatever is accepted is exactly the rest of an object, starting where we asked.
    assert got.first == offset <= got.last < got.total


@given(st.binary(max_size=40), st.integers(0, 2**40))
def test_any_latin1_header_never_raises_anything_but_a_mismatch(raw: bytes, offset: int) -> None:
    # h11 hands header values over as latin-1; nothing in them may crash the engine.
    try:
        parse_content_range(raw.decode("latin-1"), offset=offset)
    except ResumeMismatch:
        pass


# ---------------------------------------------------------------------------
# 416 Range Not Satisfiable (RFC 9110 §15.5.17)


@pytest.mark.parametrize(
    ("header", "offset", "expected", "total"),
    [
        ("bytes */1000", 1000, None, 1000),
        ("bytes */1000", 1000, 1000, 1000),
        (None, 1000, 1000, 1000),  # no Content-Range, but the provider's size says whole
        ("garbage", 1000, 1000, 1000),
    ],
)
def test_416_to_a_whole_part_completes(
    header: str | None, offset: int, expected: int | None, total: int
) -> None:
    assert range_not_satisfiable(header, offset=offset, expected=expected) == total


@pytest.mark.parametrize(
    ("header", "offset", "expected"),
    [
        ("bytes */2000", 1000, None),  # the object is longer: the .part is not whole
        ("bytes */1000", 1000, 2000),  # the provider says otherwise
        ("bytes */500", 1000, None),  # the object shrank
        ("bytes */0", 0, None),  # we never asked for a range
        (None, 1000, None),  # nothing to compare with
        (None, 1000, 999),
    ],
)
def test_416_otherwise_restarts(header: str | None, offset: int, expected: int | None) -> None:
    with pytest.raises(ResumeMismatch, match="416"):
        range_not_satisfiable(header, offset=offset, expected=expected)


# ---------------------------------------------------------------------------
# status codes, request headers, bodies


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, StatusClass.BODY),
        (206, StatusClass.BODY),
        (416, StatusClass.UNSATISFIABLE),
        *((s, StatusClass.REDIRECT) for s in (301, 302, 303, 307, 308)),
        *((s, StatusClass.REJECTED) for s in (400, 401, 403)),
        (404, StatusClass.NOT_FOUND),
        (410, StatusClass.NOT_FOUND),
        *((s, StatusClass.RETRY) for s in (429, 500, 502, 503, 504, 599)),
        *((s, StatusClass.REFUSED) for s in (201, 204, 300, 304, 405, 409, 451, 600)),
    ],
)
def test_status_classes(status: int, kind: StatusClass) -> None:
    assert classify_status(status) is kind


@pytest.mark.parametrize(
    ("offset", "etag", "headers"),
    [
        (0, '"abc"', {"Accept-Encoding": "identity"}),
        (10, None, {"Accept-Encoding": "identity", "Range": "bytes=10-"}),
        (10, 'W/"weak"', {"Accept-Encoding": "identity", "Range": "bytes=10-"}),
        (10, '"abc"', {"Accept-Encoding": "identity", "Range": "bytes=10-", "If-Range": '"abc"'}),
    ],
)
def test_resume_headers(offset: int, etag: str | None, headers: dict[str, str]) -> None:
    assert resume_headers(offset, etag) == headers


@pytest.mark.parametrize(
    ("value", "length"),
    [("10", 10), (" 10 ", 10), ("0", 0), (None, None), ("", None), ("-1", None), ("1e3", None),
     ("²", None), ("10, 10", None)],
)
def test_content_length(value: str | None, length: int | None) -> None:
    headers = {} if value is None else {"content-length": value}
    assert content_length(headers) == length


@pytest.mark.parametrize(
    ("content_type", "error"),
    [
        ("text/html; charset=utf-8", True),
        ("application/json", True),
        ("application/problem+json", True),
        ("application/vnd.api+json", True),
        ("application/xml", True),
        ("image/svg+xml", True),
        ("audio/mpeg", False),
        ("video/mp4", False),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_error_media_types(content_type: str | None, error: bool) -> None:
    assert is_error_media_type(media_essence(content_type)) is error


@pytest.mark.parametrize(
    ("head", "page"),
    [
        (b"<!DOCTYPE html><html>", True),
        (b"\xef\xbb\xbf  <html>", True),
        (b'<?xml version="1.0"?><Error>', True),
        (b'{"error": "denied"}', True),
        (b"ID3\x04\x00", False),
        (b"\x00\x00\x00\x18ftypmp42", False),
        (b"", False),
    ],
)
def test_error_pages_are_recognised_by_their_first_bytes(head: bytes, page: bool) -> None:
    assert looks_like_error_page(head) is page


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<Error><Code>AccessDenied</Code><Message>x</Message></Error>", "AccessDenied"),
        (b'{"code": "expired_token"}', "expired_token"),
        (b'{"error": "https://leak.example/?X-Signature=abc"}', None),  # never echo a URL
        (b"<html>nope</html>", None),
        (b"\xff\xfe", None),
    ],
)
def test_error_code_never_returns_free_text(body: bytes, code: str | None) -> None:
    assert error_code(body) == code
