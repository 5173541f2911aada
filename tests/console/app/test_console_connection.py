"""A lost collector: the console shows a banner, retries, and reloads when the collector is back; no
traceback, no dialog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import console_support as support
import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

pytestmark = pytest.mark.timeout(180)


def test_losing_and_regaining_the_collector(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/lost.sqlite3", tmp_path / "server.log")
    try:
        own.snapshot("host:lost-and-found", [support.sighting(id=f"a{i}", name=f"Agent {i}") for i in range(3)])
        console = make_console(token=own.admin, url=own.url, retry_ms=(300, 600))
        assert console.agents.roster.count == 3
        own.process.stop()
        console.refresh_all()
        banner = console.window.banner
        qtbot.waitUntil(lambda: banner.isVisible() and "Lost the connection" in banner.text.text(), timeout=10_000)
        assert not console.connection.connected
        qtbot.wait(1500)  # a few retries against the stopped collector
        assert console.connection._retries >= 2 and banner.isVisible()
        own.process.start()
        qtbot.waitUntil(lambda: console.connection.connected and banner.isHidden(), timeout=20_000)
        qtbot.waitUntil(lambda: console.agents.roster.count == 3 and len(console.agents.roster.rows) == 3, timeout=10_000)
        assert console.window.message.text() == "Connected again."
        assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    finally:
        own.close()


def test_retry_now_tries_at_once(make_console: Any, qtbot: Any, tmp_path: Path) -> None:
    own = support.start(f"sqlite:///{tmp_path}/retry.sqlite3", tmp_path / "server.log")
    try:
        console = make_console(token=own.admin, url=own.url, retry_ms=(60_000,))
        own.process.stop()
        console.overview.refresh()
        qtbot.waitUntil(lambda: console.window.banner.isVisible(), timeout=10_000)
        own.process.start()
        console.window.banner.retry.click()
        qtbot.waitUntil(lambda: console.connection.connected and console.window.banner.isHidden(), timeout=10_000)
    finally:
        own.close()
