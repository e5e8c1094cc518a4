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
    if ctx is not None:
        from recfetch.cli._runtime import Runtime

        found = ctx.find_object(Runtime)
        if found is not None and found.config_cli:
            return Path(found.config_cli).expanduser()
    return config_file(None)


def config_file(given: str | None) -> Path:
    """--config, else $RECFETCH_CONFIG, else the user config dir (as `config.config_path`)."""
    if given:
        return Path(given).expanduser()
    env = os.environ.get("RECFETCH_CONFIG")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path("recfetch") / "config.toml"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def profiles(ctx: Any, incomplete: str) -> list[str]:
    """Profile names in the config file in use (the one `--config` names, if given first)."""
    return profiles_in(_config_path(ctx), incomplete)


def profiles_in(path: Path, incomplete: str) -> list[str]:
    names = _read(path).get("profiles", {})
    return sorted(n for n in names if isinstance(n, str) and n.startswith(incomplete))


def config_keys(incomplete: str) -> list[str]:
    """PROVIDER.KEY for every declared setting, and KEY_cmd for secrets (what `config set/unset` take)."""
    from recfetch.providers import REGISTRY

    keys: list[str] = []
    for name, cls in REGISTRY.items():
        known = [s.key for s in cls.settings]
        if "base_url" not in known:
            known.append("base_url")
        keys.extend(f"{name}.{key}" for key in known)
        keys.extend(f"{name}.{s.key}_cmd" for s in cls.settings if s.secret)
    return [k for k in keys if k.startswith(incomplete)]
