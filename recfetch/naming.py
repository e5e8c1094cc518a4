"""Local file names for recordings: `--name` templates and server-provided names made safe."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePath, PurePosixPath

from recfetch.errors import UsageError
from recfetch.providers.base import Recording

__all__ = [
    "DEFAULT_TEMPLATE",
    "FIELDS",
    "MAX_COMPONENT_BYTES",
    "MAX_FILENAME_BYTES",
    "extension_for",
    "render",
    "sanitize_component",
]

DEFAULT_TEMPLATE = "{date}_{provider}_{id}{ext}"

FIELDS = (
    "provider",
    "profile",
    "id",
    "ref",
    "date",
    "time",
    "started_at",
    "ended_at",
    "year",
    "month",
    "day",
    "ext",
    "call_id",
    "direction",
    "from",
    "to",
    "name",
)
"""Every field a `--name` template may use (SPEC §3, plus ``name``)."""

_DATETIME_FIELDS = frozenset({"started_at", "ended_at"})

MAX_COMPONENT_BYTES = 255
"""The common file-system limit for one path component (ext4, APFS, NTFS in UTF-16 units)."""

MAX_FILENAME_BYTES = MAX_COMPONENT_BYTES - len(".part.meta")
"""The final file name leaves room for the engine's ``.part`` and ``.part.meta`` siblings."""

UNKNOWN = "unknown"

_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_RESERVED = str.maketrans({c: "_" for c in ':*?"<>|/\\'})
_WHITESPACE = re.compile(r"\s+")

_MEDIA_EXTENSIONS = {
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mpeg3": ".mp3",
    "video/mp4": ".mp4",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/m4a": ".m4a",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/vnd.wave": ".wav",
    "video/webm": ".webm",
    "audio/webm": ".webm",
    "audio/aac": ".aac",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "video/quicktime": ".mov",
}


