"""The behaviour timeline tells an MCP server an agent's config declares (present) from one it runs or calls
(used), each with its own first and last seen; it names the tools configs list for their servers and the
tools an enterprise agent's code declares. On a real collector filled through the ingest API."""

from __future__ import annotations

import fleet
import pytest
from test_timeline import MCP_GITHUB, MCP_POSTGRES, MCP_REMOTE, facts, tool_server

from console.server import timeline

pytestmark = pytest.mark.timeout(120)

LINEAR_CALL = {"host": "mcp.linear.app", "port": 443, "provider": None, "via": "sni", "first_seen": 1.7e9,
               "last_seen": 1.7e9, "count": 2}
PROJECT = {"root": "/srv/agents/support", "entry": "support.main", "language": "python", "framework": "langgraph",
           "version": "0.2.1", "providers": ["openai"], "models": ["gpt-4o"], "tools": ["search_tickets", "refund"],
           "workflows": []}


def kinds(found: dict[tuple[str, str], dict], kind: str) -> dict[str, dict]:
    return {value: f for (k, value), f in found.items() if k == kind}


def test_a_declared_server_is_present_and_one_its_tool_server_runs_or_calls_is_used(device) -> None:
    root = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB, MCP_POSTGRES, MCP_REMOTE])
    github = tool_server(root["id"], MCP_GITHUB)  # runs: a live child process of the agent
    postgres = tool_server(root["id"], MCP_POSTGRES, running=False)  # declared, never started
    linear = tool_server(root["id"], MCP_REMOTE, running=False, endpoints=[LINEAR_CALL])  # called over the network
    device.snapshot(root, github, postgres, linear)
    first = facts(device, root["id"])
    assert set(kinds(first, "mcp_server")) == {"github", "postgres", "linear"}
    used = kinds(first, "mcp_server_used")
    assert set(used) == {"github", "linear"}
    assert used["github"]["sighting_id"] == github["id"] and used["linear"]["sighting_id"] == linear["id"]
    assert all(f["gone_at"] is None for f in used.values())
    # github stops; postgres starts: only their use changes, the declarations stay present
    device.snapshot(root, {**github, "running": False, "processes": []}, {**postgres, **tool_server(
        root["id"], MCP_POSTGRES, id=postgres["id"])}, linear)
    later = facts(device, root["id"])
    used = kinds(later, "mcp_server_used")
    assert used["github"]["gone_at"] is not None and used["github"]["first_seen"] == first[
        ("mcp_server_used", "github")]["first_seen"]
    assert used["postgres"]["gone_at"] is None and used["linear"]["gone_at"] is None
    assert all(f["gone_at"] is None for f in kinds(later, "mcp_server").values())


def test_a_tool_server_that_disappears_is_no_longer_used(device) -> None:
    root = fleet.sighting(mcp_servers=[MCP_GITHUB])
    github = tool_server(root["id"], MCP_GITHUB)
    device.snapshot(root, github)
    assert kinds(facts(device, root["id"]), "mcp_server_used")["github"]["gone_at"] is None
    device.snapshot(root)  # the snapshot no longer carries the tool server: its sighting is gone
    assert kinds(facts(device, root["id"]), "mcp_server_used")["github"]["gone_at"] is not None
    assert kinds(facts(device, root["id"]), "mcp_server")["github"]["gone_at"] is None


def test_a_process_change_of_an_agent_writes_no_fact_but_one_of_a_tool_server_does(device) -> None:
    root = fleet.sighting(mcp_servers=[MCP_GITHUB])
    github = tool_server(root["id"], MCP_GITHUB, running=False)
    device.snapshot(root, github)
    before = facts(device, root["id"])
    device.snapshot({**root, "processes": [{**root["processes"][0], "pid": 999}]}, github)
    assert facts(device, root["id"]) == before
    device.snapshot(root, tool_server(root["id"], MCP_GITHUB, id=github["id"]))
    assert ("mcp_server_used", "github") in facts(device, root["id"])


def test_tools_a_config_names_and_tools_a_project_declares_are_facts(device) -> None:
    named = {**MCP_GITHUB, "tools": ["create_issue", "list_pull_requests"]}
    agent = fleet.sighting(name="support bot", signature="langgraph", type="enterprise", providers=("openai",),
                           mcp_servers=[named, {**MCP_POSTGRES, "tools": ["query"], "enabled": False}],
                           project=PROJECT)
    device.snapshot(agent)
    found = facts(device, agent["id"])
    # a server the config turns off names no tool
    assert set(kinds(found, "mcp_tool")) == {"github/create_issue", "github/list_pull_requests"}
    assert set(kinds(found, "tool")) == {"search_tickets", "refund"}
    device.snapshot({**agent, "project": {**PROJECT, "tools": ["search_tickets"]}})
    assert kinds(facts(device, agent["id"]), "tool")["refund"]["gone_at"] is not None


def test_facts_of_a_document_name_tools_and_use() -> None:
    doc = tool_server("root", {**MCP_GITHUB, "tools": ["create_issue", ""]})
    assert timeline.facts_of(doc) == [("autonomy", "supervised"), ("mcp_server", "github"),
                                      ("mcp_server_used", "github"), ("mcp_tool", "github/create_issue")]
    assert ("mcp_server_used", "github") not in timeline.facts_of({**doc, "running": False, "processes": []})
    # an agent running is no tool server in use
    assert all(k != "mcp_server_used" for k, _ in timeline.facts_of(fleet.sighting(mcp_servers=[MCP_GITHUB])))


def test_a_long_list_of_tools_never_pushes_a_provider_or_a_server_out_of_the_capped_facts() -> None:
    many = {**MCP_GITHUB, "tools": [f"tool_{i:04d}" for i in range(1000)]}
    found = timeline.facts_of(fleet.sighting(providers=("openai",), mcp_servers=[many, MCP_REMOTE],
                                             project={**PROJECT, "tools": [f"t{i}" for i in range(300)]}))
    assert len(found) == timeline.MAX_FACTS
    assert {("provider", "openai"), ("mcp_server", "github"), ("mcp_server", "linear"), ("system", "mcp.linear.app"),
            ("autonomy", "supervised")} <= set(found)
