"""The "Behaviour over time" dialog (console/app/views/timeline.py) against a real collector: opened from
the agents tab's context menu, it shows what a registered agent was seen doing and the drift event its
new provider opened; an admin accepts it there and the agent is governed again. A viewer sees the event
but cannot accept it."""

from __future__ import annotations

import uuid
from typing import Any

import console_support as support
import pytest
from PySide6.QtWidgets import QApplication

from console.app import viewmodels as vm
from console.app.views.timeline import TimelineDialog

pytestmark = pytest.mark.timeout(120)


def drifting(collector: support.RunningCollector) -> tuple[str, str]:
    """A registered, approved agent that then starts calling a provider it did not declare."""
    host = f"host:drift-{uuid.uuid4().hex[:8]}"
    made = support.sighting(id=f"drift-{uuid.uuid4().hex[:6]}", name="report bot", signature=None, type="unknown",
                            user="yann", providers=("openai",))
    collector.snapshot(host, [made])
    registration = collector.register(host, made["id"])
    answer = collector.http.post(f"/api/v1/registrations/{registration['id']}/approve", json={},
                                 headers={"authorization": f"Bearer {collector.admin}"})
    assert answer.status_code == 200, answer.text
    device = collector.snapshot(host, [{**made, "endpoints": made["endpoints"] + [
        {"host": "api.mistral.ai", "port": 443, "provider": "mistral", "via": "sni", "first_seen": 1.7e9,
         "last_seen": 1.7e9, "count": 1}]}], seq=2)
    return device, made["id"]


def open_dialog(console: Any, qtbot: Any, device: str) -> TimelineDialog:
    console.window.agents.set_filter(vm.AgentFilter(device=device))
    qtbot.waitUntil(lambda: console.agents.roster.filter.device == device and len(console.agents.roster.rows) == 1,
                    timeout=10_000)
    menu = console.agents.context_menu([console.agents.roster.rows[0]])
    next(a for a in menu.actions() if a.text() == "Behaviour over time…").trigger()
    dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, TimelineDialog) and w.isVisible()
                  and w.windowTitle() == "Behaviour over time: report bot")
    qtbot.waitUntil(lambda: dialog.drift.rowCount() == 1, timeout=10_000)
    return dialog


def test_an_admin_accepts_drift_from_the_behaviour_dialog(make_console: Any, qtbot: Any,
                                                          collector: support.RunningCollector) -> None:
    device, sighting_id = drifting(collector)
    assert collector.get(f"/api/v1/agents/{device}/{sighting_id}")["governed"] is False
    console = make_console()
    qtbot.waitUntil(lambda: console.session.role == "admin", timeout=10_000)
    dialog = open_dialog(console, qtbot, device)
    values = {dialog.facts.item(r, 1).text() for r in range(dialog.facts.rowCount())}
    assert {"openai", "mistral", "supervised"} <= values
    assert dialog.drift.item(0, 1).text() == "open" and dialog.drift.item(0, 2).text() == "providers mistral"
    assert not dialog.accept_button.isEnabled()  # nothing selected yet
    dialog.drift.selectRow(0)
    assert dialog.accept_button.isEnabled()
    dialog.accept_button.click()
    qtbot.waitUntil(lambda: dialog.drift.item(0, 1) is not None and dialog.drift.item(0, 1).text() == "accepted",
                    timeout=10_000)
    assert collector.get(f"/api/v1/agents/{device}/{sighting_id}")["governed"] is True
    dialog.drift.selectRow(0)
    assert not dialog.accept_button.isEnabled()  # accepted already


def test_a_viewer_sees_drift_but_cannot_accept_it(make_console: Any, qtbot: Any,
                                                  collector: support.RunningCollector) -> None:
    device, _ = drifting(collector)
    console = make_console(token=collector.viewer)
    qtbot.waitUntil(lambda: console.session.role == "viewer", timeout=10_000)
    dialog = open_dialog(console, qtbot, device)
    dialog.drift.selectRow(0)
    assert not dialog.accept_button.isEnabled() and "Only admins accept drift." in dialog.status.text()
