"""Local stand-ins of the five provider APIs plus a signed-URL storage host, on 127.0.0.1.

`Sandbox` starts one server per provider API and one storage host (another
origin, so credential stripping is real), fills them with deterministic
synthetic recordings, and hands out the profile tables that point recfetch at them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final, Protocol

from recfetch.providers import REGISTRY
from recfetch.sandbox import bird, kaleyra, kazoo, kismet, realtimekit
from recfetch.sandbox.httpserver import Server
from recfetch.sandbox.storage import Storage


class StandIn(Protocol):
    """What each `recfetch/sandbox/<provider>.py` provides (via its `create` function)."""

    name: str
    server: Server

    def profile(self) -> dict[str, str]:
        """The provider's profile table (credentials and base_url) for this stand-in."""
        ...


STAND_INS: Final[dict[str, Callable[..., Any]]] = {
    "kismet": kismet.create,
    "realtimekit": realtimekit.create,
    "kazoo": kazoo.create,
    "kaleyra": kaleyra.create,
    "bird": bird.create,
}
"""{provider: create(storage, *, port, seed, recordings) -> StandIn}; every registered provider has one."""


class Sandbox:
    """Every stand-in and the storage host; use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        port: int = 0,
        recordings: int | None = None,
        seed: int = 0,
        providers: Iterable[str] | None = None,
    ) -> None:
        order = list(REGISTRY)
        storage_port = port + len(order) if port else 0
        self.storage = Storage(Server("storage", port=storage_port))
        self.standins: dict[str, Any] = {}
        for name in order if providers is None else providers:
            self.standins[name] = STAND_INS[name](
                self.storage,
                port=port + order.index(name) if port else 0,
                seed=seed,
                recordings=recordings,
            )
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

