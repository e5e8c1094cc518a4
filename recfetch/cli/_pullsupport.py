"""Archive, manifest, lock and watermark wiring for download and pull (extended by issue 4)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from recfetch.batch import BatchOptions, BatchResult
from recfetch.providers.base import ListQuery, Provider


@contextmanager
def extras(
    rt: Any,
    provider: Provider,
    opts: BatchOptions,
    *,
    archive: Path | None,
    no_archive: bool,
    manifest: Path | None,
    write_metadata: bool,
    log_file: Path | None,
    command: str,
) -> Iterator[None]:
    yield


@dataclass
class PullSession:
    query: ListQuery

    def finish(self, result: BatchResult) -> None:
        return None


@contextmanager
def pull_session(
    rt: Any,
    provider: Provider,
    opts: BatchOptions,
    query: ListQuery,
    *,
    archive: Path | None,
    no_archive: bool,
    manifest: Path | None,
    write_metadata: bool,
    log_file: Path | None,
    incremental: bool,
    overlap: str,
    delete_after: bool,
    yes: bool,
    explicit_window: bool,
    started: datetime,
) -> Iterator[PullSession]:
    with extras(
        rt,
        provider,
        opts,
        archive=archive,
        no_archive=no_archive,
        manifest=manifest,
        write_metadata=write_metadata,
        log_file=log_file,
        command="pull",
    ):
        yield PullSession(query)
