"""Nothing lost across runs: path ownership, proof of "already present", the commit journal (SPEC §3)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from recfetch.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent


def files(res: Any) -> list[dict[str, Any]]:
    return [e for e in res.jsonl() if e.get("type") == "file"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive_rows() -> dict[str, tuple[str, str]]:
    db = Path(os.environ["RECFETCH_STATE_DIR"]) / "archive.sqlite3"
    with sqlite3.connect(db) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT ref, path, sha256 FROM downloads")}


# ---------------------------------------------------------------------------
# #2: a path belongs to one recording, across runs


@pytest.mark.parametrize("name", ["kismet", "realtimekit"])  # no size reported / size reported
def test_a_template_mapping_two_recordings_to_one_path_never_overwrites_across_runs(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out"
    args = (name, "pull", "-o", str(out), "--name", "same{ext}", "--jsonl")
    first = cli(*args)
    assert first.exit_code == 0, first.output
    before = {e["ref"]: Path(e["path"]) for e in files(first) if e["outcome"] == "downloaded"}
    hashes = {ref: sha(path) for ref, path in before.items()}
    assert len(set(before.values())) == len(before) > 1  # one run: distinct paths already

    standin = sandbox_profile[name]
    new_ref = standin.add_recording()
    second = cli(*args)
    assert second.exit_code == 0, second.output
    (event,) = [e for e in files(second) if e["outcome"] == "downloaded"]
    assert event["ref"].endswith(new_ref) and Path(event["path"]) not in before.values()
    assert sha(Path(event["path"])) == event["sha256"]
    assert {ref: sha(path) for ref, path in before.items()} == hashes  # nothing overwritten

    # --overwrite replaces each recording's own file only, at its own path.
    third = cli(*args, "--overwrite")
    assert third.exit_code == 0, third.output
    again = {e["ref"]: Path(e["path"]) for e in files(third) if e["outcome"] == "downloaded"}
    assert again == {**before, event["ref"]: Path(event["path"])}
    assert {ref: sha(path) for ref, path in before.items()} == hashes


def test_a_file_the_archive_gives_to_another_recording_is_not_already_present(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = cli("kismet", "pull", "-o", str(out), "--name", "{provider}{ext}", "--jsonl", "--max-files", "1")
    assert first.exit_code == 0, first.output
    (owner,) = [e for e in files(first) if e["outcome"] == "downloaded"]
    second = cli("kismet", "pull", "-o", str(out), "--name", "{provider}{ext}", "--jsonl")
    assert second.exit_code == 0, second.output
    present = [e for e in files(second) if e["reason"] == "already present"]
    assert present == []  # before: every other recording was "already present" forever
    downloaded = [e for e in files(second) if e["outcome"] == "downloaded"]
    assert downloaded and all(e["path"] != owner["path"] for e in downloaded)
    assert sha(Path(owner["path"])) == owner["sha256"]


# ---------------------------------------------------------------------------
# #5: "already present" needs proof


def _planned_paths(cli: Any, name: str, out: Path, *extra: str) -> dict[str, Path]:
    res = cli(name, "pull", "-o", str(out), "--dry-run", "--jsonl", "--no-archive", *extra)
    assert res.exit_code == 0, res.output
    return {e["ref"]: Path(e["path"]) for e in files(res) if e["reason"] == "dry run: would download"}


def test_without_a_size_an_unrecorded_or_empty_file_is_not_already_present(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    planned = _planned_paths(cli, "bird", out)
    (empty_ref, empty), (other_ref, other) = sorted(planned.items())[:2]
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_bytes(b"")
    other.write_bytes(b"somebody else's notes")
    res = cli("bird", "pull", "-o", str(out), "--jsonl", "--no-archive")
    assert res.exit_code == 0, res.output
    got = {e["ref"]: e for e in files(res)}
    for ref, planted in ((empty_ref, empty), (other_ref, other)):
        assert got[ref]["outcome"] == "downloaded", got[ref]
        saved = Path(got[ref]["path"])
        assert saved != planted and saved.read_bytes() == sandbox_profile["bird"].content(ref)
    assert empty.read_bytes() == b"" and other.read_bytes() == b"somebody else's notes"


def test_a_wrong_size_file_at_the_final_path_is_not_already_present(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    planned = _planned_paths(cli, "realtimekit", out)
    ref, path = sorted(planned.items())[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 7)
    res = cli("realtimekit", "pull", "-o", str(out), "--jsonl", "--no-archive")
    assert res.exit_code == 0, res.output
    (event,) = [e for e in files(res) if e["ref"] == ref]
    assert event["outcome"] == "downloaded" and sha(Path(event["path"])) == event["sha256"]
    assert path.read_bytes() == b"x" * 7  # an unknown file is never replaced either


def test_with_the_providers_size_a_present_file_is_already_present_without_the_archive(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = cli("realtimekit", "pull", "-o", str(out), "--jsonl", "--no-archive")
    assert first.exit_code == 0, first.output
    second = cli("realtimekit", "pull", "-o", str(out), "--jsonl", "--no-archive")
    assert [e for e in files(second) if e["outcome"] == "downloaded"] == []
    assert {e["reason"] for e in files(second) if e["path"]} == {"already present"}


# ---------------------------------------------------------------------------
# #6: kill -9 anywhere, then a clean run: every file recorded, byte-exact, nothing stale


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}


def _wait_for_transfers(out: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and any(p.name.endswith(".part") for p in out.rglob("*")):
            return
        time.sleep(0.01)


@pytest.mark.timeout(300)  # ten start-ups of the interpreter on a loaded machine
def test_kill_9_at_random_moments_then_a_clean_run_leaves_everything_consistent(
    sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    bird = sandbox_profile["bird"]
    for _ in range(40):
        bird.add_recording(size=4_000)
    out, manifest = tmp_path / "out", tmp_path / "manifest.jsonl"
    cmd = [sys.executable, "-m", "recfetch", "--quiet", "bird", "pull", "-o", str(out)]
    cmd += ["--manifest", str(manifest), "--write-metadata", "-j", "4"]
    sandbox_profile.storage.throttle(1_000_000)
    rng = random.Random(8)
    try:
        for _ in range(10):
            proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_for_transfers(out, proc)  # the interpreter's start-up is no place to kill it
            time.sleep(rng.uniform(0.0, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        sandbox_profile.storage.throttle(None)
    clean = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr

    rows = archive_rows()
    expected = {ref for ref in bird.ids(status="available")}
    assert set(rows) == expected
    on_disk = {p for p in out.rglob("*") if p.is_file()}
    media = {p for p in on_disk if not p.name.endswith((".json", ".part", ".part.meta"))}
    assert media == {Path(path) for path, _ in rows.values()}  # every file is recorded, none twice
    for ref, (path, digest) in rows.items():
        assert Path(path).read_bytes() == bird.content(ref) and sha(Path(path)) == digest
        assert json.loads(Path(path + ".json").read_text())["ref"] == ref
    listed = {json.loads(line)["path"] for line in manifest.read_text().splitlines()}
    assert listed == {path for path, _ in rows.values()}
    leftovers = {p for p in on_disk if p.name.endswith((".part", ".part.meta"))}
    assert leftovers == set()
    sidecars = {p for p in on_disk if p.name.endswith(".json")}
    assert sidecars == {Path(path + ".json") for path, _ in rows.values()}


# ---------------------------------------------------------------------------
# the watermark covers the window actually listed; piped refs fail one line at a time


def test_incremental_pull_with_until_sets_the_watermark_to_until(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    from recfetch.state import Watermarks

    until = "2025-06-01T00:00:00Z"
    res = cli("bird", "pull", "-o", str(tmp_path / "out"), "--incremental", "--until", until)
    assert res.exit_code == 0, res.output
    mark = Watermarks(Path(os.environ["RECFETCH_STATE_DIR"])).get("sandbox", "bird")
    assert mark is not None and mark.isoformat().replace("+00:00", "Z") == until


def test_one_malformed_piped_line_fails_alone_and_the_good_refs_download(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    bird = sandbox_profile["bird"]
    good = bird.ids(status="available")[:2]
    lines = [good[0], '{"ref": "unterminated', json.dumps({"ref": good[1]}), ""]
    res = cli("bird", "download", "-", "-o", str(tmp_path / "out"), "--jsonl", input="\n".join(lines))
    assert res.exit_code == 3, res.output
    by_ref = {e["ref"]: e for e in files(res)}
    assert {by_ref[r]["outcome"] for r in good} == {"downloaded"}
    bad = by_ref["stdin line 2"]
    assert bad["outcome"] == "failed" and "line 2" in bad["error"]["message"]
    assert next(e for e in res.jsonl() if e.get("type") == "summary")["exit_code"] == 3


def test_a_malformed_piped_line_is_reported_by_every_shard_and_the_refs_still_split(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    # A line that is not a ref belongs to no shard: each shard reading the same pipe says so,
    # instead of hashing it as if it were a ref, and the good refs still split exactly once.
    good = sandbox_profile["bird"].ids(status="available")[:6]
    lines = [*good[:3], "{oops", *good[3:]]
    taken: list[str] = []
    for index in (0, 1):
        out = tmp_path / f"shard{index}"
        res = cli("bird", "download", "-", "--shard", f"{index}/2", "-o", str(out), "--jsonl",
                  input="\n".join(lines) + "\n")
        assert res.exit_code == 3, res.output
        by_ref = {e["ref"]: e for e in files(res)}
        bad = by_ref.pop("stdin line 4")
        assert bad["outcome"] == "failed" and "not valid JSON" in bad["error"]["message"]
        assert {e["outcome"] for e in by_ref.values()} <= {"downloaded"}
        taken += by_ref
    assert sorted(taken) == sorted(good)


def test_a_bad_piped_line_has_its_own_result_line_in_the_table_like_every_other_failure(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    good = sandbox_profile["bird"].ids(status="available")[0]
    res = cli("bird", "download", "-", "-o", str(tmp_path / "out"), input=f"{good}\n{{oops\n")
    assert res.exit_code == 3, res.output
    lines = res.stderr.splitlines()
    failed = [ln for ln in lines if ln.startswith("failed")]
    assert failed == [
        "failed      stdin line 2 is not valid JSON"
        " (send one ref per line, or JSONL records with a ref field)"
    ], res.stderr
    assert "downloaded" in res.stdout, res.output


def _file_size_limit(limit: int) -> Any:
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_an_archive_that_cannot_be_written_stops_the_run_with_exit_10_and_stays_consistent(
    sandbox_profile: Sandbox, tmp_path: Path
) -> None:
    """The kernel refuses to grow the archive's WAL: one message naming the archive, then a clean run."""
    bird = sandbox_profile["bird"]
    for _ in range(60):
        bird.add_recording(size=2_000)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "recfetch", "bird", "pull", "-o", str(out), "-j", "2"]
    limited = subprocess.run(
        cmd, env=_env(), capture_output=True, text=True, timeout=120, preexec_fn=_file_size_limit(40_000)
    )
    assert limited.returncode == 10, limited.stderr
    errors = [line for line in limited.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "archive" in errors[0] and "Traceback" not in limited.stderr, limited.stderr

    clean = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    rows = archive_rows()
    assert set(rows) == set(bird.ids(status="available"))
    media = {p for p in out.rglob("*") if p.is_file() and not p.name.endswith((".part", ".part.meta"))}
    assert media == {Path(path) for path, _ in rows.values()}
    for ref, (path, digest) in rows.items():
        assert Path(path).read_bytes() == bird.content(ref) and sha(Path(path)) == digest


def _leave_open(db: Path, ref: str, final: Path, manifest: Path, sidecar: str, *, legacy: bool) -> None:
    """What a run killed after the rename leaves: a journal file, or (earlier versions) a `pending` row."""
    from recfetch.jobs.journal import Journal
    from recfetch.providers.base import Recording
    from recfetch.state import Archive

    if legacy:
        Archive(db).close()
        with sqlite3.connect(db) as conn:
            conn.execute(
                "INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    "sandbox",
                    "bird",
                    ref,
                    str(final.resolve()),
                    None,
                    str(manifest.resolve()),
                    sidecar,
                    99_999_999,
                    "x",
                ),
            )
        return
    journal = Journal(db)
    journal.intend(
        Recording(provider="bird", profile="sandbox", ref=ref, id=ref),
        final,
        manifest=manifest,
        sidecar=sidecar,
    )
    journal.close()  # killed: the entry stays open, the file's lock is gone


