"""The root Typer app: global options, one sub-app per provider, and the other commands."""

from __future__ import annotations

import importlib
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from recfetch import __version__
from recfetch.cli._runtime import Runtime, set_current, setup_logging
from recfetch.output import Ui
from recfetch.providers import NAMES


class Color(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


app = typer.Typer(
    name="recfetch",
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
            dir_okay=False,
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

        if current().ui.verbose:
            sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
        sys.stderr.write(
            f"error: internal error: {type(exc).__name__}: {scrub(str(exc))} "
            "(run again with -v for a traceback and report it)\n"
        )
        sys.exit(1)
