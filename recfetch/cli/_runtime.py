"""Per-invocation state on Typer's context object, and the one place errors become exit codes.

The root group puts a `Runtime` on ``ctx.obj`` before anything is parsed; global options
(`-p`, `-q`, `-v`, `--no-progress`, `--color`, `--config`) update it wherever they appear on
the line. Commands read it with `runtime(ctx)`. `reported` wraps a command so that a
`RecfetchError` becomes one line (or one JSON object) on stderr and its SPEC §5 exit code,
and an int returned by the body becomes the exit code.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec
from urllib.parse import urlsplit

import typer

from recfetch import config
from recfetch.errors import ConfigError, ExitCode, InterruptedError_, RecfetchError
from recfetch.output import Ui
from recfetch.providers import get_provider
from recfetch.providers.base import Provider
from recfetch.redact import scrub

P = ParamSpec("P")

EXIT_BROKEN_PIPE = 141
"""What a process killed by SIGPIPE reports (128 + 13): `recfetch ... list | head`."""


class Runtime:
    """What the global options asked for, the loaded config, and the stop flag of this run."""

    def __init__(
        self,
        *,
        json_errors: bool = False,
        stdout: Any = None,
        stderr: Any = None,
        config_cli: str | None = None,
        profile_cli: str | None = None,
    ) -> None:
        self.quiet = False
        self.verbose = 0
        self.progress = True
        self.color = "auto"
        self.config_cli = config_cli
        self.profile_cli = profile_cli
        self.json_errors = json_errors
        """--json/--jsonl on the line: errors (usage errors too) are JSON objects on stderr."""
        self.stop = threading.Event()
        self.writes_config = False
        """The command creates the config file if it is missing (login, config set, sandbox)."""
        self._streams = (stdout, stderr)
        self._ui: Ui | None = None
        self._data: dict[str, Any] | None = None
        self.provider_name: str | None = None
        """The provider this command talks to, once known: errors that do not name one are its."""

    # -- global options ---------------------------------------------------
    def set_option(self, name: str, value: Any) -> None:
        """Apply one global option; called while the line is parsed, before any command runs."""
        if name == "verbose":
            self.verbose += int(value)
            setup_logging(self.verbose)
        elif name == "profile":
            self.profile_cli = value
        elif name == "config":
            self.config_cli = str(value)
            self._data = None
        elif name == "no_progress":
            self.progress = not value
        else:
            setattr(self, name, value)
        self._ui = None

    @property
    def ui(self) -> Ui:
        if self._ui is None:
            stdout, stderr = self._streams
            self._ui = Ui(
                quiet=self.quiet,
                verbose=self.verbose,
                progress=self.progress,
                color=self.color,
                stdout=stdout,
                stderr=stderr,
            )
            self._ui.json_errors = self.json_errors
        return self._ui

    # -- configuration ----------------------------------------------------
    @property
    def config_path(self) -> Path:
        return config.config_path(self.config_cli)

    def data(self) -> dict[str, Any]:
        if self._data is None:
            path = self.config_path
            if self.config_cli and not self.writes_config and not path.exists():
                raise ConfigError(
                    f"config file {path} (given with --config) does not exist",
                    hint=f"check the path, or create it with `recfetch --config {path} PROVIDER login`",
                )
            self._data = config.load(path, warn=self.ui.warn)
            from recfetch.cli._config_check import unknown_keys

            for warning in unknown_keys(path, self._data):
                self.ui.warn(warning)
        return self._data

    @property
    def profile(self) -> str:
        return config.active_profile(self.profile_cli, self.data())[0]

    def check_profile(self) -> None:
        """An explicitly chosen profile must exist (a typo should not silently use env only)."""
        name, source = config.active_profile(self.profile_cli, self.data())
        if source in ("option", "env", "file") and name not in self.data().get("profiles", {}):
            known = ", ".join(sorted(self.data().get("profiles", {}))) or "none"
            raise ConfigError(
                f"profile {name!r} is not in {self.config_path} (profiles: {known})",
                hint=f"create it with `recfetch --profile {name} PROVIDER login`",
            )

    def settings(
        self, cls: type[Provider], cli_values: Mapping[str, str | None] | None = None
    ) -> dict[str, config.Sourced]:
        keys = [s.key for s in cls.settings]
        if "base_url" not in keys:
            keys.append("base_url")
        defaults = {s.key: s.default for s in cls.settings}
        defaults.setdefault("base_url", cls.default_base_url)
        return config.resolve(
            cls.name, keys, self.data(), self.profile, cli_values=cli_values, defaults=defaults
        )

    def provider(
        self,
        name: str,
        *,
        options: Mapping[str, Any] | None = None,
        retries: int = 5,
        api_concurrency: int = 4,
        cli_values: Mapping[str, str | None] | None = None,
        http: Any = None,
    ) -> Provider:
        cls = get_provider(name)
        self.provider_name = cls.name
        resolved = self.settings(cls, cli_values)
        if not any(item.source in ("option", "env") for item in resolved.values()):
            self.check_profile()
        values = config.materialize(resolved, cls.secret_keys())
        cls.check_settings(values)
        check_base_url(cls.name, values.get("base_url"))
        return cls(
            values,
            profile=self.profile,
            state_dir=config.state_dir(),
            options=options,
            retries=retries,
            api_concurrency=api_concurrency,
            stop=self.stop,
            http=http,
        )


def check_base_url(provider: str, url: str | None) -> None:
    """A base_url must be a whole http(s) URL; ConfigError (exit 5) naming it and the fix."""
    if not url:
        return
    parts = urlsplit(url)
    problem = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem = "is not an http(s) URL"
    else:
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            problem = "has a port that is not a number"
    if problem:
        fixed = url if "://" in url else f"https://{url}"
        where = (
            f"RECFETCH_{provider.upper()}_BASE_URL or "
            if os.environ.get(f"RECFETCH_{provider.upper()}_BASE_URL")
            else ""
        )
        raise ConfigError(
            f"{provider}: base_url {url!r} {problem}",
            hint=f"give the whole URL, with scheme and a numeric port, in {where}"
            f"`recfetch config set {provider}.base_url {fixed}`",
        )


def runtime(ctx: typer.Context) -> Runtime:
    """The invocation's `Runtime` (put on the root context's ``obj`` by the root group)."""
    found = ctx.find_object(Runtime)
    return found if found is not None else ctx.ensure_object(Runtime)


def reported(command: Callable[P, int | None]) -> Callable[P, None]:
    """Wrap a Typer command taking ``ctx: typer.Context``: errors and returned codes become exits."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        ctx = kwargs.get("ctx")
        if ctx is None:
            raise TypeError(f"{command.__name__} must take `ctx: typer.Context`")
        call_reported(runtime(ctx), command, *args, **kwargs)  # type: ignore[arg-type]

    return wrapper


