"""Triage on a whole filter: a dry run counts, the action is applied in one transaction and audited as one
action with its count, the last action is undone sighting by sighting, and refusals are sentences."""

from __future__ import annotations

from typing import Any

import fleet
import pytest

pytestmark = pytest.mark.timeout(240)


def post(collector, path: str, body: dict[str, Any], token: str | None = None):
    return collector.http.post(f"/api/v1{path}", json=body,
                               headers={"authorization": f"Bearer {token or collector.admin}"})


def count(collector, **params: Any) -> int:
    return int(collector.agents(limit=1, **params)["count"])


def fill(own_collector, enroll_on, per_device: int):
    """``per_device`` Aider sightings on each of two devices (a few of them triaged already) and ten Claude
    Codes; returns (collector, devices, the five with an owner, the three false positives)."""
    devices = [enroll_on(own_collector) for _ in range(2)]
    made = {d.device_id: [fleet.sighting(name="Aider", signature="aider", providers=("openai",))
                          for _ in range(per_device)] for d in devices}
    made[devices[0].device_id] += [fleet.sighting() for _ in range(10)]
    for device in devices:
        device.snapshot(*made[device.device_id])
    first = made[devices[0].device_id]
    owned = [{"device_id": devices[0].device_id, "sighting_id": s["id"]} for s in first[:5]]
    hidden = [{"device_id": devices[0].device_id, "sighting_id": s["id"]} for s in first[5:8]]
    assert post(own_collector, "/agents/actions", {"targets": owned, "action": "assign_owner",
                                                   "owner": "bob@example.com"}).status_code == 201
    assert post(own_collector, "/agents/actions", {"targets": hidden, "action": "false_positive"}).status_code == 201
    return own_collector, devices, owned, hidden


@pytest.fixture
def aiders(own_collector, enroll_on):
    """3,000 Aider sightings (2,997 shown: three are false positives)."""
    return fill(own_collector, enroll_on, 1500)


@pytest.fixture
def few(own_collector, enroll_on):
    """40 Aider sightings (37 shown)."""
    return fill(own_collector, enroll_on, 20)


def test_an_action_on_3000_matching_sightings_is_applied_audited_and_undone(aiders) -> None:
    collector, _, owned, _ = aiders
    body = {"action": "approve", "note": "the team's pair programmer", "filter": {"signature": "aider"}}
    dry = post(collector, "/agents/actions/filter", {**body, "dry_run": True}).json()
    assert dry == {"count": 2997, "dry_run": True, "action_id": None,
                   "message": "Approve 2,997 sightings? Confirm to go ahead."}
    assert count(collector, governed="true") == 0  # a dry run changes nothing

    applied = post(collector, "/agents/actions/filter", {**body, "expected": 2997})
    assert applied.status_code == 200, applied.text
    done = applied.json()
    assert done["count"] == 2997 and done["message"].startswith("Approved 2,997 sightings.")
    assert count(collector, governed="true") == count(collector, triage_state="approved") == 2997
    assert count(collector, signature="claude-code", governed="true") == 0
    audit = collector.get("/api/v1/agents/actions").json()
    assert audit[0]["id"] == done["action_id"] and audit[0]["count"] == 2997
    assert (audit[0]["action"], audit[0]["filter"], audit[0]["actor"]) == ("approve", {"signature": "aider"},
                                                                           "test admin")
    one = owned[0]
    detail = collector.get(f"/api/v1/agents/{one['device_id']}/{one['sighting_id']}").json()
    assert detail["actions"][0]["batch_id"] == done["action_id"]

    undone = post(collector, "/agents/actions/undo", {"action_id": done["action_id"]})
    assert undone.status_code == 200, undone.text
    assert undone.json()["restored"] == 2997
    assert count(collector, governed="true") == count(collector, triage_state="approved") == 0
    assert count(collector, owner="bob@example.com") == 5  # the owners assigned before stay
    assert count(collector, triage_state="false_positive") == 3  # the false positives were never in the filter
    detail = collector.get(f"/api/v1/agents/{one['device_id']}/{one['sighting_id']}").json()
    assert (detail["actions"][0]["action"], detail["triage_state"]) == ("undo", "new")
    assert collector.get("/api/v1/agents/actions").json()[0]["undone_by"] == "test admin"


