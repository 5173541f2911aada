"""Fixtures for the console's tests: one real collector (SQLite, 127.0.0.1) shared by the session and
filled through its ingest API by a simulated fleet, plus named devices the tests look for; and a
console window (offscreen) signed in to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import console_support as support
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

FLEET_DEVICES = 12  # ~25 sightings each: several pages of 50


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.RunningCollector]:
    tmp = tmp_path_factory.mktemp("console-collector")
    running = support.start(f"sqlite:///{tmp}/collector.sqlite3", tmp / "server.log")
    running.fill(FLEET_DEVICES)
    known = [
        support.sighting(id="known-claude", name="Claude Code", signature="claude-code", user="zoe",
                         providers=("anthropic",), fingerprints=("hmac-sha256:" + "ab" * 16,), flags=("autonomous",),
                         mcp_servers=[{"name": "github", "transport": "stdio", "command": "npx",
                                       "args": ["-y", "@modelcontextprotocol/server-github"], "url": None,
                                       "source": "/home/zoe/.claude.json", "enabled": True, "project": None}]),
        support.sighting(id="known-github-mcp", name="github", signature="mcp-github", type="tool_server", user="zoe",
                         parent="known-claude", vendor="MCP"),
        support.sighting(id="known-script", name="python3 =cmd|' /C calc'!A0", signature=None, type="unknown",
                         user="zoe", providers=("openai",), vendor=""),
    ]
    running.known_device = running.snapshot("host:zoe-laptop", known, os="macos")  # type: ignore[attr-defined]
    yield running
    running.close()


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "console.ini"


@pytest.fixture
def make_console(qtbot: Any, collector: support.RunningCollector, settings_file: Path) -> Any:
    """``make_console(token=None, page_size=50, url=None)`` → a started Console over a real MainWindow."""
    from PySide6.QtCore import QSettings

    from console.app import api
    from console.app.controllers import Console
    from console.app.views.main_window import MainWindow

    made: list[Any] = []

    def make(token: str | None = None, page_size: int = 50, url: str | None = None,
             retry_ms: tuple[int, ...] = (200, 400)) -> Any:
        client = api.Client(url or collector.url, token or collector.admin, timeout=5)
        window = MainWindow()
        qtbot.addWidget(window)
        settings = QSettings(str(settings_file), QSettings.Format.IniFormat)
        console = Console(client, window, settings, page_size=page_size, retry_ms=retry_ms)
        console.start()
        window.show()
        made.append(console)
        qtbot.waitUntil(lambda: console.session.role is not None and console.agents.roster.count is not None, timeout=20_000)
        return console

    yield make
    for console in made:
        console.shutdown()
        console.client.close()


@pytest.fixture
def modeltest(qtlog: Any) -> Iterator[Any]:
    """``modeltest(model)`` attaches Qt's QAbstractItemModelTester for the whole test; any check it fails
    (reported as a "FAIL!" warning) fails the test."""
    from PySide6.QtTest import QAbstractItemModelTester

    testers: list[Any] = []

    def attach(model: Any) -> Any:
        tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)
        testers.append(tester)
        return tester

    yield attach
    failures = [r.message for r in qtlog.records if "FAIL" in r.message]
    assert not failures, failures
