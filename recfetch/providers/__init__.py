"""The provider registry: name -> Provider class, in the order the CLI lists them.

Config, the sandbox, the CLI and the tests all read `REGISTRY`; adding a provider is
its module, its entry in `catalog` (and `catalog.BUILT_IN`), its sandbox stand-in and docs.
A built-in provider's module (its HTTP code, httpx) is imported the first time its class is
looked up; `info(name)` answers what the command line needs without importing it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Final

from recfetch.providers.base import Provider, ProviderInfo
from recfetch.providers.catalog import BUILT_IN

__all__ = ["ALIASES", "REGISTRY", "get_provider", "info", "names"]


class Registry(MutableMapping[str, type[Provider]]):
    """name -> Provider class, each built-in one imported from its "module:Class" when first asked for."""

    def __init__(self, built_in: Mapping[str, tuple[ProviderInfo, str]]) -> None:
        self._infos = {name: entry[0] for name, entry in built_in.items()}
        self._entries: dict[str, type[Provider] | str] = {name: entry[1] for name, entry in built_in.items()}

    def __getitem__(self, name: str) -> type[Provider]:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def __setitem__(self, name: str, cls: type[Provider]) -> None:
        self._entries[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries  # without importing the class

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def info(self, name: str) -> ProviderInfo:
        """The provider's names, settings, flags and help; a built-in one's without importing it."""
        entry = self._entries[name]
        return self._infos[name] if isinstance(entry, str) else ProviderInfo.of(entry)


REGISTRY: Final = Registry(BUILT_IN)
ALIASES: Final[dict[str, str]] = {"cloudflare": "realtimekit"}
"""Other names a provider answers to on the command line (hidden from help)."""


def names() -> tuple[str, ...]:
    """The registered provider names, in CLI order."""
    return tuple(REGISTRY)


def get_provider(name: str) -> type[Provider]:
    """The Provider class for ``name`` (or an alias); KeyError when there is none."""
    return REGISTRY[ALIASES.get(name, name)]


def info(name: str) -> ProviderInfo:
    """`ProviderInfo` for ``name`` (or an alias), without importing a built-in provider's module;
    KeyError when there is none."""
    return REGISTRY.info(ALIASES.get(name, name))
