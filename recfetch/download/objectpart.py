"""The object-store seam of the engine: `ObjectPart` stands where the `.part` file stands.

With an ``s3://`` destination the engine runs its usual loop (just-in-time
minting, Range resume within the run, retries, size and checksum checks), but
the bytes go into an `ObjectUpload` instead of a local ``.part``: the object
becomes visible only at `commit`, after the engine's checks, carrying the
`sha256`, `size`, `provider` and `ref` metadata; `close` without a commit
aborts the upload. Paths handed to the engine are keys relative to the
destination's prefix.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from recfetch.download.failures import Fail
from recfetch.errors import RecfetchError
from recfetch.providers.base import Recording

if TYPE_CHECKING:
    from recfetch.destinations import ObjectStore, Proof


class _HasMediaType(Protocol):
    media_type: str | None


def stage_id(ref: str) -> str:
    """The staging name of a recording's upload: one per ref, so shards never share one."""
    return hashlib.sha256(ref.encode("utf-8")).hexdigest()[:40]


def store_key(store: ObjectStore, path: PurePath) -> str:
    return store.key(path.as_posix())


def proven(store: ObjectStore, recording: Recording, path: PurePosixPath) -> tuple[Proof | None, bool]:
    """(what HEAD found at the key, whether it proves this recording is already there)."""
    proof = store.head(store_key(store, path))
    if proof is None:
        return None, False
    return proof, proof.proves(recording.ref, recording.size_bytes)


class ObjectPart:
    """The calls the engine makes on a `PartFile`, answered by a multipart upload."""

    fd = -1
    """No local file: the engine's cleanup of an empty .part does not apply."""

    def __init__(self, store: ObjectStore, recording: Recording, job: _HasMediaType) -> None:
        self.store = store
        self.recording = recording
        self.job = job
        self.upload = store.upload(
            stage_id(recording.ref), size_hint=recording.size_bytes, content_type=recording.media_type
        )
        self.committed = False

    @property
    def size(self) -> int:
        return self.upload.size

    def write(self, data: bytes | memoryview) -> None:
        if self.job.media_type and self.upload.parts_uploaded == 0:
            self.upload.content_type = self.job.media_type
        try:
            self.upload.write(data)
        except RecfetchError as exc:
            raise Fail(exc, "store write failed") from None

    def flush(self) -> None:
        return None

    def truncate(self) -> None:
        self.upload.truncate()

    def digests(self) -> dict[str, str]:
        return self.upload.digests()

    def commit(self, final: PurePath) -> None:
        """``final`` is the key relative to the prefix; the engine holds it as a local-style `Path`."""
        if self.job.media_type and self.upload.parts_uploaded == 0:
            self.upload.content_type = self.job.media_type
        metadata = {"provider": self.recording.provider, "ref": self.recording.ref}
        try:
            self.upload.commit(store_key(self.store, final), metadata)
        except RecfetchError as exc:
            raise Fail(exc, "store write failed") from None
        self.committed = True

    def close(self) -> None:
        if not self.committed:
            self.upload.abort()
