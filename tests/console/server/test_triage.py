"""Triage: admins approve, assign owners, request registration, mark false positives and add notes, on one
sighting or many; each action is stored with who and when, and changes what the roster shows."""

from __future__ import annotations

from datetime import datetime

import fleet
import pytest

pytestmark = pytest.mark.timeout(120)


def act(collector, device_id: str, sighting_id: str, action: str, token: str | None = None, **body):
    return collector.http.post(f"/api/v1/agents/{device_id}/{sighting_id}/actions",
                               json={"action": action, **body},
                               headers={"authorization": f"Bearer {token or collector.admin}"})


def bulk(collector, targets, action: str, token: str | None = None, **body):
    return collector.http.post("/api/v1/agents/actions", json={"targets": targets, "action": action, **body},
                               headers={"authorization": f"Bearer {token or collector.admin}"})


def detail(collector, device, sighting_id: str) -> dict:
    answer = collector.get(f"/api/v1/agents/{device.device_id}/{sighting_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture
def agent(device):
    """A device with one Claude Code sighting calling anthropic; returns (device, sighting)."""
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    return device, made


def test_an_action_is_stored_with_its_actor_and_time(collector, agent) -> None:
    device, made = agent
    answer = act(collector, device.device_id, made["id"], "note", note="asked alice on chat")
    assert answer.status_code == 201, answer.text
    action = answer.json()
    assert set(action) == {"id", "device_id", "sighting_id", "action", "actor", "at", "owner", "note", "batch_id"}
    assert (action["device_id"], action["sighting_id"], action["action"], action["actor"], action["note"]) == \
        (device.device_id, made["id"], "note", "test admin", "asked alice on chat")
    assert datetime.fromisoformat(action["at"]).utcoffset().total_seconds() == 0


def test_approving_governs_the_sighting(collector, agent) -> None:
    device, made = agent
    assert device.agents()[0]["governed"] is False
    assert act(collector, device.device_id, made["id"], "approve").status_code == 201
    row = device.agents()[0]
    assert (row["governed"], row["triage_state"]) == (True, "approved")
    assert "unregistered" not in row["flags"]
    assert [a["name"] for a in device.agents(governed="true")] == ["Claude Code"]
    assert device.agents(flag="unregistered") == []


def test_an_approval_outlasts_the_next_report(collector, agent) -> None:
    device, made = agent
    act(collector, device.device_id, made["id"], "approve")
    device.snapshot(made)
    row = device.agents()[0]
    assert row["governed"] is True and "unregistered" not in row["flags"]


def test_a_provider_called_after_approval_is_drift(collector, agent) -> None:
    device, made = agent
    act(collector, device.device_id, made["id"], "approve")
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai")))
    row = device.agents()[0]
    assert row["governed"] is False and "drift" in row["flags"]
    assert device.agents(flag="drift")[0]["id"] == made["id"]
    assert detail(collector, device, made["id"])["reasons"]["drift"] == "calls openai, not seen when approved"


def test_a_later_decision_withdraws_an_approval(collector, agent) -> None:
    device, made = agent
    act(collector, device.device_id, made["id"], "approve")
    act(collector, device.device_id, made["id"], "request_registration")
    row = device.agents()[0]
    assert (row["governed"], row["triage_state"]) == (False, "registration_requested")
    assert "unregistered" in row["flags"]


def test_assigning_an_owner_sets_it_and_filters_on_it(collector, agent) -> None:
    device, made = agent
    owner = f"alice-{made['id'][:6]}@example.com"
    act(collector, device.device_id, made["id"], "assign_owner", owner=owner)
    assert [a["owner"] for a in device.agents()] == [owner]
    assert [a["id"] for a in collector.agents(owner=owner)["data"]] == [made["id"]]
    assert device.agents(owner="nobody@example.com") == []
    assert device.agents()[0]["triage_state"] == "new"


def test_requesting_registration_sets_the_state_and_filters_on_it(collector, device) -> None:
    first, second = fleet.sighting(name="Aider", signature="aider"), fleet.sighting(name="Cursor")
    device.snapshot(first, second)
    act(collector, device.device_id, first["id"], "request_registration")
    assert [a["name"] for a in device.agents(triage_state="registration_requested")] == ["Aider"]
    assert [a["name"] for a in device.agents(triage_state="new")] == ["Cursor"]


def test_a_false_positive_is_hidden_unless_asked_for(collector, device) -> None:
    real, noise = fleet.sighting(name="Claude Code"), fleet.sighting(name="vim plugin", signature=None)
    device.snapshot(real, noise)
    act(collector, device.device_id, noise["id"], "false_positive", note="an editor plugin, not an agent")
    assert [a["name"] for a in device.agents()] == ["Claude Code"]
    assert collector.agents(device=device.device_id)["count"] == 1
    assert sorted(a["name"] for a in device.agents(include_hidden="true")) == ["Claude Code", "vim plugin"]
    assert [a["triage_state"] for a in device.agents(triage_state="false_positive")] == ["false_positive"]
    assert detail(collector, device, noise["id"])["triage_state"] == "false_positive"


def test_a_false_positive_is_not_counted_in_the_overview(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    real, noise = fleet.sighting(providers=("openai",)), fleet.sighting(type="unknown", providers=("openai",))
    device.snapshot(real, noise)
    act(own_collector, device.device_id, noise["id"], "false_positive")
    overview = own_collector.get("/api/v1/overview").json()
    assert overview["sightings"] == 1 and overview["by_type"] == [{"key": "coding", "count": 1}]
    assert overview["top_providers"] == [{"key": "openai", "count": 1}]
    assert overview["top_ungoverned_devices"][0]["count"] == 1
    everything = own_collector.get("/api/v1/overview", include_hidden="true").json()
    assert everything["sightings"] == 2


def test_an_approval_outlasts_a_policy_change(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    made = fleet.sighting(signature="aider", name="Aider")
    device.snapshot(made)
    act(own_collector, device.device_id, made["id"], "approve")
    answer = own_collector.http.put("/api/v1/policy", json={"sanctioned_signatures": ["github-copilot"]},
                                    headers=own_collector.as_admin())
    assert answer.status_code == 200
    row = device.agents()[0]
    assert row["governed"] is True and "unregistered" not in row["flags"]


def test_the_detail_lists_actions_newest_first_beside_the_history(collector, agent) -> None:
    device, made = agent
    for action, body in (("assign_owner", {"owner": "alice"}), ("note", {"note": "first look"}), ("approve", {})):
        assert act(collector, device.device_id, made["id"], action, **body).status_code == 201
    shown = detail(collector, device, made["id"])
    assert [a["action"] for a in shown["actions"]] == ["approve", "note", "assign_owner"]
    assert [h["change"] for h in shown["history"]] == ["new"]
    assert shown["owner"] == "alice" and shown["registration"] is None


# -- bulk -----------------------------------------------------------------------------------------------


def test_a_bulk_action_applies_to_every_target(collector, device) -> None:
    made = [fleet.sighting(name=f"agent {i}") for i in range(3)]
    device.snapshot(*made)
    targets = [{"device_id": device.device_id, "sighting_id": m["id"]} for m in made]
    answer = bulk(collector, targets, "assign_owner", owner="platform-team")
    assert answer.status_code == 201, answer.text
    assert answer.json()["applied"] == 3
    assert sorted(a["sighting_id"] for a in answer.json()["actions"]) == sorted(m["id"] for m in made)
    assert {a["owner"] for a in device.agents()} == {"platform-team"}


def test_a_bulk_action_with_an_unknown_target_stores_nothing(collector, device) -> None:
    made = [fleet.sighting(name=f"agent {i}") for i in range(2)]
    device.snapshot(*made)
    targets = [{"device_id": device.device_id, "sighting_id": m["id"]} for m in made]
    targets.insert(1, {"device_id": device.device_id, "sighting_id": "0" * 20})
    answer = bulk(collector, targets, "approve")
    assert answer.status_code == 404
    detail_ = answer.json()["detail"]
    assert detail_.pop("message").startswith(f"No such agent: sighting {'0' * 20} is not known on that device.")
    assert detail_ == {"reason": "sighting_not_found", "device_id": device.device_id, "sighting_id": "0" * 20,
                       "unknown": 1}
    assert {a["triage_state"] for a in device.agents()} == {"new"}
    assert {a["governed"] for a in device.agents()} == {False}
    assert all(detail(collector, device, m["id"])["actions"] == [] for m in made)


@pytest.mark.parametrize("count", [0, 1001])
def test_a_bulk_action_takes_one_to_a_thousand_targets(collector, agent, count) -> None:
    device, made = agent
    targets = [{"device_id": device.device_id, "sighting_id": made["id"]}] * count
    answer = bulk(collector, targets, "note", note="x")
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")
    assert detail(collector, device, made["id"])["actions"] == []


# -- who may triage ---------------------------------------------------------------------------------------


def test_a_viewer_cannot_triage(collector, agent) -> None:
    device, made = agent
    answer = act(collector, device.device_id, made["id"], "approve", token=collector.viewer)
    assert answer.status_code == 403
    assert answer.json()["detail"]["reason"] == "viewers_cannot_triage"
    assert answer.json()["detail"]["message"] == "viewers cannot triage"
    target = [{"device_id": device.device_id, "sighting_id": made["id"]}]
    assert bulk(collector, target, "approve", token=collector.viewer).status_code == 403
    assert device.agents()[0]["governed"] is False
    assert detail(collector, device, made["id"])["actions"] == []


def test_a_device_key_cannot_triage(collector, agent) -> None:
    device, made = agent
    answer = act(collector, device.device_id, made["id"], "approve", token=device.key)
    assert (answer.status_code, fleet.reason(answer)) == (403, "device_token_not_allowed")
    assert detail(collector, device, made["id"])["actions"] == []


def test_triaging_needs_a_token(collector, agent) -> None:
    device, made = agent
    answer = collector.http.post(f"/api/v1/agents/{device.device_id}/{made['id']}/actions", json={"action": "approve"})
    assert (answer.status_code, fleet.reason(answer)) == (401, "missing_token")


# -- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"action": "assign_owner"}, 422, "owner_required"),
    ({"action": "assign_owner", "owner": "   "}, 422, "invalid_request"),
    ({"action": "approve", "owner": "alice"}, 422, "owner_not_allowed"),
    ({"action": "note"}, 422, "note_required"),
    ({"action": "note", "note": "  "}, 422, "note_required"),
    ({"action": "note", "note": "x" * 4001}, 422, "invalid_request"),
    ({"action": "note", "note": "a\x00b"}, 422, "invalid_request"),
    ({"action": "assign_owner", "owner": "x" * 257}, 422, "invalid_request"),
    ({"action": "delete_everything"}, 422, "invalid_request"),
    ({"action": "approve", "actor": "someone else"}, 422, "invalid_request"),
    ({}, 422, "invalid_request"),
])  # fmt: skip
def test_bad_actions_are_refused_and_nothing_is_stored(collector, agent, body, status, reason) -> None:
    device, made = agent
    answer = collector.http.post(f"/api/v1/agents/{device.device_id}/{made['id']}/actions", json=body,
                                 headers=collector.as_admin())
    assert (answer.status_code, fleet.reason(answer)) == (status, reason)
    shown = detail(collector, device, made["id"])
    assert shown["actions"] == [] and shown["owner"] is None and shown["triage_state"] == "new"


def test_a_note_of_four_thousand_characters_is_kept_whole(collector, agent) -> None:
    device, made = agent
    note = "é" * 4000
    assert act(collector, device.device_id, made["id"], "note", note=note).status_code == 201
    assert detail(collector, device, made["id"])["actions"][0]["note"] == note


def test_an_action_on_an_unknown_sighting_is_404(collector, device) -> None:
    answer = act(collector, device.device_id, "f" * 20, "approve")
    assert answer.status_code == 404
    assert answer.json()["detail"]["reason"] == "sighting_not_found"
    assert answer.json()["detail"]["sighting_id"] == "f" * 20


def test_a_sighting_id_too_long_for_any_sighting_is_refused(collector, device) -> None:
    answer = act(collector, device.device_id, "f" * 129, "approve")
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")


@pytest.mark.parametrize("text", ["' OR 1=1 --", "'; DROP TABLE sighting; --", "%", "_", "\\", "Robert'); --"])
def test_sql_looking_owners_and_notes_are_stored_literally(collector, agent, text) -> None:
    device, made = agent
    assert act(collector, device.device_id, made["id"], "assign_owner", owner=text).status_code == 201
    assert act(collector, device.device_id, made["id"], "note", note=text).status_code == 201
    assert [a["id"] for a in collector.agents(owner=text, device=device.device_id)["data"]] == [made["id"]]
    assert device.agents(owner=text + "x") == []
    shown = detail(collector, device, made["id"])
    assert (shown["owner"], shown["actions"][0]["note"]) == (text, text)
    assert collector.agents(limit=1)["count"] >= 1  # the tables are all there


def test_hidden_sightings_do_not_rank_a_device_among_the_most_ungoverned(own_collector, enroll_on) -> None:
    noisy, real = enroll_on(own_collector), enroll_on(own_collector)
    noise = [fleet.sighting(name=f"plugin {i}", providers=("openai",)) for i in range(3)]
    noisy.snapshot(*noise)
    real.snapshot(fleet.sighting(), fleet.sighting())
    targets = [{"device_id": noisy.device_id, "sighting_id": s["id"]} for s in noise[:2]]
    assert bulk(own_collector, targets, "false_positive").status_code == 201
    overview = own_collector.get("/api/v1/overview").json()
    assert [(d["device_id"], d["count"]) for d in overview["top_ungoverned_devices"]] == \
        [(real.device_id, 2), (noisy.device_id, 1)]
    assert overview["by_governed"] == [{"key": "ungoverned", "count": 3}]
    assert overview["top_providers"] == [{"key": "openai", "count": 1}]
    assert own_collector.agents()["count"] == 3
    assert own_collector.agents(include_hidden="true")["count"] == 5


def test_a_device_below_the_first_ones_read_still_ranks_once_hidden_ones_are_taken_off(own_collector,
                                                                                         enroll_on) -> None:
    noisy = []
    for _ in range(21):  # more than the overview reads at first, each with 3 ungoverned, 2 of them noise
        device = enroll_on(own_collector)
        made = [fleet.sighting(name=f"agent {i}") for i in range(3)]
        device.snapshot(*made)
        noisy += [{"device_id": device.device_id, "sighting_id": m["id"]} for m in made[:2]]
    real = enroll_on(own_collector)
    real.snapshot(fleet.sighting(), fleet.sighting())
    assert bulk(own_collector, noisy, "false_positive").json()["applied"] == 42
    top = own_collector.get("/api/v1/overview").json()["top_ungoverned_devices"]
    assert top[0] == {"device_id": real.device_id, "hostname": real.doc["hostname"], "count": 2}
    assert [d["count"] for d in top[1:]] == [1] * 9
