"""mypy accepts the package and its stubs (run as part of the test suite, as CI does)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_mypy_clean():
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "bpf"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
