"""The nudge ladder in the agents tab against a real collector with the ladder turned on: the Ladder
column says each ungoverned agent's rung and when it climbs (or since when it is overdue), the filter lists
one rung or the overdue ones, and sorting on the column lists the longest-ungoverned (overdue) first.

This module runs its own collector: turning the ladder on would nudge the shared collector's devices."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import Qt

from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(120)
DAY = 86400


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.RunningCollector]:
    """A collector whose policy climbs the ladder to escalation (notify at once, remind after 7 days, a
    deadline 7 days later), with two ungoverned agents: one stored today and one stored 30 days ago."""
    tmp = tmp_path_factory.mktemp("ladder-collector")
    database = tmp / "collector.sqlite3"
    running = support.start(f"sqlite:///{database}", tmp / "server.log")
    host = f"host:ladder-{uuid.uuid4().hex[:6]}"
    running.snapshot(host, [support.sighting(id="fresh-bot", name="fresh bot", signature=None, type="unknown",
                                             user="yann", providers=("openai",)),
                            support.sighting(id="old-bot", name="old bot", signature=None, type="unknown",
                                             user="yann", providers=("openai",))])
    answer = running.http.put("/api/v1/policy", headers={"authorization": f"Bearer {running.admin}"},
                              json={"ladder": "escalate", "notify_after_days": 0, "remind_after_days": 7,
                                    "deadline_days": 7, "escalate_after_days": 0})
    assert answer.status_code == 200, answer.text
    # Nobody waits 30 days in a test: the old agent's first storage and the day the ladder was turned on
    # are moved back in the collector's own SQLite file.
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE policy SET ladder_since = ladder_since - ?", (30 * DAY,))
        conn.execute("UPDATE sighting SET recorded_at = recorded_at - ?, ungoverned_since = recorded_at - ? "
                     "WHERE id = 'old-bot'", (30 * DAY, 30 * DAY))
    yield running
    running.close()


def shown(console: Any, qtbot: Any, chosen: vm.AgentFilter) -> list[Any]:
    console.window.agents.set_filter(chosen)
    qtbot.waitUntil(lambda: console.agents.roster.filter == chosen and console.agents.roster.count is not None
                    and len(console.agents.roster.rows) == console.agents.roster.count, timeout=10_000)
    return list(console.agents.roster.rows)


def test_the_ladder_column_says_each_rung_and_its_date(make_console: Any, qtbot: Any,
                                                       collector: support.RunningCollector) -> None:
    console = make_console()
    rows = {a.id: a for a in shown(console, qtbot, vm.AGENTS_ONLY.with_(user="yann"))}
    column = console.agents.model.column_of("ladder")
    assert console.agents.model.headerData(column, Qt.Orientation.Horizontal) == "Ladder"  # shown by default
    fresh, old = rows["fresh-bot"], rows["old-bot"]
    assert fresh.ladder == "notify" and not fresh.overdue and old.ladder == "escalate" and old.overdue
    assert vm.ladder_label(fresh) == f"Employee notified, next {vm.when(fresh.ladder_due)}"
    assert vm.ladder_label(old) == f"Escalated: overdue since {vm.when(old.ladder_due)}"
    assert fresh.ladder_due is not None and abs(fresh.ladder_due.timestamp() - (time.time() + 7 * DAY)) < 600
    # with the ladder off (the default policy), an ungoverned agent is only reported
    assert vm.ladder_label(fresh.model_copy(update={"ladder": "report_only", "ladder_due": None})) == "Reported only"
    assert vm.ladder_label(fresh.model_copy(update={"ladder": None, "ladder_due": None})) == ""  # governed
    texts = {console.agents.model.data(console.agents.model.index(r, column))
             for r in range(console.agents.model.rowCount())}
    assert vm.ladder_label(old) in texts and vm.ladder_label(fresh) in texts


def test_the_ladder_filter_lists_one_rung_or_the_overdue(make_console: Any, qtbot: Any,
                                                         collector: support.RunningCollector) -> None:
    console = make_console()
    view = console.window.agents
    view.ladder.setCurrentIndex(view.ladder.findData("overdue"))
    qtbot.waitUntil(lambda: console.agents.roster.filter.ladder == "overdue"
                    and console.agents.roster.count == 1, timeout=10_000)
    assert [a.id for a in console.agents.roster.rows] == ["old-bot"]
    assert [a.id for a in shown(console, qtbot, vm.AGENTS_ONLY.with_(ladder="notify"))] == ["fresh-bot"]
    assert view.ladder.currentData() == "notify"  # a filter set from elsewhere shows in the box
    assert shown(console, qtbot, vm.AGENTS_ONLY.with_(ladder="remind")) == []
    # a saved view keeps the rung; a value the collector would refuse is dropped
    assert vm.AgentFilter.from_params({"ladder": "overdue"}).ladder == "overdue"
    assert vm.AgentFilter.from_params({"ladder": "<b>top</b>"}).ladder is None


def test_sorting_on_the_ladder_lists_the_overdue_first(make_console: Any, qtbot: Any,
                                                       collector: support.RunningCollector) -> None:
    console = make_console()
    shown(console, qtbot, vm.AGENTS_ONLY.with_(user="yann"))
    column = console.agents.model.column_of("ladder")
    console.window.agents.table.sortByColumn(column, Qt.SortOrder.DescendingOrder)  # as a header click does
    qtbot.waitUntil(lambda: console.agents.roster.sort == "overdue" and len(console.agents.roster.rows) == 2,
                    timeout=10_000)
    assert [a.id for a in console.agents.roster.rows] == ["old-bot", "fresh-bot"]


def test_choosing_a_rung_sorts_the_overdue_first(make_console: Any, qtbot: Any,
                                                 collector: support.RunningCollector) -> None:
    console = make_console()
    view = console.window.agents
    shown(console, qtbot, vm.AGENTS_ONLY.with_(user="yann"))
    assert console.agents.roster.sort != "overdue"
    view.ladder.setCurrentIndex(view.ladder.findData("notify"))
    qtbot.waitUntil(lambda: console.agents.roster.filter.ladder == "notify" and console.agents.roster.count == 1,
                    timeout=10_000)
    assert console.agents.roster.sort == "overdue"
    column = console.agents.model.column_of("ladder")
    assert view.table.horizontalHeader().sortIndicatorSection() == column  # the arrow on the Ladder column


def test_the_overview_counts_the_escalated_and_its_card_lists_them(make_console: Any, qtbot: Any,
                                                                    collector: support.RunningCollector) -> None:
    console = make_console()
    window = console.window
    qtbot.waitUntil(lambda: console.overview.latest is not None, timeout=10_000)
    assert console.overview.latest.escalated == 1
    assert [a.id for a in console.overview.latest.escalated_agents] == ["old-bot"]
    card = window.overview.cards[vm.ESCALATED]
    assert card.value.text() == "1"
    window.tabs.setCurrentWidget(window.overview)
    qtbot.mouseClick(card, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: console.agents.roster.filter.ladder == "escalate" and console.agents.roster.count == 1,
                    timeout=10_000)
    assert window.tabs.currentWidget() is window.agents
    assert [a.id for a in console.agents.roster.rows] == ["old-bot"]
    assert console.agents.roster.sort == "overdue"  # the longest overdue first
