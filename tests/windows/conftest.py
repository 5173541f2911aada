"""The Windows Python under Wine, for the tests of the endpoint's Windows-only code (``wine_python``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from wine_python import CACHE_FOLDER, WinePython, provision


@pytest.fixture(scope="session")
def win_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WinePython]:
    """A real Windows CPython 3.11 (``run``, ``popen``, ``winpath``) with the repository and the endpoint's
    runtime packages importable, in a Wine prefix of the session's own. Provisioned once per machine into
    pytest's cache folder; a failed download or a wrong hash is an error, only a missing Wine a skip."""
    if shutil.which("wine") is None or shutil.which("wineserver") is None:
        pytest.skip("Wine runs the Windows Python of tests/windows (apt-get install wine wine64)")
    home = provision(Path(request.config.cache.mkdir(CACHE_FOLDER)))
    python = WinePython(home, tmp_path_factory.mktemp("wine-prefix"))
    try:
        python.start()
        yield python
    finally:
        python.close()
