"""Registrations: an employee's device registers its own agents; admins approve or reject; a pending
registration flags ``pending``, an approved one governs unless the agent drifts from its declaration."""

from __future__ import annotations

import fleet
import pytest

pytestmark = pytest.mark.timeout(120)

MCP_GITHUB = {"name": "github", "transport": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
              "url": None, "source": "/home/alice/.claude.json", "enabled": True, "project": None}
MCP_SLACK = {**MCP_GITHUB, "name": "slack", "args": ["-y", "@modelcontextprotocol/server-slack"]}


def declaration(sighting_id: str, **overrides) -> dict:
    body = {"sighting_id": sighting_id, "owner": "alice@example.com", "purpose": "refactors the billing service",
            "business_process": "software delivery", "providers": ["anthropic"], "tools": ["github"],
            "data_systems": ["git"], "autonomy": "supervised"}
    body.update(overrides)
    return body


def register(device, sighting_id: str, key: str | None = None, **overrides):
    return device.collector.http.post("/api/v1/registrations", json=declaration(sighting_id, **overrides),
                                      headers={"authorization": f"Bearer {key or device.key}"})


def decide(collector, registration_id: int, verdict: str, token: str | None = None, **body):
    return collector.http.post(f"/api/v1/registrations/{registration_id}/{verdict}", json=body or None,
                               headers={"authorization": f"Bearer {token or collector.admin}"})


def registrations(device, **params) -> list[dict]:
    answer = device.collector.get("/api/v1/registrations", device=device.device_id, **params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def row(device, sighting_id: str) -> dict:
    return next(a for a in device.agents() if a["id"] == sighting_id)


@pytest.fixture
def agent(device):
    """A device with one Claude Code sighting calling anthropic with a github MCP server."""
    made = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    device.snapshot(made)
    return device, made


def test_a_device_registers_its_own_agent(agent) -> None:
    device, made = agent
    answer = register(device, made["id"])
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["status"], body["device_id"], body["sighting_id"], body["owner"]) == \
        ("pending", device.device_id, made["id"], "alice@example.com")
    assert body["providers"] == ["anthropic"] and body["autonomy"] == "supervised" and body["decided_at"] is None


def test_a_pending_registration_flags_pending_instead_of_unregistered(agent) -> None:
    device, made = agent
    register(device, made["id"])
    flags = row(device, made["id"])["flags"]
    assert "pending" in flags and "unregistered" not in flags
    assert row(device, made["id"])["governed"] is False


def test_a_pending_registration_outlasts_the_next_report(agent) -> None:
    device, made = agent
    register(device, made["id"])
    device.snapshot(made)
    flags = row(device, made["id"])["flags"]
    assert "pending" in flags and "unregistered" not in flags


def test_a_pending_registration_outlasts_a_policy_change(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    register(device, made["id"])
    answer = own_collector.http.put("/api/v1/policy", json={"sanctioned_providers": ["anthropic"]},
                                    headers=own_collector.as_admin())
    assert answer.status_code == 200
    assert row(device, made["id"])["flags"] == ["pending"]


def test_an_approved_registration_governs_its_agent(collector, agent) -> None:
    device, made = agent
    registration = register(device, made["id"]).json()
    answer = decide(collector, registration["id"], "approve", note="fine for billing")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["decided_by"], answer.json()["decision_note"]) == \
        ("approved", "test admin", "fine for billing")
    shown = row(device, made["id"])
    assert shown["governed"] is True
    assert not {"pending", "unregistered", "drift"} & set(shown["flags"])
    assert shown["owner"] == "alice@example.com"


def test_an_approved_registration_outlasts_the_next_report(collector, agent) -> None:
    device, made = agent
    decide(collector, register(device, made["id"]).json()["id"], "approve")
    device.snapshot(made)
    assert row(device, made["id"])["governed"] is True


