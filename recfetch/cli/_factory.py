"""Builds a provider's Typer sub-app: the six common verbs with that provider's own flags.

A provider's CLI module declares its flags as `Flag`s; the verbs' bodies live in
`_commands` and are shared by every provider, so the five sub-apps behave alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from recfetch.cli import _commands
from recfetch.providers.base import Provider


@dataclass(frozen=True)
class Flag:
    """One provider-specific option, e.g. `--user ID` (repeatable) on kismet list."""

    name: str
    decls: tuple[str, ...]
    help: str
    type: Any = str
    default: Any = None
    metavar: str | None = None


NAME_HELP = (
    "File name template; '/' makes folders. Fields: provider profile id ref date time "
    "started_at ended_at year month day ext call_id direction from to name."
)


class Format(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _flag_params(flags: tuple[Flag, ...], panel: str) -> list[inspect.Parameter]:
    return [
        _param(
            f.name,
            Annotated[f.type, typer.Option(*f.decls, help=f.help, metavar=f.metavar, rich_help_panel=panel)],
            f.default,
        )
        for f in flags
    ]


def _format_params() -> list[inspect.Parameter]:
    return [
        _param(
            "format",
            Annotated[
                Format | None, typer.Option("--format", help="Output format: table, json, jsonl or csv.")
            ],
            None,
        ),
        _param("json_", Annotated[bool, typer.Option("--json", help="Shortcut for --format json.")], False),
        _param("jsonl", Annotated[bool, typer.Option("--jsonl", help="Shortcut for --format jsonl.")], False),
    ]


def _time_params() -> list[inspect.Parameter]:
    panel = "Time window"
    return [
        _param(
            "since",
            Annotated[
                str | None,
                typer.Option(
                    "--since",
                    help="Only recordings from this time: RFC 3339, YYYY-MM-DD or an age (90m, 12h, 7d).",
                    rich_help_panel=panel,
                ),
            ],
            None,
        ),
        _param(
            "until",
            Annotated[
                str | None,
                typer.Option(
                    "--until",
                    help="Only recordings before this time (same forms as --since).",
                    rich_help_panel=panel,
                ),
            ],
            None,
        ),
        _param(
            "tz",
            Annotated[
                str | None,
                typer.Option(
                    "--tz", help="Time zone for YYYY-MM-DD dates (default: local).", rich_help_panel=panel
                ),
            ],
            None,
        ),
        _param(
            "limit",
            Annotated[
                int | None,
                typer.Option(
                    "--limit",
                    min=1,
                    help="Stop after N recordings (says so on stderr).",
                    rich_help_panel=panel,
                ),
            ],
            None,
        ),
    ]


def _download_params() -> list[inspect.Parameter]:
    panel = "Download"
    return [
        _param(
            "output_dir",
            Annotated[
                Path,
                typer.Option("--output-dir", "-o", help="Directory to save into.", rich_help_panel=panel),
            ],
            Path("."),
        ),
        _param(
            "name",
            Annotated[
                str,
                typer.Option(
                    "--name",
                    help=NAME_HELP,
                    rich_help_panel=panel,
                ),
            ],
            _commands.DEFAULT_TEMPLATE,
        ),
        _param(
            "jobs",
            Annotated[
                int,
                typer.Option(
                    "--jobs", "-j", min=1, max=64, help="Parallel downloads.", rich_help_panel=panel
                ),
            ],
            4,
        ),
        _param(
            "retries",
            Annotated[
                int,
                typer.Option(
                    "--retries",
                    min=0,
                    max=100,
                    help="Retries per file for 429/5xx/network errors.",
                    rich_help_panel=panel,
                ),
            ],
            5,
        ),
        _param(
            "overwrite",
            Annotated[
                bool,
                typer.Option(
                    "--overwrite", help="Download again even if the file exists.", rich_help_panel=panel
                ),
            ],
            False,
        ),
        _param(
            "dry_run",
            Annotated[
                bool,
                typer.Option(
                    "--dry-run", help="Show what would be downloaded; mint no URL.", rich_help_panel=panel
                ),
            ],
            False,
        ),
        _param(
            "archive",
            Annotated[
                Path | None,
                typer.Option(
                    "--archive",
                    help="Archive database (default: the profile's archive in the state dir).",
                    rich_help_panel=panel,
                ),
            ],
            None,
        ),
        _param(
            "no_archive",
            Annotated[
                bool,
                typer.Option("--no-archive", help="Do not read or write the archive.", rich_help_panel=panel),
            ],
            False,
        ),
        _param(
            "manifest",
            Annotated[
                Path | None,
                typer.Option(
                    "--manifest",
                    help="Append one JSONL line per downloaded file (sha256, size, time).",
                    rich_help_panel=panel,
                ),
            ],
            None,
        ),
        _param(
            "write_metadata",
            Annotated[
                bool,
                typer.Option(
                    "--write-metadata",
                    help="Write the recording record beside each file as <file>.json.",
                    rich_help_panel=panel,
                ),
            ],
            False,
        ),
        _param(
            "fail_if_empty",
            Annotated[
                bool,
                typer.Option(
                    "--fail-if-empty", help="Exit 9 when nothing new was downloaded.", rich_help_panel=panel
                ),
            ],
            False,
        ),
        _param(
            "max_files",
            Annotated[
                int | None,
                typer.Option(
                    "--max-files", min=1, help="Download at most N files this run.", rich_help_panel=panel
                ),
            ],
            None,
        ),
        _param(
            "log_file",
            Annotated[
                Path | None,
                typer.Option(
                    "--log-file", help="Append JSON log lines (secrets redacted).", rich_help_panel=panel
                ),
            ],
            None,
        ),
    ]


def _pull_params() -> list[inspect.Parameter]:
    panel = "Pull"
    return [
        _param(
            "incremental",
            Annotated[
                bool,
                typer.Option(
                    "--incremental",
                    help="Start from the end of the last fully successful pull minus --overlap.",
                    rich_help_panel=panel,
                ),
            ],
            False,
        ),
        _param(
            "overlap",
            Annotated[
                str,
                typer.Option(
                    "--overlap",
                    help="How far before the watermark to re-list (late recordings).",
                    rich_help_panel=panel,
                ),
            ],
            "1d",
        ),
        _param(
            "delete_after",
            Annotated[
                bool,
                typer.Option(
                    "--delete-after",
                    help="Delete each recording at the provider after its file is verified (kazoo, bird).",
                    rich_help_panel=panel,
                ),
            ],
            False,
        ),
        _param(
            "yes",
            Annotated[
                bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.", rich_help_panel=panel)
            ],
            False,
        ),
    ]


def _make(fn: Callable[..., Any], params: list[inspect.Parameter], doc: str) -> Callable[..., Any]:
    def command(**kwargs: Any) -> Any:
        return fn(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = fn.__name__
    return command


def fmt_of(kwargs: dict[str, Any], default: str = "table") -> str:
    fmt = kwargs.pop("format", None)
    as_json = kwargs.pop("json_", False)
    as_jsonl = kwargs.pop("jsonl", False)
    if as_json:
        return "json"
    if as_jsonl:
        return "jsonl"
    return fmt.value if isinstance(fmt, Enum) else (fmt or default)


def split(kwargs: dict[str, Any], flags: tuple[Flag, ...]) -> dict[str, Any]:
    """Pop the provider-specific flags out of ``kwargs``."""
    return {f.name: kwargs.pop(f.name) for f in flags if f.name in kwargs}


def build_provider_app(
    cls: type[Provider],
    *,
    list_flags: tuple[Flag, ...] = (),
    download_flags: tuple[Flag, ...] = (),
    login_extra: tuple[Flag, ...] = (),
    ref_help: str = "Recording ref (the `ref` field of `list`).",
    list_help: str | None = None,
    delete_help: str | None = None,
) -> typer.Typer:
    """The sub-app with login, list, show, url, download and pull."""
    name = cls.name
    app = typer.Typer(
        name=name,
        help=f"{cls.title} recordings.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    filters_panel = f"{cls.title} filters"
    dl_panel = f"{cls.title} download"

    # login -----------------------------------------------------------------
    login_params: list[inspect.Parameter] = []
    for setting in cls.settings:
        opt = "--" + setting.key.replace("_", "-")
        login_params.append(
            _param(
                setting.key,
                Annotated[
                    str | None,
                    typer.Option(
                        opt,
                        help=setting.help + (" (secret: prefer the -stdin form)" if setting.secret else ""),
                    ),
                ],
                None,
            )
        )
        if setting.secret:
            login_params.append(
                _param(
                    setting.key + "_stdin",
                    Annotated[
                        bool, typer.Option(opt + "-stdin", help=f"Read {setting.key} from standard input.")
                    ],
                    False,
                )
            )
    if "base_url" not in {s.key for s in cls.settings}:
        login_params.append(
            _param(
                "base_url",
                Annotated[
                    str | None,
                    typer.Option("--base-url", help=f"API base URL (default {cls.default_base_url})."),
                ],
                None,
            )
        )
    login_params.append(
        _param(
            "no_verify",
            Annotated[bool, typer.Option("--no-verify", help="Save without checking the credentials.")],
            False,
        )
    )

    def login(**kw: Any) -> None:
        no_verify = kw.pop("no_verify")
        _commands.login(name, kw, no_verify=no_verify)

    app.command("login", help=f"Save {cls.title} credentials to the active profile after checking them.")(
        _make(login, login_params, "login")
    )

    # list ------------------------------------------------------------------
    list_params = _time_params() + _flag_params(list_flags, filters_panel) + _format_params()

    def list_(**kw: Any) -> None:
        fmt = fmt_of(kw)
        options = split(kw, list_flags)
        _commands.list_recordings(name, fmt=fmt, options=options, **kw)

    app.command("list", help=list_help or f"List {cls.title} recordings, paging to the end.")(
        _make(list_, list_params, "list")
    )

    # show ------------------------------------------------------------------
    ref_param = _param(
        "ref", Annotated[str, typer.Argument(help=ref_help, show_default=False)], inspect.Parameter.empty
    )
    show_params = [
        ref_param,
        *_flag_params(tuple(f for f in list_flags if f.name in ("from_report", "id_column")), filters_panel),
        *_format_params(),
    ]

    def show(**kw: Any) -> None:
        fmt = fmt_of(kw, default="table")
        ref = kw.pop("ref")
        _commands.show(name, ref, fmt=fmt, options=kw)

    app.command("show", help="Show one recording's metadata.")(_make(show, show_params, "show"))

    # url -------------------------------------------------------------------
    url_params = [
        ref_param,
        *_flag_params(download_flags, dl_panel),
        _param("json_", Annotated[bool, typer.Option("--json", help='Print {"url", "expires_at"}.')], False),
    ]

    def url(**kw: Any) -> None:
        ref = kw.pop("ref")
        as_json = kw.pop("json_")
        _commands.url(name, ref, as_json=as_json, options=split(kw, download_flags))

    app.command("url", help="Print a freshly minted download URL (the only command that prints one).")(
        _make(url, url_params, "url")
    )

    # download --------------------------------------------------------------
    refs_param = _param(
        "refs",
        Annotated[
            list[str],
            typer.Argument(
                help="Recording refs, or - to read refs (or JSONL records) from stdin.", show_default=False
            ),
        ],
        inspect.Parameter.empty,
    )
    dl_params = [refs_param, *_download_params(), *_flag_params(download_flags, dl_panel), *_format_params()]

    def download(**kw: Any) -> None:
        fmt = fmt_of(kw, default="table")
        refs = kw.pop("refs")
        _commands.download(name, refs, fmt=fmt, options=split(kw, download_flags), **kw)

    app.command("download", help="Download the named recordings.")(_make(download, dl_params, "download"))

    # pull ------------------------------------------------------------------
    pull_flags = tuple(f for f in list_flags) + tuple(
        f for f in download_flags if f.name not in {x.name for x in list_flags}
    )
    pull_params = (
        _time_params()
        + _flag_params(list_flags, filters_panel)
        + [p for p in _flag_params(download_flags, dl_panel) if p.name not in {f.name for f in list_flags}]
        + _download_params()
        + _pull_params()
        + _format_params()
    )

    def pull(**kw: Any) -> None:
        fmt = fmt_of(kw, default="table")
        options = split(kw, pull_flags)
        _commands.pull(name, fmt=fmt, options=options, **kw)

    app.command(
        "pull",
        help="List with the same filters, then download everything not yet downloaded (the cron command).",
    )(_make(pull, pull_params, "pull"))

    if cls.delete is not Provider.delete:
        _add_delete(app, cls, delete_help)
    return app


def _add_delete(app: typer.Typer, cls: type[Provider], extra_help: str | None) -> None:
    """`delete REF...`: the same confirmation and reporting for every provider that can delete."""
    name = cls.name

    def delete(
        refs: Annotated[
            list[str],
            typer.Argument(
                help="Recording refs to delete, or - to read them from stdin.", show_default=False
            ),
        ],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help='Print {"deleted": [...], "failed": [...]} on stdout.')
        ] = False,
    ) -> None:
        _commands.delete_recordings(name, refs, yes=yes, as_json=as_json)

    help_text = f"Delete recordings at {cls.title} (asks first on a terminal; needs --yes otherwise)."
    if extra_help:
        help_text += "\n\n" + extra_help
    app.command("delete", help=help_text)(delete)
