"""The console as a desktop application, over a real collector: its menu bar, icons and shortcut list, one
theme module for every colour (light and dark), layouts that hold at 1280×800 and at 2× scale, states
that say what is happening, and finding and acting on rows (movable columns, refused sorts, copy, context
menu, saved views, errors as sentences, the detail's own triage buttons, the systems a server reaches)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import QItemSelectionModel, QPoint, QSettings, Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from console.app import api, theme
from console.app import viewmodels as vm
from console.app.views.agents import SEVERAL, WIDEST_COUNT

pytestmark = pytest.mark.timeout(120)
APP = Path(__file__).resolve().parents[3] / "console" / "app"


def loaded(console: Any) -> bool:
    return console.agents.roster.count is not None and not console.agents.roster.loading


@pytest.fixture
def light_after() -> Any:
    """The application palette goes back to the platform's after a test that changes it."""
    yield
    theme.apply("system")


def own_device(collector: support.RunningCollector, sightings: list[dict[str, Any]]) -> str:
    return collector.snapshot(f"host:desk-{uuid.uuid4().hex[:8]}", sightings)


def show_device(console: Any, qtbot: Any, device_id: str, count: int) -> None:
    console.window.agents.set_filter(vm.AgentFilter(device=device_id))
    qtbot.waitUntil(lambda: console.agents.roster.filter.device == device_id and console.agents.roster.count == count
                    and len(console.agents.roster.rows) == count, timeout=10_000)


# -- a desktop application ----------------------------------------------------------------------------


def test_menu_bar_icons_and_help(make_console: Any, qtbot: Any) -> None:
    window = make_console().window
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == ["&File", "&Edit", "&View", "&Triage", "&Help"]
    assert not window.windowIcon().isNull() and window.windowIcon().availableSizes()
    triage = window.menuBar().actions()[3].menu()
    assert [a.text() for a in triage.actions()] == ["&Approve (sanction)", "Assign &owner…", "Request &registration",
                                                   "False &positive", "Add &note…"]
    assert all(not a.icon().isNull() for a in triage.actions())
    assert all(not b.icon().isNull() for b in window.agents.triage_buttons.values())
    help_menu = window.menuBar().actions()[4].menu()
    assert [a.text() for a in help_menu.actions()] == ["&Keyboard shortcuts", "&About agentroster console"]

    window.shortcuts_action.trigger()  # F1
    dialog = window.shortcuts_dialog
    assert dialog is not None and dialog.isVisible()
    listed = [dialog.rows.data(dialog.rows.index(r, 0)) for r in range(dialog.rows.rowCount())]
    assert "Ctrl+C" in listed and "F5" in listed and "Ctrl+1 … Ctrl+6" in listed
    # every shortcut a menu item carries is in the list
    shortcuts = {a.shortcut().toString() for menu in window.menuBar().actions() for a in menu.menu().actions()
                 if not a.shortcut().isEmpty()}
    text = " ".join(listed)
    for key in shortcuts - {f"Ctrl+{n}" for n in range(1, 7)}:
        assert key in text, key
    assert "agentroster console" in window.about_text() and "None" not in window.about_text()


