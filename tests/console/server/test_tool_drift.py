"""Drift on tools, only where a declaration names tools: an MCP server's ``server/tool`` where the declaration
names some tool of that server, a tool of an enterprise agent's code where it names some tool of the code.
Pure governance first, then on a real collector filled through the ingest API (the drift flag, its reason,
the drift event and accepting it)."""

from __future__ import annotations

import fleet
import pytest
from test_behaviour_kinds import PROJECT
from test_timeline import MCP_GITHUB, accept, register_and_approve, row, timeline_of

from console import governance

pytestmark = pytest.mark.timeout(120)

NAMED = {**MCP_GITHUB, "tools": ["create_issue", "delete_repo"]}


def test_tools_are_judged_only_where_the_declaration_names_tools() -> None:
    mcp = ["github/create_issue", "github/delete_repo", "slack/post"]
    assert governance.tools_beyond(["github"], mcp, ["refund"]) == []  # servers only: their tools come along
    assert governance.tools_beyond(["github", "github/create_issue"], mcp, []) == ["github/delete_repo"]
    assert governance.tools_beyond(["search_tickets"], [], ["refund", "search_tickets"]) == ["refund"]
    assert governance.mcp_tools_of([NAMED, {**NAMED, "name": "off", "enabled": False}, {"name": "x", "tools": "a"}]) \
        == ["github/create_issue", "github/delete_repo"]
    assert governance.project_tools_of(PROJECT) == ["refund", "search_tickets"]
    assert governance.project_tools_of(None) == [] and governance.project_tools_of({"tools": [1, ""]}) == []
    standing = governance.Standing(registration="approved", declaration=governance.Declaration.of(
        ["anthropic"], ["github", "github/create_issue"]))
    verdict = governance.assess("claude-code", ["anthropic"], [], [], governance.Policy.of(["claude-code"]),
                                standing, ["github"], tools=(mcp[:2], []))
    assert verdict.reason("drift") == "uses tool github/delete_repo, not declared" and not verdict.governed


def test_a_tool_the_declaration_does_not_name_is_drift_and_accepting_it_declares_it(device) -> None:
    made = fleet.sighting(providers=("anthropic",), mcp_servers=[{**NAMED, "tools": ["create_issue"]}])
    device.snapshot(made)
    register_and_approve(device, made["id"], tools=["github", "github/create_issue"])
    assert row(device, made["id"])["governed"] is True
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic",), mcp_servers=[NAMED]))
    assert "drift" in row(device, made["id"])["flags"]
    detail = device.collector.get(f"/api/v1/agents/{device.device_id}/{made['id']}").json()
    assert detail["reasons"]["drift"] == "uses tool github/delete_repo, not declared"
    [event] = timeline_of(device, made["id"])["events"]
    assert event["added"]["tools"] == ["github/delete_repo"] and event["added"]["mcp_servers"] == []
    assert event["summary"] == "tools github/delete_repo"
    assert accept(device, made["id"], event["id"]).status_code == 200
    declared = device.collector.get("/api/v1/registrations", device=device.device_id).json()["data"][0]
    assert declared["tools"] == ["github", "github/create_issue", "github/delete_repo"]
    assert row(device, made["id"])["governed"] is True


def test_a_declaration_of_servers_only_lets_their_tools_come_and_names_code_tools_where_it_lists_them(device) -> None:
    servers_only = fleet.sighting(providers=("anthropic",), mcp_servers=[{**NAMED, "tools": ["create_issue"]}])
    bot = fleet.sighting(name="support bot", signature="langgraph", type="enterprise", providers=("openai",),
                         project={**PROJECT, "tools": ["search_tickets"]})
    device.snapshot(servers_only, bot)
    register_and_approve(device, servers_only["id"], tools=["github"])
    register_and_approve(device, bot["id"], providers=["openai"], tools=["search_tickets"])
    device.snapshot(fleet.sighting(id=servers_only["id"], providers=("anthropic",), mcp_servers=[NAMED]),
                    {**bot, "project": PROJECT})
    assert row(device, servers_only["id"])["governed"] is True  # a new tool of a declared server: no drift
    assert row(device, bot["id"])["governed"] is False
    [event] = timeline_of(device, bot["id"])["events"]
    assert event["added"]["tools"] == ["refund"]
