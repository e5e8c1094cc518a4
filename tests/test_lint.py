"""The code stays ruff-clean and mypy --strict clean: the same checks CI and reviewers rely on."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_reports_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "recfetch", "tests", "bench"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_reports_nothing() -> None:
    # A few seconds from cold (.mypy_cache is reused after that): cheap enough to guard every run.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", "recfetch"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0 and "error:" not in proc.stdout, proc.stdout + proc.stderr
