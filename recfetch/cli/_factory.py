"""Builds a provider's Typer sub-app: the six common verbs (and `delete`) with its own flags.

Each verb is a frozen *request* dataclass made with `dataclasses.make_dataclass`: its fields
are the verb's parameters, each ``Annotated`` with its `typer.Option`/`typer.Argument`, so
Typer reads the command's parameters from the class's generated ``__init__`` (no synthesized
signatures). The common download/pull/list fields come from `recfetch.jobs.options`
(`dataclasses.fields()` and their ``"cli"`` metadata); a provider adds its `Flag`s. Running a
request turns it into the job's options object and calls the body in `_commands`.

A verb's request class and Click command are built when the line names the verb
(`_ProviderGroup`): `recfetch kazoo pull` builds `pull` alone; `recfetch kazoo --help` builds
them all for their one-line help.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

from recfetch.cli._runtime import Runtime, call_reported, runtime
from recfetch.errors import UsageError
from recfetch.jobs.options import (
    DOWNLOAD_PANEL,
    PULL_PANEL,
    TIME_PANEL,
    DownloadOptions,
    ListOptions,
    PullOptions,
    cli_fields,
)
from recfetch.providers.base import Flag as ProviderFlag
from recfetch.providers.base import ProviderInfo


@dataclass(frozen=True)
class Flag:
    """One provider-specific option as Typer sees it, made from the provider's plain-data `Flag`."""

    name: str
    decls: tuple[str, ...]
    help: str
    type: Any = str
    default: Any = None
    metavar: str | None = None


