"""The companion (endpoint/companion/): its notifications (pure), and its Qt part (pytest-qt, offscreen)
over a real daemon socket: a real ``LocalServer`` thread with the daemon's real ``Handler`` over a real
state file and inbox file.

The desktop notification is captured at the OS boundary: ``QSystemTrayIcon.showMessage`` on the
companion's tray icon is replaced by a recorder (offscreen Qt has no notification service to observe).
Registering through a real collector and daemon child is in tests/e2e/test_inbox_e2e.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from endpoint.companion.app import Companion, RegisterWindow
from endpoint.companion.model import Client, SeenStore, Snapshot, notifications
from endpoint.service import localsock
from endpoint.service.inbox import INBOX_FILE, Inbox
from endpoint.service.inventory import Inventory
from endpoint.service.registration.socket_handler import Handler

pytestmark = pytest.mark.timeout(60)

COLLECTOR = "http://127.0.0.1:9"
CURSOR_ID, CHILD_ID, OLLAMA_ID = "c0c0c0c0000000000001", "c0c0c0c0000000000002", "0a0a0a0a000000000003"
FINGERPRINT = "hmac-FAKE0000"


def sighting(sid: str, name: str, type_: str = "coding", parent: str | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": sid, "signature": None, "name": name, "vendor": "", "type": type_, "user": "root", "running": True,
        "confidence": 0.8, "parent": parent, "processes": [], "configs": [],
        "mcp_servers": [{"name": "postgres", "transport": "stdio", "command": "npx", "args": [], "url": None,
                         "source": "/root/.cursor/mcp.json", "enabled": True}] if parent is None else [],
        "endpoints": [{"host": "api.openai.com", "port": 443, "provider": "openai", "via": "sni",
                       "first_seen": 1.7e9, "last_seen": 1.7e9, "count": 2}],
        "credentials": [{"kind": "openai", "fingerprint": FINGERPRINT, "source": "config", "where": "/root/.env"}],
        "flags": ["autonomous"], "evidence": [{"kind": "config", "rule": "path", "detail": "mcp.json"}],
        "first_seen": "2026-12-01T00:00:00+00:00", "last_seen": "2026-12-01T00:00:00+00:00",
    }  # fmt: skip
    doc.update(extra)
    return doc


REQUEST = {"id": 11, "kind": "request", "sighting_id": CURSOR_ID, "sighting_name": "Cursor", "user": "root",
           "status": None, "text": "please register it this week", "sent_by": "it-admin",
           "created_at": "2026-12-05T10:00:00+00:00"}
DECISION = {**REQUEST, "id": 12, "kind": "decision", "status": "rejected", "text": "say which databases"}


# -- pure ---------------------------------------------------------------------------------------------------


def test_one_notification_per_agent_not_registered_and_per_unread_message() -> None:
    snap = Snapshot("root", agents=[sighting(CURSOR_ID, "Cursor"), sighting(CHILD_ID, "postgres", "tool_server",
                                                                            parent=CURSOR_ID),
                                    sighting(OLLAMA_ID, "Ollama", "runtime")],
                    ledger={OLLAMA_ID: {"id": 3}}, items=[REQUEST, {**DECISION, "read_at": "2026-12-05"}])
    notes = notifications(snap, [])
    assert [(n.key, n.target) for n in notes] == [(f"agent:{CURSOR_ID}", ("register", CURSOR_ID)),
                                                  ("item:11", ("register", CURSOR_ID))]
    assert "Cursor" in notes[0].title and "please register it this week" in notes[1].text
    assert notifications(snap, [n.key for n in notes]) == []


def test_what_was_notified_is_remembered_in_the_users_state_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    store = SeenStore()
    assert store.path == tmp_path / "state" / "agentroster" / "companion.json" and store.load() == []
    store.save(["agent:x", "item:1"])
    assert SeenStore().load() == ["agent:x", "item:1"]
    store.path.write_text("{not json")
    assert SeenStore().load() == []


def test_without_qt_the_command_says_what_to_install() -> None:
    code = "import sys; sys.modules['PySide6'] = None; from endpoint.cli import main; sys.exit(main(['companion']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "pip install agentroster[console]" in done.stderr, done.stderr


def test_a_frozen_endpoint_without_qt_runs_the_companion_the_package_put_beside_it(tmp_path: Path) -> None:
    # the package's layout (installers/linux/common.py): the endpoint's executable, and companion/ beside it
    # holding the companion's own frozen executable; here a real script that says how it was started
    (tmp_path / "companion").mkdir()
    companion = tmp_path / "companion" / "agentroster-companion"
    companion.write_text('#!/bin/sh\necho "companion started with: $*"\n')
    companion.chmod(0o755)
    code = ("import sys; sys.modules['PySide6'] = None; sys.frozen = True; "
            f"sys.executable = {str(tmp_path / 'agentroster')!r}; "
            "from endpoint.cli import main; sys.exit(main(['companion', '--quiet', '--data-dir', '/x']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "companion started with: --data-dir /x --quiet\n", done
    companion.chmod(0o644)  # not executable: not run, and the hint says what to install
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "companion package" in done.stderr, done.stderr


# -- Qt, over a real socket --------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[localsock.LocalServer]:
    """A daemon's socket (real server thread and handler) over a state holding root's Cursor (with an MCP
    server under it) and Ollama, and an inbox with a request and a decision; not enrolled. The socket path."""
    base = Path(tempfile.mkdtemp(prefix="ar-companion-", dir="/tmp"))
    data = base / "data"
    inventory = Inventory(data)
    try:
        inventory.record([sighting(CURSOR_ID, "Cursor"), sighting(CHILD_ID, "postgres", "tool_server", parent=CURSOR_ID),
                          sighting(OLLAMA_ID, "Ollama", "runtime")], device={"hostname": "h"})
    finally:
        inventory.close()
    Inbox(data).store(COLLECTOR, [dict(REQUEST), dict(DECISION)], {})
    server = localsock.LocalServer(localsock.socket_path(data), Handler(data), read_timeout_s=2.0)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon(server: localsock.LocalServer) -> Path:
    return server.path


@pytest.fixture
def make_companion(qtbot, daemon: Path, tmp_path: Path) -> Any:
    made: list[Companion] = []

    def make(quiet: bool = False) -> tuple[Companion, list[tuple[str, str]]]:
        companion = Companion(Client(daemon), seen=SeenStore(tmp_path / "seen.json"), quiet=quiet,
                              provider_ids=["openai", "anthropic"])
        shown: list[tuple[str, str]] = []
        # the OS boundary: what would reach the desktop's notification service
        companion.tray.showMessage = lambda title, text, *_rest: shown.append((title, text))  # type: ignore[method-assign]
        qtbot.addWidget(companion.window)
        made.append(companion)
        with qtbot.waitSignal(companion.polled, timeout=20_000):
            companion.start()
        return companion, shown

    yield make
    for companion in made:
        companion.timer.stop()
        companion.tray.hide()


def test_the_companion_notifies_once_per_new_agent_and_message(make_companion, qtbot) -> None:
    companion, shown = make_companion()
    titles = [title for title, _ in shown]
    assert sorted(titles[:2]) == ["agentroster found Cursor on this machine", "agentroster found Ollama on this machine"]
    assert titles[2:] == ["IT asks you to register an agent", "IT answered your registration"]
    assert "rejected" in shown[3][1] and "say which databases" in shown[3][1]
    with qtbot.waitSignal(companion.polled, timeout=20_000):
        companion.poll()
    assert len(shown) == 4  # nothing again
    assert "2 agents not registered, 2 unread messages" in companion.tray.toolTip()


def test_the_agents_are_listed_again_only_when_due_or_when_the_inbox_changed(server) -> None:
    client = Client(server.path)
    first = client.snapshot()
    before = server.served
    again = client.snapshot(first, relist=False)
    assert server.served == before + 1 and again.agents == first.agents  # the inbox alone
    Inbox(server.path.parent.parent / "data").store(COLLECTOR, [{**REQUEST, "id": 13}], {})
    client.snapshot(again, relist=False)
    assert server.served == before + 3  # the inbox changed: the list too


def test_a_restarted_companion_does_not_notify_again(make_companion) -> None:
    make_companion()
    _, shown = make_companion()
    assert shown == []


def test_a_quiet_companion_shows_no_notification(make_companion) -> None:
    companion, shown = make_companion(quiet=True)
    assert shown == [] and "2 agents not registered" in companion.tray.toolTip()


def test_a_click_on_a_request_opens_the_registration_window_prefilled(make_companion) -> None:
    companion, _ = make_companion()
    companion.open_last()  # the last notification: IT's decision → the messages
    assert companion.window.isVisible() and companion.window.tabs.currentIndex() == 1
    window = companion.open_register(CURSOR_ID)
    assert isinstance(window, RegisterWindow)
    fields = window.fields()
    assert (fields["owner"], fields["providers"], fields["tools"], fields["autonomy"]) == \
        ("root", ["openai"], ["postgres"], "autonomous")


def test_the_registration_window_says_what_is_missing_and_what_the_daemon_answers(make_companion, qtbot) -> None:
    companion, _ = make_companion()
    window = companion.open_register(CURSOR_ID)
    assert window is not None
    window.send()
    assert window.error.text() == "purpose required"
    window.purpose.setPlainText("answers customer tickets")
    window.send()  # the daemon has no device key yet: it says so, and nothing is lost
    qtbot.waitUntil(lambda: "not enrolled" in window.error.text(), timeout=20_000)
    assert window.send_button.isEnabled() and window.purpose.toPlainText() == "answers customer tickets"


def test_reading_the_messages_marks_them_read_at_the_daemon(make_companion, daemon, qtbot) -> None:
    companion, _ = make_companion()
    companion.window.show_tab(1)
    assert companion.window.messages.count() == 2
    inbox = daemon.parent.parent / "data" / INBOX_FILE
    qtbot.waitUntil(lambda: all(i["read_at"] for i in json.loads(inbox.read_text())["items"]), timeout=20_000)


def test_the_page_of_what_is_collected_shows_no_fingerprint(make_companion, qtbot) -> None:
    companion, _ = make_companion()
    companion.window.show_tab(2)
    qtbot.waitUntil(lambda: "Cursor" in companion.window.about.toPlainText(), timeout=20_000)
    text = companion.window.about.toPlainText()
    assert "credential:    openai from config" in text and "(never the key)" in text and FINGERPRINT not in text


# -- started at login -------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
DESKTOP_ENTRY = REPO / "installers" / "linux" / "files" / "agentroster-companion.desktop"


def test_the_xdg_autostart_entry_runs_the_companion_and_is_valid() -> None:
    import configparser

    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    entry.read(DESKTOP_ENTRY, encoding="utf-8")
    section = entry["Desktop Entry"]
    # the packages ship the companion as its own executable (installers/freeze/companion_entry.py)
    assert (section["Type"], section["Exec"], section["Terminal"]) == ("Application", "agentroster-companion", "false")
    if shutil.which("desktop-file-validate") is None:
        pytest.skip("desktop-file-validate not installed (Debian: apt-get install desktop-file-utils)")
    done = subprocess.run(["desktop-file-validate", str(DESKTOP_ENTRY)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_launch_agent_in_the_docs_is_a_plist_that_runs_the_packaged_companion_at_login() -> None:
    import plistlib
    import re

    from installers.macos.build import launch_agent_plist
    from installers.macos.profiles import COMPANION_BUNDLE_ID

    page = (REPO / "docs" / "endpoint.md").read_text(encoding="utf-8")
    [text] = re.findall(r"```xml\n(<\?xml.*?dev\.agentroster\.companion.*?)```", page, flags=re.S)
    agent = plistlib.loads(text.encode())
    assert agent["Label"] == COMPANION_BUNDLE_ID  # one id for the companion, as the MDM profiles name it
    assert agent == launch_agent_plist()  # the one the macOS package installs
    assert (agent["RunAtLoad"], agent["LimitLoadToSessionType"], agent["KeepAlive"]) == (True, "Aqua", False)


def test_without_a_daemon_the_companion_says_so_and_keeps_running(qtbot, tmp_path: Path) -> None:
    companion = Companion(Client(tmp_path / "data.run" / "agentroster.sock"), seen=SeenStore(tmp_path / "seen.json"),
                          provider_ids=[])
    companion.tray.showMessage = lambda *_args: pytest.fail("nothing to notify")  # type: ignore[method-assign]
    qtbot.addWidget(companion.window)
    with qtbot.waitSignal(companion.polled, timeout=20_000):
        companion.start()
    companion.timer.stop()
    assert "daemon is not running" in companion.problem and "daemon is not running" in companion.tray.toolTip()
    assert companion.snapshot is None
