"""The code stays ruff-clean: the same check CI and reviewers rely on."""

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
