"""`recfetch realtimekit` (alias `cloudflare`): common verbs, RealtimeKit filters, recording control.

The provider module (its HTTP code) is imported by the commands that talk to RealtimeKit, not here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from recfetch.cli._factory import Format, _Verb, build_provider_app, fmt_of
from recfetch.cli._runtime import Runtime, reported, runtime
from recfetch.errors import UsageError
from recfetch.output import write_one
from recfetch.providers.base import Recording
from recfetch.providers.catalog import REALTIMEKIT
from recfetch.providers.realtimekit_start import (
    StartOptions,
    TrackOptions,
    load_json_object,
    load_storage_config,
)

if TYPE_CHECKING:
    from recfetch.providers.realtimekit import RealtimeKitProvider


class AudioCodec(str, Enum):
    aac = "aac"
    mp3 = "mp3"


class AudioChannel(str, Enum):
    mono = "mono"
    stereo = "stereo"


app = build_provider_app(REALTIMEKIT)

FormatOpt = Annotated[
    Format | None, typer.Option("--format", help="Output format: table, json, jsonl or csv.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Shortcut for --format json.")]
JsonlOpt = Annotated[bool, typer.Option("--jsonl", help="Shortcut for --format jsonl.")]
RefArg = Annotated[
    str, typer.Argument(help="Recording uuid (the `ref` field of `list`).", show_default=False)
]


def _one(rt: Runtime, fmt: str, action: Callable[[RealtimeKitProvider], Recording]) -> None:
    """Run ``action`` against the profile's RealtimeKit and print the record it returns."""
    provider = cast("RealtimeKitProvider", rt.provider(REALTIMEKIT.name))
    try:
        recording = action(provider)
    finally:
        provider.close()
    write_one(rt.ui, recording.to_dict(), fmt)


def _fmt(format: Format | None, json_: bool, jsonl: bool) -> str:
    kw: dict[str, Any] = {"format": format, "json_": json_, "jsonl": jsonl}
    return fmt_of(kw, default="table")


@app.command(
    "active",
    epilog="\b\nExamples:\n  recfetch realtimekit active MEETING_ID\n"
    "  recfetch realtimekit active MEETING_ID --json",
)
@reported
def active(
    ctx: typer.Context,
    meeting_id: Annotated[str, typer.Argument(help="The meeting's UUID.", show_default=False)],
    format: FormatOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Show the meeting's active recording (exit 6 when there is none)."""
    _one(runtime(ctx), _fmt(format, json_, jsonl), lambda p: p.active_recording(meeting_id))


StorageConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--storage-config",
        help="JSON file with a storage_config for your own bucket (type, bucket, region, access_key, "
        "secret, ...); read from the file so its secrets never reach the command line or output.",
        metavar="FILE.json",
        show_default=False,
    ),
]
MeetingOpt = Annotated[
    str, typer.Option("--meeting", help="The meeting's UUID.", metavar="ID", show_default=False)
]
PrefixOpt = Annotated[
    str | None, typer.Option("--file-name-prefix", help="Prefix of the recording's file name.")
]


def _video(value: str | None) -> dict[str, Any] | None:
    """`--video-config`: inline JSON, or @FILE.json."""
    if value is None:
        return None
    if value.startswith("@"):
        return load_json_object(Path(value[1:]), flag="--video-config")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UsageError(
            "--video-config is not a JSON object",
            hint='e.g. --video-config \'{"codec": "VP8", "width": 1280, "height": 720}\' or @video.json',
        )
    return parsed


