"""The registrations queue against a real collector: pending ones first and superseded ones greyed, a
rejection refused until it says why, the decision's comment shown, and the selected registration's
declaration side by side with what its endpoint was seen doing (the collector's behaviour timeline).
Text an employee or an endpoint sent stays plain text."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import console_support as support
import pytest
from PySide6.QtCore import Qt

from console.app import theme
from console.app.views.registrations import COMPARED, declared_vs_observed

pytestmark = pytest.mark.timeout(120)


def agent_on_new_host(collector: support.RunningCollector, **kw: Any) -> tuple[str, str, str]:
    """An ungoverned agent on a fresh host: (host, device id, sighting id)."""
    host = f"host:queue-{uuid.uuid4().hex[:8]}"
    made = support.sighting(id=f"bot-{uuid.uuid4().hex[:6]}", name="report bot", signature=None, type="unknown",
                            user="yann", **kw)
    return host, collector.snapshot(host, [made]), made["id"]


def select(console: Any, qtbot: Any, status: str | None, registration_id: int, *, now: str | None = None) -> int:
    """Choose ``status`` and select the registration once listed (with the status ``now``, when given)."""
    view = console.window.registrations
    if view.status.currentData() != status:
        view.status.setCurrentIndex(view.status.findData(status))
    else:
        console.registrations.load()
    qtbot.waitUntil(lambda: any(r.id == registration_id and (now is None or r.status == now)
                                for r in console.registrations.listed), timeout=10_000)
    row = next(i for i, r in enumerate(console.registrations.listed) if r.id == registration_id)
    view.table.setCurrentIndex(view.rows.index(row, 0))
    return row


def test_the_queue_lists_pending_first_and_greys_superseded_ones(make_console: Any, qtbot: Any,
                                                                 collector: support.RunningCollector) -> None:
    host, _device, sighting_id = agent_on_new_host(collector)
    older = collector.register(host, sighting_id, purpose="first try")
    newer = collector.register(host, sighting_id, purpose="second try")  # supersedes the older pending one
    host2, _device2, other = agent_on_new_host(collector)
    decided = collector.register(host2, other, purpose="decided already")
    answer = collector.http.post(f"/api/v1/registrations/{decided['id']}/approve", json={"note": "ok"},
                                 headers={"authorization": f"Bearer {collector.admin}"})
    assert answer.status_code == 200, answer.text
    console = make_console()
    view = console.window.registrations
    select(console, qtbot, None, older["id"])
    statuses = [r.status for r in console.registrations.listed]
    first_other = next(i for i, s in enumerate(statuses) if s != "pending")
    assert "pending" not in statuses[first_other:]  # every pending one comes before the rest
    rows = {r.id: i for i, r in enumerate(console.registrations.listed)}
    assert rows[newer["id"]] < rows[decided["id"]] and rows[newer["id"]] < rows[older["id"]]
    assert console.registrations.listed[rows[older["id"]]].status == "superseded"
    greyed = view.rows.data(view.rows.index(rows[older["id"]], 2), Qt.ItemDataRole.ForegroundRole)
    assert greyed == theme.colour("muted")
    assert view.rows.data(view.rows.index(rows[newer["id"]], 2), Qt.ItemDataRole.ForegroundRole) is None
    assert not view.approve.isEnabled()  # a superseded registration is not decided
    assert view.decision.text() == "Superseded by a newer registration of the same agent, never decided."


def test_a_rejection_needs_a_comment_and_the_comment_is_shown(make_console: Any, qtbot: Any,
                                                              collector: support.RunningCollector) -> None:
    host, device, sighting_id = agent_on_new_host(collector)
    registration = collector.register(host, sighting_id, purpose="<b>payroll</b> export")
    console = make_console()
    qtbot.waitUntil(lambda: console.session.role == "admin", timeout=10_000)
    view = console.window.registrations
    select(console, qtbot, "pending", registration["id"])
    view.reject.click()
    assert "why you reject" in console.window.message.text()
    assert collector.get(f"/api/v1/agents/{device}/{sighting_id}")["registration"]["status"] == "pending"
    comment = "<a href='https://evil.example'>Tell us</a> which database it reads"
    view.note.setText(comment)
    view.reject.click()
    qtbot.waitUntil(lambda: "rejected" in console.window.message.text(), timeout=10_000)
    assert collector.get(f"/api/v1/agents/{device}/{sighting_id}")["registration"]["decision_note"] == comment
    assert view.note.text() == ""
    # refreshed after the action: the pending list no longer holds it; the rejected one shows the comment
    qtbot.waitUntil(lambda: all(r.id != registration["id"] for r in console.registrations.listed), timeout=10_000)
    row = select(console, qtbot, "rejected", registration["id"], now="rejected")
    assert view.rows.rows[row][-1] == comment and view.rows.rows[row][2] == "<b>payroll</b> export"
    assert view.decision.text().startswith("Rejected by test admin on ")
    assert view.decision.text().endswith(f"Comment: {comment}")
    assert view.decision.textFormat() == Qt.TextFormat.PlainText


def test_declared_and_observed_side_by_side(make_console: Any, qtbot: Any,
                                            collector: support.RunningCollector) -> None:
    host, _device, sighting_id = agent_on_new_host(collector, providers=("openai", "mistral"))
    registration = collector.register(host, sighting_id, providers=["openai", "<i>anthropic</i>"],
                                      data_systems=["crm"], owner="<img src=x>yann")
    console = make_console()
    view = console.window.registrations
    select(console, qtbot, "pending", registration["id"])
    qtbot.waitUntil(lambda: view.comparison.rowCount() == len(COMPARED), timeout=10_000)
    cells = {view.comparison.item(r, 0).text(): [view.comparison.item(r, c).text() for c in (1, 2, 3)]
             for r in range(view.comparison.rowCount())}
    declared, observed, beyond = cells["Providers"]
    assert declared == "openai, <i>anthropic</i>"
    assert set(observed.split(", ")) == {"openai", "mistral"} and beyond == "mistral"
    assert cells["Data systems"][0] == "crm"
    assert cells["Autonomy"] == ["supervised", "supervised", "–"]
    assert view.compared.text() == ("Declared by <img src=x>yann and observed on the endpoint: "
                                    "1 field shows more than was declared.")
    assert view.compared.textFormat() == Qt.TextFormat.PlainText
    assert view.comparison.item(0, 3).foreground().color() == theme.colour("bad")
    try:
        theme.apply("dark")
        qtbot.waitUntil(lambda: view.comparison.item(0, 3).foreground().color() == theme.colour("bad"),
                        timeout=5_000)  # the dark palette's own red, not the light one's
        assert theme.is_dark()
    finally:
        theme.apply("system")
    # autonomy is more than declared only when it acts alone where supervised was declared
    autonomous = {"facts": [{"kind": "autonomy", "value": "autonomous", "first_seen": "2026-01-01T00:00:00Z",
                             "last_seen": "2026-01-02T00:00:00Z", "gone_at": None}]}
    supervised = {"facts": [{**autonomous["facts"][0], "value": "supervised"}]}
    listed = next(r for r in console.registrations.listed if r.id == registration["id"])
    assert declared_vs_observed(listed, autonomous)[3] == ("Autonomy", "supervised", "autonomous", "autonomous")
    declared_alone = listed.model_copy(update={"autonomy": "autonomous"})
    assert declared_vs_observed(declared_alone, supervised)[3] == ("Autonomy", "autonomous", "supervised", "–")
    # no registration selected: the comparison empties rather than showing the last one
    view.table.clearSelection()
    view.table.setCurrentIndex(view.rows.index(-1, -1))
    qtbot.waitUntil(lambda: view.comparison.rowCount() == 0, timeout=10_000)


def test_an_admin_asks_for_more_information(make_console: Any, qtbot: Any,
                                            collector: support.RunningCollector) -> None:
    host, device, sighting_id = agent_on_new_host(collector)
    registration = collector.register(host, sighting_id, purpose="nightly invoices")
    console = make_console()
    qtbot.waitUntil(lambda: console.session.role == "admin", timeout=10_000)
    view = console.window.registrations
    select(console, qtbot, "pending", registration["id"])
    assert view.ask.isEnabled()
    view.ask.click()  # no question typed: nothing is sent
    assert "Write the question" in console.window.message.text()
    assert collector.get(f"/api/v1/agents/{device}/{sighting_id}")["registration"]["status"] == "pending"
    question = "Which <b>database</b> does it read?"
    view.note.setText(question)
    view.ask.click()
    qtbot.waitUntil(lambda: "Question sent to yann@example.org." in console.window.message.text(), timeout=10_000)
    asked = collector.get(f"/api/v1/agents/{device}/{sighting_id}")["registration"]
    assert asked["status"] == "more_information" and asked["question"] == question
    inbox = collector.http.get("/api/v1/inbox", headers={"authorization": f"Bearer {collector.keys[host]}"})
    assert inbox.status_code == 200, inbox.text
    assert question in inbox.text  # the question travels to the employee's device
    row = select(console, qtbot, "more_information", registration["id"], now="more_information")
    assert view.rows.rows[row][8] == "more information asked"
    assert view.decision.text().startswith("Asked by test admin on ") and question in view.decision.text()
    assert view.approve.isEnabled() and view.reject.isEnabled()  # an asked one can still be decided
    # in the whole queue, asked ones come after the pending ones and before the rest
    select(console, qtbot, None, registration["id"])
    ranks = [{"pending": 0, "more_information": 1}.get(r.status, 2) for r in console.registrations.listed]
    assert ranks == sorted(ranks)


def test_an_approval_past_its_period_is_listed_for_review(make_console: Any, qtbot: Any,
                                                          collector: support.RunningCollector) -> None:
    host, _device, sighting_id = agent_on_new_host(collector)
    registration = collector.register(host, sighting_id, purpose="quarterly audit")
    answer = collector.http.post(f"/api/v1/registrations/{registration['id']}/approve", json={"note": "ok"},
                                 headers={"authorization": f"Bearer {collector.admin}"})
    assert answer.status_code == 200, answer.text
    # The policy's period is 180 days and nobody waits that long: the approval is moved a year back in the
    # collector's own SQLite file, the only way to reach a due review here.
    database = collector.process.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE registration SET decided_at = decided_at - 365 * 86400 WHERE id = ?",
                     (registration["id"],))
    console = make_console()
    view = console.window.registrations
    row = select(console, qtbot, "review_due", registration["id"], now="approved")
    assert view.rows.rows[row][8] == "approved, review due"
    assert "Review was due on " in view.decision.text() and "registers it again" in view.decision.text()
    assert not view.approve.isEnabled() and not view.ask.isEnabled()