@pytest.mark.parametrize(("change", "reason"), [
    ({"providers": ("anthropic", "openai")}, "calls openai, not declared"),
    ({"flags": ("autonomous",)}, "runs autonomously, declared supervised"),
    ({"mcp_servers": [MCP_GITHUB, MCP_SLACK]}, "uses MCP server slack, not declared"),
])  # fmt: skip
def test_doing_more_than_declared_is_drift(collector, agent, change, reason) -> None:
    device, made = agent
    decide(collector, register(device, made["id"]).json()["id"], "approve")
    observed = {"providers": ("anthropic",), "mcp_servers": [MCP_GITHUB], **change}
    device.snapshot(fleet.sighting(id=made["id"], **observed))
    shown = row(device, made["id"])
    assert shown["governed"] is False and "drift" in shown["flags"]
    detail = device.collector.get(f"/api/v1/agents/{device.device_id}/{made['id']}").json()
    assert detail["reasons"]["drift"] == reason


def test_a_declaration_that_covers_the_agent_is_not_drift(collector, agent) -> None:
    device, made = agent
    registration = register(device, made["id"], providers=["anthropic", "openai"], tools=["github", "slack"],
                            autonomy="autonomous").json()
    decide(collector, registration["id"], "approve")
    device.snapshot(fleet.sighting(id=made["id"], providers=("openai",), flags=("autonomous",),
                                   mcp_servers=[MCP_SLACK]))
    assert row(device, made["id"])["governed"] is True


def test_a_rejected_registration_leaves_the_agent_unregistered(collector, agent) -> None:
    device, made = agent
    registration = register(device, made["id"]).json()
    assert decide(collector, registration["id"], "reject", note="use the approved tool").json()["status"] == "rejected"
    shown = row(device, made["id"])
    assert "unregistered" in shown["flags"] and "pending" not in shown["flags"]


def test_only_a_pending_registration_can_be_decided(collector, agent) -> None:
    device, made = agent
    registration = register(device, made["id"]).json()
    decide(collector, registration["id"], "approve")
    answer = decide(collector, registration["id"], "reject")
    assert (answer.status_code, fleet.reason(answer)) == (409, "registration_not_pending")
    assert registrations(device)[0]["status"] == "approved"


def test_a_newer_registration_supersedes_a_pending_one(agent) -> None:
    device, made = agent
    first = register(device, made["id"]).json()
    second = register(device, made["id"], purpose="also writes release notes").json()
    assert [(r["id"], r["status"]) for r in registrations(device)] == \
        [(second["id"], "pending"), (first["id"], "superseded")]


def test_the_detail_shows_the_newest_registration(collector, agent) -> None:
    device, made = agent
    register(device, made["id"])
    newest = register(device, made["id"], purpose="also writes release notes").json()
    detail = collector.get(f"/api/v1/agents/{device.device_id}/{made['id']}").json()
    assert detail["registration"]["id"] == newest["id"]
    assert detail["registration"]["purpose"] == "also writes release notes"


def test_registrations_are_listed_newest_first_and_filtered_by_status(collector, device) -> None:
    made = [fleet.sighting(name=f"agent {i}") for i in range(3)]
    device.snapshot(*made)
    ids = [register(device, m["id"]).json()["id"] for m in made]
    decide(collector, ids[0], "approve")
    decide(collector, ids[1], "reject")
    assert [r["id"] for r in registrations(device)] == ids[::-1]
    assert [r["id"] for r in registrations(device, status="pending")] == [ids[2]]
    assert [r["id"] for r in registrations(device, status="approved")] == [ids[0]]
    answer = collector.get("/api/v1/registrations", status="pending", device=device.device_id)
    assert answer.json()["count"] == 1


# -- who may do what ---------------------------------------------------------------------------------------


def test_a_device_cannot_register_another_devices_agent(enroll, agent) -> None:
    device, made = agent
    other = enroll()
    answer = register(other, made["id"])
    assert (answer.status_code, fleet.reason(answer)) == (404, "sighting_not_found")
    assert registrations(device) == [] and registrations(other) == []
    assert "pending" not in row(device, made["id"])["flags"]


def test_an_admin_token_cannot_post_a_registration(collector, agent) -> None:
    device, made = agent
    answer = register(device, made["id"], key=collector.admin)
    assert (answer.status_code, fleet.reason(answer)) == (403, "not_a_device_key")
    assert registrations(device) == []


def test_a_viewer_lists_registrations_but_cannot_decide(collector, agent) -> None:
    device, made = agent
    registration = register(device, made["id"]).json()
    listed = collector.get("/api/v1/registrations", token=collector.viewer, device=device.device_id)
    assert listed.status_code == 200 and listed.json()["count"] == 1
    answer = decide(collector, registration["id"], "approve", token=collector.viewer)
    assert (answer.status_code, fleet.reason(answer)) == (403, "viewers_cannot_triage")
    assert registrations(device)[0]["status"] == "pending"


