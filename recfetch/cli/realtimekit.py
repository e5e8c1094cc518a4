"""`recfetch realtimekit` (alias `cloudflare`): common verbs, RealtimeKit filters, recording control."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from recfetch.cli._factory import Format, build_provider_app, fmt_of
from recfetch.cli._runtime import Runtime, reported, runtime
from recfetch.output import write_one
from recfetch.providers.base import Recording
from recfetch.providers.realtimekit import RealtimeKitProvider


class AudioCodec(str, Enum):
    aac = "aac"
    mp3 = "mp3"


class AudioChannel(str, Enum):
    mono = "mono"
    stereo = "stereo"


app = build_provider_app(RealtimeKitProvider)

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
    provider = rt.provider(RealtimeKitProvider.name)
    try:
        assert isinstance(provider, RealtimeKitProvider)
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


@app.command(
    "start",
    epilog="\b\nExamples:\n  recfetch realtimekit start --meeting MEETING_ID\n"
    "  recfetch realtimekit start --meeting MEETING_ID --max-seconds 3600 --json",
)
@reported
def start(
    ctx: typer.Context,
    meeting: Annotated[
        str, typer.Option("--meeting", help="The meeting's UUID.", metavar="ID", show_default=False)
    ],
    max_seconds: Annotated[
        int | None,
        typer.Option("--max-seconds", min=60, max=86400, help="Stop recording after N seconds (60-86400)."),
    ] = None,
    file_name_prefix: Annotated[
        str | None, typer.Option("--file-name-prefix", help="Prefix of the recording's file name.")
    ] = None,
    audio_codec: Annotated[
        AudioCodec | None,
        typer.Option(
            "--audio-codec", help="Also export an audio-only file in this codec (download: --audio)."
        ),
    ] = None,
    audio_channel: Annotated[
        AudioChannel | None, typer.Option("--audio-channel", help="Channels of the audio export.")
    ] = None,
    allow_multiple: Annotated[
        bool,
        typer.Option("--allow-multiple", help="Start even if the meeting is already being recorded."),
    ] = False,
    format: FormatOpt = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Start recording a meeting and print the new recording."""
    _one(
        runtime(ctx),
        _fmt(format, json_, jsonl),
        lambda p: p.start_recording(
            meeting,
            max_seconds=max_seconds,
            file_name_prefix=file_name_prefix,
            audio_codec=audio_codec.value if audio_codec else None,
            audio_channel=audio_channel.value if audio_channel else None,
            allow_multiple=allow_multiple,
        ),
    )


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
