"""One recording streamed into the store: constant memory, verified, visible only when complete.

S3 fixes an object's user metadata when its upload starts, but the SHA-256 of a
streamed recording is known only at its end. So:

- a recording that fits in one part (up to `PART_SIZE`) is written with a
  single PUT that carries the metadata: atomic by nature;
- a larger one goes as a multipart upload to a staging key under
  ``PREFIX/.recfetch/uploads/`` (never a final key); after the byte count and
  SHA-256 are checked it is completed, copied server-side to its final key with
  the metadata (`sha256`, `size`, `provider`, `ref`), and the staging object is
  deleted.

No part is held in memory: each fills an anonymous temporary file (see
`spool`) and is sent from there, up to `PARTS_IN_FLIGHT` per recording while the
next one fills, and never more than `spool.SENDS_AT_ONCE` sends in the whole
process. Memory is therefore the same at any ``--jobs`` and any size; the disk
holds at most ``(jobs + SENDS_AT_ONCE) * PART_SIZE`` bytes of spooled parts.

`abort` (failure, SIGINT/SIGTERM) aborts the multipart upload; an upload left
behind by a killed process is aborted when the same recording is next uploaded,
which then starts over (an upload is restarted, not resumed, across runs: the
running SHA-256 cannot be carried from one process to the next).
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recfetch.destinations.spool import LANE, Spooled
from recfetch.errors import IntegrityError

if TYPE_CHECKING:
    from recfetch.destinations.objectstore import ObjectStore

MIB = 1024 * 1024
PART_SIZE = 6 * MIB
"""Bytes per part; S3 parts must be at least 5 MiB (but the last)."""
PARTS_IN_FLIGHT = 2
"""Parts uploading at once per recording (a store answers one part at a time slowly)."""
MAX_PARTS = 9_000
"""S3 allows 10,000 parts; the part size grows for huge recordings to stay below."""
COPY_PART = 1024 * MIB
SINGLE_COPY_LIMIT = 5 * 1024 * MIB - 1


def part_size_for(size_hint: int | None) -> int:
    if not size_hint or size_hint <= PART_SIZE * MAX_PARTS:
        return PART_SIZE
    return -(-size_hint // MAX_PARTS // MIB) * MIB


class ObjectUpload:
    """Used by one thread: `write` bytes, then `commit(final_key, metadata)` or `abort()`."""

    def __init__(self, store: ObjectStore, stage_key: str, *, spool: Path,
                 size_hint: int | None = None, content_type: str | None = None) -> None:
        self.store = store
        self.stage_key = stage_key
        self.spool = spool
        self.content_type = content_type or "application/octet-stream"
        self.part_size = part_size_for(size_hint)
        self._part: Spooled | None = None
        """The part filling now, in its own anonymous file (None until a byte arrives)."""
        self._sha = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._staged = False
        self._in_flight: deque[Future[dict[str, Any]]] = deque()
        self._spare: list[Spooled] = []
        """Files of parts already sent, to fill again (closed when the upload ends)."""
        self._spare_lock = threading.Lock()
        self._ended = False
        self.committed_key: str | None = None

    @property
    def size(self) -> int:
        """Bytes received so far (uploaded or spooled)."""
        return self._size

    @property
    def parts_uploaded(self) -> int:
        """Parts sent or being sent."""
        return len(self._parts) + len(self._in_flight)

    def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        view = memoryview(data)
        while view:
            part = self._part or self._fresh_part()
            taken = view[: self.part_size - part.length]
            part.write(taken)
            view = view[len(taken):]
            if part.length == self.part_size:
                self._send_part()
        self._sha.update(data)
        self._size += len(data)

    def _fresh_part(self) -> Spooled:
        with self._spare_lock:
            self._ended = False
            spare = self._spare.pop() if self._spare else None
        if spare is not None:
            spare.reset()
        self._part = spare or Spooled(self.spool)
        return self._part

    def _recycle(self, part: Spooled) -> None:
        """A sent part's file: kept for the next part, or closed if the upload has ended."""
        with self._spare_lock:
            if not self._ended:
                self._spare.append(part)
                return
        part.close()

    def _close_files(self) -> None:
        """Close every file of this upload (it ended: committed, failed or aborted)."""
        part, self._part = self._part, None
        with self._spare_lock:
            self._ended = True
            spares, self._spare = self._spare, []
        for spooled in [*spares, *([part] if part is not None else [])]:
            spooled.close()

    def sha256(self) -> str:
        return self._sha.hexdigest()

    def digests(self) -> dict[str, str]:
        return {"sha256": self.sha256()}

    def truncate(self) -> None:
        """Start over from byte 0 (the source restarted): drop everything sent so far."""
        self.abort()
        self._sha = hashlib.sha256()
        self._size = 0

    # -- multipart ------------------------------------------------------------------

    def _begin(self) -> None:
        client, bucket = self.store.client, self.store.url.bucket
        try:
            self._clear_leftovers()
            answer = client.create_multipart_upload(
                Bucket=bucket, Key=self.stage_key, ContentType=self.content_type
            )
        except Exception as exc:
            raise self.store.error(exc, "write to", self.stage_key) from None
        self._upload_id = str(answer["UploadId"])
        self._parts = []

    def _clear_leftovers(self) -> None:
        """Abort what a killed run left under this staging key (restart, not resume)."""
        client, bucket = self.store.client, self.store.url.bucket
        listing = client.list_multipart_uploads(Bucket=bucket, Prefix=self.stage_key)
        for upload in listing.get("Uploads") or []:
            if upload.get("Key") == self.stage_key:
                client.abort_multipart_upload(Bucket=bucket, Key=self.stage_key, UploadId=upload["UploadId"])
        if self.store.head(self.stage_key) is not None:
            client.delete_object(Bucket=bucket, Key=self.stage_key)

    def _send_part(self) -> None:
        """Hand the filled part to the lane (waiting while too many parts are in flight).

        From here the part's file belongs to the send, which closes it when done.
        """
        part, self._part = self._part, None
        if part is None:
            return
        try:
            if self._upload_id is None:
                self._begin()
            while len(self._in_flight) >= PARTS_IN_FLIGHT:
                self._parts.append(self._in_flight.popleft().result())
        except BaseException:
            part.close()
            raise
        number, upload_id = len(self._parts) + len(self._in_flight) + 1, self._upload_id
        self._in_flight.append(
            LANE.submit(lambda: self._upload_part(part, number, upload_id), lambda: self._recycle(part))
        )

    def _upload_part(self, part: Spooled, number: int, upload_id: str | None) -> dict[str, Any]:
        try:
            part.seek(0)
            answer = self.store.client.upload_part(
                Bucket=self.store.url.bucket, Key=self.stage_key, UploadId=upload_id,
                PartNumber=number, Body=part, ContentLength=part.length,
            )
        except Exception as exc:
            raise self.store.error(exc, "write to", self.stage_key) from None
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _settle(self) -> None:
        """Wait for every part in flight; a failure is raised here."""
        while self._in_flight:
            self._parts.append(self._in_flight.popleft().result())

    def _drain(self) -> None:
        """Wait for every send in flight, ignoring failures; drop the part filling now."""
        while self._in_flight:
            future = self._in_flight.popleft()
            try:
                future.result()
            except BaseException:
                pass
        self._close_files()

    # -- finishing ------------------------------------------------------------------

    def commit(self, final_key: str, metadata: dict[str, str], *, expected_size: int | None = None) -> None:
        """Check count and SHA-256, then make the object visible at ``final_key`` with ``metadata``.

        ``metadata`` gets `sha256` and `size` from what was actually streamed; a
        caller-supplied `sha256` (the provider's checksum) must match it.
        """
        digest = self.sha256()
        if expected_size is not None and expected_size != self._size:
            raise IntegrityError(f"received {self._size} bytes, expected {expected_size}")
        claimed = metadata.get("sha256")
        if claimed and claimed.lower() != digest:
            raise IntegrityError(f"SHA-256 of the received bytes is {digest}, expected {claimed}")
        meta = {**metadata, "sha256": digest, "size": str(self._size)}
        if self._upload_id is None:
            self._put_whole(final_key, meta)
        else:
            self._complete(final_key, meta)
        self.committed_key = final_key

    def _put_whole(self, final_key: str, meta: dict[str, str]) -> None:
        part, self._part = self._part, None

        def put() -> None:
            if part is not None:
                part.seek(0)
            self.store.client.put_object(
                Bucket=self.store.url.bucket, Key=final_key, Body=part if part is not None else b"",
                ContentLength=self._size, ContentType=self.content_type, Metadata=meta,
            )

        try:
            LANE.call(put)
        except Exception as exc:
            raise self.store.error(exc, "write to", final_key) from None
        finally:
            if part is not None:
                part.close()

    def _complete(self, final_key: str, meta: dict[str, str]) -> None:
        client, bucket, stage = self.store.client, self.store.url.bucket, self.stage_key
        self._send_part()
        self._settle()
        self._close_files()
        try:
            client.complete_multipart_upload(
                Bucket=bucket, Key=stage, UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except Exception as exc:
            raise self.store.error(exc, "write to", stage) from None
        self._upload_id = None
        self._staged = True
        staged = self.store.head(stage)
        if staged is None or staged.length != self._size:
            got = "nothing" if staged is None else f"{staged.length} bytes"
            raise IntegrityError(f"the store holds {got} after uploading {self._size} bytes")
        self._copy(final_key, meta)
        self._drop_stage()

    def _copy(self, final_key: str, meta: dict[str, str]) -> None:
        """Server-side copy that sets the metadata; large objects are copied in parts."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=SINGLE_COPY_LIMIT, multipart_chunksize=COPY_PART, use_threads=False
        )
        try:
            self.store.client.copy(
                {"Bucket": self.store.url.bucket, "Key": self.stage_key},
                self.store.url.bucket, final_key,
                ExtraArgs={"Metadata": meta, "MetadataDirective": "REPLACE",
                           "ContentType": self.content_type},
                Config=config,
            )
        except Exception as exc:
            raise self.store.error(exc, "write to", final_key) from None

    def _drop_stage(self) -> None:
        if not self._staged:
            return
        try:
            self.store.client.delete_object(Bucket=self.store.url.bucket, Key=self.stage_key)
        except Exception as exc:
            raise self.store.error(exc, "delete", self.stage_key) from None
        self._staged = False

    def abort(self) -> None:
        """Abort the multipart upload and drop a staged copy; never raises (runs on error paths)."""
        client, bucket = self.store.client, self.store.url.bucket
        self._drain()
        upload_id, self._upload_id = self._upload_id, None
        self._parts = []
        if upload_id is not None:
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=self.stage_key, UploadId=upload_id)
            except Exception:
                pass  # a later upload of this recording aborts it (see _clear_leftovers)
        if self._staged:
            try:
                client.delete_object(Bucket=bucket, Key=self.stage_key)
                self._staged = False
            except Exception:
                pass
