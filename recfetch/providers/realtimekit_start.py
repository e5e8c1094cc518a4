"""Request bodies of RealtimeKit's two start operations, built from the options a user gave.

`POST …/recordings` (`start_recording`) and `POST …/recordings/track`
(`startTrackRecordingForAMeeting`), field for field as the published spec
(cloudflare/api-schemas c92b9b0f, via providers/specs) describes them. A storage
configuration carries the user's bucket credentials: it is read from a JSON file
only, and no message here ever repeats a value from it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recfetch.errors import UsageError

__all__ = ["StartOptions", "TrackOptions", "load_json_object", "load_storage_config"]

STORAGE_TYPES = ("aws", "azure", "digitalocean", "gcs", "sftp")
STORAGE_KEYS = frozenset(
    {
        "type",
        "access_key",
        "auth_method",
        "bucket",
        "host",
        "password",
        "path",
        "port",
        "private_key",
        "region",
        "secret",
        "username",
    }
)
"""`realtimekit_StorageConfig` properties; access_key, secret, password and private_key are write-only."""

VIDEO_KEYS = frozenset({"codec", "export_file", "height", "width", "watermark"})
"""`realtimekit_VideoConfig` properties."""

_SPEC_HINT = "see the RealtimeKit API reference for its fields"


def load_json_object(path: Path, *, flag: str) -> dict[str, Any]:
    """A JSON object from ``path``; errors name the file and the flag, never its content."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file", hint="give the path of a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{flag} {path}: cannot be read ({type(exc).__name__})",
            hint="give a readable UTF-8 JSON file",
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # Position only: the message of a decode error can quote the file's text.
        raise UsageError(
            f"{flag} {path}: not valid JSON (line {exc.lineno}, column {exc.colno})",
            hint="the file must hold one JSON object",
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} {path}: not a JSON object", hint="the file must hold one JSON object")
    return value


def load_storage_config(path: Path, *, flag: str = "--storage-config") -> dict[str, Any]:
    """A `realtimekit_StorageConfig` from a file: checked by key and type, values never echoed."""
    config = load_json_object(path, flag=flag)
    unknown = sorted(set(config) - STORAGE_KEYS)
    if unknown:
        raise UsageError(
            f"{flag} {path}: unknown field {unknown[0]!r}",
            hint="use only " + ", ".join(sorted(STORAGE_KEYS)),
        )
    kind = config.get("type")
    if kind not in STORAGE_TYPES:
        raise UsageError(
            f"{flag} {path}: `type` must be one of " + ", ".join(STORAGE_TYPES),
            hint="say which kind of storage the file describes",
        )
    for key, value in config.items():
        wanted: type | tuple[type, ...] = (int, float) if key == "port" else str
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise UsageError(
                f"{flag} {path}: `{key}` must be a {'number' if key == 'port' else 'string'}",
                hint=_SPEC_HINT,
            )
    if config.get("auth_method") not in (None, "KEY", "PASSWORD"):
        raise UsageError(f"{flag} {path}: `auth_method` must be KEY or PASSWORD", hint=_SPEC_HINT)
    return config


def video_config(value: Mapping[str, Any], *, flag: str = "--video-config") -> dict[str, Any]:
    """A `realtimekit_VideoConfig`: known keys only; RealtimeKit checks the values."""
    unknown = sorted(set(value) - VIDEO_KEYS)
    if unknown:
        raise UsageError(
            f"{flag}: unknown field {unknown[0]!r}", hint="use only " + ", ".join(sorted(VIDEO_KEYS))
        )
    return dict(value)


def meeting_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise UsageError(
            f"--meeting {value.strip()!r} is not a RealtimeKit meeting id "
            "(a UUID like 0fd1b6ba-8b7c-4b3e-9e0e-3b7c5e0b4a1d)",
            hint="copy the id from `recfetch realtimekit list`",
        ) from None


