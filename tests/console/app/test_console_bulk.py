"""Acting on a whole filter from the console, over a real collector: "Select all N matching", a
confirmation that states the count the collector counted, one action on the collector for all of them,
and Undo; a selection of several agents is confirmed too, and undone the same way."""

from __future__ import annotations

import uuid
from typing import Any

import console_support as support
import pytest
from PySide6.QtWidgets import QMessageBox

from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(180)
BULK = 3000  # more than one request's 1,000 targets, and than the pages the console loads


@pytest.fixture(scope="module")
def bulk_signature(collector: support.RunningCollector) -> str:
    """3,000 ungoverned agents of one signature of their own, on six devices."""
    signature = f"bulk-{uuid.uuid4().hex[:8]}"
    for device in range(6):
        collector.snapshot(f"host:bulk-{signature}-{device}", [
            support.sighting(id=f"bulk-{device}-{i}", name=f"Bulk agent {device}-{i}", signature=signature,
                             type="coding", user="yann", vendor="Bulk", running=False)
            for i in range(BULK // 6)])
    return signature


def approved(collector: support.RunningCollector, signature: str) -> int:
    return int(collector.get("/api/v1/agents", signature=signature, triage_state="approved", limit=1)["count"])


def confirm(console: Any, qtbot: Any) -> QMessageBox:
    qtbot.waitUntil(lambda: console.agents.confirm_box is not None and console.agents.confirm_box.isVisible(),
                    timeout=10_000)
    box = console.agents.confirm_box
    assert box is not None
    return box


def test_an_action_on_every_matching_agent_is_confirmed_applied_and_undone(
        make_console: Any, qtbot: Any, collector: support.RunningCollector, bulk_signature: str) -> None:
    console = make_console(page_size=200)
    window = console.window
    window.tabs.setCurrentWidget(window.agents)
    chosen = vm.AgentFilter(signature=bulk_signature)
    window.agents.set_filter(chosen)
    qtbot.waitUntil(lambda: console.agents.roster.filter == chosen and console.agents.roster.count == BULK
                    and not console.agents.roster.loading, timeout=10_000)
    assert len(console.agents.roster.rows) == 200  # one page loaded of 3,000

    window.select_all_action.trigger()  # Ctrl+A: the loaded rows, and the offer to take them all
    assert window.agents.select_matching.isVisible() and window.agents.select_matching.text() == "Select all 3,000 matching"
    window.agents.select_matching.click()
    assert window.agents.selection.text() == "all 3,000 matching agents"

    console.agents.ask_triage("approve")
    box = confirm(console, qtbot)
    assert box.windowTitle() == "Approve 3,000 agents?" and bulk_signature in box.text()
    assert box.button(QMessageBox.StandardButton.Ok).text() == "Approve"
    assert approved(collector, bulk_signature) == 0  # nothing happens before the confirmation
    box.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: approved(collector, bulk_signature) == BULK, timeout=20_000)
    # the collector has applied it; the console's undo comes with the answer ("Approving: 3,000…" is not it)
    qtbot.waitUntil(window.undo_action.isEnabled, timeout=20_000)
    assert "3,000" in window.message.text()
    actions = collector.get("/api/v1/agents/actions", limit=5)
    assert actions[0]["count"] == BULK and actions[0]["action"] == "approve"  # audited as one action

    window.undo_action.trigger()
    qtbot.waitUntil(lambda: approved(collector, bulk_signature) == 0, timeout=20_000)
    qtbot.waitUntil(lambda: "restored" in window.message.text(), timeout=10_000)
    assert "3,000" in window.message.text() and not window.undo_action.isEnabled()


def test_the_count_is_checked_again_when_confirmed(make_console: Any, qtbot: Any,
                                                   collector: support.RunningCollector) -> None:
    """The fleet moves between the question and the answer: nothing is done, and the console says why."""
    console = make_console()
    signature = f"moving-{uuid.uuid4().hex[:8]}"
    host = f"host:{signature}"
    collector.snapshot(host, [support.sighting(id=f"m-{i}", name=f"Moving {i}", signature=signature)
                              for i in range(3)])
    window = console.window
    chosen = vm.AgentFilter(signature=signature)
    window.agents.set_filter(chosen)
    qtbot.waitUntil(lambda: console.agents.roster.filter == chosen and console.agents.roster.count == 3, timeout=10_000)
    console.agents.select_all_matching()
    console.agents.ask_triage("false_positive")
    box = confirm(console, qtbot)
    assert box.windowTitle() == "Mark 3 agents as false positives?"
    collector.snapshot(host, [support.sighting(id=f"m-{i}", name=f"Moving {i}", signature=signature)
                              for i in range(4)], seq=2)
    box.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: "4" in window.message.text() and window.message.styleSheet() != "", timeout=10_000)
    hidden = collector.get("/api/v1/agents", signature=signature, triage_state="false_positive", limit=1)["count"]
    assert hidden == 0


def test_a_selection_of_several_is_confirmed_and_undone(make_console: Any, qtbot: Any,
                                                        collector: support.RunningCollector) -> None:
    console = make_console()
    signature = f"pick-{uuid.uuid4().hex[:8]}"
    collector.snapshot(f"host:{signature}", [support.sighting(id=f"p-{i}", name=f"Picked {i}", signature=signature)
                                             for i in range(3)])
    window = console.window
    chosen = vm.AgentFilter(signature=signature)
    window.agents.set_filter(chosen)
    qtbot.waitUntil(lambda: console.agents.roster.filter == chosen and len(console.agents.roster.rows) == 3,
                    timeout=10_000)
    window.agents.table.selectAll()
    assert not window.agents.select_matching.isVisible()  # every match is loaded: nothing more to offer
    console.agents.ask_triage("approve")
    box = confirm(console, qtbot)
    assert box.windowTitle() == "Approve 3 agents?"
    box.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: approved(collector, signature) == 3, timeout=10_000)
    window.undo_action.trigger()
    qtbot.waitUntil(lambda: approved(collector, signature) == 0, timeout=10_000)
