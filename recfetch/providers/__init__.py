"""The provider registry: name -> Provider class, in the order the CLI lists them.

Config, the sandbox, the CLI and the tests all read `REGISTRY`; adding a provider is
its module plus one line here (and its sandbox stand-in and docs).
"""

from __future__ import annotations

from typing import Final

from recfetch.providers.base import Provider
from recfetch.providers.bird import BirdProvider
from recfetch.providers.kaleyra import KaleyraProvider
from recfetch.providers.kazoo import KazooProvider
from recfetch.providers.kismet import KismetProvider
from recfetch.providers.realtimekit import RealtimeKitProvider

__all__ = ["ALIASES", "REGISTRY", "get_provider", "names"]

REGISTRY: Final[dict[str, type[Provider]]] = {
    "kismet": KismetProvider,
    "realtimekit": RealtimeKitProvider,
    "kazoo": KazooProvider,
    "kaleyra": KaleyraProvider,
    "bird": BirdProvider,
}
ALIASES: Final[dict[str, str]] = {"cloudflare": "realtimekit"}
"""Other names a provider answers to on the command line (hidden from help)."""


def names() -> tuple[str, ...]:
    """The registered provider names, in CLI order."""
    return tuple(REGISTRY)


def get_provider(name: str) -> type[Provider]:
    """The Provider class for ``name`` (or an alias); KeyError when there is none."""
    return REGISTRY[ALIASES.get(name, name)]
