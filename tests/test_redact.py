"""What reaches a sink is scrubbed: presigned query strings and registered secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recfetch import redact, urls
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


# ---------------------------------------------------------------------------
# recfetch.urls: the one home of the URL rules


@pytest.mark.parametrize(
    ("url", "presigned"),
    [
        ("https://b.s3.amazonaws.com/k.mp3?X-Amz-Algorithm=A&X-Amz-Signature=ab", True),
        ("https://h/k?Expires=1759932300&Signature=ab&Key-Pair-Id=K", True),  # CloudFront
        ("https://acct.blob.core.windows.net/c/k?sv=2024&se=2026&sp=r&sig=ab", True),  # Azure SAS
        ("https://storage.googleapis.com/b/k?X-Goog-Signature=ab", True),
        ("http://127.0.0.1:9/bucket/k?X-Expires=1&X-Signature=ab", True),  # the sandbox
        ("https://user:pw@h/k", True),
        ("https://h/k?page=2", False),
        ("https://h/k", False),
        ("not a url?Signature=x", False),
        (42, False),
    ],
)
def test_is_presigned(url: object, presigned: bool) -> None:
    assert urls.is_presigned(url) is presigned


def test_presigned_expiry_reads_sigv4_sigv2_and_says_none_otherwise() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    sigv4 = "https://h/k?X-Amz-Date=20260101T000000Z&X-Amz-Expires=600&X-Amz-Signature=x"
    assert urls.presigned_expiry(sigv4) == now + timedelta(minutes=10)
    assert urls.presigned_expiry("https://h/k?X-Amz-Expires=60", now=now) == now + timedelta(minutes=1)
    assert urls.presigned_expiry("https://h/k?Expires=1767225600&Signature=x") == now
    assert urls.presigned_expiry("https://h/k") is None
    assert urls.presigned_expiry("https://h/k?Expires=soon") is None


def test_origin_of_defaults_ports_and_folds_case() -> None:
    assert urls.origin_of("HTTPS://API.Example.com/v1") == ("https", "api.example.com", 443)
    assert urls.origin_of("http://127.0.0.1:8080/x") == ("http", "127.0.0.1", 8080)


def test_strip_signed_redacts_every_url_with_a_query_at_any_depth() -> None:
    value = {"a": ["https://h/k?sig=1", {"b": "https://u:p@h/x"}], "c": "https://h/plain", "d": 3}
    assert urls.strip_signed(value) == {
        "a": ["https://h/k?<redacted>", {"b": "https://h/x"}],
        "c": "https://h/plain",
        "d": 3,
    }


# ---------------------------------------------------------------------------
# scrub_raw: structural, for every provider (SPEC §4)


def test_scrub_raw_removes_credential_keys_and_presigned_urls_at_any_depth() -> None:
    raw = {
        "id": "r1",
        "meeting": {
            "recording_config": {
                "storage_config": {
                    "bucket": "b",
                    "password": "p",
                    "privateKey": "k",
                    "Secret": "s",
                    "access_key": "a",
                    "X-Api-Key": "x",
                }
            }
        },
        "auth": {"Authorization": "Bearer t", "refresh_token": "r", "credentials": {"u": 1}},
        "links": ["https://h/k?X-Amz-Signature=1", "https://h/page"],
        "preview": "https://h/k?Signature=1",
        "download_url_expiry": "2026-01-01T00:00:00Z",
    }
    assert redact.scrub_raw(raw) == {
        "id": "r1",
        "meeting": {"recording_config": {"storage_config": {"bucket": "b"}}},
        "auth": {},
        "links": ["https://h/page"],
        "download_url_expiry": "2026-01-01T00:00:00Z",
    }
    assert raw["meeting"]["recording_config"]["storage_config"]["password"] == "p"  # input untouched
