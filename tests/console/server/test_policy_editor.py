"""The policy as an editor uses it: what the fleet reports (with counts), unknown ids refused with a
sentence, the effect previewed before saving, every version kept with who changed what, undo, and
sanctioning an agent together with the MCP servers its own configs declare."""

from __future__ import annotations

from typing import Any

import fleet
import pytest

pytestmark = pytest.mark.timeout(120)
KEY = "hmac-sha256:" + "e" * 32
POSTGRES = {"name": "postgres", "transport": "stdio", "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-postgres", "postgresql://db/app"], "url": None,
            "source": "/home/alice/.claude.json", "enabled": True, "project": None}


def put(collector, token: str | None = None, **policy: Any):
    return collector.http.put("/api/v1/policy", json=policy,
                              headers={"authorization": f"Bearer {token or collector.admin}"})


def preview(collector, **policy: Any) -> dict[str, Any]:
    answer = collector.http.post("/api/v1/policy/preview", json=policy, headers=collector.as_viewer())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture
def claudes(own_collector, enroll_on):
    """Three Claude Codes with a postgres MCP server each (its tool-server sighting under it), one of them
    approved earlier and since drifted to a new provider, and an Aider."""
    device = enroll_on(own_collector)
    agents = [fleet.sighting(providers=("anthropic",), fingerprints=(KEY,), mcp_servers=[POSTGRES])
              for _ in range(3)]
    servers = [fleet.sighting(name="postgres", signature="mcp-postgres", type="tool_server", parent=a["id"],
                              mcp_servers=[POSTGRES]) for a in agents]
    aider = fleet.sighting(name="Aider", signature="aider", providers=("openai",))
    device.snapshot(*agents, *servers, aider)
    approved = own_collector.http.post(f"/api/v1/agents/{device.device_id}/{agents[0]['id']}/actions",
                                       json={"action": "approve"}, headers=own_collector.as_admin())
    assert approved.status_code == 201
    agents[0]["endpoints"].append({"host": "api.openai.com", "port": 443, "provider": "openai", "via": "sni",
                                   "first_seen": 1.7e9, "last_seen": 1.7e9, "count": 1})
    assert device.send(device.report("delta", [agents[0]])).status_code == 200
    return own_collector, device, agents


def test_the_choices_are_what_the_fleet_reports_with_counts(claudes) -> None:
    collector, _, _ = claudes
    choices = collector.get("/api/v1/policy/choices", token=collector.viewer).json()
    signatures = {c["id"]: c for c in choices["signatures"]}
    assert (signatures["claude-code"]["sightings"], signatures["claude-code"]["devices"]) == (3, 1)
    assert signatures["claude-code"]["name"] == "Claude Code" and signatures["mcp-postgres"]["sightings"] == 3
    assert [c["id"] for c in choices["signatures"]][0] in ("claude-code", "mcp-postgres")
    providers = {c["id"]: c for c in choices["providers"]}
    assert providers["anthropic"]["sightings"] == 3 and providers["anthropic"]["name"] == "Anthropic"
    assert providers["openai"]["sightings"] == 2
    assert choices["fingerprints"] == [{"id": KEY, "name": "", "type": "", "sightings": 3, "devices": 1,
                                        "sanctioned": False}]
    put(collector, sanctioned_providers=["anthropic"])
    choices = collector.get("/api/v1/policy/choices").json()
    assert {c["id"]: c["sanctioned"] for c in choices["providers"]} == {"anthropic": True, "openai": False}


def test_a_display_name_or_an_unknown_id_is_refused_with_a_sentence(claudes) -> None:
    collector, _, _ = claudes
    answer = put(collector, sanctioned_signatures=["Claude Code"], sanctioned_providers=["not-a-provider"],
                 corporate_fingerprints=["my key"])
    detail = answer.json()["detail"]
    assert (answer.status_code, detail["reason"]) == (422, "unknown_ids")
    assert detail["unknown_signatures"] == ["Claude Code"] and detail["unknown_providers"] == ["not-a-provider"]
    assert "Claude Code (its id is claude-code)" in detail["message"]
    assert "hmac-sha256:<32 hex digits>" in detail["message"]
    assert detail["message"].endswith("Pick ids from GET /api/v1/policy/choices.")
    assert collector.get("/api/v1/policy").json()["version"] == 0
    # an id the signature library knows is accepted before any device reports it
    assert put(collector, sanctioned_signatures=["github-copilot"]).status_code == 200


