"""The option objects the CLI derives its flags from (recfetch.jobs.options)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import recfetch.jobs
from recfetch.jobs.options import DownloadOptions, ListOptions, PullOptions, cli_fields

ALLOWED_KEYS = {"flags", "short", "help", "metavar", "panel", "min", "max", "parse"}


def test_defaults_are_the_spec_defaults() -> None:
    opts = PullOptions()
    assert (opts.jobs, opts.api_concurrency, opts.retries, opts.stall_timeout) == (16, 4, 5, 60.0)
    assert opts.name == "{date}_{provider}_{id}{ext}" and opts.output_dir == Path(".")
    assert opts.overlap == "1d" and opts.shard is None and not opts.explicit_window
    assert PullOptions(until="2025-01-01").explicit_window


def test_options_are_frozen_and_pull_extends_download() -> None:
    assert issubclass(PullOptions, DownloadOptions)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DownloadOptions().jobs = 3  # type: ignore[misc]
    assert {f.name for f in dataclasses.fields(DownloadOptions)} < {
        f.name for f in dataclasses.fields(PullOptions)
    }


@pytest.mark.parametrize("cls", [ListOptions, DownloadOptions, PullOptions])
def test_cli_metadata_is_plain_data_with_unique_flags(cls: type) -> None:
    seen: set[str] = set()
    for f, meta in cli_fields(cls):
        assert set(meta) == ALLOWED_KEYS, f.name
        assert meta["help"] and meta["panel"] and meta["flags"]
        names = [*meta["flags"], *([meta["short"]] if meta["short"] else [])]
        for flag in names:
            assert flag.startswith("-") and flag not in seen, (f.name, flag)
            seen.add(flag)
        assert all(isinstance(v, (str, int, tuple, type(None))) or callable(v) for v in meta.values())
    exposed = {f.name for f, _ in cli_fields(cls)}
    assert "filters" not in exposed
    assert "shard" in exposed  # SPEC §9: on list, download - and pull


def test_jobs_package_imports_neither_typer_nor_rich() -> None:
    root = Path(recfetch.jobs.__file__).parent
    for source in root.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"typer", "rich", "click"}, (source, name)