def test_a_device_key_cannot_decide(collector, agent) -> None:
    device, made = agent
    registration = register(device, made["id"]).json()
    answer = decide(collector, registration["id"], "approve", token=device.key)
    assert (answer.status_code, fleet.reason(answer)) == (403, "device_token_not_allowed")
    assert registrations(device)[0]["status"] == "pending"


def own_rows(caller, **params) -> dict:
    answer = caller.collector.get("/api/v1/registrations", token=caller.key, **params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_device_key_lists_only_its_own_registrations(collector, enroll, agent) -> None:
    device, made = agent
    other = enroll()
    theirs = fleet.sighting(providers=("openai",))
    other.snapshot(theirs)
    mine = register(device, made["id"]).json()
    register(other, theirs["id"])
    decide(collector, mine["id"], "approve")
    listed = own_rows(device)
    assert listed["count"] == 1 and [r["id"] for r in listed["data"]] == [mine["id"]]
    assert listed["data"][0]["status"] == "approved"
    assert [r["sighting_id"] for r in own_rows(other)["data"]] == [theirs["id"]]


def test_a_device_key_cannot_widen_its_list_with_filters(enroll, agent) -> None:
    device, made = agent
    other = enroll()
    theirs = fleet.sighting()
    other.snapshot(theirs)
    register(other, theirs["id"])
    assert own_rows(device, device=other.device_id) == {"data": [], "count": 0}
    assert own_rows(device, sighting=theirs["id"]) == {"data": [], "count": 0}


def test_a_wrong_or_revoked_device_key_cannot_list(collector, enroll, agent) -> None:
    device, made = agent
    register(device, made["id"])
    forged = device.key[:-1] + ("A" if device.key[-1] != "A" else "B")
    answer = collector.get("/api/v1/registrations", token=forged)
    assert (answer.status_code, fleet.reason(answer)) == (401, "invalid_device_key")
    revoked = enroll()
    assert collector.http.post(f"/api/v1/devices/{revoked.device_id}/revoke",
                               headers={"authorization": f"Bearer {collector.admin}"}).status_code == 200
    answer = collector.get("/api/v1/registrations", token=revoked.key)
    assert (answer.status_code, fleet.reason(answer)) == (401, "invalid_device_key")


def test_an_unknown_registration_is_404(collector) -> None:
    answer = decide(collector, 2**31 - 1, "approve")
    assert (answer.status_code, fleet.reason(answer)) == (404, "registration_not_found")


@pytest.mark.parametrize("registration_id", ["0", "-1", str(2**40), "1 OR 1=1", "abc"])
def test_a_registration_id_that_cannot_be_one_is_refused(collector, registration_id) -> None:
    answer = decide(collector, registration_id, "approve")  # type: ignore[arg-type]
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")


# -- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [
    {"purpose": ""},
    {"purpose": "x" * 4001},
    {"owner": "   "},
    {"owner": "a\x00b"},
    {"autonomy": "sometimes"},
    {"providers": ["x"] * 101},
    {"tools": ["x" * 129]},
    {"data_systems": [""]},
    {"providers": "openai"},
    {"status": "approved"},
    {"sighting_id": ""},
])  # fmt: skip
def test_bad_registrations_are_refused_and_nothing_is_stored(agent, overrides) -> None:
    device, made = agent
    body = {"sighting_id": made["id"], **overrides}
    answer = register(device, body.pop("sighting_id"), **body)
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")
    assert registrations(device) == []
    assert "unregistered" in row(device, made["id"])["flags"]


@pytest.mark.parametrize("text", ["' OR 1=1 --", "'; DROP TABLE registration; --", "%_\\"])
def test_sql_looking_declarations_are_stored_literally(agent, text) -> None:
    device, made = agent
    answer = register(device, made["id"], owner=text, purpose=text, providers=[text])
    assert answer.status_code == 201, answer.text
    stored = registrations(device)[0]
    assert (stored["owner"], stored["purpose"], stored["providers"]) == (text, text, [text])
