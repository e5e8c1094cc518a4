"""What a `list`, `download` or `pull` run was asked to do: frozen, plain option objects.

The CLI builds one of these from its flags and hands it to the job; `demo` and the
tests build them directly. Values are kept as the user gave them (`since="7d"`,
`overlap="1d"`): the job resolves and validates them, so every caller gets the
same errors.

CLI metadata (read by `recfetch.cli` to derive the Typer parameters; nothing here
imports typer or rich). A field the CLI exposes carries plain data under the key
``"cli"`` of its ``dataclasses.field(metadata=...)``, a dict with:

    flags    tuple[str, ...]  long flag names, e.g. ("--output-dir",)   (required)
    short    str | None       short flag, e.g. "-o"
    help     str              help text, one sentence                      (required)
    metavar  str | None       e.g. "DIR"
    panel    str              help panel: "Time window", "Download" or "Pull" (required)
    min      int | None       smallest accepted number (numeric fields)
    max      int | None       largest accepted number (numeric fields)
    parse    Callable[[str], Any] | None
                              converts the flag's text into the field's type when
                              the annotation is not a plain str/int/float/bool/Path

The field's name is the parameter name, its default the flag's default and its
annotation the flag's type. `cli_fields(cls)` yields ``(field, metadata)`` for the
exposed fields in declaration order. Fields without ``"cli"`` metadata are not
flags: `filters` (the provider's own flags, declared by each provider).

Output format (`--format/--json/--jsonl`, SPEC §4) is the CLI's rendering
choice, not an option of the job, so it is not here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recfetch.naming import DEFAULT_TEMPLATE

TIME_PANEL = "Time window"
DOWNLOAD_PANEL = "Download"
PULL_PANEL = "Pull"

NAME_HELP = (
    "File name template; '/' makes folders. Fields: provider profile id ref date time "
    "started_at ended_at year month day ext call_id direction from to name."
)


def _cli(
    *flags: str,
    help: str,
    panel: str,
    short: str | None = None,
    metavar: str | None = None,
    min: int | None = None,
    max: int | None = None,
) -> dict[str, Any]:
    return {
        "cli": {
            "flags": flags,
            "short": short,
            "help": help,
            "metavar": metavar,
            "panel": panel,
            "min": min,
            "max": max,
            "parse": None,
        }
    }


def cli_fields(cls: type[Any]) -> Iterator[tuple[dataclasses.Field[Any], dict[str, Any]]]:
    """The CLI-exposed fields of an options class with their metadata, in declaration order."""
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("cli")
        if meta is not None:
            yield f, meta


# Shared field declarations (list and pull have the same time window).


def _shard() -> Any:
    return field(
        default=None,
        metadata=_cli(
            "--shard",
            help="Take only shard I of N (SPEC §9): I/N, or auto/N from $JOB_COMPLETION_INDEX.",
            panel=TIME_PANEL,
            metavar="I/N",
        ),
    )


def _since() -> Any:
    return field(
        default=None,
        metadata=_cli(
            "--since",
            help="Only recordings from this time: RFC 3339, YYYY-MM-DD or an age (90m, 12h, 7d).",
            panel=TIME_PANEL,
            metavar="TIME",
        ),
    )


def _until() -> Any:
    return field(
        default=None,
        metadata=_cli(
            "--until",
            help="Only recordings before this time (same forms as --since).",
            panel=TIME_PANEL,
            metavar="TIME",
        ),
    )


def _tz() -> Any:
    return field(
        default=None,
        metadata=_cli(
            "--tz", help="Time zone for YYYY-MM-DD dates (default: local).", panel=TIME_PANEL, metavar="ZONE"
        ),
    )


def _limit() -> Any:
    return field(
        default=None,
        metadata=_cli(
            "--limit",
            help="Stop after N recordings (says so on stderr).",
            panel=TIME_PANEL,
            metavar="N",
            min=1,
        ),
    )


@dataclass(frozen=True)
class ListOptions:
    """`P list`: the time window and the provider's filters (SPEC §2)."""

    since: str | None = _since()
    until: str | None = _until()
    tz: str | None = _tz()
    limit: int | None = _limit()
    filters: Mapping[str, Any] = field(default_factory=dict)
    """The provider's own list flags by name (e.g. kazoo ``{"user": "u1"}``); not a CLI field here."""
    shard: str | None = _shard()


