"""A sub-agent or tool server with no standing of its own is covered by the root of its chain where the
root's declaration covers what it does: governed, no ``unregistered``, and named "covered by" the root in
``GET /agents`` and the detail; one the root's declaration does not cover stays unregistered and its drift
is the root's. On a real collector filled through the ingest API, the root decided on through its routes."""

from __future__ import annotations

import fleet
import pytest
from test_timeline import MCP_GITHUB, MCP_POSTGRES, register_and_approve, timeline_of, tool_server

pytestmark = pytest.mark.timeout(120)


def listed(device, parent: str) -> dict[str, dict]:
    rows = device.collector.agents(device=device.device_id, parent=parent, limit=500)["data"]
    return {r["id"]: r for r in rows}


def detail(device, sighting_id: str) -> dict:
    answer = device.collector.get(f"/api/v1/agents/{device.device_id}/{sighting_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def act(device, sighting_id: str, action: str) -> None:
    answer = device.collector.http.post(f"/api/v1/agents/{device.device_id}/{sighting_id}/actions",
                                        json={"action": action}, headers=device.collector.as_admin())
    assert answer.status_code in (200, 201), answer.text


def test_a_tool_server_the_roots_registration_declares_is_covered_by_it(device) -> None:
    root = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB, MCP_POSTGRES])
    github, postgres = tool_server(root["id"], MCP_GITHUB), tool_server(root["id"], MCP_POSTGRES)
    device.snapshot(root, github, postgres)
    before = listed(device, root["id"])
    assert "unregistered" in before[github["id"]]["flags"] and before[github["id"]]["covered_by"] is None
    register_and_approve(device, root["id"], tools=["github"])  # the root declares github, not postgres
    rows = listed(device, root["id"])
    assert rows[github["id"]]["covered_by"] == {"sighting_id": root["id"], "name": "Claude Code",
                                                "by": "registration"}
    assert rows[github["id"]]["governed"] is True and "unregistered" not in rows[github["id"]]["flags"]
    assert rows[github["id"]]["ladder"] is None  # governed: nobody is nudged about it
    # not declared: it stays unregistered (what it adds is drift on the root)
    assert rows[postgres["id"]]["covered_by"] is None and "unregistered" in rows[postgres["id"]]["flags"]
    shown = detail(device, github["id"])
    assert shown["covered_by"]["name"] == "Claude Code" and "unregistered" not in shown["reasons"]
    assert shown["registration"] is None  # it has none of its own
    assert "unregistered" in detail(device, postgres["id"])["reasons"]
    device.snapshot(root, github, postgres)  # the next report keeps the cover
    assert listed(device, root["id"])[github["id"]]["covered_by"] is not None


def test_a_sub_agent_arriving_after_the_approval_is_covered_at_ingest_until_it_does_more(device) -> None:
    root = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    device.snapshot(root)
    register_and_approve(device, root["id"])
    helper = fleet.sighting(name="reviewer", parent=root["id"], providers=("anthropic",))
    deeper = tool_server(helper["id"], MCP_GITHUB, id="deeper-github")  # its root is the same registered agent
    device.snapshot(root, helper, deeper)
    rows = {**listed(device, root["id"]), **listed(device, helper["id"])}
    assert rows[helper["id"]]["covered_by"]["sighting_id"] == root["id"]
    assert rows[deeper["id"]]["covered_by"]["sighting_id"] == root["id"]  # through its parent, to the root
    # the sub-agent starts calling a provider the root never declared: no longer covered, drift on the root
    device.snapshot(root, {**helper, **fleet.sighting(id=helper["id"], name="reviewer", parent=root["id"],
                                                      providers=("anthropic", "openai"))}, deeper)
    row = listed(device, root["id"])[helper["id"]]
    assert row["covered_by"] is None and "unregistered" in row["flags"] and "drift" not in row["flags"]
    [event] = timeline_of(device, root["id"])["events"]
    assert event["added"]["providers"] == ["openai"] and event["added"]["via"] == [helper["id"]]


def test_an_admins_approval_of_the_root_covers_its_chain_and_undoing_it_uncovers(device) -> None:
    root = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    github = tool_server(root["id"], MCP_GITHUB)
    device.snapshot(root, github)
    act(device, root["id"], "approve")
    assert listed(device, root["id"])[github["id"]]["covered_by"] == {"sighting_id": root["id"], "name": "Claude Code",
                                                                      "by": "approval"}
    answer = device.collector.http.post("/api/v1/agents/actions/undo", json={}, headers=device.collector.as_admin())
    assert answer.status_code == 200, answer.text
    row = listed(device, root["id"])[github["id"]]
    assert row["covered_by"] is None and "unregistered" in row["flags"]


def test_a_tool_server_with_its_own_registration_is_judged_on_its_own(device) -> None:
    root = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    github = tool_server(root["id"], MCP_GITHUB)
    device.snapshot(root, github)
    register_and_approve(device, root["id"])
    register_and_approve(device, github["id"], providers=[], tools=["github"])
    row = listed(device, root["id"])[github["id"]]
    assert row["covered_by"] is None and row["governed"] is True  # its own registration governs it


def test_a_chain_that_loops_covers_nothing_and_its_decision_still_ends(device) -> None:
    looped = fleet.sighting(id="cover-loop-a", parent="cover-loop-b", providers=("anthropic",))
    other = fleet.sighting(id="cover-loop-b", parent="cover-loop-a", providers=("anthropic",))
    device.snapshot(looped, other)
    act(device, looped["id"], "approve")  # re-assesses the chain under it, which leads back to it
    row = listed(device, looped["id"])[other["id"]]
    assert row["covered_by"] is None and "unregistered" in row["flags"]
    assert detail(device, other["id"])["covered_by"] is None
