"""The provider registry: name -> Provider class, in the order the CLI lists them."""

from __future__ import annotations

import importlib

from recfetch.providers.base import Provider

__all__ = ["NAMES", "get_provider", "registry"]

NAMES = ("kismet", "realtimekit", "kazoo", "kaleyra", "bird")
ALIASES = {"cloudflare": "realtimekit"}


def get_provider(name: str) -> type[Provider]:
    """The Provider class for ``name`` (or an alias)."""
    name = ALIASES.get(name, name)
    if name not in NAMES:
        raise KeyError(name)
    module = importlib.import_module(f"recfetch.providers.{name}")
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Provider)
            and value is not Provider
            and getattr(value, "name", None) == name
        ):
            return value
    raise KeyError(name)


def registry() -> dict[str, type[Provider]]:
    """Every provider whose module is present."""
    out: dict[str, type[Provider]] = {}
    for name in NAMES:
        try:
            out[name] = get_provider(name)
        except (KeyError, ModuleNotFoundError):
            continue
    return out