def test_the_preview_says_what_sanctioning_a_signature_governs_and_leaves(claudes) -> None:
    collector, _, _ = claudes
    effect = preview(collector, sanctioned_signatures=["claude-code"])
    assert (effect["considered"], effect["governs"], effect["ungoverned"]) == (3, 2, 1)
    assert effect["ungoverned_because"] == {"drift": 1} and effect["newly_governed"] == 2
    assert effect["message"] == "Governs 2 of the 3 sightings it concerns, leaves 1 ungoverned (1 drift)."
    assert collector.get("/api/v1/policy").json()["version"] == 0  # nothing saved
    saved = put(collector, sanctioned_signatures=["claude-code"])
    assert saved.status_code == 200
    assert len(collector.agents(signature="claude-code", governed="true")["data"]) == 2


def test_sanctioning_an_agent_can_cover_the_servers_its_configs_declare(claudes) -> None:
    collector, device, _ = claudes
    assert preview(collector, sanctioned_signatures=["claude-code"], cover_servers=True)["covered_servers"] == [
        "mcp-postgres"]
    saved = put(collector, sanctioned_signatures=["claude-code"], cover_servers=True).json()
    assert saved["sanctioned_signatures"] == ["claude-code", "mcp-postgres"]
    servers = device.agents(type="tool_server")
    assert len(servers) == 3 and all(s["governed"] for s in servers)


def test_every_version_is_kept_with_who_changed_what_and_undo_goes_back(claudes) -> None:
    collector, device, _ = claudes
    put(collector, sanctioned_signatures=["claude-code"], sanctioned_providers=["anthropic"])
    put(collector, sanctioned_signatures=["aider"], sanctioned_providers=["anthropic"], corporate_fingerprints=[KEY])
    versions = collector.get("/api/v1/policy/versions", token=collector.viewer).json()
    assert [v["version"] for v in versions["data"]] == [2, 1, 0] and versions["count"] == 3
    assert versions["data"][0]["actor"] == "test admin"
    assert versions["data"][0]["changes"] == ["sanctioned signature aider", "withdrew signature claude-code",
                                              f"added corporate key {KEY}"]
    undone = collector.http.post("/api/v1/policy/undo", headers=collector.as_admin())
    assert undone.status_code == 200, undone.text
    assert (undone.json()["version"], undone.json()["sanctioned_signatures"]) == (3, ["claude-code"])
    assert undone.json()["corporate_fingerprints"] == []
    assert collector.get("/api/v1/policy/versions").json()["data"][0]["changes"][0] == "undo: back to version 1"
    assert len(device.agents(signature="claude-code", governed="true")) == 2  # re-assessed with the undo


def test_undo_without_an_earlier_version_and_by_a_viewer_is_refused(own_collector) -> None:
    answer = own_collector.http.post("/api/v1/policy/undo", headers=own_collector.as_admin())
    assert (answer.status_code, fleet.reason(answer)) == (409, "no_earlier_policy")
    assert "no earlier version" in answer.json()["detail"]["message"]
    answer = own_collector.http.post("/api/v1/policy/undo", headers=own_collector.as_viewer())
    assert (answer.status_code, fleet.reason(answer)) == (403, "admin_role_required")


def test_a_key_pasted_into_the_policy_is_never_sent_back(own_collector) -> None:
    fake = "sk-ant-api03-" + "FAKEkey0" * 11 + "AA"  # an obviously fake key of the anthropic shape
    answer = put(own_collector, sanctioned_providers=[fake], sanctioned_signatures=[fake])
    assert (answer.status_code, fleet.reason(answer)) == (422, "unknown_ids")
    assert fake not in answer.text and "FAKEkey0" not in answer.text
    assert answer.json()["detail"]["unknown_providers"] == ["[REDACTED:anthropic]"]
    assert own_collector.get("/api/v1/policy").json()["version"] == 0
