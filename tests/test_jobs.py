"""The jobs layer called directly (no CLI): skip rules, sink order, exit codes, lock (SPEC §3, §5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recfetch.errors import ExitCode, LockedError, RecfetchError, TransferError
from recfetch.jobs.batch import SkipReason
from recfetch.jobs.context import JobContext
from recfetch.jobs.options import PullOptions
from recfetch.jobs.pull import PullJob
from recfetch.jobs.sinks import Sink
from recfetch.providers import get_provider
from recfetch.providers.base import Provider, Recording
from recfetch.sandbox import Sandbox
from recfetch.state import Archive, Lock, default_archive_path


@pytest.fixture
def bird(sandbox: Sandbox, tmp_path: Path) -> Iterator[Provider]:
    provider = get_provider("bird")(
        sandbox.profiles()["bird"], profile="sandbox", state_dir=tmp_path / "state"
    )
    yield provider
    provider.close()


def _job(tmp_path: Path, events: list[dict[str, Any]]) -> PullJob:
    return PullJob(JobContext(on_event=events.append), state_dir=tmp_path / "state")


def test_a_pull_job_downloads_then_skips_what_the_archive_holds(bird: Provider, tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    opts = PullOptions(output_dir=tmp_path / "out", manifest=tmp_path / "m.jsonl", jobs=4)
    job = _job(tmp_path, events)
    first = job.run(bird, opts, job.sinks(bird, opts))
    downloaded = [e for e in events if e["outcome"] == "downloaded"]
    assert first.exit_code == ExitCode.OK and downloaded
    assert len(tmp_path.joinpath("m.jsonl").read_text().splitlines()) == len(downloaded)

    events.clear()
    again = job.run(bird, PullOptions(**{**opts.__dict__, "fail_if_empty": True}), job.sinks(bird, opts))
    reasons = {e["reason"] for e in events if e["path"]}
    assert reasons == {SkipReason.IN_ARCHIVE.value}
    assert again.batch.downloaded == 0 and again.exit_code == ExitCode.NOTHING_NEW
    assert again.batch.summary()["exit_code"] == int(again.exit_code)


class _Probe(Sink):
    """Notes, at its place in the commit order, whether the manifest already has the line."""

    def __init__(self, stage: int, manifest: Path, seen: list[str]) -> None:
        self.stage = stage  # type: ignore[misc]
        self.manifest = manifest
        self.seen = seen

    def commit(self, recording: Recording, res: Any) -> None:
        self.seen.append(f"{self.stage}:{recording.ref in self.manifest.read_text()}")


def test_sinks_commit_in_order_and_the_archive_row_comes_last(bird: Provider, tmp_path: Path) -> None:
    class Refuse(Sink):
        stage = 25  # after manifest (10) and metadata (20), before the archive (30)

        def commit(self, recording: Recording, res: Any) -> None:
            raise TransferError("planted sidecar failure")

    events: list[dict[str, Any]] = []
    job = _job(tmp_path, events)
    opts = PullOptions(output_dir=tmp_path / "out", manifest=tmp_path / "m.jsonl", write_metadata=True)
    seen: list[str] = []
    sinks = job.sinks(bird, opts)
    sinks.add(_Probe(15, tmp_path / "m.jsonl", seen))
    sinks.add(Refuse())
    result = job.run(bird, opts, sinks)
    failed = [e for e in events if e["outcome"] == "failed"]
    assert failed and all("planted sidecar failure" in e["reason"] for e in failed)
    assert seen and set(seen) == {"15:True"}  # the manifest line exists before later sinks run
    assert result.exit_code == ExitCode.TRANSFER
    # Nothing reached the archive, so no later run trusts these files as done.
    with Archive(default_archive_path(tmp_path / "state")) as archive:
        assert archive.entries() == []
    sidecars = list((tmp_path / "out").rglob("*.json"))
    assert sidecars and all(json.loads(p.read_text())["provider"] == "bird" for p in sidecars)


def test_a_second_pull_job_for_the_same_profile_is_locked_out(bird: Provider, tmp_path: Path) -> None:
    holder = Lock(tmp_path / "state", "sandbox", "bird")
    holder.acquire()
    try:
        job = _job(tmp_path, [])
        opts = PullOptions(output_dir=tmp_path / "out")
        with pytest.raises(LockedError) as caught:
            job.run(bird, opts, job.sinks(bird, opts))
        assert isinstance(caught.value, RecfetchError) and caught.value.exit_code == ExitCode.LOCKED
        assert not (tmp_path / "out").exists()
    finally:
        holder.release()


def test_the_in_run_duplicate_memory_is_bounded() -> None:
    from recfetch.jobs.batch import SEEN_LIMIT, Planner, Recent

    seen = Recent(3)
    for i in range(10):
        seen.put(f"r{i}", i)
    assert len(seen) == 3 and "r9" in seen and "r6" not in seen and seen.get("r8") == 8
    seen.put("r7", 7)  # re-adding refreshes it
    seen.put("r10", 10)
    assert "r7" in seen and "r8" not in seen
    planner = Planner(None, PullOptions(), None)  # type: ignore[arg-type]
    assert planner.seen_refs.limit == planner.seen_paths.limit == SEEN_LIMIT


def test_transfers_start_while_the_listing_is_still_streaming(bird: Provider, tmp_path: Path) -> None:
    """The batch does not wait for the last page: a file finishes while the listing is held open."""
    import contextlib
    import threading

    from recfetch.download import NullReporter

    finished = threading.Event()

    class Watch(NullReporter):
        def file_finished(self, key: str, ok: bool) -> None:
            finished.set()

    listing = bird.iter_recordings
    held: list[bool] = []

    def held_open(query: Any) -> Any:
        records = iter(listing(query))
        for record in records:
            yield record
            if record.downloadable:
                break
        held.append(finished.wait(30))  # the rest of the listing only after a transfer finished
        yield from records

    bird.iter_recordings = held_open  # type: ignore[method-assign]
    events: list[dict[str, Any]] = []
    ctx = JobContext(on_event=events.append, progress=lambda: contextlib.nullcontext(Watch()))
    job = PullJob(ctx, state_dir=tmp_path / "state")
    opts = PullOptions(output_dir=tmp_path / "out", jobs=2)
    result = job.run(bird, opts, job.sinks(bird, opts))
    assert held == [True]
    assert result.exit_code == ExitCode.OK and len([e for e in events if e["outcome"] == "downloaded"]) > 1
