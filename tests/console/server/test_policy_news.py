"""A policy save that flips an agent's verdict tells that agent's user (console/server/routes/policy.py and
console/server/inbox.py): a real collector (SQLite and PostgreSQL), real devices reporting through the ingest
API and reading their inbox with their keys. One ``policy`` item per flipped sighting and save, addressed to
the sighting's user on its own device; a save that flips nothing adds nothing; an undo says the reverse."""

from __future__ import annotations

from typing import Any

import fleet
import pytest

pytestmark = pytest.mark.timeout(120)


def put_policy(collector: Any, **body: Any) -> None:
    answer = collector.http.put("/api/v1/policy", json=body, headers=collector.as_admin())
    assert answer.status_code == 200, answer.text


def inbox(device: Any, ack: int = 0) -> dict[str, Any]:
    answer = device.collector.http.get("/api/v1/inbox", params={"ack": ack}, headers=device.headers())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def news(device: Any, ack: int = 0) -> list[tuple[str, str | None, str | None, str]]:
    return [(i["user"], i["sighting_name"], i["status"], i["text"]) for i in inbox(device, ack)["data"]
            if i["kind"] == "policy"]


def test_a_policy_save_tells_each_user_whose_agent_it_flips_once(own_collector, enroll_on) -> None:
    office, other = enroll_on(own_collector), enroll_on(own_collector)
    office.snapshot(fleet.sighting(user="alice"),
                    fleet.sighting(signature="cursor", name="Cursor", user="carol", vendor="Anysphere"))
    other.snapshot(fleet.sighting(signature="windsurf", name="Windsurf", user="bob", vendor="Codeium"))
    put_policy(own_collector, sanctioned_signatures=["claude-code"])
    first = inbox(office)
    assert [(i["kind"], i["user"], i["status"]) for i in first["data"]] == [("policy", "alice", "governed")]
    cursor = first["data"][-1]["id"]
    version = own_collector.get("/api/v1/policy").json()["version"]
    assert first["data"][0]["text"] == f"IT's policy (version {version}) now allows Claude Code: nothing to do."

    # sanctions carol's Cursor, stops covering alice's Claude Code; bob's Windsurf stays as it was
    put_policy(own_collector, sanctioned_signatures=["cursor"])
    assert sorted(news(office, cursor)) == [
        ("alice", "Claude Code", "ungoverned", f"IT's policy (version {version + 1}) no longer covers Claude Code: "
                                               "register it (agentroster register) or stop using it."),
        ("carol", "Cursor", "governed", f"IT's policy (version {version + 1}) now allows Cursor: nothing to do.")]
    assert inbox(other)["data"] == []
    answer = inbox(office, cursor)
    cursor = answer["data"][-1]["id"]
    # the ladder only reports (the default): the news still arrives, and the device is told not to notify
    assert answer["notify"] is False

    undone = own_collector.http.post("/api/v1/policy/undo", headers=own_collector.as_admin())
    assert undone.status_code == 200, undone.text
    answer = inbox(office, cursor)
    assert sorted((i["user"], i["status"]) for i in answer["data"]) == [("alice", "governed"), ("carol", "ungoverned")]
    assert all(f"(version {version + 2})" in i["text"] for i in answer["data"])
    assert inbox(other)["data"] == []
    cursor = answer["data"][-1]["id"]

    put_policy(own_collector, sanctioned_signatures=["claude-code"], risky_tools=["nothing-runs-this"])  # no flip
    assert inbox(office, cursor)["data"] == [] and inbox(other)["data"] == []
    sent = own_collector.get("/api/v1/inbox/sent", device=office.device_id).json()["data"]
    assert all(i["sent_by"] for i in sent if i["kind"] == "policy")  # the admin who saved it


def test_an_agent_gone_from_its_device_is_not_told(own_collector, enroll_on) -> None:
    office = enroll_on(own_collector)
    kept = fleet.sighting(user="alice")
    office.snapshot(kept, fleet.sighting(user="dave"))
    office.snapshot(kept)  # dave's agent is gone from the device
    put_policy(own_collector, sanctioned_signatures=["claude-code"])
    assert [u for u, *_ in news(office)] == ["alice"]
