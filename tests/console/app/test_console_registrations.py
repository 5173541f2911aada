"""Registrations in the console: what an employee declared appears for an admin to approve or reject;
the agent's flags and governed state follow; a viewer reads but cannot decide."""

from __future__ import annotations

import uuid
from typing import Any

import console_support as support
import pytest

from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(120)


def registered(collector: support.RunningCollector) -> tuple[str, dict[str, Any]]:
    host = f"host:reg-{uuid.uuid4().hex[:8]}"
    purpose = f"weekly sales report {uuid.uuid4().hex[:6]}"
    device = collector.snapshot(host, [support.sighting(id="report-bot", name="report bot", signature=None,
                                                        type="unknown", user="yann", providers=("openai",))])
    return device, collector.register(host, "report-bot", purpose=purpose)


def shown(console: Any, qtbot: Any, purpose: str) -> int:
    view = console.window.registrations
    console.registrations.load()
    qtbot.waitUntil(lambda: any(r.purpose == purpose for r in console.registrations.listed), timeout=10_000)
    row = next(i for i, r in enumerate(console.registrations.listed) if r.purpose == purpose)
    view.table.setCurrentIndex(view.rows.index(row, 0))
    return row


def test_a_pending_registration_is_approved_from_the_console(make_console: Any, qtbot: Any, modeltest: Any,
                                                             collector: support.RunningCollector) -> None:
    device, registration = registered(collector)
    assert "pending" in collector.get(f"/api/v1/agents/{device}/report-bot")["flags"]
    console = make_console()
    view = console.window.registrations
    modeltest(view.rows)
    row = shown(console, qtbot, registration["purpose"])
    cells = view.rows.rows[row]
    assert cells[1] == "yann@example.org" and cells[4] == "openai" and cells[6] == "crm" and cells[8] == "pending"
    assert view.approve.isEnabled() and view.reject.isEnabled()
    view.note.setText("fine for the sales team")
    view.approve.click()
    qtbot.waitUntil(lambda: "Registration by yann@example.org approved." in console.window.message.text(),
                    timeout=10_000)
    agent = collector.get(f"/api/v1/agents/{device}/report-bot")
    assert agent["governed"] is True and "pending" not in agent["flags"] and "unregistered" not in agent["flags"]
    assert agent["registration"]["decided_by"] == "test admin"
    assert agent["registration"]["decision_note"] == "fine for the sales team"


def test_the_agent_detail_shows_the_registration(make_console: Any, qtbot: Any,
                                                 collector: support.RunningCollector) -> None:
    _device, registration = registered(collector)
    console = make_console()
    shown(console, qtbot, registration["purpose"])
    console.window.registrations.open_agent.click()
    qtbot.waitUntil(lambda: console.window.detail.detail is not None
                    and console.window.detail.detail.agent.id == "report-bot", timeout=10_000)
    text = console.window.detail.registration.text()
    assert registration["purpose"] in text and "<b>Status:</b> pending" in text
    kinds = [r[1] for r in console.window.detail.timeline.rows]
    assert "registration" in kinds
    assert "<b>Registration pending</b>" in console.window.detail.flags.text()


def test_rejecting_keeps_the_agent_ungoverned(make_console: Any, qtbot: Any,
                                              collector: support.RunningCollector) -> None:
    device, registration = registered(collector)
    console = make_console()
    shown(console, qtbot, registration["purpose"])
    console.window.registrations.note.setText("say which customer data it reads")
    console.window.registrations.reject.click()
    qtbot.waitUntil(lambda: "rejected" in console.window.message.text(), timeout=10_000)
    agent = collector.get(f"/api/v1/agents/{device}/report-bot")
    assert agent["governed"] is False and "unregistered" in agent["flags"]
    view = console.window.registrations
    view.status.setCurrentIndex(view.status.findData("rejected"))
    qtbot.waitUntil(lambda: any(r.purpose == registration["purpose"] and r.status == "rejected"
                                for r in console.registrations.listed), timeout=10_000)


def test_a_viewer_reads_registrations_but_cannot_decide(make_console: Any, qtbot: Any,
                                                        collector: support.RunningCollector) -> None:
    _device, registration = registered(collector)
    console = make_console(token=collector.viewer)
    shown(console, qtbot, registration["purpose"])
    view = console.window.registrations
    assert not view.approve.isEnabled() and not view.reject.isEnabled() and view.open_agent.isEnabled()
    assert not view.ask.isEnabled()
    console.registrations.decide(True)
    assert "viewers can read registrations" in console.window.message.text()
    view.note.setText("which database?")
    console.registrations.ask()
    assert "viewers can read registrations, not ask" in console.window.message.text()
    assert vm.registration_row(console.registrations.listed[0])[8] == "pending"
