"""The root Typer app: global options accepted anywhere, one sub-app per provider, other commands.

A sub-command is built when the line names it (`_RootGroup.get_command`): a provider's from
its `ProviderInfo`, the others from the module that registers them (`OTHER_COMMANDS`), so
`recfetch kazoo pull --help` builds Kazoo's verbs only and imports no provider module, httpx,
download engine, nor the config, sandbox and verify commands.

Global options (`-p/--profile`, `--config`, `-q`, `-v`, `--no-progress`, `--color`) are
declared once, in `_global_options`, and attached to the root and to every sub-command, so
`recfetch -q kazoo pull` and `recfetch kazoo pull -q` are the same line (SPEC §1), `--help`
lists them on every verb and completion offers them everywhere. Their values go to the
`Runtime` on the root context's ``obj``; none of them reaches a command function.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from typer.core import TyperGroup

from recfetch import __version__
from recfetch.cli import _complete
from recfetch.cli._runtime import Runtime, report_internal, runtime, setup_logging
from recfetch.providers import ALIASES, REGISTRY, info
from recfetch.providers.base import ProviderInfo

GLOBAL = "(global) "

OTHER_COMMANDS: Final[dict[str, str]] = {
    "providers": "recfetch.cli.misc",
    "completions": "recfetch.cli.misc",
    "sandbox": "recfetch.cli.sandbox_cmd",
    "demo": "recfetch.cli.sandbox_cmd",
    "verify": "recfetch.cli.verify_cmd",
    "config": "recfetch.cli.misc",
}
"""The root's commands besides the providers, in help order (groups last), each with the module
whose ``register(app)`` adds it."""


class Color(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


def _json_requested(args: Sequence[str]) -> bool:
    """Whether the command line asks for --json/--jsonl output (so errors must be JSON too)."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("--json", "--jsonl", "--format=json", "--format=jsonl"):
            return True
        if arg == "--format" and index + 1 < len(args) and args[index + 1] in ("json", "jsonl"):
            return True
    return False


def _apply(ctx: typer.Context, param: Any, value: Any) -> Any:
    """Hand a global option given on the line to the Runtime (defaults change nothing)."""
    source = ctx.get_parameter_source(param.name)
    # By name: Typer vendors its own click, so its ParameterSource is not click's enum.
    if getattr(source, "name", "DEFAULT") == "DEFAULT":
        return value
    runtime(ctx).set_option(param.name, value.value if isinstance(value, Enum) else value)
    return value


def _global_option(*decls: str, help: str, **extra: Any) -> Any:
    """One global option: handed to the Runtime by `_apply`, never a parameter of a command."""
    return typer.Option(
        *decls, callback=_apply, expose_value=False, show_default=False, help=GLOBAL + help, **extra
    )


