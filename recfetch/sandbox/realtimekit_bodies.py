"""What the RealtimeKit stand-in accepts as start and track-recording bodies.

Each check returns the Joi-style message RealtimeKit answers a 400 with, or None
when the body is acceptable; fields and enums follow the published spec
(`realtimekit_StartRecording`, `realtimekit_StartTrackRecordingBody`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

START_KEYS = frozenset(
    {
        "meeting_id",
        "max_seconds",
        "storage_config",
        "video_config",
        "audio_config",
        "rtmp_out_config",
        "file_name_prefix",
        "url",
        "realtimekit_bucket_config",
        "interactive_config",
        "allow_multiple_recordings",
    }
)
TRACK_KEYS = frozenset({"meeting_id", "max_seconds", "layers"})
STORAGE_TYPES = ("aws", "azure", "digitalocean", "gcs", "sftp")
STORAGE_KEYS = frozenset(
    {"type", "access_key", "auth_method", "bucket", "host", "password", "path", "port"}
    | {"private_key", "region", "secret", "username"}
)
STORAGE_SECRETS = ("access_key", "secret", "password", "private_key")
"""Write-only: accepted on start, never answered back."""
VIDEO_CODECS = ("H264", "VP8")
WATERMARK_POSITIONS = ("left top", "right top", "left bottom", "right bottom")
OUTPUT_TYPES = ("REALTIMEKIT_BUCKET", "STORAGE_CONFIG")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_url(value: Any, schemes: tuple[str, ...]) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in schemes and bool(parts.netloc)


def storage_problem(config: Any, where: str = "storage_config") -> str | None:
    if not isinstance(config, dict):
        return f'"{where}" must be of type object'
    unknown = sorted(set(config) - STORAGE_KEYS)
    if unknown:
        return f'"{where}.{unknown[0]}" is not allowed'
    if config.get("type") not in STORAGE_TYPES:
        return f'"{where}.type" must be one of [{", ".join(STORAGE_TYPES)}]'
    for key, value in config.items():
        if key == "port":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f'"{where}.port" must be a number'
        elif not isinstance(value, str):
            return f'"{where}.{key}" must be a string'
    if config.get("auth_method") not in (None, "KEY", "PASSWORD"):
        return f'"{where}.auth_method" must be one of [KEY, PASSWORD]'
    return None


def _video_problem(video: Any) -> str | None:
    if not isinstance(video, dict):
        return '"video_config" must be of type object'
    unknown = sorted(set(video) - {"codec", "export_file", "height", "width", "watermark"})
    if unknown:
        return f'"video_config.{unknown[0]}" is not allowed'
    if video.get("codec", "H264") not in VIDEO_CODECS:
        return '"video_config.codec" must be one of [H264, VP8]'
    for side in ("width", "height"):
        if side in video and not (_is_int(video[side]) and 1 <= video[side] <= 1920):
            return f'"video_config.{side}" must be an integer from 1 to 1920'
    if not isinstance(video.get("export_file", True), bool):
        return '"video_config.export_file" must be a boolean'
    mark = video.get("watermark")
    if mark is None:
        return None
    if not isinstance(mark, dict) or ("url" in mark and not _is_url(mark["url"], ("http", "https"))):
        return '"video_config.watermark.url" must be a valid uri'
    if mark.get("position", "left top") not in WATERMARK_POSITIONS:
        return '"video_config.watermark.position" must be one of [' + ", ".join(WATERMARK_POSITIONS) + "]"
    size = mark.get("size", {})
    if not isinstance(size, dict) or any(not (_is_int(v) and v >= 1) for v in size.values()):
        return '"video_config.watermark.size" must hold integers of at least 1'
    return None


def start_problem(body: dict[str, Any]) -> str | None:
    """The fields of a start body other than `meeting_id` and `max_seconds` (checked by the caller)."""
    unknown = sorted(set(body) - START_KEYS)
    if unknown:
        return f'"{unknown[0]}" is not allowed'
    if "storage_config" in body and body["storage_config"] is not None:
        problem = storage_problem(body["storage_config"])
        if problem:
            return problem
    if "video_config" in body:
        problem = _video_problem(body["video_config"])
        if problem:
            return problem
    bucket = body.get("realtimekit_bucket_config")
    if bucket is not None and not (isinstance(bucket, dict) and isinstance(bucket.get("enabled"), bool)):
        return '"realtimekit_bucket_config.enabled" is required and must be a boolean'
    interactive = body.get("interactive_config")
    if interactive is not None and interactive != {"type": "ID3"}:
        return '"interactive_config.type" must be [ID3]'
    rtmp = body.get("rtmp_out_config")
    if rtmp is not None and not (isinstance(rtmp, dict) and _is_url(rtmp.get("rtmp_url"), ("rtmp", "rtmps"))):
        return '"rtmp_out_config.rtmp_url" must be a valid uri'
    if "url" in body and not _is_url(body["url"], ("http", "https")):
        return '"url" must be a valid uri'
    if "allow_multiple_recordings" in body and not isinstance(body["allow_multiple_recordings"], bool):
        return '"allow_multiple_recordings" must be a boolean'
    return None


def track_problem(body: Any) -> str | None:
    """A whole track-recording body, except whether the meeting exists."""
    if not isinstance(body, dict):
        return "BAD_REQUEST request body must be a JSON object"
    unknown = sorted(set(body) - TRACK_KEYS)
    if unknown:
        return f'"{unknown[0]}" is not allowed'
    if not isinstance(body.get("meeting_id"), str):
        return '"meeting_id" is required'
    seconds = body.get("max_seconds")
    number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if seconds is not None and (not number or seconds <= 0):
        return '"max_seconds" must be a positive number'
    layers = body.get("layers")
    if not isinstance(layers, dict) or not layers:
        return '"layers" is required'
    if set(layers) != {"default"}:
        return '"layers" supports only the "default" layer'  # Dyte: only "default" is supported
    for name, layer in layers.items():
        if not isinstance(layer, dict) or set(layer) - {"file_name_prefix", "outputs"}:
            return f'"layers.{name}" may hold only file_name_prefix and outputs'
        if not isinstance(layer.get("file_name_prefix", ""), str):
            return f'"layers.{name}.file_name_prefix" must be a string'
        outputs = layer.get("outputs")
        if not isinstance(outputs, list) or not outputs:
            return f'"layers.{name}.outputs" must be a non-empty array'
        for index, output in enumerate(outputs):
            where = f"layers.{name}.outputs[{index}]"
            if not isinstance(output, dict) or output.get("type") not in OUTPUT_TYPES:
                return f'"{where}.type" must be one of [{", ".join(OUTPUT_TYPES)}]'
            if output["type"] == "STORAGE_CONFIG":
                problem = storage_problem(output.get("storage_config"), f"{where}.storage_config")
                if problem:
                    return problem
    return None


def public_storage(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A storage configuration as RealtimeKit answers it: without its write-only secrets."""
    if config is None:
        return None
    return {k: v for k, v in config.items() if k not in STORAGE_SECRETS}