def call_reported(rt: Runtime, body: Callable[..., int | None], *args: Any, **kwargs: Any) -> None:
    """Run ``body``; a RecfetchError -> one line (or JSON) on stderr and its exit code."""
    try:
        code = body(*args, **kwargs)
    except RecfetchError as exc:
        exc.provider = exc.provider or rt.provider_name
        rt.ui.error(exc)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        rt.ui.error(InterruptedError_("interrupted; partial files were kept as .part"))
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except typer.Exit:
        raise
    except BrokenPipeError:
        # The reader went away (`list --jsonl | head`); sockets never get here (httpx wraps their
        # errors). Not worth a message: exit as a process killed by SIGPIPE would.
        _silence_stdout(rt.ui.stdout)
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except Exception as exc:  # a bug: never show locals, credentials live there
        report_internal(rt.ui, exc)
        raise typer.Exit(int(ExitCode.INTERNAL)) from None
    if code:
        raise typer.Exit(int(code))


def report_internal(ui: Ui, exc: BaseException) -> None:
    """An unexpected exception: a scrubbed one-liner (and the traceback with -v)."""
    if ui.verbose:
        ui.stderr.write(scrub("".join(traceback.format_exception(exc))))
    ui.error(
        RecfetchError(
            f"internal error: {type(exc).__name__}: {scrub(str(exc))}",
            hint="run again with -v for a traceback and report it",
        )
    )


def setup_logging(verbose: int) -> None:
    logger = logging.getLogger("recfetch")
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    if verbose:
        handler = _StderrHandler(sys.stderr)
        handler.setFormatter(_ScrubbingFormatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    else:
        logger.setLevel(logging.WARNING)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The -v handler (a class of its own so a second setup replaces it instead of adding one)."""


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


@contextmanager
def signals_stop(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` so transfers end cleanly (a second SIGINT aborts)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def _silence_stdout(stream: Any) -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail with EPIPE again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