def test_no_colour_is_named_outside_the_theme() -> None:
    named = re.compile(r"QColor\(|#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b|Qt\.GlobalColor\.(?!transparent)")
    found = [f"{path.relative_to(APP)}:{n}: {line.strip()}"
             for path in APP.rglob("*.py") if path.name != "theme.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if named.search(line)]
    assert not found, found


def test_dark_palette_keeps_text_readable(make_console: Any, qtbot: Any, light_after: Any) -> None:
    console = make_console()
    window = console.window
    qtbot.waitUntil(lambda: console.overview.latest is not None, timeout=10_000)
    light_bad = theme.colour("bad")
    window.theme_actions["dark"].trigger()
    assert theme.is_dark() and QSettings(console.settings.fileName(), QSettings.Format.IniFormat)
    assert console.settings.value("window/theme") == "dark"
    assert theme.colour("bad") != light_bad
    for tone in ("good", "bad", "warn", "text", "muted", "banner_text"):
        foreground = theme.colour(tone)  # type: ignore[arg-type]
        background = theme.colour("banner") if tone == "banner_text" else QApplication.palette().color(
            QPalette.ColorRole.Base)
        assert contrast(foreground, background) >= 4.5, tone
    # the status line and the banner follow the palette without being told
    window.show_message("refused", error=True)
    assert theme.css("bad") in window.message.styleSheet()
    assert theme.css("banner") in window.banner.styleSheet()
    # the chart's title is drawn in the palette's text colour on its base: light pixels on a dark chart
    chart = window.overview.by_type
    window.tabs.setCurrentWidget(window.overview)
    qtbot.waitUntil(lambda: chart.palette().color(QPalette.ColorRole.Base).lightness() < 60, timeout=5_000)
    image = chart.grab().toImage()
    title = [image.pixelColor(x, y) for x in range(8, 120) for y in range(4, 18)]
    assert max(c.lightness() for c in title) > 180 and image.pixelColor(chart.width() - 3, 3).lightness() < 60
    window.theme_actions["light"].trigger()
    assert not theme.is_dark() and theme.colour("bad") == light_bad


def contrast(a: Any, b: Any) -> float:
    def luminance(c: Any) -> float:
        def channel(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_layout_holds_at_1280_by_800(make_console: Any, qtbot: Any, collector: support.RunningCollector) -> None:
    console = make_console()
    window = console.window
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.width() == 1280, timeout=5_000)
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800
    count = window.agents.count
    window.agents.show_count(99_997, 200)
    qtbot.wait(50)
    assert count.text() == "99,997 agents match (200 loaded)"
    assert count.width() >= count.fontMetrics().horizontalAdvance(count.text())  # no leading digit clipped
    assert count.minimumWidth() >= count.fontMetrics().horizontalAdvance(WIDEST_COUNT)
    # device rows are one line each
    window.tabs.setCurrentWidget(window.devices)
    qtbot.waitUntil(lambda: console.devices.model.rowCount() > 0, timeout=10_000)
    table = window.devices.table
    assert not table.wordWrap()
    assert {table.rowHeight(r) for r in range(console.devices.model.rowCount())} == {
        table.verticalHeader().defaultSectionSize()}
    # the registrations' headers are never clipped
    window.tabs.setCurrentWidget(window.registrations)
    header = window.registrations.table.horizontalHeader()
    for i, title in enumerate(vm.REGISTRATION_HEADERS):
        assert header.sectionSize(i) >= header.fontMetrics().horizontalAdvance(title) + 12, title
    # the empty detail dock takes no room until an agent is opened
    assert not window.detail_dock.isVisible()
    assert "None" not in window.detail.header.text()
    console.agents.open_detail((collector.known_device, "known-claude"))
    qtbot.waitUntil(lambda: window.detail.detail is not None, timeout=10_000)
    assert window.detail_dock.isVisible() and window.detail_dock.width() < 1280 * 0.45


def test_at_twice_the_scale_the_window_fits_1280_by_800(tmp_path: Path) -> None:
    """A child process, because Qt reads QT_SCALE_FACTOR once, when the application starts."""
    script = textwrap.dedent("""
        import sys
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from console.app.views.main_window import MainWindow
        window = MainWindow()
        window.resize(1280, 800)
        window.show()
        app.processEvents()
        image = window.grab().toImage()
        hint = window.minimumSizeHint()
        count = window.agents.count
        count.setText("99,997 agents match (200 loaded)")
        app.processEvents()
        print(image.width(), image.height(), hint.width(), hint.height(),
              count.width() >= count.fontMetrics().horizontalAdvance(count.text()))
    """)
    env = {"QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": "2", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr
    width, height, hint_w, hint_h, fits = done.stdout.split()
    assert (int(width), int(height)) == (2560, 1600)  # drawn at twice the pixels
    assert int(hint_w) <= 1280 and int(hint_h) <= 800 and fits == "True"


def test_loading_and_empty_states_say_what_is_happening(qtbot: Any) -> None:
    from console.app.views.charts import BarChart, TrendChart
    from console.app.views.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    assert window.agents.count.text() == "Loading agents…"
    bars, trend = BarChart("Agents by type"), TrendChart("Ungoverned agents over time")
    assert bars.empty_text == "Loading…" and trend.empty_text == "Loading…"
    bars.set_bars([])
    trend.set_points([])
    assert bars.empty_text == "Nothing reported yet" and "No samples yet" in trend.empty_text
    window.agents.show_count(0, 0)
    assert window.agents.count.text() == "No agent matches" and "Clear filters" in window.agents.count.toolTip()


# -- finding and acting --------------------------------------------------------------------------------


def test_a_status_message_does_not_follow_to_another_tab(make_console: Any, qtbot: Any) -> None:
    window = make_console().window
    window.tabs.setCurrentWidget(window.agents)
    window.show_message("Select one or more agents first.", error=True)
    window.tabs.setCurrentWidget(window.devices)
    assert window.message.text() == "" and window.message.styleSheet() == ""


def test_an_unsortable_column_says_so_and_keeps_the_sort(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    window = console.window
    window.tabs.setCurrentWidget(window.agents)
    header = window.agents.table.horizontalHeader()
    name = console.agents.model.column_of("name")
    window.agents.table.sortByColumn(name, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: console.agents.roster.sort == "name" and loaded(console), timeout=10_000)
    flags = console.agents.model.column_of("flags")
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(header.sectionViewportPosition(flags) + 10, 5))
    assert console.agents.roster.sort == "name"
    assert header.sortIndicatorSection() == name  # the arrow stays where the sort is
    assert "cannot sort by Flags" in window.message.text() and "sorted by Agent" in window.message.text()


def test_moved_columns_are_kept(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    header = console.window.agents.table.horizontalHeader()
    assert header.sectionsMovable()
    first = list(console.agents.choice.visible)
    header.moveSection(0, 2)  # as a drag does
    assert console.agents.choice.visible == [first[1], first[2], first[0], *first[3:]]
    assert console.agents.model.headerData(2, Qt.Orientation.Horizontal) == vm.COLUMN_BY_KEY[first[0]].title
    assert [header.visualIndex(i) for i in range(header.count())] == list(range(header.count()))
    again = make_console()
    assert again.agents.choice.visible == console.agents.choice.visible


def test_copy_takes_whole_rows(make_console: Any, qtbot: Any, collector: support.RunningCollector) -> None:
    console = make_console()
    device = own_device(collector, [support.sighting(id=f"copy-{i}", name=f"Copy agent {i}", signature=None,
                                                     type="unknown", user="ines", providers=("openai",))
                                    for i in range(3)])
    show_device(console, qtbot, device, 3)
    table = console.window.agents.table
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in (0, 2):
        table.selectionModel().select(console.agents.model.index(row, 0), flags)
    table.setFocus()
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QGuiApplication.clipboard().text().splitlines()
    titles = [c.title for c in console.agents.choice.columns]
    assert lines[0].split("\t") == titles and len(lines) == 3
    names = {line.split("\t")[titles.index("Agent")] for line in lines[1:]}
    assert names == {console.agents.roster.rows[0].name, console.agents.roster.rows[2].name}
    assert all(len(line.split("\t")) == len(titles) for line in lines)


def test_context_menu_triages_copies_and_opens_the_device(make_console: Any, qtbot: Any,
                                                          collector: support.RunningCollector) -> None:
    console = make_console()
    device = own_device(collector, [support.sighting(id="ctx-0", name="Context agent", signature=None, type="unknown",
                                                     user="ines", providers=("openai",))])
    show_device(console, qtbot, device, 1)
    agent = console.agents.roster.rows[0]
    console.window.agents.table.selectRow(0)
    menu = console.agents.context_menu([agent])
    texts = [a.text() for a in menu.actions()]
    assert texts[:5] == [a.text() for a in console.window.triage_actions.values()]
    assert "&Copy rows" in texts and "Open the detail" in texts
    console.window.agents.set_filter(vm.AgentFilter())
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.device is None, timeout=10_000)
    opener = next(a for a in menu.actions() if a.text().startswith("Show every agent on "))
    assert "desk-" in opener.text()
    opener.trigger()
    qtbot.waitUntil(lambda: console.agents.roster.filter.device == device and loaded(console), timeout=10_000)
    assert console.agents.roster.count == 1


def test_saved_views_come_back(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    chosen = vm.AgentFilter(type="coding", governed=False, flag="autonomous")
    console.agents.save_view("Ungoverned  autonomous <b>coding</b> & more", chosen)
    again = make_console()
    names = [a.text() for a in again.window.agents.views_menu.actions()]
    assert "Ungoverned autonomous <b>coding</b> && more" in names  # plain text, & not a mnemonic
    again.agents.open_view("Ungoverned autonomous <b>coding</b> & more")
    qtbot.waitUntil(lambda: again.agents.roster.filter == chosen and loaded(again), timeout=10_000)
    assert again.window.agents.current_filter() == chosen


def test_collector_validation_reads_as_a_sentence(make_console: Any, qtbot: Any,
                                                  collector: support.RunningCollector) -> None:
    client = api.Client(collector.url, collector.admin, timeout=10)
    try:
        with pytest.raises(api.InvalidRequest) as refused:
            client.triage([("0" * 32, f"s{i}") for i in range(1001)], "approve")
    finally:
        client.close()
    message = refused.value.message
    assert message.startswith("One action takes at most 1,000 agents at once.")
    assert "should" not in message and "List" not in message and "targets" not in message
    # the console does not even send it
    console = make_console()
    console.agents.triage("approve", targets=[("0" * 32, f"s{i}") for i in range(1200)])
    assert "at most 1,000 agents at once and 1,200 are selected" in console.window.message.text()


def test_detail_acts_on_its_agent_and_shows_what_it_reaches(make_console: Any, qtbot: Any,
                                                            collector: support.RunningCollector) -> None:
    console = make_console()
    postgres = {"name": "postgres", "transport": "stdio", "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-postgres", "postgresql://db.internal/app"],
                "url": None, "source": "/home/ines/.claude.json", "enabled": True, "project": None}
    device = own_device(collector, [
        support.sighting(id="pane-agent", name="Claude Code", signature="claude-code", user="ines",
                         providers=("anthropic",), mcp_servers=[postgres]),
        support.sighting(id="pane-pg", name="postgres", signature=None, type="tool_server", user="ines",
                         parent="pane-agent", flags=("broad_tools",)),
    ])
    console.agents.open_detail((device, "pane-agent"), "Claude Code")
    detail = console.window.detail
    qtbot.waitUntil(lambda: detail.detail is not None and detail.detail.id == "pane-agent", timeout=10_000)
    chain = detail.chain
    found: dict[str, str] = {}

    def walk(parent: Any) -> None:
        for row in range(chain.rowCount(parent)):
            found[chain.index(row, 0, parent).data()] = chain.index(row, 1, parent).data()
            walk(chain.index(row, 0, parent))
    walk(chain.index(-1, -1))
    assert "risk: Broad tools" in found["postgres"]
    assert found["postgresql://db.internal/app"] == "system — named in its arguments"

    assert all(b.isEnabled() for b in detail.triage_buttons.values())  # an admin
    qtbot.mouseClick(detail.triage_buttons["approve"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: detail.detail is not None and detail.detail.agent.triage_state == "approved", timeout=10_000)
    assert "Approved" in detail.header.text()  # the pane shows the new state without being asked


def test_viewer_cannot_use_the_detail_buttons(make_console: Any, qtbot: Any, collector: support.RunningCollector) -> None:
    console = make_console(token=collector.viewer)
    assert not any(b.isEnabled() for b in console.window.detail.triage_buttons.values())
    assert not any(a.isEnabled() for a in console.window.triage_actions.values())


def test_every_overview_number_and_bar_opens_its_list(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    window = console.window
    qtbot.waitUntil(lambda: console.overview.latest is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.overview)
    overview = console.overview.latest
    view = window.overview

    def opened(chosen: vm.AgentFilter) -> int:
        qtbot.waitUntil(lambda: console.agents.roster.filter == chosen and loaded(console), timeout=10_000)
        assert window.tabs.currentWidget() is window.agents
        return int(console.agents.roster.count)

    qtbot.mouseClick(view.cards["Ungoverned"], Qt.MouseButton.LeftButton)
    assert opened(vm.AgentFilter(governed=False)) == overview.ungoverned
    # the second bar of "by type", clicked where it is drawn
    chart = view.by_type
    window.tabs.setCurrentWidget(window.overview)
    qtbot.waitExposed(chart)
    row_y = int(chart._top() + chart._row_height() * 1.5)
    assert chart.bar_at(row_y) == 1
    qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=QPoint(chart.width() // 2, row_y))
    # agents by type: the tool servers are left to their own card
    assert "tool_server" not in view.type_keys and len(view.type_keys) >= 2
    counts = {c.key: c.count for c in overview.by_type}
    assert opened(vm.AgentFilter(type=view.type_keys[1])) == counts[view.type_keys[1]]
    # the top provider's bar, from the keyboard
    window.tabs.setCurrentWidget(window.overview)
    view.providers.setFocus()
    qtbot.keyClick(view.providers, Qt.Key.Key_Down)
    qtbot.keyClick(view.providers, Qt.Key.Key_Return)
    assert opened(vm.AgentFilter(provider=overview.top_providers[0].key)) == overview.top_providers[0].count
    window.tabs.setCurrentWidget(window.overview)
    qtbot.mouseClick(view.cards["Stale devices"], Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.devices and window.devices.stale.currentData() is True
    # agents and tool servers are counted apart, and each card lists its own
    window.tabs.setCurrentWidget(window.overview)
    assert overview.agents + overview.tool_servers == overview.sightings > overview.agents > 0
    assert view.cards["Agents"].value.text() == f"{overview.agents:,}"
    qtbot.mouseClick(view.cards["Agents"], Qt.MouseButton.LeftButton)
    assert opened(vm.AgentFilter(type=vm.AGENT_TYPES)) == overview.agents
    window.tabs.setCurrentWidget(window.overview)
    qtbot.mouseClick(view.cards["Tool servers"], Qt.MouseButton.LeftButton)
    assert opened(vm.AgentFilter(type="tool_server")) == overview.tool_servers


def test_the_overview_leads_with_risk(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    window = console.window
    qtbot.waitUntil(lambda: console.overview.latest is not None, timeout=10_000)
    overview = console.overview.latest
    view = window.overview
    risks = [int(view.riskiest.data(view.riskiest.index(r, 0))) for r in range(view.riskiest.rowCount())]
    assert risks and risks == sorted(risks, reverse=True) and risks[0] == overview.riskiest[0].risk
    assert all(r.type != "tool_server" for r in view.riskiest_rows)
    # the riskiest agent: its detail, and its device's agents riskiest first
    top = overview.riskiest[0]
    view.riskiest_table.activated.emit(view.riskiest.index(0, 1))
    qtbot.waitUntil(lambda: window.detail.detail is not None and window.detail.detail.id == top.id
                    and console.agents.roster.sort == "risk" and loaded(console), timeout=10_000)
    assert console.agents.roster.filter.device == top.device_id and console.agents.roster.order == "desc"
    assert console.agents.roster.rows[0].risk == max(a.risk for a in console.agents.roster.rows)
    assert window.agents.table.horizontalHeader().sortIndicatorSection() == console.agents.model.column_of("risk")
    # a flag's bar: the agents with that flag, as many as the bar says
    first = overview.by_flag[0]
    view.by_flag.barActivated.emit(0)
    qtbot.waitUntil(lambda: console.agents.roster.filter == vm.AgentFilter(flag=first.key) and loaded(console),
                    timeout=10_000)
    assert console.agents.roster.count == first.count


def test_several_types_and_flags_at_once(make_console: Any, qtbot: Any, collector: support.RunningCollector) -> None:
    console = make_console()
    view = console.window.agents
    view.type.setCurrentIndex(view.type.findData(SEVERAL))  # "Several…": ticks in a menu
    qtbot.waitUntil(lambda: view.several_menu is not None and view.several_menu.isVisible(), timeout=5_000)
    for action in view.several_menu.actions():
        action.setChecked(action.data() in ("coding", "runtime"))
    view.several_menu.hide()
    qtbot.waitUntil(lambda: console.agents.roster.filter.type == ("coding", "runtime") and loaded(console),
                    timeout=10_000)
    both = collector.http.get("/api/v1/agents", params=[("type", "coding"), ("type", "runtime"), ("limit", "1")],
                              headers={"authorization": f"Bearer {collector.admin}"}).json()["count"]
    assert console.agents.roster.count == both > 0
    assert {a.type for a in console.agents.roster.rows} <= {"coding", "runtime"}  # the first page of them
    assert view.type.currentText() == "Coding, Runtime"
    # two flags: the agents with both
    view.choose_several(view.flag, ("autonomous", "personal_credential"))
    qtbot.waitUntil(lambda: console.agents.roster.filter.flag == ("autonomous", "personal_credential")
                    and loaded(console), timeout=10_000)
    assert all({"autonomous", "personal_credential"} <= set(a.flags) for a in console.agents.roster.rows)
    view.clear_filters()
    assert view.type.currentIndex() == 0 and view.type.findText("Coding, Runtime") == -1


def test_the_device_filter_takes_a_hostname_and_completes_it(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    view = console.window.agents
    console.window.tabs.setCurrentWidget(view)
    field = view.texts["device"]
    field.setFocus()
    qtbot.keyClicks(field, "zoe-")  # as typed: one request once typing pauses
    qtbot.waitUntil(lambda: view.device_names.stringList() == ["zoe-laptop"], timeout=5_000)
    field.setText("zoe-laptop")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: console.agents.roster.filter.device == "zoe-laptop" and loaded(console), timeout=10_000)
    assert console.agents.roster.count == 2 and {a.hostname for a in console.agents.roster.rows} == {"zoe-laptop"}


def test_no_two_visible_mnemonics_collide(make_console: Any, qtbot: Any) -> None:
    """Alt+letter must do one thing on each tab: an ambiguous one does nothing at all in Qt."""
    from PySide6.QtWidgets import QAbstractButton

    window = make_console().window
    window.banner.show()  # its Retry now is there whenever the collector is out of reach
    menus = [a.text() for a in window.menuBar().actions()]

    def letter(text: str) -> str | None:
        found = re.search(r"&([^&])", text.replace("&&", ""))
        return found.group(1).lower() if found else None

    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        qtbot.wait(10)
        texts = menus + [b.text() for b in window.findChildren(QAbstractButton) if b.isVisible() and b.text()]
        letters = [x for x in map(letter, texts) if x]
        clashes = {x for x in letters if letters.count(x) > 1}
        assert not clashes, (window.tabs.tabText(index), clashes, texts)
    # and Alt+P on the roster is False positive, not the File menu's neighbour
    window.banner.hide()
    window.tabs.setCurrentWidget(window.agents)
    window.activateWindow()
    window.agents.table.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_P, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: window.message.text() == "Select one or more agents first.", timeout=2_000)  # animated click


def test_copy_takes_the_rows_of_the_table_in_focus(make_console: Any, qtbot: Any) -> None:
    console = make_console()
    window = console.window
    qtbot.waitUntil(lambda: console.fleet.latest is not None, timeout=10_000)
    window.tabs.setCurrentWidget(window.fleet)
    table = window.fleet.table
    table.selectRow(0)
    table.setFocus()
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QGuiApplication.clipboard().text().splitlines()
    assert lines[0].split("\t")[:3] == ["Kind", "Type", "Sightings"] and len(lines) == 2
    assert lines[1].split("\t")[0] == window.fleet.model.rows[0].name
