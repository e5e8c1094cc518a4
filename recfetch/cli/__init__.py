"""The root Typer app: global options, one sub-app per provider, and the other commands."""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from recfetch import __version__
from recfetch.cli._runtime import Runtime, set_current, setup_logging
from recfetch.output import Ui
from recfetch.providers import NAMES


class Color(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


def _json_requested(args: list[str]) -> bool:
    """Whether the command line asks for --json/--jsonl output (so errors must be JSON too)."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("--json", "--jsonl", "--format=json", "--format=jsonl"):
            return True
        if arg == "--format" and index + 1 < len(args) and args[index + 1] in ("json", "jsonl"):
            return True
    return False


def _as_json_usage_error(exc: Exception, args: list[str]) -> None:
    """Make Click's own usage errors (unknown option, bad choice) print one JSON object in JSON mode."""
    if not (_json_requested(args) and hasattr(exc, "format_message") and hasattr(exc, "show")):
        return
    ctx = getattr(exc, "ctx", None)
    words = (ctx.command_path.split() if ctx is not None else [])[1:2]
    provider = words[0] if words and words[0] in NAMES else None
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""

    def show(file: object = None) -> None:
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

    exc.show = show  # type: ignore[attr-defined]


class _RootGroup(TyperGroup):
    """The root command; only here to give Click's usage errors a JSON form in --json/--jsonl mode."""

    def make_context(self, info_name: str | None, args: list[str], *a: Any, **kw: Any) -> Any:
        self._args = list(args)
        try:
            return super().make_context(info_name, args, *a, **kw)
        except Exception as exc:
            _as_json_usage_error(exc, self._args)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            _as_json_usage_error(exc, getattr(self, "_args", []))
            raise


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


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            envvar="RECFETCH_PROFILE",
            help="Profile to use (default: default_profile in the config, else `default`).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="RECFETCH_CONFIG",
            help="Config file (default: the platform's user config dir).",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or chatter, only errors.")
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="Debug logs on stderr (secrets redacted); repeatable."
        ),
    ] = 0,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Never show progress bars.")] = False,
    color: Annotated[
        Color, typer.Option("--color", help="Colour on stderr/stdout: auto honours NO_COLOR and terminals.")
    ] = Color.auto,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """List and download call recordings from five providers' REST APIs."""
    ui = Ui(quiet=quiet, verbose=verbose, progress=not no_progress, color=color.value)
    # Click fills these from RECFETCH_PROFILE / RECFETCH_CONFIG too; keep only real options here so
    # `config show` reports the right source (config.py reads the environment itself).
    if _from_env(ctx, "profile"):
        profile = None
    if _from_env(ctx, "config"):
        config = None
    set_current(Runtime(ui=ui, config_cli=str(config) if config else None, profile_cli=profile))
    setup_logging(verbose)


def _from_env(ctx: typer.Context, name: str) -> bool:
    # By name: Typer vendors its own click, so its ParameterSource is not click's enum.
    return getattr(ctx.get_parameter_source(name), "name", None) == "ENVIRONMENT"


def _register() -> None:
    for name in NAMES:
        try:
            module = importlib.import_module(f"recfetch.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"recfetch.cli.{name}":
                raise
            continue
        app.add_typer(module.app, name=name)
        if name == "realtimekit":
            app.add_typer(module.app, name="cloudflare", hidden=True)
    from recfetch.cli import misc

    misc.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="recfetch")
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug outside a command body; `run()` handles those inside
        # Never Python's default hook: no locals, and the message is scrubbed of secrets.
        from recfetch.cli._runtime import current
        from recfetch.redact import scrub

        # The root callback may not have run (that may be what failed): look at argv for -v too.
        verbose = current().ui.verbose or any(
            arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}) for arg in sys.argv[1:]
        )
        if verbose:
            sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
        sys.stderr.write(
            f"error: internal error: {type(exc).__name__}: {scrub(str(exc))} "
            "(run again with -v for a traceback and report it)\n"
        )
        sys.exit(1)
