"""One Typer sub-app per registered provider: the common verbs, plus any verbs its CLI module adds.

Every provider in `recfetch.providers.REGISTRY` gets a sub-app built from its `ProviderInfo`
(plain data: the provider's module is not imported); a `cli/<name>.py` exists only for a
provider with extra verbs (it builds the app and adds them), is listed in
`WITH_EXTRA_VERBS` and is imported only when that provider's sub-app is built.
"""

from __future__ import annotations

import functools
import importlib
from typing import Final

import typer

from recfetch.cli._factory import build_provider_app
from recfetch.providers.base import ProviderInfo

WITH_EXTRA_VERBS: Final[dict[str, str]] = {
    "kismet": "recfetch.cli.kismet",  # users, calls
    "realtimekit": "recfetch.cli.realtimekit",  # active, start, stop, pause, resume
    "kazoo": "recfetch.cli.kazoo",  # tag
}


@functools.cache
def provider_app(info: ProviderInfo) -> typer.Typer:
    """The provider's sub-app (built once per provider)."""
    if info.name in WITH_EXTRA_VERBS:
        app: typer.Typer = importlib.import_module(WITH_EXTRA_VERBS[info.name]).app
        return app
    return build_provider_app(info)
