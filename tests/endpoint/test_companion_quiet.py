"""The companion stays quiet while the org's policy does not nudge (the ladder at ``report_only``): the
daemon's inbox keeps the collector's ``notify``, the socket's answer carries it, and the companion shows no
notification while it is false, then shows what is still new once it is true. Over a real daemon socket (a
real ``LocalServer`` thread with the daemon's real ``Handler``, state file and inbox file), Qt offscreen.

The desktop notification is captured at the OS boundary: ``QSystemTrayIcon.showMessage`` on the companion's
tray icon is replaced by a recorder (offscreen Qt has no notification service to observe).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from endpoint.companion.app import Companion
from endpoint.companion.model import Client, SeenStore
from endpoint.service import localsock
from endpoint.service.inbox import Inbox
from endpoint.service.inventory import Inventory
from endpoint.service.registration.socket_handler import Handler

pytestmark = pytest.mark.timeout(60)

COLLECTOR = "http://127.0.0.1:9"
CURSOR_ID = "c0c0c0c0000000000077"
REQUEST = {"id": 21, "kind": "request", "sighting_id": CURSOR_ID, "sighting_name": "Cursor", "user": "root",
           "status": None, "text": "please register it", "sent_by": "it-admin",
           "created_at": "2026-12-05T10:00:00+00:00"}


def cursor() -> dict[str, Any]:
    return {"id": CURSOR_ID, "signature": None, "name": "Cursor", "vendor": "", "type": "coding", "user": "root",
            "running": True, "confidence": 0.8, "parent": None, "processes": [], "configs": [], "mcp_servers": [],
            "endpoints": [], "credentials": [], "flags": [], "evidence": [],
            "first_seen": "2026-12-01T00:00:00+00:00", "last_seen": "2026-12-01T00:00:00+00:00"}


@pytest.fixture
def data() -> Iterator[Path]:
    """A daemon's data dir: root's unregistered Cursor, an IT request about it, and the policy's quiet."""
    base = Path(tempfile.mkdtemp(prefix="ar-quiet-", dir="/tmp"))  # short: a socket path has a length limit
    data = base / "data"
    inventory = Inventory(data)
    try:
        inventory.record([cursor()], device={"hostname": "h"})
    finally:
        inventory.close()
    Inbox(data).store(COLLECTOR, [dict(REQUEST)], {})
    assert Inbox(data).set_notify(COLLECTOR, False)
    yield data
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon(data: Path) -> Iterator[Path]:
    server = localsock.LocalServer(localsock.socket_path(data), Handler(data), read_timeout_s=2.0)
    server.start()
    yield server.path
    server.stop()


@pytest.fixture
def make_companion(qtbot, daemon: Path, tmp_path: Path) -> Iterator[Any]:
    made: list[Companion] = []

    def make(quiet: bool = False) -> tuple[Companion, list[str]]:
        companion = Companion(Client(daemon), seen=SeenStore(tmp_path / "seen.json"), quiet=quiet,
                              provider_ids=["openai"])
        shown: list[str] = []
        # the OS boundary: what would reach the desktop's notification service
        companion.tray.showMessage = lambda title, *_rest: shown.append(title)  # type: ignore[method-assign]
        qtbot.addWidget(companion.window)
        made.append(companion)
        with qtbot.waitSignal(companion.polled, timeout=20_000):
            companion.start()
        return companion, shown

    yield make
    for companion in made:
        companion.timer.stop()
        companion.tray.hide()


def test_the_socket_says_what_the_daemon_kept(daemon: Path, data: Path) -> None:
    assert localsock.call(daemon, {"op": "inbox"}, timeout_s=30.0)["notify"] is False
    assert localsock.call(daemon, {"op": "mine"}, timeout_s=30.0)["notify"] is False
    assert Inbox(data).set_notify(COLLECTOR, True) and not Inbox(data).set_notify(COLLECTOR, True)
    assert localsock.call(daemon, {"op": "inbox"}, timeout_s=30.0)["notify"] is True
    # what the inbox holds survives the change
    assert [i["id"] for i in Inbox(data).read()["items"]] == [REQUEST["id"]]


def test_no_notification_while_the_policy_is_quiet_and_what_is_new_once_it_nudges(make_companion, data, qtbot) -> None:
    companion, shown = make_companion()
    assert shown == [] and companion.seen == []  # nothing shown, nor noted as shown
    assert "1 agents not registered, 1 unread messages" in companion.tray.toolTip()  # the tray still says
    Inbox(data).set_notify(COLLECTOR, True)
    with qtbot.waitSignal(companion.polled, timeout=20_000):
        companion.poll()
    assert shown == ["agentroster found Cursor on this machine", "IT asks you to register an agent"]


def test_quiet_forces_quiet_whatever_the_policy(make_companion, data) -> None:
    Inbox(data).set_notify(COLLECTOR, True)
    _, shown = make_companion(quiet=True)
    assert shown == []
