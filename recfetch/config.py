"""Profiles in a per-user TOML file: locations, precedence, `_cmd` secrets, atomic 0600 writes."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
import tomli_w

from recfetch.errors import ConfigError
from recfetch.fsutil import private_dir, write_private
from recfetch.redact import register_secret

if TYPE_CHECKING:
    from recfetch.providers.base import Provider

APP = "recfetch"
_TOML_POS = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)")


@dataclass(frozen=True, slots=True)
class Sourced:
    """A setting's value and where it came from (`config show` prints both)."""

    value: str | None
    source: str


def config_path(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $RECFETCH_CONFIG, else the platform's user config dir."""
    if cli_value:
        return Path(cli_value).expanduser()
    env = os.environ.get("RECFETCH_CONFIG")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path(APP) / "config.toml"


def state_dir() -> Path:
    """$RECFETCH_STATE_DIR, else the platform's user state dir (archive, locks, tokens)."""
    env = os.environ.get("RECFETCH_STATE_DIR")
    path = Path(env).expanduser() if env else platformdirs.user_state_path(APP)
    return path


def load(path: Path, *, warn: Any = None) -> dict[str, Any]:
    """Read the TOML file; a missing file is an empty config. Bad TOML is exit 5 with the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(
            f"config path {path} is a directory", hint="pass a file path with --config"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", hint="re-save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no lineno attribute (3.14 adds one): the
        # position lives only in the message, "... (at line 3, column 5)".
        text = str(exc)
        match = _TOML_POS.search(text)
        line = getattr(exc, "lineno", None)
        if line is None and match:
            # "at end of document" (an unterminated string or table): the last line.
            line = int(match.group(1)) if match.group(1) else raw.count(b"\n") + 1
        msg = _TOML_POS.sub("", text).strip() or "syntax error"
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(
            f"invalid TOML in {where}: {msg}",
            hint="fix that line, or run `recfetch config path` to see which file is read",
        ) from None
    _check_shape(path, data)
    if warn is not None:
        for key, value in data.items():
            if key in _registry() and isinstance(value, dict):
                warn(
                    f"warning: {path} has a top-level [{key}] table, which recfetch ignores; "
                    f"move it under [profiles.NAME.{key}]"
                )
    if warn is not None and _holds_secrets(data):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            warn(
                f"warning: {path} holds secrets and is readable by others "
                f"(mode {mode:04o}); run `chmod 600 {shlex.quote(str(path))}`"
            )
    return data


def _check_shape(path: Path, data: dict[str, Any]) -> None:
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: `profiles` must be a table", hint="see config.example.toml")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: profile {name!r} must be a table of provider tables",
                hint="write [profiles.NAME.PROVIDER] sections",
            )
        for provider, settings in table.items():
            if not isinstance(settings, dict):
                raise ConfigError(
                    f"{path}: profiles.{name}.{provider} must be a table",
                    hint="see config.example.toml",
                )
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: default_profile must be a string")


def _registry() -> Mapping[str, type[Provider]]:
    # Imported when used: the providers import `state`, which imports this module.
    from recfetch.providers import REGISTRY

    return REGISTRY


def _holds_secrets(data: dict[str, Any]) -> bool:
    """Whether any table sets a key declared secret (by its provider, or the destination's
    credentials); `_cmd` keys are not secrets."""
    from recfetch.destinations.settings import SECRETS, TABLE
    from recfetch.providers import info

    # From each provider's info: loading a config file imports no provider module.
    declared = {name: info(name).secret_keys() for name in _registry()}
    declared[TABLE] = SECRETS
    for table in data.get("profiles", {}).values():
        for name, settings in table.items():
            if declared.get(name, frozenset()) & set(settings):
                return True
    return False


def active_profile(cli_value: str | None, data: Mapping[str, Any]) -> tuple[str, str]:
    """--profile, else $RECFETCH_PROFILE, else default_profile, else `default`."""
    if cli_value:
        return cli_value, "option"
    env = os.environ.get("RECFETCH_PROFILE")
    if env:
        return env, "env"
    default = data.get("default_profile")
    if default:
        return str(default), "file"
    return "default", "default"


def profile_table(data: Mapping[str, Any], profile: str, provider: str) -> dict[str, Any]:
    return dict(data.get("profiles", {}).get(profile, {}).get(provider, {}))


def env_name(provider: str, key: str) -> str:
    return f"RECFETCH_{provider.upper()}_{key.upper()}"


def resolve(
    provider: str,
    keys: list[str],
    data: Mapping[str, Any],
    profile: str,
    *,
    cli_values: Mapping[str, str | None] | None = None,
    defaults: Mapping[str, str | None] | None = None,
) -> dict[str, Sourced]:
    """Each key's value with its source. Precedence: option > env > file (> `_cmd`) > default.

    Later sources fill only what earlier ones left empty, so a flag always wins
    and a file is never consulted for what the environment already says.
    """
    table = profile_table(data, profile, provider)
    cli_values = cli_values or {}
    defaults = defaults or {}
    out: dict[str, Sourced] = {}
    for key in keys:
        if cli_values.get(key) not in (None, ""):
            out[key] = Sourced(str(cli_values[key]), "option")
        elif os.environ.get(env_name(provider, key)):
            out[key] = Sourced(os.environ[env_name(provider, key)], "env")
        elif os.environ.get(env_name(provider, key + "_cmd")):
            out[key] = Sourced(None, "cmd:" + os.environ[env_name(provider, key + "_cmd")])
        elif table.get(key) not in (None, ""):
            out[key] = Sourced(str(table[key]), "file")
        elif table.get(key + "_cmd"):
            out[key] = Sourced(None, "cmd:" + str(table[key + "_cmd"]))
        elif defaults.get(key) is not None:
            out[key] = Sourced(defaults[key], "default")
        else:
            out[key] = Sourced(None, "unset")
    return out


def run_secret_command(command: str, *, key: str) -> str:
    """Run a `<key>_cmd` and return its stripped stdout; never echo what it printed."""
    try:
        proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{key}_cmd did not finish within 60 s", hint="check the command") from None
    if proc.returncode != 0:
        raise ConfigError(
            f"{key}_cmd exited with status {proc.returncode}",
            hint=f"run it by hand to see why: {command}",
        )
    value = proc.stdout.strip()
    if not value:
        raise ConfigError(f"{key}_cmd printed nothing", hint=f"check the command: {command}")
    return value


def materialize(resolved: Mapping[str, Sourced], secrets: Collection[str]) -> dict[str, str]:
    """Values with `_cmd` secrets run; the values of the ``secrets`` keys are registered for scrubbing."""
    out: dict[str, str] = {}
    for key, item in resolved.items():
        value = item.value
        if value is None and item.source.startswith("cmd:"):
            value = run_secret_command(item.source[4:], key=key)
        if value is not None:
            if key in secrets:
                register_secret(value)
            out[key] = value
    return out


# ---------------------------------------------------------------------------
# writing


def save(path: Path, data: Mapping[str, Any]) -> None:
    """Write atomically: a 0600 temp file beside the target, then rename (dir 0700).

    The whole file is rewritten from the parsed data: TOML comments are not kept.
    A missing directory is created 0700; an existing one is left as it is, because
    `--config ./x.toml` must not chmod the user's working directory.
    """
    private_dir(path.parent)
    write_private(path, tomli_w.dumps(_drop_none(data)).encode("utf-8"))


def _drop_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


_DOTTED = re.compile(r"^([a-z]+)\.([A-Za-z0-9_]+)$")


def split_dotted(name: str) -> tuple[str, str]:
    """`kazoo.api_key` -> (`kazoo`, `api_key`)."""
    match = _DOTTED.match(name)
    if not match:
        from recfetch.errors import UsageError

        raise UsageError(f"expected PROVIDER.KEY, got {name!r}", hint="for example: kazoo.base_url")
    return match.group(1), match.group(2)


def set_value(path: Path, profile: str, provider: str, key: str, value: str | None) -> bool:
    """Set (or with None, remove) one key of the profile's provider table, keeping comments.

    Returns False when unsetting a key that was not set (nothing is written then).
    """
    from recfetch.config_edit import edit_table

    return edit_table(path, profile, provider, {key: value})


def update_profile(path: Path, profile: str, provider: str, values: Mapping[str, str]) -> None:
    """Save login's settings into the profile's provider table, keeping the rest of the file."""
    from recfetch.config_edit import edit_table

    edit_table(path, profile, provider, dict(values))

