"""The agents tab over a real collector: lazy paging with fetchMore, server-side filters and sorting,
the count in the filter bar, and column choices remembered in QSettings."""

from __future__ import annotations

from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import QSettings, Qt

from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(120)


def loaded(console: Any) -> bool:
    return console.agents.roster.count is not None and not console.agents.roster.loading


def test_first_page_then_more_pages_on_demand(make_console: Any, qtbot: Any, modeltest: Any,
                                              collector: support.RunningCollector) -> None:
    console = make_console(page_size=50)
    modeltest(console.agents.model)
    total = collector.get("/api/v1/agents", type=list(vm.AGENT_TYPES), limit=1)["count"]  # agents first
    assert console.agents.model.rowCount() % 50 == 0 and console.agents.roster.count == total > 50
    assert console.agents.model.rowCount() < total  # pages come on demand, not all at once
    while console.agents.model.canFetchMore() or console.agents.roster.loading:
        console.agents.model.fetchMore()
        qtbot.waitUntil(lambda: loaded(console), timeout=10_000)
    assert console.agents.model.rowCount() == total and not console.agents.model.canFetchMore()
    assert len({a.key for a in console.agents.roster.rows}) == total
    assert f"{total:,} agents match" == console.window.agents.count.text()


def test_scrolling_the_table_fetches_the_next_page(make_console: Any, qtbot: Any) -> None:
    console = make_console(page_size=50)
    table = console.window.agents.table
    table.scrollToBottom()
    qtbot.waitUntil(lambda: console.agents.model.rowCount() > 50, timeout=10_000)


def test_filters_are_applied_by_the_collector(make_console: Any, qtbot: Any, modeltest: Any,
                                              collector: support.RunningCollector) -> None:
    console = make_console()
    modeltest(console.agents.model)
    view = console.window.agents
    view.type.setCurrentIndex(view.type.findData("runtime"))
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.type == "runtime", timeout=10_000)
    expected = collector.get("/api/v1/agents", type="runtime", limit=500)
    assert console.agents.roster.count == expected["count"] > 0
    assert {a.type for a in console.agents.roster.rows} == {"runtime"}
    view.search.setText("zoe-laptop")
    view.type.setCurrentIndex(0)
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.q == "zoe-laptop", timeout=10_000)
    assert {a.id for a in console.agents.roster.rows} == {"known-claude", "known-script"}  # agents first
    assert view.count.text() == "2 agents match"
    view.set_filter(vm.AgentFilter(device=collector.known_device, flag="autonomous"))
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.flag == "autonomous", timeout=10_000)
    assert [a.id for a in console.agents.roster.rows] == ["known-claude"]
    assert view.texts["device"].text() == collector.known_device


def test_a_filter_that_matches_nothing_shows_zero(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    console.window.agents.set_filter(vm.AgentFilter(q="' OR 1=1 --"))
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.q == "' OR 1=1 --", timeout=10_000)
    assert console.agents.model.rowCount() == 0 and console.window.agents.count.text() == "No agent matches"


def test_clicking_a_sortable_header_sorts_on_the_server(make_console: Any, qtbot: Any,
                                                        collector: support.RunningCollector) -> None:
    console = make_console(page_size=40)
    column = console.agents.model.column_of("name")
    assert column is not None
    console.window.agents.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.sort == "name" and console.agents.roster.order == "asc",
                    timeout=10_000)
    expected = collector.get("/api/v1/agents", sort="name", order="asc", limit=40)["data"]
    assert [(a.device_id, a.id) for a in console.agents.roster.rows] == [(r["device_id"], r["id"]) for r in expected]
    flags = console.agents.model.column_of("flags")
    assert flags is not None
    console.window.agents.table.sortByColumn(flags, Qt.SortOrder.DescendingOrder)  # not sortable: no reload
    assert console.agents.roster.sort == "name"


def test_column_choices_are_remembered(make_console: Any, qtbot: Any, settings_file: Any) -> None:
    console = make_console()
    menu = console.window.agents.columns_menu
    vendor = next(a for a in menu.actions() if a.data() == "vendor")
    vendor.trigger()
    assert console.agents.model.column_of("vendor") is not None
    assert console.agents.model.headerData(console.agents.model.column_of("vendor"), Qt.Orientation.Horizontal) == "Vendor"
    type_action = next(a for a in menu.actions() if a.data() == "type")
    type_action.trigger()
    assert console.agents.model.column_of("type") is None
    console.save_state()
    saved = QSettings(str(settings_file), QSettings.Format.IniFormat).value("agents/columns")
    assert "vendor" in saved and "type" not in saved
    again = make_console()
    assert again.agents.choice.visible == console.agents.choice.visible


def test_keyboard_moves_through_rows_and_opens_the_detail(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    table = console.window.agents.table
    table.setFocus()
    table.selectRow(0)
    qtbot.keyClick(table, Qt.Key.Key_Down)
    assert table.currentIndex().row() == 1
    second = console.agents.model.agent_at(1)
    assert second is not None
    qtbot.waitUntil(lambda: console.window.detail.detail is not None
                    and console.window.detail.detail.agent.key == second.key, timeout=10_000)


def test_keyboard_reaches_every_tab_and_the_search(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    window = console.window
    window.activateWindow()
    for number, widget in ((4, window.devices), (5, window.registrations), (6, window.policy),
                           (1, window.overview), (2, window.fleet), (3, window.agents)):
        qtbot.keyClick(window, getattr(Qt.Key, f"Key_{number}"), Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentWidget() is widget
    qtbot.keyClick(window.agents.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.agents.search.hasFocus()
    qtbot.keyClicks(window.agents.search, "zoe-laptop")
    qtbot.keyClick(window.agents.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.q == "zoe-laptop", timeout=10_000)
    assert console.agents.roster.count == 2  # the agents; their tool server is listed under Claude Code


def test_window_layout_is_remembered(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    console.window.resize(1111, 777)
    qtbot.waitUntil(lambda: console.window.width() == 1111, timeout=5_000)
    console.save_state()
    again = make_console()
    # Qt keeps a restored window on its screen: the offscreen platform's is 800 pixels wide
    screen = again.window.screen().availableGeometry()
    wanted = 1111 if screen.width() >= 1111 else max(screen.width(), again.window.minimumSizeHint().width())
    assert abs(again.window.width() - wanted) <= 16 and abs(again.window.height() - 777) <= 16, again.window.size()
