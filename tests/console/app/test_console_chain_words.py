"""The console in words, over a real collector: a sub-agent and a tool server its registered root covers say
"covered by <root>'s registration" in the roster's Governed column, the detail's state and its Registration
tab; "Behaviour over time…" names an MCP server present in the config apart from one used, and the tools
configs and code name; the registrations queue compares used servers and named tools with the declaration."""

from __future__ import annotations

import html
import uuid
from typing import Any

import console_support as support
import pytest
from PySide6.QtWidgets import QApplication

from console.app import api
from console.app import viewmodels as vm
from console.app.views.registrations import COMPARED, declared_vs_observed
from console.app.views.timeline import KIND_NAMES, TimelineDialog

pytestmark = pytest.mark.timeout(120)

GITHUB = {"name": "github", "transport": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
          "url": None, "source": "/home/yann/.claude.json", "enabled": True, "project": None,
          "tools": ["create_issue", "delete_repo"]}
MEMORY = {**GITHUB, "name": "memory", "args": ["-y", "@modelcontextprotocol/server-memory"]}
MEMORY.pop("tools")


def registered_chain(collector: support.RunningCollector) -> tuple[str, dict[str, str]]:
    """A registered, approved agent (github and memory in its config, github's tool server running) with a
    sub-agent its declaration covers; its device and the ids of the three."""
    host, tag = f"host:chain-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    root = support.sighting(id=f"root-{tag}", name="Claude Code", user="yann", providers=("openai",),
                            mcp_servers=[GITHUB, MEMORY])
    server = support.sighting(id=f"server-{tag}", name="github", signature="mcp-github", type="tool_server",
                              user="yann", parent=root["id"], mcp_servers=[GITHUB])
    helper = support.sighting(id=f"helper-{tag}", name="reviewer", user="yann", parent=root["id"],
                              providers=("openai",))
    collector.snapshot(host, [root, server, helper])
    registration = collector.register(host, root["id"], tools=["github", "memory"])
    answer = collector.http.post(f"/api/v1/registrations/{registration['id']}/approve", json={},
                                 headers={"authorization": f"Bearer {collector.admin}"})
    assert answer.status_code == 200, answer.text
    return collector.device_id(host), {"root": root["id"], "server": server["id"], "helper": helper["id"]}


def test_a_covered_sub_agent_says_so_in_the_roster_and_the_detail(make_console: Any, qtbot: Any,
                                                                  collector: support.RunningCollector) -> None:
    device, ids = registered_chain(collector)
    console = make_console()
    chosen = vm.AGENTS_ONLY.with_(device=device)
    console.window.agents.set_filter(chosen)
    qtbot.waitUntil(lambda: console.agents.roster.filter == chosen and len(console.agents.roster.rows) == 2,
                    timeout=10_000)
    column = console.agents.model.column_of("governed")
    texts = {console.agents.model.data(console.agents.model.index(r, 0)):
             console.agents.model.data(console.agents.model.index(r, column)) for r in range(2)}
    assert texts == {"Claude Code": "governed", "reviewer": "covered by Claude Code's registration"}
    console.agents.open_detail((device, ids["helper"]))
    qtbot.waitUntil(lambda: console.window.detail.detail is not None
                    and console.window.detail.detail.agent.id == ids["helper"], timeout=10_000)
    detail = console.window.detail
    assert html.escape("Governed (covered by Claude Code's registration)") in detail.header.text()
    assert detail.registration.text().startswith("Covered by <b>Claude Code</b>'s registration")
    assert "Unregistered" not in detail.flags.text()
    # the root's chain tab says which of its servers and sub-agents its registration covers
    root = api.AgentDetail.model_validate(collector.get(f"/api/v1/agents/{device}/{ids['root']}"))
    children = [api.Agent.model_validate(r) for r in collector.get("/api/v1/agents", device=device,
                                                                   parent=ids["root"])["data"]]
    described = {node.label: node.detail for _, node in vm.walk(vm.chain(root, None, children))}
    assert described["github"].endswith("running; covered by Claude Code's registration")
    assert "covered by Claude Code's registration" in described["reviewer"]
    assert "covered by" not in described["memory"]  # declared, with no tool server sighting of its own
    # the root's own Registration tab: its declaration beside what it was seen doing, the new kinds in words
    console.agents.open_detail((device, ids["root"]))
    qtbot.waitUntil(lambda: console.window.detail.detail is not None
                    and console.window.detail.detail.agent.id == ids["root"], timeout=10_000)
    compared = console.window.detail.registration.text()
    assert "<b>Declared and observed</b>" in compared
    assert "<td><b>MCP servers used</b></td><td>github, memory</td><td>github</td><td>–</td>" in compared
    assert "<td><b>Tools (named)</b></td><td>github, memory</td><td>github/create_issue, github/delete_repo</td>" \
        in compared


