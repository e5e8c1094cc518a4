"""`--manifest` lines and `recfetch verify MANIFEST`: chain of custody for downloaded recordings."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
from pathlib import Path
from typing import Any

from recfetch.manifest import FIELDS, ManifestWriter, entry_for, hash_file


def _write(path: Path, data: bytes) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return entry_for(
        provider="kazoo",
        profile="p",
        ref=path.stem,
        path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        provider_size=len(data),
    )


def _manifest(tmp_path: Path, *files: tuple[str, bytes]) -> Path:
    manifest = tmp_path / "out" / "manifest.jsonl"
    writer = ManifestWriter(manifest)
    for name, data in files:
        writer.append(_write(tmp_path / "out" / name, data))
    writer.close()
    return manifest


def test_manifest_lines_carry_every_custody_field_and_the_file_is_private(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ("a.mp3", b"abc"))
    line = json.loads(manifest.read_text().splitlines()[0])
    assert tuple(line) == FIELDS
    assert line["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert line["bytes"] == 3 and line["provider_size"] == 3
    assert Path(line["path"]).is_absolute()
    assert line["retrieved_at"].endswith("Z")
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600


def test_manifest_appends_from_many_threads_never_interleave(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    writer = ManifestWriter(manifest)
    entry = _write(tmp_path / "a.mp3", b"x" * 10)
    entry["ref"] = "r" * 5000  # long lines would tear first if writes were not whole

    def go() -> None:
        for _ in range(50):
            writer.append(entry)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    lines = manifest.read_text().splitlines()
    assert len(lines) == 400
    assert all(json.loads(line)["ref"] == "r" * 5000 for line in lines)


def test_verify_intact_manifest_exits_0(cli: Any, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ("a.mp3", b"abc"), ("sub/b.mp3", b"defg"))
    res = cli("verify", str(manifest))
    assert res.exit_code == 0, res.output
    assert "2 ok, 0 missing, 0 changed" in res.stderr
    assert res.stdout == ""


def test_verify_reports_changed_and_missing_files_and_exits_8(cli: Any, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ("a.mp3", b"abc"), ("b.mp3", b"defg"), ("c.mp3", b"hij"))
    (tmp_path / "out" / "a.mp3").write_bytes(b"abd")  # same size, other bytes
    (tmp_path / "out" / "b.mp3").unlink()
    res = cli("verify", str(manifest))
    assert res.exit_code == 8
    assert "CHANGED" in res.stdout and "a.mp3" in res.stdout and "sha256 differs" in res.stdout
    assert "MISSING" in res.stdout and "b.mp3" in res.stdout
    assert "c.mp3" not in res.stdout  # intact files are not listed without -v
    assert "1 ok, 1 missing, 1 changed" in res.stderr


def test_verify_json_lists_every_file_with_its_status(cli: Any, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ("a.mp3", b"abc"), ("b.mp3", b"defg"))
    (tmp_path / "out" / "b.mp3").write_bytes(b"defgh")
    res = cli("verify", str(manifest), "--json")
    assert res.exit_code == 8
    doc = res.json()
    assert doc["schema_version"] == 1
    by_name = {Path(i["path"]).name: i for i in doc["items"]}
    assert by_name["a.mp3"]["status"] == "ok"
    assert by_name["b.mp3"]["status"] == "changed"
    assert by_name["b.mp3"]["actual_bytes"] == 5 and by_name["b.mp3"]["expected_bytes"] == 4
    assert doc["summary"] == {"ok": 1, "missing": 0, "changed": 1, "invalid": 0, "files": 2, "exit_code": 8}


def test_a_later_manifest_line_for_the_same_path_supersedes_the_earlier_one(cli: Any, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ("a.mp3", b"old"))
    writer = ManifestWriter(manifest)
    writer.append(_write(tmp_path / "out" / "a.mp3", b"new!"))  # re-downloaded with --overwrite
    writer.close()
    res = cli("verify", str(manifest), "--json")
    assert res.exit_code == 0, res.output
    assert [i["status"] for i in res.json()["items"]] == ["ok"]


def test_relative_paths_are_read_against_the_manifests_folder(cli: Any, tmp_path: Path) -> None:
    data = b"moved tree"
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.mp3").write_bytes(data)
    line = {"path": "a.mp3", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (tmp_path / "tree" / "m.jsonl").write_text(json.dumps(line) + "\n")
    res = cli("verify", str(tmp_path / "tree" / "m.jsonl"))
    assert res.exit_code == 0, res.output


def test_a_damaged_manifest_line_is_reported_and_exits_8(cli: Any, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ("a.mp3", b"abc"))
    with manifest.open("a") as fh:
        fh.write('{"provider": "kazoo", "path": "/x/trunc')  # a torn last line
    res = cli("verify", str(manifest))
    assert res.exit_code == 8
    assert "INVALID" in res.stdout and "line 2" in res.stdout


def test_verify_of_a_missing_manifest_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    res = cli("verify", str(tmp_path / "nope.jsonl"))
    assert res.exit_code == 2
    assert "does not exist" in res.stderr


def test_verify_json_mode_reports_usage_errors_as_json(cli: Any, tmp_path: Path) -> None:
    res = cli("verify", str(tmp_path / "nope.jsonl"), "--json")
    assert res.exit_code == 2
    assert json.loads(res.stderr.strip().splitlines()[-1])["code"] == "USAGE"


def test_hash_file_reads_extra_algorithms_in_the_same_pass(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    size, digests = hash_file(path, "md5")
    assert size == 7
    assert digests["md5"] == hashlib.md5(b"payload").hexdigest()
    assert digests["sha256"] == hashlib.sha256(b"payload").hexdigest()
