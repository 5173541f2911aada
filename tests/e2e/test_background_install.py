"""The background n8n install tests/conftest.py starts: only for a test that will run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import n8n_install
import pytest

E2E = Path(__file__).parent
pytestmark = pytest.mark.e2e


def test_a_deselected_n8n_test_starts_no_install(tmp_path: Path) -> None:
    reason = n8n_install.missing()
    if reason:
        pytest.skip(f"the conftest starts no install on this machine either: n8n {reason}")
    cache = tmp_path / "cache"
    # a real pytest run that collects the n8n test and deselects it (-k), as `./dev test -k …` does
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-k", "no_such_test",
                           "-o", f"cache_dir={cache}", str(E2E / "test_n8n_real.py")],
                          capture_output=True, text=True, timeout=120)
    assert "1 deselected" in done.stdout, done.stdout + done.stderr
    assert not list(cache.rglob("n8n-install.log")), "a deselected test's install was started"