def _global_options(
    profile: Annotated[
        str | None,
        _global_option(
            "--profile",
            "-p",
            metavar="NAME",
            autocompletion=_complete.profiles,
            help="profile to use (env RECFETCH_PROFILE; default: default_profile, else `default`).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        _global_option(
            "--config",
            metavar="PATH",
            help="config file (env RECFETCH_CONFIG; default: the user config dir).",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        _global_option("--quiet", "-q", help="no progress, only errors."),
    ] = False,
    verbose: Annotated[
        int,
        _global_option(
            "--verbose", "-v", count=True, help="debug logs on stderr (secrets redacted); repeatable."
        ),
    ] = 0,
    no_progress: Annotated[
        bool,
        _global_option("--no-progress", help="never show progress bars."),
    ] = False,
    color: Annotated[
        Color,
        _global_option("--color", help="colour: auto (terminals, honours NO_COLOR), always or never."),
    ] = Color.auto,
) -> None:
    """Declares the global options; Typer builds their Click parameters from this signature."""


@functools.cache
def global_params() -> tuple[Any, ...]:
    """The global options as Click parameters (built once, shared by every command)."""
    holder = typer.Typer(add_completion=False)
    holder.command()(_global_options)
    return tuple(typer.main.get_command(holder).params)


def with_global_options(command: Any) -> Any:
    """Give ``command`` (and, for a group, all its sub-commands) the global options, once."""
    params = global_params()
    if params[0] not in command.params:
        command.params.extend(params)
    for sub in getattr(command, "commands", {}).values():
        with_global_options(sub)
    return command


TYPER_COMPLETION_PARAMS = ("install_completion", "show_completion")


class _RootGroup(TyperGroup):
    """The root command: a Runtime on ``ctx.obj``, global options on every sub-command, and
    Click's usage errors as one JSON object in --json/--jsonl mode."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with_global_options(self)

    def get_params(self, ctx: Any) -> list[Any]:
        # Typer appends its own --install-completion/--show-completion, which guess the shell
        # from the parent process and ignore a shell named after them (`--install-completion
        # zsh` installed the bash script). The root callback declares ours (value: SHELL).
        return [
            p
            for p in super().get_params(ctx)
            if p.name not in TYPER_COMPLETION_PARAMS or p.metavar == "SHELL"
        ]

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        if "obj" not in extra:
            setup_logging(0)  # an in-process rerun (tests) must not inherit the last run's -v
            extra["obj"] = Runtime(json_errors=_json_requested(args))
        return super().make_context(info_name, args, parent, **extra)

    def list_commands(self, ctx: Any) -> list[str]:
        # The plain commands, then the providers (and their hidden aliases), then the groups.
        *plain, config = OTHER_COMMANDS
        return [*plain, *REGISTRY, *ALIASES, config, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is None and (cmd_name in REGISTRY or cmd_name in ALIASES):
            command = _provider_command(cmd_name, info(cmd_name))
        elif command is None and cmd_name in OTHER_COMMANDS:
            command = _registered_by(OTHER_COMMANDS[cmd_name]).commands[cmd_name]
        return None if command is None else with_global_options(command)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        items = super().shell_complete(ctx, incomplete)
        # The alias is hidden from help (one line per provider) but completes, as SPEC §8 asks.
        if "cloudflare".startswith(incomplete) and not incomplete.startswith("-"):
            items.append(type(items[0])("cloudflare") if items else _item("cloudflare"))
        return items

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            sys.stderr.write("error: aborted\n")
            sys.exit(1)
        except Exception as exc:
            if not _is_usage_error(exc):
                # A bug outside a command body (the parsing itself may be what failed): -v is
                # read from the line, and the message is scrubbed of secrets as always.
                rt = Runtime(json_errors=_json_requested(argv))
                rt.verbose = sum(_verbosity(arg) for arg in argv)
                report_internal(rt.ui, exc)
                sys.exit(1)
            _show_usage_error(exc, argv)
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        sys.exit(code if isinstance(code, int) else 0)


def _verbosity(arg: str) -> int:
    if arg == "--verbose":
        return 1
    return len(arg) - 1 if arg.startswith("-v") and set(arg[1:]) == {"v"} else 0


def _item(value: str) -> Any:
    # typer.core re-exports Click's CompletionItem (its public home in typer) without declaring it.
    from typer.core import CompletionItem  # type: ignore[attr-defined]

    return CompletionItem(value)


def _is_usage_error(exc: Exception) -> bool:
    """Click's own errors (bad option, bad value, missing argument) carry an exit code and `show`."""
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "show", None))


def _show_usage_error(exc: Exception, argv: list[str]) -> None:
    if not _json_requested(argv):
        exc.show()  # type: ignore[attr-defined]
        return
    ctx = getattr(exc, "ctx", None)
    words = (ctx.command_path.split() if ctx is not None else [])[1:2]
    provider = ALIASES.get(words[0], words[0]) if words and words[0] in {*REGISTRY, *ALIASES} else None
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    payload = {
        "type": "error",
        "code": "USAGE",
        "message": f"{exc.format_message()}{where}",  # type: ignore[attr-defined]
        "provider": provider,
        "http_status": None,
        "retryable": False,
    }
    sys.stderr.write(json.dumps(payload) + "\n")
    sys.stderr.flush()


app = typer.Typer(
    name="recfetch",
    cls=_RootGroup,
    help="List and download call recordings from Kismet, Cloudflare RealtimeKit, Kazoo, Kaleyra and Bird.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"recfetch {__version__}")
        raise typer.Exit()


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def _install(value: Shell | None) -> None:
    if value is None:
        return
    from recfetch.cli.misc import install_completion

    path, note = install_completion(value.value)
    sys.stderr.write(f"installed {value.value} completion in {path}; {note}\n")
    raise typer.Exit()


def _show(value: Shell | None) -> None:
    if value is None:
        return
    from recfetch.cli.misc import completion_script

    sys.stdout.write(completion_script(value.value))
    raise typer.Exit()


@app.callback()
def root(
    install_completion: Annotated[
        Shell | None,
        typer.Option(
            "--install-completion",
            metavar="SHELL",
            callback=_install,
            is_eager=True,
            expose_value=False,
            help="Install completion for bash, zsh or fish (and say what that shell needs).",
        ),
    ] = None,
    show_completion: Annotated[
        Shell | None,
        typer.Option(
            "--show-completion",
            metavar="SHELL",
            callback=_show,
            is_eager=True,
            expose_value=False,
            help="Print the completion script for bash, zsh or fish.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """List and download call recordings from five providers' REST APIs."""


@functools.cache
def _provider_command(name: str, provider: ProviderInfo) -> Any:
    """The Click group of provider ``name`` (an alias is the same sub-app, hidden from help)."""
    from recfetch.cli._providers import provider_app

    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    holder.add_typer(provider_app(provider), name=name, hidden=name in ALIASES)
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


def _holder() -> None:
    """A callback, so that a holder app is a group even when it holds one command."""


@functools.cache
def _registered_by(module: str) -> Any:
    """A Click group of what ``module.register(app)`` adds, built the first time one is named."""
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    holder.callback()(_holder)
    importlib.import_module(module).register(holder)
    return typer.main.get_command(holder)
