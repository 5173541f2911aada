"""Where the console keeps its token store and the embedded collector's data on this OS: the per-user
folders platformdirs names, the same ones the console used before platformdirs took the ladder over."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from console.app import token_store

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the XDG folders are Linux's")


def test_the_folders_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert token_store.config_dir() == tmp_path / "config" / "agentroster" / "console"
    assert token_store.data_dir() == tmp_path / "data" / "agentroster" / "console"
    assert token_store.FileStore().path == tmp_path / "config" / "agentroster" / "console" / "credentials.json"


def test_without_xdg_the_folders_are_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert token_store.config_dir() == tmp_path / ".config" / "agentroster" / "console"
    assert token_store.data_dir() == tmp_path / ".local" / "share" / "agentroster" / "console"