def sanitize_component(name: str, *, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """One safe path component: never a separator, ``..``, control character or hidden file.

    Truncation keeps a short extension and never splits a multibyte character.
    """
    text = unicodedata.normalize("NFC", name)
    text = text.translate(_RESERVED)
    text = _WHITESPACE.sub(" ", text)
    # Cc are C0/C1 controls (NUL, ESC, ...); Cf includes the bidi overrides that can
    # make "evil\u202egpj.exe" display as "evilexe.jpg" in a file manager; Cs are lone
    # UTF-16 surrogates, which no file system name can hold (they cannot be encoded).
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    text = _WHITESPACE.sub(" ", text)  # again: dropping a control can leave two spaces side by side
    # Leading dots would hide the file (and "." / ".." are directory references).
    text = text.lstrip(". ").rstrip(" ")
    text = _truncate(text, max_bytes)
    return text or "_"


def _truncate(text: str, max_bytes: int) -> str:
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    stem, dot, ext = text.rpartition(".")
    suffix = f".{ext}" if dot and stem and _SAFE_EXT.match(f".{ext}") else ""
    if suffix:
        text = stem
    budget = max(0, max_bytes - len(suffix.encode("utf-8")))
    # errors="ignore" drops the tail of a multibyte sequence cut in half.
    cut = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(" ")
    return cut + suffix


UNKNOWN_EXT = ".bin"
"""The extension of a recording whose type is unknown until its bytes arrive."""


def media_extensions() -> set[str]:
    """Every extension a known media type maps to."""
    return set(_MEDIA_EXTENSIONS.values())


def extension_for(recording: Recording, media_type: str | None = None) -> str:
    """The file extension: the server's file name, else the media type, else ``.bin``."""
    if recording.filename:
        suffix = PurePath(recording.filename.replace("\\", "/")).suffix
        if _SAFE_EXT.match(suffix):
            return suffix.lower()
    for candidate in (media_type, recording.media_type):
        if candidate:
            essence = candidate.split(";", 1)[0].strip().lower()
            if essence in _MEDIA_EXTENSIONS:
                return _MEDIA_EXTENSIONS[essence]
    return UNKNOWN_EXT


def render(template: str, recording: Recording, *, ext: str) -> PurePosixPath:
    """The relative path a `--name` template gives for ``recording``.

    ``/`` in the template (including inside a datetime format such as
    ``{started_at:%Y/%m}``) makes folders; ``/`` inside a value never does.
    Raises UsageError for unknown fields or bad formats.
    """
    values = _values(recording, ext)
    components: list[str] = []
    current: list[str] = []

    def boundary() -> None:
        components.append("".join(current))
        current.clear()

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _usage(f"bad --name template {template!r}: {exc}") from None
    for literal, field_name, spec, conversion in parsed:
        _add_literal(literal, current, boundary)
        if field_name is None:
            continue
        if field_name not in values:
            what = "a positional field" if field_name == "" else f"unknown field {{{field_name}}}"
            raise _usage(f"bad --name template: {what}")
        if conversion:
            raise _usage(f"bad --name template: conversion !{conversion} is not supported")
        if spec and ("{" in spec or "}" in spec):
            raise _usage("bad --name template: nested fields are not supported")
        value = values[field_name]
        if field_name in _DATETIME_FIELDS:
            _add_datetime(field_name, value, spec or "%Y%m%dT%H%M%SZ", current, boundary)
            continue
        try:
            text = format(value, spec) if spec else value
        except (TypeError, ValueError) as exc:
            raise _usage(f"bad --name template: {{{field_name}:{spec}}}: {exc}") from None
        current.append(_flatten(text))
    boundary()

    parts = [c for c in components if c.strip()]
    if not parts:
        raise _usage(f"bad --name template {template!r}: it gives an empty file name")
    safe = [sanitize_component(p) for p in parts[:-1]]
    safe.append(sanitize_component(parts[-1], max_bytes=MAX_FILENAME_BYTES))
    return PurePosixPath(*safe)


def _values(recording: Recording, ext: str) -> dict[str, object]:
    started = _utc(recording.started_at)
    ended = _utc(recording.ended_at)
    name = None
    if recording.filename:
        # The whole server-provided name, not its basename: "Weekly sync 11/20.mp3"
        # is a title, and a "/" in it is flattened like any other unsafe character.
        stem, dot, suffix = recording.filename.rpartition(".")
        if not (dot and stem.strip(" ./\\") and _SAFE_EXT.match(f".{suffix}")):
            stem = recording.filename  # ".bashrc" is a name, not an extension
        name = sanitize_component(stem) if stem.strip(" ./\\") else None

    def text(value: object) -> str:
        return UNKNOWN if value is None or value == "" else str(value)

    def part(fmt: str) -> str:
        return started.strftime(fmt) if started else UNKNOWN

    return {
        "provider": text(recording.provider),
        "profile": text(recording.profile),
        "id": text(recording.id),
        "ref": text(recording.ref),
        "date": part("%Y-%m-%d"),
        "time": part("%H%M%S"),
        "started_at": started,
        "ended_at": ended,
        "year": part("%Y"),
        "month": part("%m"),
        "day": part("%d"),
        "ext": ext,
        "call_id": text(recording.call_id),
        "direction": text(recording.direction),
        "from": text(recording.from_),
        "to": text(recording.to),
        "name": text(name),
    }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _add_literal(literal: str, current: list[str], boundary: Callable[[], None]) -> None:
    pieces = literal.split("/")
    for index, piece in enumerate(pieces):
        if index:
            boundary()
        current.append(piece)


def _add_datetime(
    field_name: str,
    value: object,
    spec: str,
    current: list[str],
    boundary: Callable[[], None],
) -> None:
    if not isinstance(value, datetime):
        current.append(UNKNOWN)
        return
    # A "/" in the format is part of the template, so it makes folders; a "/"
    # that strftime itself produces (%D) is part of the value and is flattened.
    for index, piece in enumerate(spec.split("/")):
        if index:
            boundary()
        try:
            current.append(_flatten(value.strftime(piece)))
        except ValueError as exc:
            raise _usage(f"bad --name template: {{{field_name}:{spec}}}: {exc}") from None


def _flatten(value: object) -> str:
    """A value never makes folders: kismet refs are USER/CALL/EGRESS."""
    return str(value).replace("/", "_").replace("\\", "_")


def _usage(message: str) -> UsageError:
    fields = " ".join("{" + f + "}" for f in FIELDS)
    return UsageError(
        f"{message}; valid fields: {fields}",
        hint="datetimes take strftime formats, e.g. {started_at:%Y/%m}",
    )
