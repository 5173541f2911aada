"""The device inbox (console/server/routes/inbox.py) on a real collector: an admin's request to register,
a decision on a registration with its comment, and a question each become one item for the sighting's
user on that device; the device reads them with its key, is given them again until it acknowledges
them, and never sees another device's."""

from __future__ import annotations

import fleet
import pytest

pytestmark = pytest.mark.timeout(120)


def inbox(device, ack: int = 0, key: str | None = None, **params):
    return device.collector.http.get("/api/v1/inbox", params={"ack": ack, **params},
                                     headers={"authorization": f"Bearer {key or device.key}"})


def items(device, ack: int = 0) -> list[dict]:
    answer = inbox(device, ack)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def ask(collector, device_id: str, sighting_id: str, question: str, token: str | None = None):
    return collector.http.post("/api/v1/inbox/questions",
                               json={"device_id": device_id, "sighting_id": sighting_id, "question": question},
                               headers={"authorization": f"Bearer {token or collector.admin}"})


def request_registration(collector, device_id: str, sighting_id: str, note: str):
    answer = collector.http.post(f"/api/v1/agents/{device_id}/{sighting_id}/actions",
                                 json={"action": "request_registration", "note": note}, headers=collector.as_admin())
    assert answer.status_code in (200, 201), answer.text


def register(device, sighting_id: str) -> int:
    body = {"sighting_id": sighting_id, "owner": "alice@example.com", "purpose": "reviews pull requests"}
    answer = device.collector.http.post("/api/v1/registrations", json=body, headers=device.headers())
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


@pytest.fixture
def agent(device):
    made = fleet.sighting(user="alice", name="Cursor")
    device.snapshot(made)
    return device, made


def test_a_registration_request_reaches_the_device_for_the_sightings_user(agent) -> None:
    device, made = agent
    assert items(device) == []
    request_registration(device.collector, device.device_id, made["id"], "please register it by Friday")
    [item] = items(device)
    assert (item["kind"], item["sighting_id"], item["sighting_name"], item["user"], item["text"]) == \
        ("request", made["id"], "Cursor", "alice", "please register it by Friday")


def test_an_item_is_given_again_until_the_device_acknowledges_it(agent) -> None:
    device, made = agent
    request_registration(device.collector, device.device_id, made["id"], "register it")
    first = items(device)
    assert [i["id"] for i in items(device)] == [i["id"] for i in first]  # not acknowledged: again, not twice
    answer = inbox(device, ack=first[-1]["id"])
    assert answer.json()["acked"] == 1 and answer.json()["data"] == []
    assert items(device, ack=first[-1]["id"]) == []
    sent = device.collector.get("/api/v1/inbox/sent", device=device.device_id).json()["data"]
    assert sent[0]["delivered_at"] is not None


def test_a_decision_reaches_the_device_with_the_admins_comment(agent) -> None:
    device, made = agent
    rejected = register(device, made["id"])
    answer = device.collector.http.post(f"/api/v1/registrations/{rejected}/reject",
                                        json={"note": "it must not read the payroll database"},
                                        headers=device.collector.as_admin())
    assert answer.status_code == 200, answer.text
    approved = register(device, made["id"])
    device.collector.http.post(f"/api/v1/registrations/{approved}/approve", json={"note": "fine now"},
                               headers=device.collector.as_admin())
    got = [(i["kind"], i["status"], i["text"]) for i in items(device)]
    assert got == [("decision", "rejected", "it must not read the payroll database"),
                   ("decision", "approved", "fine now")]


def test_a_pending_registration_sends_nothing(agent) -> None:
    device, made = agent
    register(device, made["id"])
    assert items(device) == []


def test_an_admins_question_reaches_the_device(agent) -> None:
    device, made = agent
    answer = ask(device.collector, device.device_id, made["id"], "  Which data systems does it touch?  ")
    assert answer.status_code == 201, answer.text
    assert answer.json()["delivered_at"] is None
    [item] = items(device)
    assert (item["kind"], item["text"], item["user"]) == ("question", "Which data systems does it touch?", "alice")


def test_a_question_about_an_unknown_sighting_is_refused(agent) -> None:
    device, _ = agent
    answer = ask(device.collector, device.device_id, "0" * 20, "which data systems?")
    assert answer.status_code == 404 and answer.json()["detail"]["reason"] == "sighting_not_found"


def test_a_viewer_cannot_ask_and_an_empty_question_is_refused(agent) -> None:
    device, made = agent
    assert ask(device.collector, device.device_id, made["id"], "why?", token=device.collector.viewer).status_code == 403
    assert ask(device.collector, device.device_id, made["id"], "   ").status_code == 422
    assert ask(device.collector, device.device_id, made["id"], "a\x00b").status_code == 422


def test_a_device_sees_only_its_own_items(agent, enroll) -> None:
    device, made = agent
    other = enroll()
    other.snapshot(fleet.sighting(user="bob"))
    ask(device.collector, device.device_id, made["id"], "what does it do?")
    assert items(other) == []
    # acknowledging another device's item ids does nothing to them
    assert inbox(other, ack=10**9).json()["acked"] == 0
    assert len(items(device)) == 1


def test_the_inbox_needs_a_device_key(agent) -> None:
    device, _ = agent
    assert device.collector.http.get("/api/v1/inbox").status_code == 401
    answer = inbox(device, key=device.collector.admin)
    assert answer.status_code == 403 and answer.json()["detail"]["reason"] == "not_a_device_key"
    assert inbox(device, ack=-1).status_code == 422


def test_a_long_inbox_comes_in_pages(agent) -> None:
    device, made = agent
    for n in range(5):
        ask(device.collector, device.device_id, made["id"], f"question {n}")
    page = inbox(device, limit=2).json()
    assert [i["text"] for i in page["data"]] == ["question 0", "question 1"] and page["more"] is True
    rest = inbox(device, ack=page["data"][-1]["id"], limit=10).json()
    assert [i["text"] for i in rest["data"]] == ["question 2", "question 3", "question 4"] and rest["more"] is False


def test_an_approval_superseded_before_the_device_asked_still_arrives_as_approved(agent) -> None:
    device, made = agent
    first = register(device, made["id"])
    device.collector.http.post(f"/api/v1/registrations/{first}/approve", json={"note": "ok for now"},
                               headers=device.collector.as_admin())
    second = register(device, made["id"])
    device.collector.http.post(f"/api/v1/registrations/{second}/approve", json={"note": "ok with the new tools"},
                               headers=device.collector.as_admin())
    assert [r["status"] for r in device.collector.get("/api/v1/registrations", sighting=made["id"]).json()["data"]] \
        == ["approved", "superseded"]
    assert [(i["status"], i["text"]) for i in items(device)] == [("approved", "ok for now"),
                                                                  ("approved", "ok with the new tools")]
