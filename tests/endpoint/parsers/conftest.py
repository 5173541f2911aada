"""Keep ``endpoint.scan.parsers`` the package, not this test directory.

tests/conftest.py puts ``tests/`` on sys.path, which makes ``tests/endpoint`` (and this directory)
importable as namespace packages named ``endpoint`` and ``endpoint.scan.parsers``. Putting the repository
first lets the real, regular packages win. This directory sorts before the other tests under
tests/endpoint, so it runs before anything there imports ``endpoint``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[3])
if REPO not in sys.path:
    sys.path.insert(0, REPO)