@dataclass(frozen=True)
class StartRequest:
    """Start recording a meeting and print the new recording."""

    meeting: MeetingOpt
    max_seconds: Annotated[
        int | None,
        typer.Option("--max-seconds", min=60, max=86400, help="Stop recording after N seconds (60-86400)."),
    ] = None
    file_name_prefix: PrefixOpt = None
    audio_codec: Annotated[
        AudioCodec | None,
        typer.Option(
            "--audio-codec", help="Also export an audio-only file in this codec (download: --audio)."
        ),
    ] = None
    audio_channel: Annotated[
        AudioChannel | None, typer.Option("--audio-channel", help="Channels of the audio export.")
    ] = None
    allow_multiple: Annotated[
        bool,
        typer.Option("--allow-multiple", help="Start even if the meeting is already being recorded."),
    ] = False
    storage_config: StorageConfigOpt = None
    realtimekit_bucket: Annotated[
        bool | None,
        typer.Option(
            "--realtimekit-bucket/--no-realtimekit-bucket",
            help="Upload to RealtimeKit's bucket (gives download_url) or not (realtimekit_bucket_config).",
            show_default=False,
        ),
    ] = None
    video_config: Annotated[
        str | None,
        typer.Option(
            "--video-config",
            help="video_config as JSON or @FILE.json: codec (H264, VP8), width, height, export_file, "
            "watermark {url, size {width, height}, position}.",
            metavar="JSON",
        ),
    ] = None
    interactive: Annotated[
        bool,
        typer.Option("--interactive", help="Embed timed ID3 metadata (interactive_config type ID3)."),
    ] = False
    rtmp_url: Annotated[
        str | None,
        typer.Option(
            "--rtmp-url", help="Also live-stream to this RTMP URL (rtmp_out_config).", metavar="URL"
        ),
    ] = None
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Record this web page instead of the default meeting view.", metavar="URL"
        ),
    ] = None
    format: FormatOpt = None
    json_: JsonOpt = False
    jsonl: JsonlOpt = False

    def run(self, rt: Runtime) -> None:
        fmt = _fmt(self.format, self.json_, self.jsonl)

        def action(p: RealtimeKitProvider) -> Recording:
            options = StartOptions(
                max_seconds=self.max_seconds,
                file_name_prefix=self.file_name_prefix,
                audio_codec=self.audio_codec.value if self.audio_codec else None,
                audio_channel=self.audio_channel.value if self.audio_channel else None,
                allow_multiple=self.allow_multiple,
                storage_config=load_storage_config(self.storage_config) if self.storage_config else None,
                video_config=_video(self.video_config),
                realtimekit_bucket=self.realtimekit_bucket,
                interactive_id3=self.interactive,
                rtmp_url=self.rtmp_url,
                url=self.url,
            )
            return p.start_recording(self.meeting, options)

        _one(rt, fmt, action)


app.command(
    "start",
    epilog="\b\nExamples:\n  recfetch realtimekit start --meeting MEETING_ID\n"
    "  recfetch realtimekit start --meeting MEETING_ID --max-seconds 3600 --json",
    cls=_Verb,
)(StartRequest)


@app.command(
    "start-tracks",
    epilog="\b\nExamples:\n  recfetch realtimekit start-tracks --meeting MEETING_ID\n"
    "  recfetch realtimekit start-tracks --meeting ID --storage-config bucket.json",
)
@reported
def start_tracks(
    ctx: typer.Context,
    meeting: MeetingOpt,
    max_seconds: Annotated[
        int | None, typer.Option("--max-seconds", min=1, help="Stop the track recording after N seconds.")
    ] = None,
    file_name_prefix: PrefixOpt = None,
    storage_config: StorageConfigOpt = None,
    realtimekit_bucket: Annotated[
        bool,
        typer.Option(
            "--realtimekit-bucket/--no-realtimekit-bucket",
            help="Also upload the tracks to RealtimeKit's bucket (the default).",
        ),
    ] = True,
    format: FormatOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Record each participant's audio as its own track (POST …/recordings/track) and print it."""
    fmt = _fmt(format, json_, jsonl)

    def action(p: RealtimeKitProvider) -> Recording:
        options = TrackOptions(
            max_seconds=max_seconds,
            file_name_prefix=file_name_prefix,
            storage_config=load_storage_config(storage_config) if storage_config else None,
            realtimekit_bucket=realtimekit_bucket,
        )
        return p.start_track_recording(meeting, options)

    _one(runtime(ctx), fmt, action)


def _control(action: str, doc: str) -> None:
    @reported
    def command(
        ctx: typer.Context,
        ref: RefArg,
        format: FormatOpt = None,
        json_: JsonOpt = False,
        jsonl: JsonlOpt = False,
    ) -> None:
        _one(runtime(ctx), _fmt(format, json_, jsonl), lambda p: p.control(ref, action))

    command.__doc__ = doc
    command.__name__ = action
    app.command(
        action,
        epilog=f"\b\nExamples:\n  recfetch realtimekit {action} REF\n"
        f"  recfetch realtimekit {action} REF --json",
    )(command)


_control("stop", "Stop a recording; RealtimeKit then uploads it and prints the updated recording.")
_control("pause", "Pause a running recording and print it.")
_control("resume", "Resume a paused recording and print it.")
