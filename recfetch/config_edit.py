"""Edits to the user's config file that keep everything else in it: comments, order, layout.

`login` and `config set/unset` change one provider table of one profile; the rest of the file
is the user's, so it is edited in place with tomlkit (a style-preserving TOML library) and
written back atomically with mode 0600.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit

from recfetch.errors import ConfigError
from recfetch.fsutil import private_dir, write_private


def _read(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _super_table(parent: Any, key: str) -> Any:
    if key not in parent:
        parent[key] = tomlkit.table(is_super_table=True)
    return parent[key]


def edit_table(path: Path, profile: str, provider: str, changes: Mapping[str, str | None]) -> bool:
    """Set (a value) or remove (None) keys of ``[profiles.PROFILE.PROVIDER]``; False if nothing changed."""
    doc = _read(path)
    profiles = _super_table(doc, "profiles")
    profile_table = _super_table(profiles, profile)
    if provider not in profile_table:
        if all(value is None for value in changes.values()):
            return False
        profile_table[provider] = tomlkit.table()
    table = profile_table[provider]
    changed = False
    for key, value in changes.items():
        if value is None:
            if key in table:
                del table[key]
                changed = True
        elif table.get(key) != value:
            table[key] = value
            changed = True
    if not table:
        del profile_table[provider]
    if not profile_table:
        del profiles[profile]
    if not profiles:
        del doc["profiles"]
    if changed:
        private_dir(path.parent)
        write_private(path, tomlkit.dumps(doc).encode("utf-8"))
    return changed
