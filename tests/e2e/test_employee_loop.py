"""End to end: the employee's loop (issue 14), over real HTTP, the real local socket and a real daemon,
with real unprivileged users of this machine (tests/e2e/loop_support.py builds it once per module).

The chain, in one test: an agent found (a stand-in Claude Code run by ``nobody``) → the user's companion
notified → the user registers through the companion's window → an admin approves with a comment in the
console's registrations queue → the employee sees the decision (the companion's status window and
`agentroster status --mine --json` run as that user) → the agent starts calling a new provider and
gains a new MCP server → a drift event with exactly those two differences and when they began → the
admin accepts it in the console → governed again.

Then, each on its own: an IT request from the console reaching the employee while another real user
(``www-data``) sees nothing of it over the socket; the collector down (a question and a report held back,
each delivered once it is back, exactly once); an approval expiring into re-attestation, and the
employee told.

The companion and the console run in this process (pytest-qt); desktop notifications are captured at
the OS boundary (QSystemTrayIcon.showMessage, see loop_support.start_companion).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from loop_support import (
    EMPLOYEE,
    FAKE_ANTHROPIC,
    OTHER,
    CannotRun,
    Machine,
    eventually,
    missing_tools,
    running_machine,
    select_registration,
    show_agent,
    start_companion,
    start_console,
    stop_companion,
    stop_console,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    if missing := missing_tools():
        pytest.skip(missing)
    try:
        with running_machine() as m:
            yield m
    except CannotRun as exc:
        pytest.skip(str(exc))


@pytest.fixture
def companion(machine: Machine, qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    run = start_companion(machine, qtbot, tmp_path / "companion-seen.json")
    yield run
    stop_companion(run)


@pytest.fixture
def console(machine: Machine, qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    made = start_console(machine, qtbot, tmp_path / "console.ini")
    yield made
    stop_console(made)


def found(m: Machine, user: str, name: str, *, provider: str | None = None,
          again: Callable[[], None] | None = None) -> dict[str, Any]:
    """The sighting at the collector once it holds it (with an endpoint of ``provider``, when given).
    ``again``, when given, is done before each look (an agent calls its provider more than once: a call
    made before the daemon's capture was listening is not the only one it sees)."""

    def check() -> dict[str, Any] | None:
        if again is not None:
            again()
        row = m.collector_sighting(user, name)
        if row is None or provider is None:
            return row
        detail = m.agent_at_collector(row["id"])
        return row if any(e["provider"] == provider for e in detail["endpoints"]) else None

    return dict(eventually(check, f"{user}'s {name} at the collector", m.log))


def registration_of(m: Machine, sighting_id: str) -> dict[str, Any]:
    """The newest registration of the sighting, as the collector holds it."""
    rows = m.api("GET", "/api/v1/registrations", params={"sighting": sighting_id})["data"]
    return dict(max(rows, key=lambda r: r["id"]))


def mine(m: Machine, user: str) -> dict[str, Any]:
    """`agentroster status --mine --json`, run as ``user``."""
    done = m.agentroster_as(user, "status", "--mine", "--json")
    assert done.returncode == 0, f"status --mine as {user}: {done.stderr}"
    return dict(json.loads(done.stdout))


def test_an_agent_is_found_registered_approved_drifts_and_is_accepted_back_into_governance(
        machine: Machine, companion: Any, console: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QPushButton

    from console.app.views.timeline import TimelineDialog

    m, app = machine, companion.companion

    # 1. An agent found: the stand-in Claude Code that nobody runs calls Anthropic; the daemon reports it.
    agent = found(m, EMPLOYEE, "Claude Code", provider="anthropic",
                  again=lambda: m.call_provider("api.anthropic.com"))
    sighting_id, device_id = agent["id"], m.device_id()
    assert agent["running"] and not m.agent_at_collector(sighting_id)["governed"], "a new agent is not governed"

    # 2. The employee's companion tells them, once. Its connections are nobody's: it lists nobody's agents only.
    qtbot.waitUntil(lambda: app.snapshot is not None and app.snapshot.agent(sighting_id) is not None, timeout=60_000)
    assert app.snapshot.user == EMPLOYEE and {a["user"] for a in app.snapshot.agents} == {EMPLOYEE}
    qtbot.waitUntil(lambda: "agentroster found Claude Code on this machine" in companion.titles(), timeout=30_000)
    assert companion.titles().count("agentroster found Claude Code on this machine") == 1

    # 3. They register it through the companion's windows: the agent's row in "Your agents", the register
    # button, then typing into the registration window's fields.
    app.window.show_tab(0)
    agents = app.window.agents
    row = next(r for r in range(agents.rowCount()) if agents.item(r, 0).text() == "Claude Code")
    assert agents.item(row, 2).text() == "not registered"
    agents.selectRow(row)
    button = next(b for b in app.window.findChildren(QPushButton) if b.text() == "Register the selected agent…")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    window = app.register_window
    assert window is not None and window.isVisible(), "the companion did not open the registration window"
    assert window.fields()["sighting_id"] == sighting_id
    prefilled = window.fields()
    assert (prefilled["owner"], prefilled["providers"], prefilled["tools"]) == (EMPLOYEE, ["anthropic"], ["github"]), \
        "the window is prefilled from what the endpoint saw"
    window.owner.clear()
    qtbot.keyClicks(window.owner, "nobody@example.org")
    qtbot.keyClicks(window.purpose, "drafts the release notes")
    qtbot.keyClicks(window.data_systems, "git")
    with qtbot.waitSignal(window.registered, timeout=60_000) as sent:
        qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    registration_id = sent.args[0]["id"]
    [registration] = m.api("GET", "/api/v1/registrations", params={"sighting": sighting_id})["data"]
    assert (registration["id"], registration["status"], registration["owner"], registration["purpose"],
            registration["providers"], registration["tools"], registration["data_systems"]) == \
        (registration_id, "pending", "nobody@example.org", "drafts the release notes", ["anthropic"], ["github"],
         ["git"]), "the collector holds what the employee typed and what was prefilled"

    # 4. An admin approves it with a comment in the console's registrations queue.
    comment = "approved for the release team; keep it off production"
    view = console.window.registrations
    select_registration(console, qtbot, "pending", registration_id)
    qtbot.waitUntil(view.approve.isEnabled, timeout=30_000)
    qtbot.keyClicks(view.note, comment)
    qtbot.mouseClick(view.approve, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: registration_of(m, sighting_id)["status"] == "approved", timeout=30_000)
    decided = registration_of(m, sighting_id)
    assert decided["decision_note"] == comment, "the console sent the admin's comment with the approval"
    assert m.agent_at_collector(sighting_id)["governed"] is True, "an approved registration governs the agent"
    select_registration(console, qtbot, "approved", registration_id)
    qtbot.waitUntil(lambda: view.decision.text().startswith("Approved by test admin on "), timeout=30_000)
    assert f"Comment: {comment}." in view.decision.text(), view.decision.text()

    # 5. The employee sees the decision: a notification, the status window, and status --mine as nobody.
    qtbot.waitUntil(lambda: any(title == "IT answered your registration" and comment in text
                                for title, text in companion.shown), timeout=60_000)
    qtbot.waitUntil(lambda: app.snapshot is not None
                    and app.snapshot.registration(sighting_id) == f"#{registration_id} approved", timeout=60_000)
    rows = {agents.item(r, 0).text(): agents.item(r, 2).text() for r in range(agents.rowCount())}
    assert rows.get("Claude Code") == f"#{registration_id} approved", f"the status window lists {rows}"
    app.window.show_tab(1)
    messages = [app.window.messages.item(r).text() for r in range(app.window.messages.count())]
    assert any("your registration of Claude Code was approved" in line and comment in line for line in messages), \
        messages
    page = mine(m, EMPLOYEE)
    assert page["user"] == EMPLOYEE and {s["user"] for s in page["sightings"]} == {EMPLOYEE}
    assert [(i["kind"], i["status"], i["text"]) for i in page["inbox"] if i["sighting_id"] == sighting_id] == \
        [("decision", "approved", comment)], page["inbox"]
    assert page["statuses"][sighting_id]["status"] == "approved", page["statuses"]
    assert FAKE_ANTHROPIC not in json.dumps(page), "a credential's value reached the employee's page"

    # 6. The agent starts calling a new provider and gains a new MCP server.
    began = time.time()
    m.add_mcp_server(EMPLOYEE, "memory", "@modelcontextprotocol/server-memory")
    m.call_provider("api.mistral.ai")

    # 7. A drift event with exactly those two differences, and when they began.
    def drift_event() -> dict[str, Any] | None:
        timeline = m.api("GET", f"/api/v1/agents/{device_id}/{sighting_id}/timeline")
        events = [e for e in timeline["events"] if e["status"] == "open"]
        if events and events[0]["added"]["providers"] and events[0]["added"]["mcp_servers"]:
            return {"event": events[0], "timeline": timeline, "count": len(timeline["events"])}
        return None

    seen = eventually(drift_event, "a drift event with the new provider and the new MCP server", m.log)
    event, timeline = seen["event"], seen["timeline"]
    assert seen["count"] == 1, f"one drift event, not {seen['count']}"
    # every other kind of difference the event can hold (systems, autonomy...) is empty or false; "via" names
    # the tool server the new MCP server is reported as, a child of the agent
    differences = {k: v for k, v in event["added"].items() if v and k != "via"}
    assert differences == {"providers": ["mistral"], "mcp_servers": ["memory"]}, \
        f"the event holds exactly the two differences: {event['added']}"
    children = [a["id"] for a in m.api("GET", "/api/v1/agents", params={"device": device_id, "limit": 500})["data"]
                if a["name"] == "memory" and a.get("parent") == sighting_id]
    assert event["added"]["via"] == children and children, "the drift is the root's, through its new tool server"
    assert began - 1 <= datetime.fromisoformat(event["began_at"]).timestamp() <= time.time() + 1, \
        f"the event began when the new behaviour did ({began}): {event['began_at']}"
    firsts = {(f["kind"], f["value"]): datetime.fromisoformat(f["first_seen"]).timestamp() for f in timeline["facts"]}
    assert firsts[("provider", "mistral")] >= began - 1 and firsts[("mcp_server", "memory")] >= began - 1
    assert firsts[("provider", "anthropic")] < began and firsts[("mcp_server", "github")] < began, \
        "what was declared started before"
    assert m.agent_at_collector(sighting_id)["governed"] is False, "an agent doing more than declared is not governed"

    # 8. The admin accepts the new behaviour in the console ("Behaviour over time", from the agents tab).
    row = show_agent(console, qtbot, device_id, sighting_id)
    menu = console.agents.context_menu([row])
    next(a for a in menu.actions() if a.text() == "Behaviour over time…").trigger()
    dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, TimelineDialog) and w.isVisible())
    qtbot.waitUntil(lambda: dialog.drift.rowCount() == 1 and dialog.drift.item(0, 1).text() == "open",
                    timeout=30_000)
    dialog.drift.selectRow(0)
    qtbot.mouseClick(dialog.accept_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.drift.item(0, 1) is not None and dialog.drift.item(0, 1).text() == "accepted",
                    timeout=30_000)
    dialog.close()

    # 9. Governed again: the declaration now covers what the agent does.
    assert m.agent_at_collector(sighting_id)["governed"] is True, "accepting the drift governs the agent again"
    declared = registration_of(m, sighting_id)
    assert "mistral" in declared["providers"] and "memory" in declared["tools"], declared
    assert [e["status"] for e in m.api("GET", f"/api/v1/agents/{device_id}/{sighting_id}/timeline")["events"]] \
        == ["accepted"]


