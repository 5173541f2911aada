"""The frozen endpoint and the frozen companion, each built once per test session for every installer test
that needs the real thing.

``frozen_endpoint`` is the folder ``installers.freeze`` makes in the repository's dist/ (ignored by git):
a folder frozen from the same sources, lock and Python is reused (its digest is kept beside it), so a
second session starts at once; a clean clone, as in CI, freezes once (some 10 to 30 s).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from installers import freeze


@pytest.fixture(scope="session")
def frozen_endpoint() -> Path:
    """The frozen endpoint folder for this machine (``agentroster`` and ``_internal/`` in it)."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed: pip install --require-hashes -r requirements/package.lock "
                    "(./dev test and ./dev package install it)")
    return freeze.freeze(freeze.ROOT / "dist", freeze.ROOT / "build", log=False)


@pytest.fixture(scope="session")
def frozen_companion(frozen_endpoint: Path) -> Path:
    """The frozen companion folder for this machine (``agentroster-companion`` and its own ``_internal/``),
    reused from dist/ as the endpoint's is (some 20 to 40 s on a clean clone)."""
    if importlib.util.find_spec("PySide6") is None:
        pytest.skip("PySide6 is not installed: pip install --require-hashes -r requirements/ci.lock (./dev test does)")
    return freeze.freeze_companion(freeze.ROOT / "dist", freeze.ROOT / "build", log=False)
