"""The registration lifecycle (pending → approved / rejected / more_information → review_due → superseded)
and the nudge ladder (report_only → notify → remind → escalate), over a real collector on SQLite and
PostgreSQL.

Time is moved by writing timestamps into the store (a sighting's ``recorded_at`` and ``ungoverned_since``, a registration's
``decided_at``, the policy's ``ladder_since``), never by sleeping: the collector computes both at read time.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import fleet
import pytest
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.timeout(120)
DAY = 86400.0


def declaration(sighting_id: str) -> dict[str, Any]:
    return {"sighting_id": sighting_id, "owner": "alice@example.com", "purpose": "refactors the billing service",
            "providers": ["anthropic"], "tools": [], "autonomy": "supervised"}


def register(device, sighting_id: str) -> dict[str, Any]:
    answer = device.collector.http.post("/api/v1/registrations", json=declaration(sighting_id),
                                        headers=device.headers())
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def ask(collector, registration_id: int, question: Any, token: str | None = None):
    return collector.http.post(f"/api/v1/registrations/{registration_id}/ask", json={"question": question},
                               headers={"authorization": f"Bearer {token or collector.admin}"})


def approve(collector, registration_id: int) -> dict[str, Any]:
    answer = collector.http.post(f"/api/v1/registrations/{registration_id}/approve", json={"note": "fine"},
                                 headers=collector.as_admin())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def listed(device, **params: Any) -> list[dict[str, Any]]:
    answer = device.collector.get("/api/v1/registrations", device=device.device_id, **params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def inbox(device, ack: int = 0) -> list[dict[str, Any]]:
    answer = device.collector.http.get("/api/v1/inbox", params={"ack": ack}, headers=device.headers())
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def in_store(collector, sql: str, **params: Any) -> None:
    """Move time by writing a timestamp into the collector's store."""
    engine = create_engine(collector.database_url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def put_policy(collector, **body: Any) -> dict[str, Any]:
    answer = collector.http.put("/api/v1/policy", json=body, headers=collector.as_admin())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# -- the lifecycle -------------------------------------------------------------------------------------------


def test_an_admin_asks_the_employee_who_answers_by_registering_again(device) -> None:
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    first = register(device, made["id"])
    answer = ask(device.collector, first["id"], "Which data systems does it touch?")
    assert answer.status_code == 200, answer.text
    asked = answer.json()
    assert (asked["status"], asked["question"], asked["asked_by"]) == \
        ("more_information", "Which data systems does it touch?", "test admin")
    assert asked["asked_at"] is not None
    # still awaiting an admin: pending, not unregistered
    flags = next(a for a in device.agents() if a["id"] == made["id"])["flags"]
    assert "pending" in flags and "unregistered" not in flags
    assert [r["id"] for r in listed(device, status="more_information")] == [first["id"]]
    questions = [i for i in inbox(device) if i["kind"] == "question"]
    assert [(q["sighting_id"], q["text"]) for q in questions] == [(made["id"], "Which data systems does it touch?")]
    second = register(device, made["id"])
    statuses = {r["id"]: r["status"] for r in listed(device)}
    assert statuses == {first["id"]: "superseded", second["id"]: "pending"}


def test_asking_is_refused_where_it_cannot_apply(device) -> None:
    made = fleet.sighting()
    device.snapshot(made)
    reg = register(device, made["id"])
    collector = device.collector
    assert ask(collector, reg["id"], "?", token=collector.viewer).status_code == 403
    assert ask(collector, reg["id"], "").status_code == 422
    assert ask(collector, reg["id"], "a\x00b").status_code == 422
    assert ask(collector, 2**31 - 1, "anyone?").status_code == 404
    approve(collector, reg["id"])
    refused = ask(collector, reg["id"], "too late?")
    assert refused.status_code == 409 and refused.json()["detail"]["reason"] == "registration_not_pending"


def test_an_asked_registration_can_still_be_approved(device) -> None:
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    reg = register(device, made["id"])
    assert ask(device.collector, reg["id"], "who owns it?").status_code == 200
    assert approve(device.collector, reg["id"])["status"] == "approved"
    assert next(a for a in device.agents() if a["id"] == made["id"])["governed"] is True


def test_an_approval_comes_up_for_review_after_the_policy_period(device) -> None:
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    reg = approve(device.collector, register(device, made["id"])["id"])
    assert reg["review_due"] is False
    due = datetime.fromisoformat(reg["review_due_at"]).timestamp()
    decided = datetime.fromisoformat(reg["decided_at"]).timestamp()
    assert due == pytest.approx(decided + 180 * DAY)  # the default period
    assert listed(device, status="review_due") == []
    in_store(device.collector, "UPDATE registration SET decided_at = :at WHERE id = :id",
             at=time.time() - 181 * DAY, id=reg["id"])
    [again] = listed(device, status="review_due")
    assert (again["id"], again["status"], again["review_due"]) == (reg["id"], "approved", True)
    # the sighting stays governed until a newer registration is decided
    assert next(a for a in device.agents() if a["id"] == made["id"])["governed"] is True


# -- the ladder ------------------------------------------------------------------------------------------------


@pytest.fixture
def ladder_fleet(own_collector, enroll_on) -> tuple[Any, dict[str, str]]:
    """A device whose four ungoverned sightings the collector first stored 1, 8, 15 and 20 days ago (written
    into the store), one governed, under a ladder notify 0 → remind 7 days → deadline 7 → escalate 3."""
    put_policy(own_collector, ladder="escalate", notify_after_days=0, remind_after_days=7, deadline_days=7,
               escalate_after_days=3)
    device = enroll_on(own_collector)
    ages = {"fresh": 1, "reminded": 8, "late": 15, "escalated": 20, "governed": 30}
    made = {name: fleet.sighting(name=name) for name in ages}
    device.snapshot(*made.values())
    approve(own_collector, register(device, made["governed"]["id"])["id"])
    now = time.time()
    for name, days in ages.items():
        in_store(own_collector, "UPDATE sighting SET recorded_at = :at, ungoverned_since = :at "
                 "WHERE device_id = :d AND id = :s",
                 at=now - days * DAY, d=device.device_id, s=made[name]["id"])
    in_store(own_collector, "UPDATE policy SET ladder_since = 0")  # as if turned on long ago
    return device, {name: m["id"] for name, m in made.items()}


def test_each_ungoverned_agent_stands_on_a_rung_with_its_due_date(ladder_fleet) -> None:
    device, ids = ladder_fleet
    rows = {a["id"]: a for a in device.agents()}
    by_name = {name: rows[sid] for name, sid in ids.items()}
    assert {n: (r["ladder"], r["overdue"]) for n, r in by_name.items()} == {
        "fresh": ("notify", False), "reminded": ("remind", False), "late": ("remind", True),
        "escalated": ("escalate", True), "governed": (None, False)}

    def due_in_days(name: str) -> float:
        return (datetime.fromisoformat(by_name[name]["ladder_due"]).timestamp() - time.time()) / DAY

    assert due_in_days("fresh") == pytest.approx(6, abs=0.01)  # the reminder, 7 days after notify
    assert due_in_days("reminded") == pytest.approx(6, abs=0.01)  # the deadline, 14 days in
    assert due_in_days("late") == pytest.approx(2, abs=0.01)  # escalation, 3 days after the deadline
    assert due_in_days("escalated") == pytest.approx(-6, abs=0.01)  # its deadline, passed
    assert by_name["governed"]["ladder_due"] is None


def test_the_roster_filters_on_a_rung_and_sorts_overdue_first(ladder_fleet) -> None:
    device, ids = ladder_fleet
    name_of = {sid: name for name, sid in ids.items()}

    def names(**params: Any) -> list[str]:
        answer = device.collector.agents(device=device.device_id, **params)
        assert answer["count"] == len(answer["data"])
        return [name_of[a["id"]] for a in answer["data"]]

    assert names(ladder="notify") == ["fresh"]
    assert sorted(names(ladder="remind")) == ["late", "reminded"]
    assert names(ladder="escalate") == ["escalated"]
    assert names(ladder="overdue", sort="overdue") == ["escalated", "late"]
    assert names(ladder="report_only") == []
    assert names(governed="false", sort="overdue") == ["escalated", "late", "reminded", "fresh"]
    bad = device.collector.get("/api/v1/agents", ladder="sometime")
    assert bad.status_code == 422


def test_the_employee_is_nudged_once_per_rung_through_the_inbox(ladder_fleet) -> None:
    device, ids = ladder_fleet
    name_of = {sid: name for name, sid in ids.items()}
    items = inbox(device)
    nudges = sorted((i["kind"], name_of[i["sighting_id"]]) for i in items if i["kind"] in ("notify", "remind"))
    assert nudges == sorted([("notify", n) for n in ("fresh", "reminded", "late", "escalated")]
                            + [("remind", n) for n in ("reminded", "late", "escalated")])
    remind = next(i for i in items if i["kind"] == "remind" and name_of[i["sighting_id"]] == "reminded")
    deadline = datetime.fromtimestamp(time.time() + 6 * DAY).strftime("%Y-%m-%d")
    assert "please register" in remind["text"] and deadline[:7] in remind["text"]
    # asked again without acknowledging: the same items, no new ones; acknowledged: nothing more
    assert [i["id"] for i in inbox(device)] == [i["id"] for i in items]
    assert inbox(device, ack=max(i["id"] for i in items)) == []
    # the fresh one reaches remind: one new item, its reminder
    moved = {"at": time.time() - 9 * DAY, "d": device.device_id, "s": ids["fresh"]}
    in_store(device.collector, "UPDATE sighting SET recorded_at = :at, ungoverned_since = :at "
             "WHERE device_id = :d AND id = :s", **moved)
    # the same spell ungoverned, moved back: its nudge is about that spell still
    in_store(device.collector, "UPDATE inbox_item SET ungoverned_since = :at WHERE device_id = :d AND sighting_id = :s",
             **moved)
    later = inbox(device, ack=max(i["id"] for i in items))
    assert [(i["kind"], name_of[i["sighting_id"]]) for i in later] == [("remind", "fresh")]


def test_turning_the_ladder_on_starts_every_clock_then(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    made = fleet.sighting()
    device.snapshot(made)
    assert device.agents()[0]["ladder"] == "report_only"  # the default: report only, no nudges
    assert inbox(device) == []
    in_store(own_collector, "UPDATE sighting SET recorded_at = :at, ungoverned_since = :at", at=time.time() - 60 * DAY)
    put_policy(own_collector, ladder="escalate", notify_after_days=1, remind_after_days=7, deadline_days=7)
    row = device.agents()[0]
    assert (row["ladder"], row["overdue"]) == ("report_only", False)  # 60 days old, but the clock just started
    assert inbox(device) == []


def test_the_policy_keeps_settings_a_document_leaves_out_and_versions_them(own_collector) -> None:
    put_policy(own_collector, ladder="remind", remind_after_days=3, reattest_days=90)
    kept = put_policy(own_collector, sanctioned_providers=["anthropic"])  # an editor that knows only lists
    assert (kept["ladder"], kept["remind_after_days"], kept["reattest_days"]) == ("remind", 3, 90)
    versions = own_collector.get("/api/v1/policy/versions").json()["data"]
    assert "ladder report_only -> remind" in versions[1]["changes"]
    assert "reattest days 180 -> 90" in versions[1]["changes"]
    refused = own_collector.http.put("/api/v1/policy", json={"ladder": "nag"}, headers=own_collector.as_admin())
    assert refused.status_code == 422
    assert own_collector.http.put("/api/v1/policy", json={"remind_after_days": -1},
                                  headers=own_collector.as_admin()).status_code == 422
    assert put_policy(own_collector, sanctioned_providers=["anthropic"], ladder="notify")["ladder"] == "notify"
    undone = own_collector.http.post("/api/v1/policy/undo", headers=own_collector.as_admin()).json()
    assert (undone["ladder"], undone["remind_after_days"], undone["sanctioned_providers"]) == \
        ("remind", 3, ["anthropic"])


# -- group approvals -------------------------------------------------------------------------------------------


def test_a_group_approval_governs_that_signature_for_the_users_it_names_only(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    users = {"alice": "alice", "bob": "bob@sales.example.com", "carol": "carol", "nobody": None}
    made = {name: fleet.sighting(name=name, user=user) for name, user in users.items()}
    device.snapshot(*made.values())
    preview = own_collector.http.post("/api/v1/policy/preview", json={"group_approvals": [
        {"signature": "claude-code", "users": ["alice", "*@sales.example.com"]}]}, headers=own_collector.as_admin())
    assert preview.status_code == 200, preview.text
    assert (preview.json()["considered"], preview.json()["newly_governed"]) == (4, 2)
    saved = put_policy(own_collector, group_approvals=[
        {"signature": "claude-code", "users": ["alice", "*@SALES.example.com"]},
        {"signature": "claude-code", "users": ["alice"]}])  # merged into one entry
    assert saved["group_approvals"] == [{"signature": "claude-code", "users": ["*@SALES.example.com", "alice"]}]

    def governed() -> dict[str, bool]:
        rows = {a["id"]: a for a in device.agents()}
        return {name: rows[m["id"]]["governed"] for name, m in made.items()}

    assert governed() == {"alice": True, "bob": True, "carol": False, "nobody": False}
    assert "unregistered" in next(a for a in device.agents() if a["id"] == made["carol"]["id"])["flags"]
    # a report of a new sighting of a named user is governed at ingest
    dave = fleet.sighting(name="dave", user="dave@sales.example.com")
    device.snapshot(*made.values(), dave)
    assert next(a for a in device.agents() if a["id"] == dave["id"])["governed"] is True
    assert governed()["alice"] is True  # and the next report keeps the others so
    # governed ones are off the ladder; withdrawing the approval puts them back on it
    assert {a["id"] for a in device.collector.agents(device=device.device_id, ladder="report_only")["data"]} == \
        {made["carol"]["id"], made["nobody"]["id"]}
    versions = own_collector.get("/api/v1/policy/versions").json()["data"]
    assert "approved signature claude-code for *@SALES.example.com, alice" in versions[0]["changes"]
    put_policy(own_collector, group_approvals=[])
    assert governed() == {"alice": False, "bob": False, "carol": False, "nobody": False}


def test_a_group_approval_of_an_unknown_signature_is_refused(own_collector) -> None:
    answer = own_collector.http.put("/api/v1/policy", json={"group_approvals": [
        {"signature": "clade-code", "users": ["alice"]}]}, headers=own_collector.as_admin())
    assert answer.status_code == 422 and "clade-code" in answer.json()["detail"]["message"]
    for bad in ({"signature": "claude-code", "users": []}, {"signature": "claude-code"},
                {"signature": "claude-code", "users": ["a\x00"]}, {"signature": "claude-code", "users": ["a"], "x": 1}):
        refused = own_collector.http.put("/api/v1/policy", json={"group_approvals": [bad]},
                                         headers=own_collector.as_admin())
        assert refused.status_code == 422, bad