def test_an_it_request_from_the_console_reaches_the_employee_and_no_other_user(
        machine: Machine, companion: Any, console: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt

    m, app = machine, companion.companion
    cursor_id, device_id = found(m, EMPLOYEE, "Cursor")["id"], m.device_id()
    others = found(m, OTHER, "Cursor")["id"]

    # IT asks for a registration from the console's agents tab.
    show_agent(console, qtbot, device_id, cursor_id)
    qtbot.mouseClick(console.window.agents.request_registration, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: m.agent_at_collector(cursor_id)["triage_state"] == "registration_requested",
                    timeout=30_000)

    # It reaches the daemon once, addressed to nobody; the companion tells them, and a click on the
    # notification (the OS's messageClicked) opens the registration window for that agent.
    eventually(lambda: [i for i in m.inbox() if i["kind"] == "request" and i["sighting_id"] == cursor_id],
               "the request in the daemon's inbox", m.log)
    requests = [i for i in m.inbox() if i["kind"] == "request" and i["sighting_id"] == cursor_id]
    assert [i["user"] for i in requests] == [EMPLOYEE], requests
    qtbot.waitUntil(lambda: "IT asks you to register an agent" in companion.titles(), timeout=60_000)
    assert companion.titles().count("IT asks you to register an agent") == 1
    assert app.last_target == ("register", cursor_id)
    app.tray.messageClicked.emit()
    assert app.register_window is not None and app.register_window.isVisible()
    assert app.register_window.fields()["sighting_id"] == cursor_id
    app.register_window.reject()
    page = mine(m, EMPLOYEE)
    assert [(i["kind"], i["sighting_id"]) for i in page["inbox"] if i["kind"] == "request"] == \
        [("request", cursor_id)], page["inbox"]

    # Another real user, over the same socket, sees nothing of it: not the item, not the agent.
    inbox, listing, theirs = m.socket_as(OTHER, {"op": "inbox"}, {"op": "list"}, {"op": "mine"})
    assert inbox["ok"] and inbox["user"] == OTHER and not [i for i in inbox["items"] if i["kind"] == "request"], inbox
    assert [s["id"] for s in listing["sightings"] if not s["parent"]] == [others], listing
    text = json.dumps([inbox, listing, theirs])
    assert cursor_id not in text and EMPLOYEE not in text, "www-data was shown something of nobody's"
    # ...nor does the employee's own page in the companion show anything of www-data's, or a key's value.
    app.window.show_tab(2)
    qtbot.waitUntil(lambda: "Cursor" in app.window.about.toPlainText(), timeout=30_000)
    about = app.window.about.toPlainText()
    assert others not in about and OTHER not in about and FAKE_ANTHROPIC not in about, about
    assert {s["user"] for s in theirs["sightings"]} == {OTHER} and {i["sighting_id"] for i in theirs["inbox"]} <= \
        {s["id"] for s in listing["sightings"]}


def test_with_the_collector_down_a_question_and_a_report_wait_and_each_arrives_once(
        machine: Machine, companion: Any, qtbot: Any) -> None:
    m, app = machine, companion.companion
    claude_id, device_id = found(m, EMPLOYEE, "Claude Code")["id"], m.device_id()
    question = "Is the release-notes bot still in use?"

    # An admin's question waits at the collector while the daemon is paused; then the collector goes down.
    m.signal_daemon(signal.SIGSTOP)
    try:
        m.api("POST", "/api/v1/inbox/questions",
              json={"device_id": device_id, "sighting_id": claude_id, "question": question})
        m.collector.stop()
    finally:
        m.signal_daemon(signal.SIGCONT)

    # The employee adds an MCP server meanwhile: the daemon holds the report in its spool.
    m.add_mcp_server(EMPLOYEE, "notes-db", "mcp-server-sqlite-notes", rel=".cursor/mcp.json")
    eventually(lambda: "delta" in m.state()["kinds"], "a report of the change held back in the spool", m.log)
    assert not any(i["text"] == question for i in m.inbox()), "the question cannot have arrived yet"

    # The collector is back: the report is applied and the question delivered, each exactly once.
    m.collector.start()
    eventually(lambda: any(a["name"] == "notes-db" for a in m.api(
        "GET", "/api/v1/agents", params={"device": device_id, "limit": 500})["data"]), "the held-back report", m.log)
    eventually(lambda: any(i["text"] == question for i in m.inbox()), "the question in the daemon's inbox", m.log)
    eventually(lambda: all(s["delivered_at"] for s in m.api(
        "GET", "/api/v1/inbox/sent", params={"device": device_id})["data"]), "acknowledged at the collector", m.log)
    eventually(lambda: m.state()["spooled"] == 0, "the spool drained", m.log)
    qtbot.waitUntil(lambda: "IT has a question about an agent" in companion.titles(), timeout=60_000)
    for _ in range(3):  # more polls: nothing arrives twice
        with qtbot.waitSignal(app.polled, timeout=60_000):
            app.poll(relist=True)
    assert companion.titles().count("IT has a question about an agent") == 1
    ids = [i["id"] for i in m.inbox()]
    assert len(ids) == len(set(ids)) and [i["text"] for i in m.inbox()].count(question) == 1
    assert m.applied_twice(device_id) == [], "a report was applied twice"
    meta = m.state()["meta"]
    assert m.position(device_id) == (meta["epoch"], int(meta["acked_seq"])), \
        "the collector's last applied report is the daemon's last acknowledged one"



def test_an_approval_past_its_period_comes_up_for_review_and_the_employee_is_told(
        machine: Machine, companion: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt

    m, app = machine, companion.companion
    cursor_id = found(m, EMPLOYEE, "Cursor")["id"]

    # Registered from the terminal this time, as the user; an admin approves it.
    done = m.agentroster_as(EMPLOYEE, "register", cursor_id, "--owner", "nobody@example.org", "--purpose",
                            "tracks the team's issues")
    assert done.returncode == 0, done.stderr
    registration = registration_of(m, cursor_id)
    m.api("POST", f"/api/v1/registrations/{registration['id']}/approve", json={"note": "fine for now"})
    eventually(lambda: any(i["kind"] == "decision" and i["sighting_id"] == cursor_id for i in m.inbox()),
               "the approval in the daemon's inbox", m.log)

    # The policy's period is 180 days and nobody waits that long: the approval is moved 181 days back in
    # the collector's own SQLite file (its review came due yesterday), the only way to reach it here.
    m.sql("UPDATE registration SET decided_at = decided_at - 181 * 86400 WHERE id = ?", registration["id"])
    due = m.api("GET", "/api/v1/registrations", params={"status": "review_due"})["data"]
    assert [(r["id"], r["review_due"]) for r in due] == [(registration["id"], True)], due

    # The employee is told: once, by the companion, whose notification opens the registration window.
    reviews = eventually(lambda: [i for i in m.inbox() if i["kind"] == "review" and i["sighting_id"] == cursor_id],
                         "the review in the daemon's inbox", m.log)
    assert [(i["user"], i["status"]) for i in reviews] == [(EMPLOYEE, "review_due")], reviews
    title = "Your registration of an agent is up for review"
    qtbot.waitUntil(lambda: title in companion.titles(), timeout=60_000)
    with qtbot.waitSignal(app.polled, timeout=60_000):
        app.poll(relist=True)
    assert companion.titles().count(title) == 1
    assert any("came up for review" in text for t, text in companion.shown if t == title), companion.shown
    page = mine(m, EMPLOYEE)
    assert [(i["kind"], i["status"]) for i in page["inbox"] if i["sighting_id"] == cursor_id and
            i["kind"] == "review"] == [("review", "review_due")], page["inbox"]

    # They register it again from the window the notification opens; once that is approved, it supersedes
    # the approval under review, which leaves the review queue.
    assert app.last_target == ("register", cursor_id)
    app.tray.messageClicked.emit()
    window = app.register_window
    assert window is not None and window.fields()["sighting_id"] == cursor_id
    window.owner.clear()
    qtbot.keyClicks(window.owner, "nobody@example.org")
    qtbot.keyClicks(window.purpose, "tracks the team's issues and drafts replies")
    with qtbot.waitSignal(window.registered, timeout=60_000) as sent:
        qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    again = sent.args[0]["id"]
    statuses = {r["id"]: r["status"] for r in m.api("GET", "/api/v1/registrations", params={"sighting": cursor_id})["data"]}
    assert statuses == {registration["id"]: "approved", again: "pending"}, statuses
    m.api("POST", f"/api/v1/registrations/{again}/approve", json={"note": "thanks"})
    statuses = {r["id"]: r["status"] for r in m.api("GET", "/api/v1/registrations", params={"sighting": cursor_id})["data"]}
    assert statuses == {registration["id"]: "superseded", again: "approved"}, statuses
    assert m.api("GET", "/api/v1/registrations", params={"status": "review_due"})["data"] == []
