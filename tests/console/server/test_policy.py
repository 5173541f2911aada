"""GET/PUT /api/v1/policy: viewers read, admins write, and every stored sighting is re-assessed."""

from __future__ import annotations

import fleet

KEY = "hmac-sha256:" + "d" * 32


def put(collector, token: str, **policy) -> object:
    return collector.http.put("/api/v1/policy", json=policy, headers={"authorization": f"Bearer {token}"})


def test_a_new_collector_has_an_empty_policy(own_collector) -> None:
    policy = own_collector.get("/api/v1/policy", token=own_collector.viewer).json()
    assert policy["sanctioned_signatures"] == [] and policy["version"] == 0


def test_sanctioning_a_signature_governs_its_sightings_already_stored(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(signature="copilot", name="Copilot"), fleet.sighting(signature="aider"))
    answer = put(own_collector, own_collector.admin, sanctioned_signatures=["copilot"])
    assert answer.status_code == 200 and answer.json()["version"] == 1
    governed = device.agents(governed="true")
    assert [a["name"] for a in governed] == ["Copilot"]
    assert "unregistered" not in governed[0]["flags"]
    assert device.agents(flag="unregistered")[0]["signature"] == "aider"


def test_the_policy_applies_to_sightings_ingested_after_it(own_collector, enroll_on) -> None:
    put(own_collector, own_collector.admin, sanctioned_providers=["anthropic"], corporate_fingerprints=[KEY])
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(providers=("anthropic",), fingerprints=(KEY,)))
    assert set(device.agents()[0]["flags"]) == {"unregistered"}


def test_unsanctioning_a_provider_flags_its_callers(own_collector, enroll_on) -> None:
    put(own_collector, own_collector.admin, sanctioned_providers=["openai"])
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(providers=("openai",)))
    assert device.agents(flag="unsanctioned_provider") == []
    put(own_collector, own_collector.admin, sanctioned_providers=[])
    assert len(device.agents(flag="unsanctioned_provider")) == 1


def test_a_viewer_cannot_change_the_policy(own_collector) -> None:
    answer = put(own_collector, own_collector.viewer, sanctioned_signatures=["everything"])
    assert (answer.status_code, fleet.reason(answer)) == (403, "admin_role_required")
    assert own_collector.get("/api/v1/policy").json()["version"] == 0


def test_an_unknown_policy_field_is_refused(own_collector) -> None:
    answer = put(own_collector, own_collector.admin, sanction_everything=True)
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request")
    assert own_collector.get("/api/v1/policy").json()["version"] == 0


def test_risky_tool_patterns_are_kept_and_explain_broad_tools(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    made = fleet.sighting(mcp_servers=[{"name": "shell", "transport": "stdio", "command": "/opt/mcp-shell",
                                        "args": [], "url": None, "source": "/home/alice/.claude.json", "enabled": True,
                                        "project": None}])
    device.snapshot(made)
    answer = put(own_collector, own_collector.admin, risky_tools=["*mcp-shell*", "*mcp-shell*"])
    assert answer.status_code == 200 and answer.json()["risky_tools"] == ["*mcp-shell*"]
    detail = own_collector.get(f"/api/v1/agents/{device.device_id}/{made['id']}").json()
    assert "shell" in detail["reasons"]["broad_tools"]


def test_a_risky_tool_pattern_must_be_text(own_collector) -> None:
    answer = put(own_collector, own_collector.admin, risky_tools=["", "ok"])
    assert answer.status_code == 422
