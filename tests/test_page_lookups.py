"""A pull looks up the archive a listing page at a time where the provider knows the page
(RealtimeKit), with the same answers as one lookup per recording (issue 10: nothing-new pull)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recfetch.jobs.batch import SkipReason
from recfetch.jobs.context import JobContext
from recfetch.jobs.options import PullOptions
from recfetch.jobs.pull import PullJob
from recfetch.providers import get_provider
from recfetch.providers.base import Provider
from recfetch.sandbox import Sandbox
from recfetch.state import Archive, ArchiveRow


def test_get_many_answers_as_get_does_for_each_ref(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a.sqlite3")
    try:
        refs = [f"r{i}" for i in range(1203)]  # more than one query's worth
        archive.add_rows([ArchiveRow("p", "realtimekit", r, f"/x/{r}", 1, None, None) for r in refs[::2]])
        archive.add_rows([ArchiveRow("other", "realtimekit", "r1", "/x/other", 1, None, None)])
        found = archive.get_many("realtimekit", "p", refs)
        assert set(found) == set(refs[::2])
        for ref in refs:
            assert found.get(ref) == archive.get("realtimekit", "p", ref)
        assert archive.get_many("realtimekit", "p", []) == {}
    finally:
        archive.close()


@pytest.fixture
def rtk(tmp_path: Path) -> Iterator[Provider]:
    with Sandbox(recordings=250, providers=["realtimekit"]) as box:
        provider = get_provider("realtimekit")(
            box["realtimekit"].profile(), profile="sandbox", state_dir=tmp_path / "state"
        )
        yield provider
        provider.close()


def test_a_nothing_new_pull_asks_the_archive_once_per_page_and_still_checks_every_file(
    rtk: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[dict[str, Any]] = []
    job = PullJob(JobContext(on_event=events.append), state_dir=tmp_path / "state")
    opts = PullOptions(output_dir=tmp_path / "out", jobs=4)
    first = job.run(rtk, opts, job.sinks(rtk, opts))
    downloaded = [e for e in events if e["outcome"] == "downloaded"]
    assert first.batch.downloaded == len(downloaded) > 100  # several listing pages of files
    gone = Path(downloaded[-1]["path"])
    gone.unlink()  # its archive row must not be trusted: the file is fetched again

    events.clear()
    single: list[str] = []
    pages: list[int] = []
    get, get_many = Archive.get, Archive.get_many

    def one(self: Archive, provider: str, profile: str, ref: str) -> Any:
        single.append(ref)
        return get(self, provider, profile, ref)

    def many(self: Archive, provider: str, profile: str, refs: list[str]) -> Any:
        pages.append(len(refs))
        return get_many(self, provider, profile, refs)

    monkeypatch.setattr(Archive, "get", one)
    monkeypatch.setattr(Archive, "get_many", many)
    again = job.run(rtk, opts, job.sinks(rtk, opts))
    assert single == [] and len(pages) >= 2 and sum(pages) >= len(downloaded)
    assert again.batch.downloaded == 1 and [e["path"] for e in events if e["outcome"] == "downloaded"] == [
        str(gone)
    ]
    skipped = {e["reason"] for e in events if e["outcome"] == "skipped" and e["path"]}
    assert skipped == {SkipReason.IN_ARCHIVE.value}
    assert rtk.on_page is None  # the hook belongs to the batch that set it
