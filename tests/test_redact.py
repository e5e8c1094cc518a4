"""What reaches a sink is scrubbed: presigned query strings and registered secrets."""

from __future__ import annotations

from recfetch.redact import mask, redact_headers, register_secret, scrub

PRESIGNED = "https://bucket.s3.amazonaws.com/r/1.mp4?X-Amz-Signature=deadbeef&X-Amz-Expires=900"


def test_presigned_query_is_removed_and_the_path_kept() -> None:
    text = scrub(f"GET {PRESIGNED} -> 403")
    assert "deadbeef" not in text and "X-Amz" not in text
    assert "https://bucket.s3.amazonaws.com/r/1.mp4?<redacted> -> 403" in text


def test_scrubbing_twice_changes_nothing() -> None:
    once = scrub(f"url={PRESIGNED}")
    assert scrub(once) == once


def test_registered_secret_is_masked_wherever_it_appears() -> None:
    register_secret("s3cr3t-value-123")
    assert scrub("token s3cr3t-value-123 rejected") == "token **** rejected"


def test_mask_shows_only_the_last_four_characters_of_long_values() -> None:
    assert mask("abcdefghijkl") == "****ijkl"
    assert mask("short") == "****"


def test_credential_headers_are_masked() -> None:
    headers = redact_headers({"Authorization": "AccessKey k", "X-Auth-Token": "t", "Accept": "a"})
    assert headers == {"Authorization": "****", "X-Auth-Token": "****", "Accept": "a"}
