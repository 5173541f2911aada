"""Text that came from an endpoint or an employee is shown as the literal text it is, never rendered as
HTML: a collector holds a device whose hostname, user, agent name, MCP server name and registration
(owner, purpose) are markup; every label, tooltip, status message and dialog of the console that shows
them shows the markup as text."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt
from PySide6.QtWidgets import QLabel, QWidget

pytestmark = pytest.mark.timeout(180)

HOSTILE = '<img src="file:///etc/passwd" width=4000><h1>Approved by SecOps</h1>'
HOST = "host:" + HOSTILE


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.RunningCollector]:
    """A collector of this module's own (the shared one's counts stay as other tests expect them)."""
    tmp = tmp_path_factory.mktemp("hostile-collector")
    running = support.start(f"sqlite:///{tmp}/collector.sqlite3", tmp / "server.log")
    server = {"name": HOSTILE, "transport": "stdio", "command": "npx", "args": ["-y", HOSTILE], "url": None,
              "source": f"/home/x/{HOSTILE}", "enabled": True, "project": None}
    agent = support.sighting(id="hostile-agent", name=HOSTILE, signature=None, type="unknown", user=HOSTILE,
                             vendor=HOSTILE, providers=("openai",), mcp_servers=[server])
    child = support.sighting(id="hostile-server", name=HOSTILE, signature=None, type="tool_server", user=HOSTILE,
                             parent="hostile-agent", vendor="")
    running.snapshot(HOST, [agent, child])
    running.register(HOST, "hostile-agent", owner=HOSTILE, purpose=HOSTILE, business_process=HOSTILE)
    yield running
    running.close()


def literal_labels(root: QWidget) -> list[QLabel]:
    """The labels under ``root`` that show the hostile text; each must show it as text."""
    found = []
    for label in root.findChildren(QLabel):
        text = label.text()
        if "Approved by SecOps" not in text:
            continue
        found.append(label)
        if label.textFormat() != Qt.TextFormat.PlainText:
            assert HOSTILE not in text, (label.accessibleName(), text)  # rich text: escaped
            assert html.escape(HOSTILE, quote=False) in text or html.escape(HOSTILE) in text
        assert label.sizeHint().width() < 2000, (label.accessibleName(), label.sizeHint())
    return found


def walk(model: QAbstractItemModel, parent: QModelIndex | None = None) -> Iterator[QModelIndex]:
    parent = parent or QModelIndex()
    for row in range(model.rowCount(parent)):
        for column in range(model.columnCount(parent)):
            index = model.index(row, column, parent)
            yield index
            if column == 0:
                yield from walk(model, index)


def hostile_tooltips(model: QAbstractItemModel) -> int:
    """Every tooltip that carries the hostile text carries it escaped; how many do."""
    n = 0
    for index in walk(model):
        tip = model.data(index, Qt.ItemDataRole.ToolTipRole)
        if isinstance(tip, str) and "Approved by SecOps" in tip:
            assert "<img" not in tip and "<h1>" not in tip, tip
            assert "&lt;img" in tip
            n += 1
    return n


def test_hostile_markup_is_shown_as_text_everywhere(make_console: Any, qtbot: Any,
                                                    hostile: support.RunningCollector) -> None:

    console = make_console(token=hostile.admin, url=hostile.url)
    window = console.window

    # the roster: every row's tooltip (the agent and its tool server)
    window.agents.with_servers.setChecked(True)
    qtbot.waitUntil(lambda: len(console.agents.roster.rows) == 2, timeout=10_000)
    assert hostile_tooltips(console.agents.model) >= 4

    # the detail of the agent: header, flags, registration tab, evidence, chain, history
    device_id = hostile.device_id(HOST)
    console.agents.open_detail((device_id, "hostile-agent"))
    qtbot.waitUntil(lambda: window.detail.detail is not None and window.detail.chain.rowCount() > 0, timeout=10_000)
    detail = window.detail
    assert HOSTILE not in detail.header.text() and html.escape(HOSTILE) in detail.header.text()
    assert html.escape(HOSTILE) in detail.registration.text()
    for model in (detail.evidence, detail.chain, detail.timeline):
        hostile_tooltips(model)
    assert hostile_tooltips(detail.chain) >= 2 and hostile_tooltips(detail.evidence) >= 1

    # the overview's worst devices (its hostname)
    console.overview.refresh()
    qtbot.waitUntil(lambda: window.overview.top_devices.rowCount() == 1, timeout=10_000)
    assert hostile_tooltips(window.overview.top_devices) == 1

    # the devices tab: the selected device's users
    window.tabs.setCurrentWidget(window.devices)
    qtbot.waitUntil(lambda: console.devices.model.rowCount() == 1, timeout=10_000)
    assert hostile_tooltips(console.devices.model) >= 1
    window.devices.table.setCurrentIndex(console.devices.model.index(0, 0))
    qtbot.waitUntil(lambda: "Approved by SecOps" in window.devices.users.text(), timeout=10_000)

    # registrations: the rows, then approving one says who registered it in the status bar
    window.tabs.setCurrentWidget(window.registrations)
    console.registrations.load()
    qtbot.waitUntil(lambda: len(console.registrations.listed) == 1, timeout=10_000)
    assert hostile_tooltips(window.registrations.rows) >= 3
    window.registrations.table.setCurrentIndex(window.registrations.rows.index(0, 0))
    window.registrations.approve.click()
    qtbot.waitUntil(lambda: "Approved by SecOps" in window.message.text(), timeout=10_000)
    assert window.message in literal_labels(window) and window.message.textFormat() == Qt.TextFormat.PlainText

    # and a triage dialog about the selection
    window.tabs.setCurrentWidget(window.agents)
    qtbot.waitUntil(lambda: len(console.agents.roster.rows) == 2, timeout=10_000)  # reloaded after the approval
    window.agents.table.selectRow(0)
    qtbot.waitUntil(lambda: bool(console.agents.selection.keys), timeout=10_000)
    console.agents.ask_triage("note")
    assert console.agents.dialog is not None

    labels = literal_labels(window)
    assert window.devices.users in labels and detail.header in labels
    assert window.devices.users.textFormat() == Qt.TextFormat.PlainText
    assert len(labels) >= 3, [label.accessibleName() for label in labels]
    literal_labels(console.agents.dialog)
    console.agents.dialog.reject()


def test_an_error_message_with_markup_is_shown_as_text(make_console: Any, qtbot: Any,
                                                       hostile: support.RunningCollector) -> None:
    from console.app import api
    from console.app.views.dialogs import SignInDialog

    console = make_console(token=hostile.admin, url=hostile.url)
    console.connection.show_error(api.InvalidRequest(HOSTILE, status=422))
    console.window.banner.show_message(HOSTILE)
    dialog = SignInDialog(hostile.url, HOSTILE)
    qtbot.addWidget(dialog)
    for label in (console.window.message, console.window.banner.text, dialog.message):
        assert label.text() == HOSTILE and label.textFormat() == Qt.TextFormat.PlainText
        assert label.sizeHint().width() < 2000


def test_hostile_markup_stays_text_in_the_overview_fleet_and_menus(make_console: Any, qtbot: Any,
                                                                   hostile: support.RunningCollector) -> None:
    console = make_console(token=hostile.admin, url=hostile.url)
    window = console.window
    qtbot.waitUntil(lambda: console.overview.latest is not None and console.fleet.latest is not None, timeout=10_000)
    # the riskiest agents (its name, host and user are the markup)
    assert window.overview.riskiest.rowCount() == 1
    assert hostile_tooltips(window.overview.riskiest) >= 3
    assert window.overview.riskiest_table.sizeHintForRow(0) < 200  # no 4,000-pixel image laid out
    # the roster's context menu names the device as written, & and all
    window.agents.with_servers.setChecked(True)
    qtbot.waitUntil(lambda: len(console.agents.roster.rows) == 2, timeout=10_000)
    menu = console.agents.context_menu([console.agents.roster.rows[0]])
    opener = next(a for a in menu.actions() if a.text().startswith("Show every agent on "))
    assert opener.text() == f"Show every agent on {HOSTILE}"
    assert menu.sizeHint().width() < 2000
    # a saved view named with the markup
    console.agents.save_view(HOSTILE, console.window.agents.current_filter())
    names = [a.text() for a in window.agents.views_menu.actions()]
    assert HOSTILE in names
    # an agent's servers, listed under its name as written
    agent = next(a for a in console.agents.roster.rows if a.id == "hostile-agent")
    console.agents.show_servers(agent)
    qtbot.waitUntil(lambda: console.agents.roster.filter.parent == "hostile-agent"
                    and console.agents.roster.count == 1 and not console.agents.roster.loading, timeout=10_000)
    assert window.agents.parent_note.textFormat() == Qt.TextFormat.PlainText
    assert window.agents.parent_note.text() == f"Servers of {HOSTILE}"
    assert window.agents.parent_note.sizeHint().width() < 2000
    # the fleet: its rows' tooltips
    assert window.fleet.model.rowCount() >= 1
    hostile_tooltips(window.fleet.model)
