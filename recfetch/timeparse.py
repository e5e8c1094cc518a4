"""`--since/--until` values: RFC 3339, a local date, or a relative age like `7d`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recfetch.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_EPOCH = re.compile(r"^\d{9,14}(\.\d+)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
HELP = "use RFC 3339 (2025-11-20T14:00:00Z), a date (2025-11-20) or an age (90m, 12h, 7d)"


def zone(name: str | None) -> tzinfo:
    """--tz: an IANA zone name, `UTC`, or None for the local zone."""
    if not name:
        local = datetime.now().astimezone().tzinfo
        return local or UTC
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}", hint="use an IANA name such as Europe/Rome") from None


def parse_duration(value: str, *, flag: str = "--overlap") -> timedelta:
    match = _RELATIVE.match(value.strip().lower())
    if not match:
        raise UsageError(f"cannot read {flag} {value!r}", hint="use a duration such as 90m, 12h or 1d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_time(
    value: str, *, tz: str | None = None, now: datetime | None = None, flag: str = "--since"
) -> datetime:
    """Resolve ``value`` to an aware UTC datetime."""
    text = value.strip()
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text.lower())
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise UsageError(f"cannot read {flag} {value!r}", hint=HELP) from None
        local = datetime(day.year, day.month, day.day, tzinfo=zone(tz))
        return local.astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"cannot read {flag} {value!r}", hint=HELP) from None
    if parsed.tzinfo is None:
        raise UsageError(f"{flag} {value!r} has no UTC offset", hint="add Z or an offset such as +02:00")
    return parsed.astimezone(UTC)


def parse_provider_time(value: object) -> datetime | None:
    """Be liberal with what providers send: ISO strings with or without Z, epoch numbers.

    Epoch values may be seconds or milliseconds, as numbers or numeric strings; garbage
    gives None (an unknown time), never an exception.
    """
    if type(value) is str and value[4:5] == "-" and not value.startswith("0001-01-01"):
        # The usual case, an ISO date-time as sent (never an epoch number): read as it is, with
        # its Z; anything this does not read (spaces around it...) takes the general path below.
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is UTC else _utc(parsed)  # a Z: UTC already (no call)
    if value is None or isinstance(value, bool) or value in ("", 0):
        return None
    if isinstance(value, str) and _EPOCH.match(value.strip()):
        value = float(value)
    if isinstance(value, int | float):
        seconds = float(value)
        if abs(seconds) >= 1e11:  # milliseconds: 1e11 s is the year 5138
            seconds /= 1000.0
        if seconds <= 0:
            return None
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return _utc(parsed)


def _utc(parsed: datetime) -> datetime:
    """A provider's time in UTC; one without an offset is taken as UTC."""
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
