"""Batch behaviour shared by every provider: naming a file whose format is only known on arrival."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recfetch.sandbox import Sandbox


def _report_for(sandbox: Sandbox, tmp_path: Path, *rids: str) -> Path:
    kal = sandbox["kaleyra"]
    path = tmp_path / "report.csv"
    path.write_text("Recording ID\n" + "\n".join(rids) + "\n", encoding="utf-8")
    assert kal.mint_calls == 0
    return path


def test_a_file_of_unknown_format_gets_the_extension_of_its_content_type(
    sandbox_profile: Sandbox, tmp_path: Path, cli: Any
) -> None:
    kal = sandbox_profile["kaleyra"]
    mp3 = kal.add_recording(content=b"ID3" + b"\x00" * 5000, media_type="audio/mpeg")
    wav = kal.add_recording(content=b"RIFF" + b"\x00" * 5000, media_type="audio/wav")
    report = _report_for(sandbox_profile, tmp_path, mp3, wav)

    res = cli("kaleyra", "pull", "--from-report", str(report), "-o", "out", "--jsonl", "--no-archive")

    assert res.exit_code == 0, res.stderr
    paths = {e["ref"]: Path(e["path"]) for e in res.jsonl() if e["type"] == "file"}
    assert paths[mp3].suffix == ".mp3" and paths[mp3].read_bytes() == kal.content(mp3)
    assert paths[wav].suffix == ".wav" and paths[wav].read_bytes() == kal.content(wav)
    assert not list(Path("out").rglob("*.bin"))


def test_a_typed_file_in_the_archive_is_skipped_without_minting(
    sandbox_profile: Sandbox, tmp_path: Path, cli: Any
) -> None:
    kal = sandbox_profile["kaleyra"]
    rid = kal.add_recording(content=b"ID3" + b"\x01" * 4000, media_type="audio/mpeg")
    report = _report_for(sandbox_profile, tmp_path, rid)
    first = cli("kaleyra", "pull", "--from-report", str(report), "-o", "out")
    assert first.exit_code == 0, first.stderr
    minted = kal.mint_calls

    again = cli("kaleyra", "pull", "--from-report", str(report), "-o", "out", "--jsonl")

    assert again.exit_code == 0, again.stderr
    (event,) = [e for e in again.jsonl() if e["type"] == "file"]
    assert event["outcome"] == "skipped" and event["reason"] == "in archive"
    assert event["path"].endswith(".mp3")
    assert kal.mint_calls == minted


def test_without_the_archive_a_sizeless_file_on_disk_is_not_proof_and_is_kept(
    sandbox_profile: Sandbox, tmp_path: Path, cli: Any
) -> None:
    """SPEC §3: Kaleyra reports no size, so an unrecorded file is not this recording."""
    kal = sandbox_profile["kaleyra"]
    rid = kal.add_recording(content=b"ID3" + b"\x01" * 4000, media_type="audio/mpeg")
    report = _report_for(sandbox_profile, tmp_path, rid)
    first = cli("kaleyra", "pull", "--from-report", str(report), "-o", "out", "--no-archive", "--jsonl")
    assert first.exit_code == 0, first.stderr
    (kept,) = [Path(e["path"]) for e in first.jsonl() if e["type"] == "file"]
    kept.write_bytes(b"edited by hand")

    again = cli("kaleyra", "pull", "--from-report", str(report), "-o", "out", "--no-archive", "--jsonl")

    assert again.exit_code == 0, again.stderr
    (event,) = [e for e in again.jsonl() if e["type"] == "file"]
    assert event["outcome"] == "downloaded" and Path(event["path"]) != kept
    assert Path(event["path"]).read_bytes() == kal.content(rid)
    assert kept.read_bytes() == b"edited by hand"
