"""Where a run's files go: a local folder, or an object store (SPEC §3 "Destinations").

The batch, the sinks and the engine ask `Place` instead of touching paths:
the target of a recording, whether it is already there, and the text a
manifest line, an archive row or an event shows for it. With ``-o
s3://BUCKET/PREFIX`` a target is a key relative to the prefix (the engine's
object-store seam takes it as such) and its text is the object URL.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from recfetch import naming
from recfetch.providers.base import Recording

if TYPE_CHECKING:  # the object store's modules are imported by a run that writes to one
    from recfetch.destinations import ObjectStore, StoreSettings, StoreURL

_MANGLED_URL = re.compile(r"^(s3|gs|az|abfs|abfss|azure|gcs|r2):/(?!/)", re.I)
"""`Path("s3://b/p")` is `s3:/b/p`: the CLI's path type folds the double slash."""


def store_url_of(output_dir: Path | str) -> StoreURL | None:
    """The object-store URL ``-o`` names, or None for a folder."""
    text = str(output_dir)
    match = _MANGLED_URL.match(text)
    if match:
        text = f"{match.group(1)}://{text[match.end():]}"
    if "://" not in text:
        return None
    from recfetch.destinations import StoreURL

    return StoreURL.parse(text)


class Place:
    """One run's destination."""

    def __init__(self, output_dir: Path, store: ObjectStore | None = None) -> None:
        self.output_dir = output_dir
        self.store = store

    @classmethod
    def open(cls, output_dir: Path, settings: Callable[[], StoreSettings], *, jobs: int) -> Place:
        url = store_url_of(output_dir)
        if url is None:
            return cls(output_dir)
        from recfetch.destinations import ObjectStore

        return cls(output_dir, ObjectStore(url, settings(), jobs=jobs))

    def target(self, template: str, recording: Recording) -> Path:
        """Where ``recording`` goes: under the folder, or (store) a key relative to the prefix."""
        ext = naming.extension_for(recording, recording.media_type)
        relative = Path(naming.render(template, recording, ext=ext))
        return relative if self.store is not None else self.output_dir / relative

    def location(self, path: Path | str) -> str:
        """What a manifest line, archive row or event says: an absolute path, or the object URL."""
        if self.store is None:
            return str(Path(path).resolve())
        text = Path(path).as_posix() if isinstance(path, Path) else path
        match = _MANGLED_URL.match(text)
        if match:
            return f"{match.group(1)}://{text[match.end():]}"
        if text.startswith("s3://"):
            return text
        return self.store.object_url(self.store.key(text))

    def key_of(self, location: str) -> str:
        """The object key of a location this place produced."""
        assert self.store is not None
        bucket_and_key = self.location(location).removeprefix("s3://")
        return bucket_and_key.partition("/")[2]

    def holds(self, location: str, recording: Recording, *, sha256: str | None) -> bool:
        """Is the recording still there: the file exists, or the object's metadata proves it."""
        if self.store is None:
            return _exists(location)
        proof = self.store.head(self.key_of(location))
        return proof is not None and proof.proves(recording.ref, recording.size_bytes, sha256)


def _exists(location: str) -> bool:
    """`Path(location).exists()` without building a Path: a nothing-new pull asks it for every
    archived recording. Like it, an error other than "not there" is raised, not taken as missing."""
    try:
        os.stat(location or ".")  # as Path("") is "."
    except OSError as exc:
        if exc.errno in _MISSING:
            return False
        raise
    except ValueError:  # an embedded NUL
        return False
    return True


_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


class StoreWatermarks:
    """`--incremental` watermarks in the bucket (``PREFIX/.recfetch/watermarks/``): pods are ephemeral.

    Same interface and JSON as `recfetch.state.Watermarks`; one PUT replaces a watermark whole.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def _name(profile: str, provider: str) -> str:
        return f"watermarks/{quote(profile, safe='')}.{quote(provider, safe='')}.json"

    def get(self, profile: str, provider: str) -> datetime | None:
        raw = self.store.read_state(self._name(profile, provider))
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(str(json.loads(raw)["until"]).replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError):
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def set(self, profile: str, provider: str, until: datetime) -> None:
        payload = {
            "profile": profile,
            "provider": provider,
            "until": until.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        self.store.write_state(self._name(profile, provider), json.dumps(payload).encode("utf-8"))