def test_a_count_that_moved_since_the_confirmation_changes_nothing(few) -> None:
    collector, _, _, _ = few
    answer = post(collector, "/agents/actions/filter", {"action": "false_positive", "filter": {"signature": "aider"},
                                                        "expected": 40})
    assert (answer.status_code, fleet.reason(answer)) == (409, "count_changed")
    assert answer.json()["detail"]["count"] == 37
    assert "matches 37 sightings now, not 40" in answer.json()["detail"]["message"]
    assert count(collector, triage_state="false_positive") == 3


def test_only_the_last_action_can_be_undone(few) -> None:
    collector, _, _, _ = few
    first = post(collector, "/agents/actions/filter", {"action": "request_registration",
                                                       "filter": {"signature": "claude-code"}}).json()
    second = post(collector, "/agents/actions/filter", {"action": "note", "note": "seen",
                                                        "filter": {"signature": "claude-code"}}).json()
    answer = post(collector, "/agents/actions/undo", {"action_id": first["action_id"]})
    assert (answer.status_code, fleet.reason(answer)) == (409, "not_the_last_action")
    assert f"#{second['action_id']}" in answer.json()["detail"]["message"]
    assert post(collector, "/agents/actions/undo", {}).json()["action_id"] == second["action_id"]
    assert post(collector, "/agents/actions/undo", {}).json()["action_id"] == first["action_id"]
    assert count(collector, triage_state="registration_requested") == 0


def test_a_list_over_1000_targets_is_refused_with_a_sentence_that_says_what_to_do(few) -> None:
    collector, devices, _, _ = few
    rows = collector.agents(device=devices[1].device_id, limit=500)["data"]
    targets = [{"device_id": a["device_id"], "sighting_id": a["id"]} for a in rows] * 60
    answer = post(collector, "/agents/actions", {"targets": targets, "action": "approve"})
    detail = answer.json()["detail"]
    assert (answer.status_code, detail["reason"]) == (422, "invalid_request")
    assert detail["message"] == ("Targets may hold at most 1000 items: to act on more sightings, act on their filter "
                                 "(POST /api/v1/agents/actions/filter).")


def test_viewers_cannot_act_on_a_filter_nor_undo(few) -> None:
    collector, _, _, _ = few
    for path, body in (("/agents/actions/filter", {"action": "approve", "filter": {}}), ("/agents/actions/undo", {})):
        answer = post(collector, path, body, token=collector.viewer)
        assert (answer.status_code, fleet.reason(answer)) == (403, "viewers_cannot_triage")
    assert count(collector, governed="true") == 0


def test_an_unknown_filter_field_is_refused_and_nothing_is_done(few) -> None:
    collector, _, _, _ = few
    answer = post(collector, "/agents/actions/filter", {"action": "approve", "filter": {"everything": True}})
    assert answer.status_code == 422
    # "everything" is no name of the API: what the client wrote is not repeated (it could be a pasted key)
    assert answer.json()["detail"]["message"].startswith("A field of filter is not something this request takes")
    assert count(collector, governed="true") == 0


def test_the_audit_keeps_a_filter_without_a_key_typed_into_it(few) -> None:
    collector, _, _, _ = few
    fake = "sk-proj-" + "FAKE0000" * 6  # an obviously fake key of the openai shape
    done = post(collector, "/agents/actions/filter", {"action": "note", "note": "looked", "filter": {"q": fake}})
    assert done.status_code == 200 and done.json()["count"] == 0
    audit = collector.get("/api/v1/agents/actions").json()[0]
    assert audit["filter"] == {"q": "[REDACTED:openai]"} and "FAKE0000" not in str(audit)