@pytest.mark.parametrize("legacy", [False, True], ids=["journal-file", "pending-table"])
def test_a_left_open_commit_is_finished_by_a_real_run_and_left_alone_by_a_dry_run(
    cli: Any, sandbox_profile: Sandbox, tmp_path: Path, legacy: bool
) -> None:

    bird = sandbox_profile["bird"]
    ref = bird.ids(status="available")[0]
    out, manifest = tmp_path / "out", tmp_path / "m.jsonl"
    final = out / "left-behind.mp3"
    out.mkdir()
    final.write_bytes(bird.content(ref))  # renamed into place, then the run was killed
    (out / "left-behind.mp3.part.meta").write_text("{}")
    db = Path(os.environ["RECFETCH_STATE_DIR"]) / "archive.sqlite3"
    _leave_open(db, ref, final, manifest, json.dumps({"ref": ref}) + "\n", legacy=legacy)

    dry = cli("bird", "pull", "-o", str(out), "--dry-run", "--manifest", str(manifest))
    assert dry.exit_code == 0, dry.output
    assert ref not in archive_rows() and (not manifest.exists() or manifest.read_text() == "")

    res = cli("bird", "pull", "-o", str(out), "--manifest", str(manifest), "--jsonl")
    assert res.exit_code == 0, res.output
    assert archive_rows()[ref] == (str(final.resolve()), sha(final))
    assert [json.loads(line)["ref"] for line in manifest.read_text().splitlines()].count(ref) == 1
    assert json.loads((out / "left-behind.mp3.json").read_text()) == {"ref": ref}
    assert not (out / "left-behind.mp3.part.meta").exists()
    assert next(e for e in files(res) if e["ref"] == ref)["reason"] == "in archive"  # not fetched twice
    assert list(db.parent.glob("archive.sqlite3.pending-*")) == []  # finished journals are removed
