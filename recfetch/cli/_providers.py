"""One Typer sub-app per registered provider: the common verbs, plus any verbs its CLI module adds.

Every provider in `recfetch.providers.REGISTRY` gets a sub-app built from its class; a
`cli/<name>.py` exists only for a provider with extra verbs (it builds the app and adds
them), and is listed in `WITH_EXTRA_VERBS`.
"""

from __future__ import annotations

import functools
from typing import Final

import typer

from recfetch.cli import kazoo, kismet, realtimekit
from recfetch.cli._factory import build_provider_app
from recfetch.providers.base import Provider

WITH_EXTRA_VERBS: Final[dict[str, typer.Typer]] = {
    "kismet": kismet.app,  # users, calls
    "realtimekit": realtimekit.app,  # active, start, stop, pause, resume
    "kazoo": kazoo.app,  # tag
}


@functools.cache
def provider_app(cls: type[Provider]) -> typer.Typer:
    """The provider's sub-app (built once per class)."""
    return WITH_EXTRA_VERBS.get(cls.name) or build_provider_app(cls)