def test_behaviour_over_time_names_present_and_used_servers_and_tools(make_console: Any, qtbot: Any,
                                                                      collector: support.RunningCollector) -> None:
    device, ids = registered_chain(collector)
    console = make_console()
    chosen = vm.AGENTS_ONLY.with_(device=device, parent=None, q="Claude Code")
    console.window.agents.set_filter(chosen)
    qtbot.waitUntil(lambda: console.agents.roster.filter == chosen and len(console.agents.roster.rows) == 1,
                    timeout=10_000)
    menu = console.agents.context_menu([console.agents.roster.rows[0]])
    next(a for a in menu.actions() if a.text() == "Behaviour over time…").trigger()
    dialog = next(w for w in QApplication.topLevelWidgets() if isinstance(w, TimelineDialog) and w.isVisible()
                  and w.windowTitle() == "Behaviour over time: Claude Code")
    qtbot.waitUntil(lambda: dialog.facts.rowCount() > 0, timeout=10_000)
    rows = {(dialog.facts.item(r, 0).text(), dialog.facts.item(r, 1).text()) for r in range(dialog.facts.rowCount())}
    assert {("MCP server present (in its config)", "github"), ("MCP server present (in its config)", "memory"),
            ("MCP server used (run or called)", "github"), ("MCP tool its config allows", "github/create_issue"),
            ("MCP tool its config allows", "github/delete_repo")} <= rows
    assert ("MCP server used (run or called)", "memory") not in rows  # declared, never started
    dialog.close()


def test_the_queue_compares_used_servers_and_tools_only_where_tools_are_declared() -> None:
    def fact(kind: str, value: str) -> dict[str, Any]:
        return {"kind": kind, "value": value, "first_seen": "2026-12-01T00:00:00Z",
                "last_seen": "2026-12-01T00:00:00Z", "gone_at": None}

    timeline = {"facts": [fact("mcp_server", "github"), fact("mcp_server_used", "github"),
                          fact("mcp_server_used", "slack"), fact("mcp_tool", "github/create_issue"),
                          fact("mcp_tool", "github/delete_repo"), fact("tool", "refund"),
                          fact("tool", "search_tickets")], "events": []}
    base = {"id": 1, "device_id": "d", "sighting_id": "s", "hostname": "h", "owner": "yann@example.org",
            "purpose": "triage", "business_process": "", "providers": [], "data_systems": [],
            "autonomy": "supervised", "status": "pending", "created_at": "2026-12-01T00:00:00Z", "decided_at": None,
            "decided_by": None, "decision_note": None}
    servers_only = api.Registration.model_validate({**base, "tools": ["github"]})
    rows = {r[0]: r for r in declared_vs_observed(servers_only, timeline)}
    assert len(rows) == len(COMPARED)
    assert rows["MCP servers used"] == ("MCP servers used", "github", "github, slack", "slack")
    assert rows["Tools (named)"][3] == "–"  # no tool declared: tools are not judged
    named = api.Registration.model_validate({**base, "tools": ["github", "github/create_issue", "search_tickets"]})
    assert {r[0]: r for r in declared_vs_observed(named, timeline)}["Tools (named)"][3] == "github/delete_repo, refund"
    assert set(KIND_NAMES) == {"provider", "mcp_server", "mcp_server_used", "mcp_tool", "tool", "system", "autonomy"}
