"""Values offered on TAB beyond what Click knows: profile names and `config` keys.

A TAB runs recfetch once, so these read the config file with `tomllib` and nothing else.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs


def _config_path(ctx: Any) -> Path:
    from recfetch.cli._runtime import Runtime

    found = ctx.find_object(Runtime) if ctx is not None else None
    if found is not None and found.config_cli:
        return Path(found.config_cli).expanduser()
    env = os.environ.get("RECFETCH_CONFIG")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path("recfetch") / "config.toml"


def _read(ctx: Any) -> dict[str, Any]:
    try:
        with _config_path(ctx).open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def profiles(ctx: Any, incomplete: str) -> list[str]:
    """Profile names in the config file in use (the one `--config` names, if given first)."""
    names = _read(ctx).get("profiles", {})
    return sorted(n for n in names if isinstance(n, str) and n.startswith(incomplete))


def config_keys(incomplete: str) -> list[str]:
    """PROVIDER.KEY for every setting a provider declares (what `config set/unset` take)."""
    from recfetch.providers import registry

    keys: list[str] = []
    for name, cls in registry().items():
        known = [s.key for s in cls.settings]
        if "base_url" not in known:
            known.append("base_url")
        keys.extend(f"{name}.{key}" for key in known)
    return [k for k in keys if k.startswith(incomplete)]