@dataclass(frozen=True)
class StartOptions:
    """Every field of the `start_recording` body except `meeting_id`; None leaves a field out."""

    max_seconds: int | None = None
    file_name_prefix: str | None = None
    audio_codec: str | None = None
    audio_channel: str | None = None
    allow_multiple: bool = False
    storage_config: Mapping[str, Any] | None = None
    video_config: Mapping[str, Any] | None = None
    realtimekit_bucket: bool | None = None
    interactive_id3: bool = False
    rtmp_url: str | None = None
    url: str | None = None

    def body(self, meeting_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"meeting_id": meeting_uuid(meeting_id)}
        if self.max_seconds is not None:
            if not 60 <= self.max_seconds <= 86400:
                raise UsageError(
                    f"--max-seconds {self.max_seconds} is out of range", hint="use 60 to 86400 (24 hours)"
                )
            body["max_seconds"] = self.max_seconds
        if self.file_name_prefix:
            body["file_name_prefix"] = self.file_name_prefix
        if self.audio_codec or self.audio_channel:
            audio: dict[str, Any] = {"export_file": True}
            if self.audio_codec:
                audio["codec"] = self.audio_codec.upper()
            if self.audio_channel:
                audio["channel"] = self.audio_channel.lower()
            body["audio_config"] = audio
        if self.allow_multiple:
            body["allow_multiple_recordings"] = True
        if self.storage_config is not None:
            body["storage_config"] = dict(self.storage_config)
        if self.video_config is not None:
            body["video_config"] = video_config(self.video_config)
        if self.realtimekit_bucket is not None:
            body["realtimekit_bucket_config"] = {"enabled": self.realtimekit_bucket}
        if self.interactive_id3:
            body["interactive_config"] = {"type": "ID3"}
        if self.rtmp_url:
            rtmp_url = _absolute_url(self.rtmp_url, "--rtmp-url", ("rtmp", "rtmps"))
            body["rtmp_out_config"] = {"rtmp_url": rtmp_url}
        if self.url:
            body["url"] = _absolute_url(self.url, "--url", ("http", "https"))
        if self.realtimekit_bucket is False and self.storage_config is None and not self.rtmp_url:
            raise UsageError(
                "--no-realtimekit-bucket leaves the recording nowhere to go",
                hint="also give --storage-config FILE.json (your own bucket) or --rtmp-url",
            )
        return body


@dataclass(frozen=True)
class TrackOptions:
    """The `startTrackRecordingForAMeeting` body: one layer (RealtimeKit supports only "default")."""

    max_seconds: int | None = None
    file_name_prefix: str | None = None
    storage_config: Mapping[str, Any] | None = None
    realtimekit_bucket: bool = True

    def body(self, meeting_id: str) -> dict[str, Any]:
        outputs: list[dict[str, Any]] = []
        if self.realtimekit_bucket:
            outputs.append({"type": "REALTIMEKIT_BUCKET"})
        if self.storage_config is not None:
            outputs.append({"type": "STORAGE_CONFIG", "storage_config": dict(self.storage_config)})
        if not outputs:
            raise UsageError(
                "--no-realtimekit-bucket leaves the track recording nowhere to go",
                hint="also give --storage-config FILE.json",
            )
        layer: dict[str, Any] = {"outputs": outputs}
        if self.file_name_prefix:
            layer["file_name_prefix"] = self.file_name_prefix
        body: dict[str, Any] = {"meeting_id": meeting_uuid(meeting_id), "layers": {"default": layer}}
        if self.max_seconds is not None:
            if self.max_seconds < 1:
                raise UsageError(f"--max-seconds {self.max_seconds} is out of range", hint="use 1 or more")
            body["max_seconds"] = self.max_seconds
        return body


def _absolute_url(value: str, flag: str, schemes: tuple[str, ...]) -> str:
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in schemes or not rest or any(c.isspace() for c in text):
        raise UsageError(  # not echoed: an RTMP URL usually ends in the stream key
            f"{flag} is not an absolute {' or '.join(schemes)} URL",
            hint=f"e.g. {schemes[0]}://example.com/…",
        )
    return text
