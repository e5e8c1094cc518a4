"""Per-invocation state (global options, loaded config) and the one place errors become exits."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import typer

from recfetch import config
from recfetch.errors import ConfigError, ExitCode, InterruptedError_, RecfetchError
from recfetch.output import Ui
from recfetch.providers import get_provider
from recfetch.providers.base import Provider
from recfetch.redact import scrub

T = TypeVar("T")


@dataclass
class Runtime:
    """What the root callback learned from the global options."""

    ui: Ui = field(default_factory=Ui)
    config_cli: str | None = None
    profile_cli: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    _data: dict[str, Any] | None = None

    @property
    def config_path(self) -> Path:
        return config.config_path(self.config_cli)

    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = config.load(self.config_path, warn=self.ui.warn)
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
        cli_values: Mapping[str, str | None] | None = None,
        http: Any = None,
    ) -> Provider:
        cls = get_provider(name)
        resolved = self.settings(cls, cli_values)
        if not any(item.source in ("option", "env") for item in resolved.values()):
            self.check_profile()
        values = config.materialize(resolved)
        cls.check_settings(values)
        return cls(
            values,
            profile=self.profile,
            state_dir=config.state_dir(),
            options=options,
            retries=retries,
            stop=self.stop,
            http=http,
        )


_current = Runtime()


def current() -> Runtime:
    return _current


def set_current(runtime: Runtime) -> None:
    global _current
    _current = runtime


def setup_logging(verbose: int) -> None:
    logger = logging.getLogger("recfetch")
    for handler in list(logger.handlers):
        if getattr(handler, "_recfetch_stderr", False):
            logger.removeHandler(handler)
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_ScrubbingFormatter("%(name)s: %(message)s"))
        handler._recfetch_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    else:
        logger.setLevel(logging.WARNING)


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


def run(body: Callable[[], T]) -> T:
    """Run a command body: RecfetchError -> one line (or JSON) on stderr and its exit code."""
    rt = current()
    try:
        return body()
    except RecfetchError as exc:
        rt.ui.error(exc)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        rt.ui.error(InterruptedError_("interrupted; partial files were kept as .part"))
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except typer.Exit:
        raise
    except BrokenPipeError:
        # The reader went away (`list --jsonl | head`); sockets never get here (httpx wraps their
        # errors). Not worth a message: exit as a process killed by SIGPIPE would (128 + 13).
        _silence_stdout(rt.ui.stdout)
        raise typer.Exit(EXIT_BROKEN_PIPE) from None
    except Exception as exc:  # a bug: never show locals, credentials live there
        if rt.ui.verbose:
            rt.ui.stderr.write(scrub("".join(traceback.format_exception(exc))))
        rt.ui.error(
            RecfetchError(
                f"internal error: {type(exc).__name__}: {scrub(str(exc))}",
                hint="run again with -v for a traceback and report it",
            )
        )
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


EXIT_BROKEN_PIPE = 141


def _silence_stdout(stream: Any) -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail with EPIPE again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