class Format(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


PANELS = (TIME_PANEL, DOWNLOAD_PANEL, PULL_PANEL)

FieldSpec = tuple[str, Any, Any]
"""(name, annotation, dataclasses.field) as `make_dataclass` takes it."""


def _spec(name: str, annotation: Any, default: Any = dataclasses.MISSING) -> FieldSpec:
    return (name, annotation, dataclasses.field(default=default))


def _option_fields(options_cls: type, skip: Iterable[str] = ()) -> list[FieldSpec]:
    """One request field per CLI-exposed field of a jobs options class."""
    hints = _type_hints(options_cls)
    specs: list[tuple[int, FieldSpec]] = []
    for f, meta in cli_fields(options_cls):
        if f.name in skip:
            continue
        decls = [*meta["flags"], *([meta["short"]] if meta.get("short") else [])]
        option = typer.Option(
            *decls,
            help=meta["help"],
            metavar=meta.get("metavar"),
            min=meta.get("min"),
            max=meta.get("max"),
            parser=meta.get("parse"),
            rich_help_panel=meta["panel"],
        )
        specs.append(
            (PANELS.index(meta["panel"]), _spec(f.name, Annotated[hints[f.name], option], f.default))
        )
    return [spec for _, spec in sorted(specs, key=lambda item: item[0])]


@functools.cache
def _type_hints(options_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(options_cls)


def _flag_fields(flags: tuple[Flag, ...], panel: str) -> list[FieldSpec]:
    return [
        _spec(
            f.name,
            Annotated[f.type, typer.Option(*f.decls, help=f.help, metavar=f.metavar, rich_help_panel=panel)],
            f.default,
        )
        for f in flags
    ]


def _format_fields(help: str = "Output format: table, json, jsonl or csv.") -> list[FieldSpec]:
    return [
        _spec("format", Annotated[Format | None, typer.Option("--format", help=help)], None),
        _spec("json_", Annotated[bool, typer.Option("--json", help="Shortcut for --format json.")], False),
        _spec("jsonl", Annotated[bool, typer.Option("--jsonl", help="Shortcut for --format jsonl.")], False),
    ]


def fmt_of(values: Any, default: str = "table") -> str:
    """The output format a request (or a mapping with format/json_/jsonl) asks for."""
    get = values.get if isinstance(values, dict) else lambda key, d=None: getattr(values, key, d)
    if get("json_", False):
        return "json"
    if get("jsonl", False):
        return "jsonl"
    fmt = get("format", None)
    return fmt.value if isinstance(fmt, Enum) else (fmt or default)


class _LazyCommands:
    """`cli._commands` (the job layer, the download engine, rich) imported when a verb runs."""

    def __getattr__(self, name: str) -> Any:
        from recfetch.cli import _commands as module

        return getattr(module, name)


_commands = _LazyCommands()


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _values(request: Any, names: Iterable[str]) -> dict[str, Any]:
    return {name: _plain(getattr(request, name)) for name in names}


def _options(options_cls: type[Any], request: Any, flags: tuple[Flag, ...]) -> Any:
    """The job's options object from a parsed request (the one place that maps flags to fields)."""
    output_dir = str(getattr(request, "output_dir", ""))
    if "{" in output_dir and "}" in output_dir:  # a yt-dlp habit: -o takes the name template there
        raise UsageError(
            f"-o {output_dir} looks like a file name template, but -o names the folder",
            hint=f"did you mean --name '{output_dir}'? (-o DIR chooses where the files go)",
        )
    names = [f.name for f, _ in cli_fields(options_cls)]
    return options_cls(**_values(request, names), filters=_values(request, [f.name for f in flags]))


class _Verb(TyperCommand):
    """A verb whose callback parses the line into a request; invoking it runs the request."""

    def invoke(self, ctx: Any) -> Any:
        request = super().invoke(ctx)
        rt = runtime(ctx)
        call_reported(rt, request.run, rt)


Body = Callable[[Any, Runtime], int | None]


class _ProviderGroup(TyperGroup):
    """A provider's sub-command, whose common verbs are built when named (``verbs``: one table
    per provider, set by `build_provider_app`); the verbs its CLI module adds are Typer's own."""

    verbs: ClassVar[dict[str, Callable[[], Any]]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.verbs, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        build = self.verbs.get(cmd_name)
        if build is None:
            return super().get_command(ctx, cmd_name)
        command = build()
        # The group's own options (the global ones, given it by the root) go on each verb too.
        command.params.extend(p for p in self.params if p not in command.params)
        return command


def examples(provider: str, verb: str) -> str:
    """The `Examples:` block of a verb's --help (kept unwrapped by Click's `\\b` marker)."""
    p = f"recfetch {provider}"
    report = " --from-report report.csv" if provider == "kaleyra" else ""
    lines = {
        "login": [f"{p} login", f"{p} login --no-verify"],
        "list": [f"{p} list{report} --since 7d", f"{p} list{report} --since 7d --jsonl | jq -r .ref"],
        "show": [f"{p} show REF", f"{p} show REF --json"],
        "url": [f"{p} url REF", f"{p} url REF --json"],
        "download": [
            f"{p} download REF -o recordings",
            f"{p} list{report} --since 7d --jsonl | jq -r .ref | {p} download -o recordings -",
        ],
        "pull": [
            f"{p} pull{report} --since 7d -o recordings",
            f"{p} pull{report} --incremental -q -o /srv/recordings",
        ],
        "delete": [f"{p} delete REF", f"{p} list --jsonl | jq -r .ref | {p} delete --yes -"],
    }[verb]
    return "\b\nExamples:\n" + "\n".join(_fit_example(line) for line in lines)


def _fit_example(line: str, width: int = 78) -> str:
    """One example, continued with `\\` before a pipe or an option when it would pass 80 columns."""
    if len(line) + 2 <= width:
        return f"  {line}"
    cut = line.rfind(" | ", 0, width - 4)
    if cut < 0:
        cut = line.rfind(" -", 0, width - 4)
    return f"  {line[:cut]} \\\n      {line[cut + 1 :]}"


def _verb(app: typer.Typer, verb: str, title: str, fields: list[FieldSpec], body: Body, help: str) -> None:
    """Register ``verb``: a frozen request class whose ``run(rt)`` is ``body``, made when named."""

    def run(self: Any, rt: Runtime) -> int | None:
        return body(self, rt)

    provider = app.info.name or title.lower()

    @functools.cache
    def build() -> Any:
        cls_name = f"{title.replace(' ', '')}{verb.title()}Request"
        request = dataclasses.make_dataclass(cls_name, fields, frozen=True, namespace={"run": run})
        holder = typer.Typer(rich_markup_mode=None, add_completion=False)
        holder.command(verb, help=help, epilog=examples(provider, verb), cls=_Verb)(request)
        return typer.main.get_command(holder)

    app.info.cls.verbs[verb] = build  # type: ignore[union-attr]


@functools.cache
def _choice_enum(name: str, choices: tuple[str, ...]) -> type[Enum]:
    return Enum(name, {choice: choice for choice in choices}, type=str)  # type: ignore[return-value]


def _cli_flag(flag: ProviderFlag) -> Flag:
    """A provider's flag (plain data) as a Typer option; choices become an Enum that `_values` unwraps."""
    base: Any = _choice_enum(flag.name, flag.choices) if flag.choices else flag.kind
    if flag.repeatable:
        kind: Any = list[base] | None
    elif flag.negatable or (flag.default is None and flag.kind is not bool):
        kind = base | None
    else:
        kind = base
    decls = (f"{flag.option}/--no-{flag.option[2:]}",) if flag.negatable else (flag.option,)
    return Flag(flag.name, decls, flag.help, type=kind, default=flag.default, metavar=flag.metavar)


def _flags_for(info: ProviderInfo, verb: str) -> tuple[Flag, ...]:
    return tuple(_cli_flag(f) for f in info.flags if verb in f.verbs)


def build_provider_app(info: ProviderInfo) -> typer.Typer:
    """The sub-app with login, list, show, url, download and pull (and delete when it can), with the
    provider's own flags and help texts as its info declares them (its module is not imported)."""
    name = info.name
    list_flags, download_flags = _flags_for(info, "list"), _flags_for(info, "download")
    ref_help, list_help, delete_help = info.ref_help, info.list_help, info.delete_help
    group = type(f"{info.title.replace(' ', '')}Group", (_ProviderGroup,), {"verbs": {}})
    app = typer.Typer(
        name=name,
        cls=group,
        help=f"{info.title} recordings.",
        no_args_is_help=True,
        rich_markup_mode=None,
        add_completion=False,
    )
    filters_panel = f"{info.title} filters"
    dl_panel = f"{info.title} download"
    _add_login(app, info)

    list_fields = [*_option_fields(ListOptions), *_flag_fields(list_flags, filters_panel), *_format_fields()]
    _verb(
        app,
        "list",
        info.title,
        list_fields,
        lambda req, rt: _commands.list_recordings(
            rt, name, _options(ListOptions, req, list_flags), fmt_of(req)
        ),
        list_help or f"List {info.title} recordings, paging to the end.",
    )

    ref_field = _spec("ref", Annotated[str, typer.Argument(help=ref_help, show_default=False)])
    show_flags = _flags_for(info, "show")
    _verb(
        app,
        "show",
        info.title,
        [ref_field, *_flag_fields(show_flags, filters_panel), *_format_fields()],
        lambda req, rt: _commands.show(
            rt, name, req.ref, fmt_of(req), _values(req, [f.name for f in show_flags])
        ),
        "Show one recording's metadata.",
    )

    url_json = _spec(
        "json_", Annotated[bool, typer.Option("--json", help='Print {"url", "expires_at"}.')], False
    )
    _verb(
        app,
        "url",
        info.title,
        [ref_field, *_flag_fields(download_flags, dl_panel), url_json],
        lambda req, rt: _commands.url(
            rt, name, req.ref, req.json_, _values(req, [f.name for f in download_flags])
        ),
        "Print a freshly minted download URL (the only command that prints one).",
    )

    _add_download_and_pull(app, info, list_flags, download_flags, panels=(filters_panel, dl_panel))
    if info.can_delete:
        _add_delete(app, info, delete_help)
    return app


def _add_download_and_pull(
    app: typer.Typer,
    info: ProviderInfo,
    list_flags: tuple[Flag, ...],
    download_flags: tuple[Flag, ...],
    *,
    panels: tuple[str, str],
) -> None:
    """`download REF...` and `pull`: the verbs that fetch files, with the provider's flags."""
    name = info.name
    filters_panel, dl_panel = panels
    refs_field = _spec(
        "refs",
        Annotated[
            list[str],
            typer.Argument(
                help="Recording refs, or - to read refs (or JSONL records) from stdin.", show_default=False
            ),
        ],
    )
    _verb(
        app,
        "download",
        info.title,
        [
            refs_field,
            *_option_fields(DownloadOptions),
            *_flag_fields(download_flags, dl_panel),
            *_format_fields(),
        ],
        lambda req, rt: _commands.download(
            rt, name, req.refs, _options(DownloadOptions, req, download_flags), fmt_of(req)
        ),
        "Download the named recordings.",
    )

    pull_flags = list_flags + tuple(f for f in download_flags if f.name not in {x.name for x in list_flags})
    pull_fields = [
        *_option_fields(PullOptions),
        *_flag_fields(list_flags, filters_panel),
        *_flag_fields(tuple(f for f in pull_flags if f not in list_flags), dl_panel),
        *_format_fields(),
    ]
    _verb(
        app,
        "pull",
        info.title,
        pull_fields,
        lambda req, rt: _commands.pull(rt, name, _options(PullOptions, req, pull_flags), fmt_of(req)),
        "List with the same filters, then download everything not yet downloaded (the cron command).",
    )


def _add_login(app: typer.Typer, info: ProviderInfo) -> None:
    fields: list[FieldSpec] = []
    for setting in info.settings:
        opt = "--" + setting.key.replace("_", "-")
        secret_note = " (secret: prefer the -stdin form)" if setting.secret else ""
        fields.append(
            _spec(
                setting.key, Annotated[str | None, typer.Option(opt, help=setting.help + secret_note)], None
            )
        )
        if setting.secret:
            stdin_help = f"Read {setting.key} from standard input."
            fields.append(
                _spec(
                    setting.key + "_stdin",
                    Annotated[bool, typer.Option(opt + "-stdin", help=stdin_help)],
                    False,
                )
            )
    if "base_url" not in {s.key for s in info.settings}:
        help = f"API base URL (default {info.default_base_url})."
        fields.append(_spec("base_url", Annotated[str | None, typer.Option("--base-url", help=help)], None))
    no_verify = Annotated[bool, typer.Option("--no-verify", help="Save without checking the credentials.")]
    fields.append(_spec("no_verify", no_verify, False))
    keys = [f[0] for f in fields if f[0] != "no_verify"]
    _verb(
        app,
        "login",
        info.title,
        fields,
        lambda req, rt: _commands.login(rt, info.name, _values(req, keys), no_verify=req.no_verify),
        f"Save {info.title} credentials to the active profile after checking them.",
    )


def _add_delete(app: typer.Typer, info: ProviderInfo, extra_help: str | None) -> None:
    """`delete REF...`: the same confirmation and reporting for every provider that can delete."""
    fields = [
        _spec(
            "refs",
            Annotated[
                list[str],
                typer.Argument(
                    help="Recording refs to delete, or - to read them from stdin.", show_default=False
                ),
            ],
        ),
        _spec(
            "yes", Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")], False
        ),
        _spec(
            "json_",
            Annotated[
                bool, typer.Option("--json", help='Print {"deleted": [...], "failed": [...]} on stdout.')
            ],
            False,
        ),
    ]
    help_text = f"Delete recordings at {info.title} (asks first on a terminal; needs --yes otherwise)."
    if extra_help:
        help_text += "\n\n" + extra_help
    _verb(
        app,
        "delete",
        info.title,
        fields,
        lambda req, rt: _commands.delete_recordings(rt, info.name, req.refs, yes=req.yes, as_json=req.json_),
        help_text,
    )


__all__ = ["Flag", "Format", "build_provider_app", "fmt_of"]
