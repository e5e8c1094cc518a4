"""The object store's own settings: standard AWS_* environment, else `[profiles.P.destination]`.

These are never the provider's credentials, and the provider's credentials
never come from here. Per key, the environment wins over the profile's table
(SPEC §3); the table uses the same names in lower case.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recfetch.config import Sourced, profile_table, run_secret_command
from recfetch.redact import register_secret

TABLE = "destination"
"""`[profiles.P.destination]`."""

KEYS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region",
    "aws_default_region",
    "aws_endpoint_url",
    "aws_endpoint_url_s3",
    "aws_profile",
)
"""Settings recfetch passes to the store client; anything else the library reads from its own
standard chain (~/.aws/config, web identity tokens in Kubernetes, instance roles)."""

SECRETS = frozenset({"aws_secret_access_key", "aws_session_token"})
"""The keys whose values are secrets: registered for scrubbing, and they make a readable config
file worth a warning (config.py reads this too)."""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Resolved values (secrets registered for scrubbing); None where neither env nor table says."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


def describe(
    data: Mapping[str, Any], profile: str, environ: Mapping[str, str] | None = None
) -> dict[str, Sourced]:
    """Each key with its source (`env`, `file`, `cmd:...` or `unset`), for `config show`."""
    env = os.environ if environ is None else environ
    table = profile_table(data, profile, TABLE)
    out: dict[str, Sourced] = {}
    for key in KEYS:
        if env.get(key.upper()):
            out[key] = Sourced(env[key.upper()], "env")
        elif table.get(key) not in (None, ""):
            out[key] = Sourced(str(table[key]), "file")
        elif table.get(key + "_cmd"):
            out[key] = Sourced(None, "cmd:" + str(table[key + "_cmd"]))
        else:
            out[key] = Sourced(None, "unset")
    return out


def resolve(data: Mapping[str, Any], profile: str, environ: Mapping[str, str] | None = None) -> StoreSettings:
    """The settings to open the store with; `_cmd` secrets run, every secret registered for scrubbing."""
    values: dict[str, str] = {}
    for key, item in describe(data, profile, environ).items():
        value = item.value
        if value is None and item.source.startswith("cmd:"):
            value = run_secret_command(item.source[4:], key=f"{TABLE}.{key}")
        if value:
            if key in SECRETS:
                register_secret(value)
            values[key] = value
    return StoreSettings(
        access_key_id=values.get("aws_access_key_id"),
        secret_access_key=values.get("aws_secret_access_key"),
        session_token=values.get("aws_session_token"),
        region=values.get("aws_region") or values.get("aws_default_region"),
        endpoint_url=values.get("aws_endpoint_url_s3") or values.get("aws_endpoint_url"),
        profile=values.get("aws_profile"),
    )
