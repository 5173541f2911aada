"""Plain helpers shared by tests (a module, not a conftest: conftest names clash across folders)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
REPO = TESTS.parent
AGENTROSTER = str(Path(sys.executable).with_name("agentroster"))


def run_agentroster(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the installed `agentroster` command as a user would."""
    return subprocess.run([AGENTROSTER, *args], capture_output=True, text=True, timeout=timeout, **kw)
