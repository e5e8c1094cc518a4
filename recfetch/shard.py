"""Splitting one account across N machines (SPEC §9): a fixed partition of refs.

The partition depends only on the ref string, so every machine, Python version
and recfetch version puts a recording in the same shard: the first 8 bytes of
SHA-256 of the UTF-8 ref, read big-endian, modulo N (never Python's `hash()`,
which is salted per process).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from recfetch.errors import UsageError

INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes for each pod of an Indexed Job: 0 .. completions-1."""

_SHARD = re.compile(r"^\s*(\d+|auto)\s*/\s*(\d+)\s*$")


def shard_of(ref: str, n: int) -> int:
    """The shard (0 .. n-1) that ``ref`` belongs to."""
    if n < 1:
        raise ValueError("the number of shards must be at least 1")
    digest = hashlib.sha256(ref.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``: takes the refs with ``shard_of(ref, count) == index``."""

    index: int
    count: int

    def takes(self, ref: str) -> bool:
        return shard_of(ref, self.count) == self.index

    @property
    def label(self) -> str:
        """`2of8`: a file-name-safe tag for the shard's lock, watermark and archive."""
        return f"{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """`I/N` with 0 <= I < N, or `auto/N` reading $JOB_COMPLETION_INDEX; anything else is exit 2."""
    env = os.environ if environ is None else environ
    match = _SHARD.match(text)
    if not match:
        raise UsageError(
            f"--shard {text!r} is not I/N",
            hint="write it as I/N with 0 <= I < N, e.g. --shard 0/4, or auto/N inside an Indexed Job",
        )
    count = int(match.group(2))
    if count < 1:
        raise UsageError(f"--shard {text!r}: N must be at least 1", hint="e.g. --shard 0/4")
    if match.group(1) == "auto":
        raw = env.get(INDEX_ENV)
        if raw is None or raw.strip() == "":
            raise UsageError(
                f"--shard auto/{count} needs ${INDEX_ENV}, which is not set",
                hint=f"run it in a Kubernetes Indexed Job, or set {INDEX_ENV} or pass --shard I/{count}",
            )
        if not raw.strip().isdigit() or int(raw) >= count:
            raise UsageError(
                f"--shard auto/{count}: ${INDEX_ENV}={raw!r} is not an index from 0 to {count - 1}",
                hint=f"set the job's completions to {count}, or pass --shard I/{count}",
            )
        return Shard(int(raw), count)
    index = int(match.group(1))
    if index >= count:
        raise UsageError(
            f"--shard {text!r}: the index must be below {count}",
            hint=f"shards are numbered 0 to {count - 1}",
        )
    return Shard(index, count)
