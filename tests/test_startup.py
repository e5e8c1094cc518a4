"""What `--help` costs in imports: the command tree is built from plain provider data.

A `--help` (of a provider or of a verb) needs names, flags and help texts only, so it must
not load the HTTP stack, the download engine, the archive database, the object store, the
sandbox, any provider's module or Rich (help is Click's plain formatter). Checked in a
subprocess through `sys.modules`, not by timing (the timings are in bench/startup.py).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

HEAVY = (
    "httpx",
    "httpcore",
    "h11",
    "sqlite3",
    "boto3",
    "botocore",
    "rich",
    "recfetch.download.engine",
    "recfetch.download.transport",
    "recfetch.providers._http",
    "recfetch.providers.kismet",
    "recfetch.providers.realtimekit",
    "recfetch.providers.kazoo",
    "recfetch.providers.kaleyra",
    "recfetch.providers.bird",
    "recfetch.state",
    "recfetch.sandbox",
    "recfetch.destinations.objectstore",
    "recfetch.jobs.batch",
)
PROBE = (
    "import atexit, sys\n"
    f"heavy = {HEAVY!r}\n"
    "atexit.register(lambda: sys.stderr.write('LOADED ' + repr(sorted({m for m in sys.modules "
    "if m in heavy or m.startswith(tuple(h + '.' for h in heavy))})) + '\\n'))\n"
    "from recfetch.cli import main\n"
    "main()\n"
)


def _loaded(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(line for line in proc.stderr.splitlines() if line.startswith("LOADED "))
    return proc, ast.literal_eval(line.removeprefix("LOADED "))


@pytest.mark.parametrize(
    "words",
    [
        ["kazoo", "--help"],
        ["realtimekit", "pull", "--help"],
        ["cloudflare", "start", "--help"],
        ["kismet", "users", "-h"],
        ["bird", "download", "--help"],
        ["--help"],
    ],
)
def test_help_imports_no_http_stack_engine_database_or_provider_module(words: list[str]) -> None:
    proc, loaded = _loaded(*words)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: recfetch" in proc.stdout  # the help really was printed
    assert loaded == [], loaded


def test_a_provider_command_loads_its_own_provider_module_only(tmp_path) -> None:
    # Also shows the probe notices these imports when they happen. Reading a config that holds
    # other providers' tables (secrets, unknown keys) imports none of their modules.
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.default.realtimekit]\naccount_id = "a"\n'
        '[profiles.default.kazoo]\napi_key = "k"\n[profiles.default.bird]\ntoken = "t"\n'
    )
    config.chmod(0o600)
    proc, loaded = _loaded("--config", str(config), "realtimekit", "url", "REF")
    assert proc.returncode == 5, proc.stderr  # the profile is incomplete: a config error, after the imports
    assert {"httpx", "recfetch.providers.realtimekit"} <= set(loaded), loaded
    assert not {"recfetch.providers.kazoo", "recfetch.providers.bird"} & set(loaded), loaded


def test_job_options_registry_and_output_import_without_the_http_stack() -> None:
    code = (
        "import sys\n"
        "import recfetch.jobs.options, recfetch.output, recfetch.providers\n"
        "from recfetch.providers import REGISTRY, info\n"
        "assert list(REGISTRY) and info('cloudflare').name == 'realtimekit'\n"
        f"print(sorted(m for m in sys.modules if m in {HEAVY!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_a_pull_into_a_folder_loads_no_object_store_module(tmp_path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import recfetch.cli._commands, recfetch.jobs.pull, recfetch.jobs.download, recfetch.jobs.batch\n"
        "from recfetch.jobs.place import Place, store_url_of\n"
        "import recfetch.destinations\n"
        f"place = Place.open(Path({str(tmp_path)!r}), lambda: None, jobs=1)\n"
        "assert place.store is None and recfetch.destinations.StoreSettings\n"
        "store = ('recfetch.destinations.objectstore', 'recfetch.destinations.upload', "
        "'recfetch.destinations.spool', 'boto3')\n"
        "print(sorted(m for m in sys.modules if m in store))\n"
        "assert store_url_of('s3://bucket/p/').bucket == 'bucket'\n"
        "print(sorted(m for m in sys.modules if m in store))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    folder, store = proc.stdout.splitlines()
    assert folder == "[]" and "recfetch.destinations.objectstore" in store, proc.stdout
