"""Mistakes in a config file that TOML itself accepts: typo'd keys and provider tables.

recfetch would otherwise ignore them silently and then report a missing setting somewhere
else; each gets one warning naming the key and the likely intended one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recfetch.providers import ALIASES, REGISTRY, info

TOP_LEVEL = ("default_profile", "profiles")
PROFILE_TABLES_BESIDES_PROVIDERS = ("destination",)
"""`[profiles.P.destination]`: the object store's settings (SPEC §3)."""


def _guess(word: str, known: list[str]) -> str:
    match = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else f" (known: {', '.join(sorted(known))})"


def provider_keys(cls: Any) -> list[str]:
    """The keys a provider table may hold: its settings, base_url, and `K_cmd` for each secret."""
    keys = [s.key for s in cls.settings]
    if "base_url" not in keys:
        keys.append("base_url")
    keys += [f"{s.key}_cmd" for s in cls.settings if s.secret]
    return keys


def unknown_keys(path: Path, data: dict[str, Any]) -> Iterator[str]:
    """One warning per key or table recfetch does not know (and so would ignore)."""
    for key in data:
        if key not in TOP_LEVEL:
            yield f"warning: {path}: unknown top-level key {key!r}{_guess(key, list(TOP_LEVEL))}"
    providers = REGISTRY
    for profile, tables in (data.get("profiles") or {}).items():
        if not isinstance(tables, dict):
            continue
        name: str  # a TOML key is always a string
        for name, table in tables.items():
            where = f"[profiles.{profile}.{name}]"
            if name in PROFILE_TABLES_BESIDES_PROVIDERS:
                continue
            provider = ALIASES.get(name, name)
            if provider not in providers:
                known = [*providers, *PROFILE_TABLES_BESIDES_PROVIDERS]
                yield f"warning: {path}: {where} is not a provider and is ignored{_guess(name, known)}"
                continue
            if not isinstance(table, dict):
                continue
            known_keys = provider_keys(info(provider))  # its module is not imported
            for key in table:
                if key not in known_keys:
                    yield f"warning: {path}: {where} has unknown key {key!r}{_guess(key, known_keys)}"