@dataclass(frozen=True)
class DownloadOptions:
    """`P download REF...`: where and how files are saved (SPEC §3)."""

    output_dir: Path = field(
        default=Path("."),
        metadata=_cli(
            "--output-dir",
            short="-o",
            help="Directory (or s3://BUCKET/PREFIX) to save into.",
            panel=DOWNLOAD_PANEL,
            metavar="DIR",
        ),
    )
    name: str = field(
        default=DEFAULT_TEMPLATE,
        metadata=_cli("--name", help=NAME_HELP, panel=DOWNLOAD_PANEL, metavar="TEMPLATE"),
    )
    jobs: int = field(
        default=16,
        metadata=_cli(
            "--jobs",
            short="-j",
            help="Parallel file transfers.",
            panel=DOWNLOAD_PANEL,
            metavar="N",
            min=1,
            max=64,
        ),
    )
    api_concurrency: int = field(
        default=4,
        metadata=_cli(
            "--api-concurrency",
            help="Parallel requests to the provider's API (listing, minting, deleting); "
            "a 429 lowers it for the run.",
            panel=DOWNLOAD_PANEL,
            metavar="N",
            min=1,
            max=32,
        ),
    )
    """The provider's API lane (`providers.limiter.ApiLimiter`), separate from --jobs transfers."""
    retries: int = field(
        default=5,
        metadata=_cli(
            "--retries",
            help="Retries per file for 429/5xx/network errors.",
            panel=DOWNLOAD_PANEL,
            metavar="N",
            min=0,
            max=100,
        ),
    )
    stall_timeout: float = field(
        default=60.0,
        metadata=_cli(
            "--stall-timeout",
            help=(
                "Seconds without a byte before a transfer counts as a network error. A host "
                "that keeps stalling costs a file at most (retries+1) x (this + 15 s to connect) "
                "plus up to 30 s of backoff per retry; then it fails and its .part is kept."
            ),
            panel=DOWNLOAD_PANEL,
            metavar="SECONDS",
            min=1,
            max=3600,
        ),
    )
    overwrite: bool = field(
        default=False,
        metadata=_cli("--overwrite", help="Download again even if the file exists.", panel=DOWNLOAD_PANEL),
    )
    dry_run: bool = field(
        default=False,
        metadata=_cli("--dry-run", help="Show what would be downloaded; mint no URL.", panel=DOWNLOAD_PANEL),
    )
    archive: Path | None = field(
        default=None,
        metadata=_cli(
            "--archive",
            help="Archive database (default: the profile's archive in the state dir).",
            panel=DOWNLOAD_PANEL,
            metavar="PATH",
        ),
    )
    no_archive: bool = field(
        default=False,
        metadata=_cli("--no-archive", help="Do not read or write the archive.", panel=DOWNLOAD_PANEL),
    )
    manifest: Path | None = field(
        default=None,
        metadata=_cli(
            "--manifest",
            help="Append one JSONL line per downloaded file (sha256, size, time).",
            panel=DOWNLOAD_PANEL,
            metavar="PATH",
        ),
    )
    write_metadata: bool = field(
        default=False,
        metadata=_cli(
            "--write-metadata",
            help="Write the recording record beside each file as <file>.json.",
            panel=DOWNLOAD_PANEL,
        ),
    )
    fail_if_empty: bool = field(
        default=False,
        metadata=_cli(
            "--fail-if-empty", help="Exit 9 when nothing new was downloaded.", panel=DOWNLOAD_PANEL
        ),
    )
    max_files: int | None = field(
        default=None,
        metadata=_cli(
            "--max-files", help="Download at most N files this run.", panel=DOWNLOAD_PANEL, metavar="N", min=1
        ),
    )
    log_file: Path | None = field(
        default=None,
        metadata=_cli(
            "--log-file",
            help="Append JSON log lines (secrets redacted).",
            panel=DOWNLOAD_PANEL,
            metavar="PATH",
        ),
    )
    filters: Mapping[str, Any] = field(default_factory=dict)
    """The provider's own download flags by name (e.g. ``{"audio": True}``); not a CLI field here."""
    shard: str | None = _shard()


@dataclass(frozen=True)
class PullOptions(DownloadOptions):
    """`P pull`: a download of what a listing finds, plus the cron machinery (SPEC §2-§3)."""

    since: str | None = _since()
    until: str | None = _until()
    tz: str | None = _tz()
    limit: int | None = _limit()
    incremental: bool = field(
        default=False,
        metadata=_cli(
            "--incremental",
            help="Start from the end of the last fully successful pull minus --overlap.",
            panel=PULL_PANEL,
        ),
    )
    overlap: str = field(
        default="1d",
        metadata=_cli(
            "--overlap",
            help="How far before the watermark to re-list (late recordings).",
            panel=PULL_PANEL,
            metavar="AGE",
        ),
    )
    delete_after: bool = field(
        default=False,
        metadata=_cli(
            "--delete-after",
            help="Delete each recording at the provider after its file is verified (kazoo, bird).",
            panel=PULL_PANEL,
        ),
    )
    yes: bool = field(
        default=False,
        metadata=_cli("--yes", short="-y", help="Do not ask for confirmation.", panel=PULL_PANEL),
    )

    @property
    def explicit_window(self) -> bool:
        """--since or --until was given (an incremental pull then does not move its window)."""
        return bool(self.since or self.until)
