"""Local stand-ins of the five provider APIs plus a signed-URL storage host, on 127.0.0.1.

`Sandbox` starts one server per provider API and one storage host (another
origin, so credential stripping is real), fills them with deterministic
synthetic recordings, and hands out the profile tables that point recfetch at them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from recfetch.sandbox.httpserver import Server

NAMES = ("kismet", "realtimekit", "kazoo", "kaleyra", "bird")


class StandIn(Protocol):
    """What each `recfetch/sandbox/<provider>.py` provides (via its `create` function)."""

    name: str
    server: Server

    def profile(self) -> dict[str, str]:
        """The provider's profile table (credentials and base_url) for this stand-in."""
        ...


class Sandbox:
    """Every stand-in and the storage host; use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        port: int = 0,
        recordings: int | None = None,
        seed: int = 0,
        providers: Iterable[str] = NAMES,
    ) -> None:
        from recfetch.sandbox.storage import Storage

        names = [n for n in providers if _available(n)]
        storage_port = port + len(NAMES) if port else 0
        self.storage = Storage(Server("storage", port=storage_port))
        self.standins: dict[str, Any] = {}
        for index, name in enumerate(names):
            module = importlib.import_module(f"recfetch.sandbox.{name}")
            self.standins[name] = module.create(
                self.storage,
                port=port + NAMES.index(name) if port else 0,
                seed=seed,
                recordings=recordings,
            )
            del index
        self._started = False

    def __getitem__(self, name: str) -> Any:
        return self.standins[name]

    def start(self) -> Sandbox:
        if not self._started:
            self.storage.server.start()
            for standin in self.standins.values():
                standin.server.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            for standin in self.standins.values():
                standin.server.stop()
            self.storage.server.stop()
            self._started = False

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def profiles(self) -> dict[str, dict[str, str]]:
        """`{provider: table}` for a `[profiles.<name>.<provider>]` section."""
        return {name: standin.profile() for name, standin in self.standins.items()}

    def write_profile(self, config_path: Path, profile: str = "sandbox") -> None:
        """Add (or replace) the sandbox profile in ``config_path``, keeping everything else."""
        from recfetch import config

        data = config.load(config_path)
        data.setdefault("profiles", {})[profile] = self.profiles()
        config.save(config_path, data)

    def servers(self) -> list[Server]:
        return [self.storage.server, *(s.server for s in self.standins.values())]


def _available(name: str) -> bool:
    try:
        importlib.import_module(f"recfetch.sandbox.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"recfetch.sandbox.{name}":
            return False
        raise
    return True
