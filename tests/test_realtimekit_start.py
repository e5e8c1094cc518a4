"""RealtimeKit `start` with every field of the published start body, and `start-tracks`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recfetch.sandbox import Sandbox

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
ACCESS = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def rtk(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with Sandbox(providers=["realtimekit"]) as sb:
        sb.write_profile(config_file, "sandbox")
        monkeypatch.setenv("RECFETCH_PROFILE", "sandbox")
        yield sb["realtimekit"]


@pytest.fixture
def storage_file(tmp_path: Path) -> Path:
    path = tmp_path / "bucket.json"
    config = {
        "type": "aws",
        "bucket": "acme-recordings",
        "region": "eu-west-1",
        "path": "meetings/",
        "access_key": ACCESS,
        "secret": SECRET,
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _meeting(rtk: Any) -> str:
    return list(rtk.meetings)[4]  # no recording in progress


def test_start_sends_every_field_of_the_published_body(
    cli: Any, rtk: Any, storage_file: Path, tmp_path: Path
) -> None:
    video = tmp_path / "video.json"
    mark = {"url": "https://example.com/w.png", "position": "right top", "size": {"width": 64}}
    video.write_text(json.dumps({"codec": "VP8", "width": 1280, "height": 720, "watermark": mark}))
    meeting = _meeting(rtk)

    result = cli(
        "-v",
        "realtimekit",
        "start",
        "--meeting",
        meeting,
        "--max-seconds",
        "600",
        "--file-name-prefix",
        "weekly",
        "--audio-codec",
        "aac",
        "--audio-channel",
        "mono",
        "--allow-multiple",
        "--storage-config",
        str(storage_file),
        "--video-config",
        f"@{video}",
        "--realtimekit-bucket",
        "--interactive",
        "--rtmp-url",
        "rtmp://live.example.com/app/stream-key-123",
        "--url",
        "https://example.com/custom-view",
        "--json",
    )

    assert result.exit_code == 0, result.stderr
    [body] = rtk.start_bodies
    assert body == {
        "meeting_id": meeting,
        "max_seconds": 600,
        "file_name_prefix": "weekly",
        "audio_config": {"export_file": True, "codec": "AAC", "channel": "mono"},
        "allow_multiple_recordings": True,
        "storage_config": json.loads(storage_file.read_text()),
        "video_config": json.loads(video.read_text()),
        "realtimekit_bucket_config": {"enabled": True},
        "interactive_config": {"type": "ID3"},
        "rtmp_out_config": {"rtmp_url": "rtmp://live.example.com/app/stream-key-123"},
        "url": "https://example.com/custom-view",
    }
    record = result.json()
    assert record["provider_status"] == "RECORDING"
    assert record["raw"]["storage_config"] == {
        "type": "aws",
        "bucket": "acme-recordings",
        "region": "eu-west-1",
        "path": "meetings/",
    }
    for secret in (SECRET, ACCESS):  # never echoed: not on stdout, not in -v logs
        assert secret not in result.stdout and secret not in result.stderr


def test_start_without_realtimekit_bucket_needs_somewhere_else_to_go(
    cli: Any, rtk: Any, storage_file: Path
) -> None:
    meeting = _meeting(rtk)
    nowhere = cli("realtimekit", "start", "--meeting", meeting, "--no-realtimekit-bucket")
    assert nowhere.exit_code == 2 and "--storage-config" in nowhere.stderr
    assert rtk.server.requests() == []

    result = cli(
        "realtimekit",
        "start",
        "--meeting",
        meeting,
        "--no-realtimekit-bucket",
        "--storage-config",
        str(storage_file),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert rtk.start_bodies[0]["realtimekit_bucket_config"] == {"enabled": False}
    stopped = cli("realtimekit", "stop", result.json()["ref"], "--json").json()
    assert stopped["provider_status"] == "UPLOADED" and stopped["downloadable"] is False
    stored = stopped["raw"]["storage_config"]
    assert stored["type"] == "aws" and "secret" not in stored


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"type": "aws", "secret": ', "not valid JSON (line 1"),
        ('["aws"]', "not a JSON object"),
        ('{"type": "ftp", "secret": "s3cr3t-value"}', "`type` must be one of"),
        ('{"type": "aws", "secret_key": "s3cr3t-value"}', "unknown field 'secret_key'"),
        ('{"type": "sftp", "port": "22", "password": "s3cr3t-value"}', "`port` must be a number"),
    ],
)
def test_a_bad_storage_config_file_is_a_usage_error_that_never_quotes_it(
    cli: Any, rtk: Any, tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "storage.json"
    path.write_text(content)
    for verb in ("start", "start-tracks"):
        result = cli("realtimekit", verb, "--meeting", _meeting(rtk), "--storage-config", str(path))
        assert result.exit_code == 2, result.output
        assert says in result.stderr and str(path) in result.stderr
        assert "s3cr3t-value" not in result.output
    assert rtk.server.requests() == []


def test_start_rejects_bad_urls_and_video_config_without_echoing_them(cli: Any, rtk: Any) -> None:
    meeting = _meeting(rtk)
    rtmp = cli("realtimekit", "start", "--meeting", meeting, "--rtmp-url", "https://x/live/KEY-abc")
    assert rtmp.exit_code == 2 and "--rtmp-url" in rtmp.stderr and "KEY-abc" not in rtmp.output
    assert cli("realtimekit", "start", "--meeting", meeting, "--url", "not a url").exit_code == 2
    video = cli("realtimekit", "start", "--meeting", meeting, "--video-config", '{"fps": 30}')
    assert video.exit_code == 2 and "unknown field 'fps'" in video.stderr
    assert cli("realtimekit", "start", "--meeting", meeting, "--video-config", "[1]").exit_code == 2
    assert rtk.server.requests() == []
    refused = cli("realtimekit", "start", "--meeting", meeting, "--video-config", '{"codec": "AV1"}')
    assert refused.exit_code == 2 and "video_config.codec" in refused.stderr  # RealtimeKit's 400


def test_start_tracks_posts_the_track_recording_body(cli: Any, rtk: Any, storage_file: Path) -> None:
    meeting = _meeting(rtk)

    result = cli(
        "-v",
        "realtimekit",
        "start-tracks",
        "--meeting",
        meeting,
        "--file-name-prefix",
        "standup",
        "--max-seconds",
        "900",
        "--storage-config",
        str(storage_file),
        "--json",
    )

    assert result.exit_code == 0, result.stderr
    [post] = rtk.server.requests(method="POST")
    assert post.path.endswith("/recordings/track")
    assert json.loads(post.body) == {
        "meeting_id": meeting,
        "layers": {
            "default": {
                "outputs": [
                    {"type": "REALTIMEKIT_BUCKET"},
                    {"type": "STORAGE_CONFIG", "storage_config": json.loads(storage_file.read_text())},
                ],
                "file_name_prefix": "standup",
            }
        },
        "max_seconds": 900,
    }
    record = result.json()
    assert record["provider_status"] == "RECORDING" and record["filename"].startswith("standup_")
    assert record["media_type"] == "video/webm"
    assert SECRET not in result.output and ACCESS not in result.output
    assert cli("realtimekit", "stop", record["ref"], "--json").json()["provider_status"] == "UPLOADED"


def test_start_tracks_defaults_and_errors(cli: Any, rtk: Any) -> None:
    meeting = _meeting(rtk)
    plain = cli("realtimekit", "start-tracks", "--meeting", meeting, "--json")
    assert plain.exit_code == 0, plain.stderr
    assert rtk.start_bodies[-1] == {
        "meeting_id": meeting,
        "layers": {"default": {"outputs": [{"type": "REALTIMEKIT_BUCKET"}]}},
    }
    nowhere = cli("realtimekit", "start-tracks", "--meeting", meeting, "--no-realtimekit-bucket")
    assert nowhere.exit_code == 2 and "--storage-config" in nowhere.stderr
    assert cli("realtimekit", "start-tracks", "--meeting", "nope").exit_code == 2
    unknown = cli("realtimekit", "start-tracks", "--meeting", "0b5f2d8e-1c1a-4c4c-9a9a-000000000000")
    assert unknown.exit_code == 6 and "has no meeting" in unknown.stderr
    assert len(rtk.server.requests(method="POST")) == 2
