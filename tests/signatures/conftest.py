"""Fixtures for the signature tests: the shipped library, and pack files written to a temp dir."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

# tests/ is on sys.path (tests/conftest.py), where tests/signatures would pass for a namespace package
# named "signatures"; the repo root on the path lets the real package win.
sys.path.insert(0, str(Path(__file__).parents[2]))
sys.path.insert(0, str(Path(__file__).parent))  # process_mix, shared with bench/signature_library.py

import pytest

import signatures
from signatures.matching import Library


@pytest.fixture(scope="session")
def lib() -> Library:
    return signatures.load()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write(name, yaml_text) -> the path of a dedented file under tmp_path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
