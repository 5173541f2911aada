"""The fleet tab over a real collector: one row per kind of agent whose counts are the roster's, agents
first and tool servers on request, a row opening the roster filtered to it, "Sanction for the organisation"
with its effect previewed (and the MCP servers its agents declare covered), and "Approve all"."""

from __future__ import annotations

import uuid
from typing import Any

import console_support as support
import pytest
from PySide6.QtWidgets import QMessageBox

from console.app import api
from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(120)


def fleet_loaded(console: Any, qtbot: Any) -> Any:
    qtbot.waitUntil(lambda: console.fleet.latest is not None, timeout=10_000)
    return console.window.fleet


def own_kind(collector: support.RunningCollector, agents: int = 3) -> tuple[str, str]:
    """A signature of this test's own, on two devices, each agent declaring one MCP server that runs as a
    tool server of its own signature; (agent signature, server signature)."""
    signature, server = f"kind-{uuid.uuid4().hex[:8]}", f"kind-mcp-{uuid.uuid4().hex[:8]}"
    for device in range(2):
        sightings = []
        for i in range(agents):
            sightings.append(support.sighting(
                id=f"a{i}", name="Kind Agent", signature=signature, user=f"user{i}", providers=("anthropic",),
                mcp_servers=[{"name": "kindfs", "transport": "stdio", "command": "npx", "args": ["kindfs"],
                              "url": None, "source": "/home/u/.kind.json", "enabled": True, "project": None}]))
            sightings.append(support.sighting(id=f"s{i}", name="kindfs", signature=server, type="tool_server",
                                              user=f"user{i}", parent=f"a{i}", vendor="MCP"))
        collector.snapshot(f"host:{signature}-{device}", sightings)
    return signature, server


def test_fleet_counts_are_the_rosters(make_console: Any, qtbot: Any, modeltest: Any,
                                      collector: support.RunningCollector) -> None:
    console = make_console()
    view = fleet_loaded(console, qtbot)
    modeltest(view.model)
    fleet = console.fleet.latest
    assert view.model.rowCount() == len(fleet.agents) and all(r.type != "tool_server" for r in view.model.rows)
    assert "tool servers (not listed)" in view.count.text()
    client = api.Client(collector.url, collector.admin, timeout=10)
    try:
        for row in fleet.agents + fleet.tool_servers:
            listed = client.agents(vm.AgentFilter.from_params(row.filter).params(), limit=1)
            assert listed.count == row.sightings, row.key
            ungoverned = client.agents(vm.AgentFilter.from_params(row.filter).with_(governed=False).params(), limit=1)
            assert ungoverned.count == row.ungoverned, row.key
    finally:
        client.close()
    assert sum(r.sightings for r in fleet.agents) == fleet.agent_sightings
    assert fleet.agent_sightings + fleet.tool_server_sightings == fleet.sightings

    view.with_servers.setChecked(True)  # the servers too, after the agents
    assert view.model.rowCount() == len(fleet.agents) + len(fleet.tool_servers)
    assert view.model.rows[-1].type == "tool_server"

    # a row, double-clicked (Enter): the roster filtered to exactly its sightings
    window = console.window
    window.tabs.setCurrentWidget(window.fleet)
    row = next(i for i, r in enumerate(view.model.rows) if r.signature is None)  # the unknown agents, by type
    view.table.setCurrentIndex(view.model.index(row, 0))
    view.table.activated.emit(view.model.index(row, 0))
    wanted = vm.AgentFilter.from_params(view.model.rows[row].filter)
    assert wanted.signature == ""
    qtbot.waitUntil(lambda: console.agents.roster.filter == wanted and console.agents.roster.count is not None,
                    timeout=10_000)
    assert window.tabs.currentWidget() is window.agents
    assert console.agents.roster.count == view.model.rows[row].sightings
    assert window.agents.current_filter() == wanted  # the widgets keep what they cannot show ("" signature)


def test_sanction_a_kind_with_its_effect_previewed(make_console: Any, qtbot: Any,
                                                   collector: support.RunningCollector) -> None:
    signature, server = own_kind(collector)
    console = make_console()
    view = fleet_loaded(console, qtbot)
    row = next(i for i, r in enumerate(view.model.rows) if r.signature == signature)
    assert view.model.rows[row].sightings == 6 and view.model.rows[row].devices == 2
    assert view.model.rows[row].users == 3 and view.model.rows[row].mcp_servers == 6
    view.table.setCurrentIndex(view.model.index(row, 0))
    assert view.sanction.isEnabled() and view.approve_all.isEnabled()
    view.sanction.click()
    qtbot.waitUntil(lambda: console.fleet.confirm_box is not None and console.fleet.confirm_box.isVisible(),
                    timeout=10_000)
    box = console.fleet.confirm_box
    assert box.windowTitle() == "Sanction Kind Agent?"
    assert "Governs" in box.text() and server in box.text()  # the effect, and the servers it covers
    assert signature not in collector.get("/api/v1/policy")["sanctioned_signatures"]  # nothing saved yet
    box.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: signature in collector.get("/api/v1/policy")["sanctioned_signatures"], timeout=10_000)
    policy = collector.get("/api/v1/policy")
    assert server in policy["sanctioned_signatures"]  # its MCP servers are not left ungoverned
    qtbot.waitUntil(lambda: "is sanctioned" in console.window.message.text(), timeout=10_000)
    left = collector.get("/api/v1/agents", signature=signature, governed="false", limit=1)["count"]
    assert left == 0
    # the fleet shows it governed once reloaded
    qtbot.waitUntil(lambda: any(r.signature == signature and r.ungoverned == 0 for r in view.model.rows),
                    timeout=10_000)


def test_approve_all_of_a_kind(make_console: Any, qtbot: Any, collector: support.RunningCollector) -> None:
    signature, _server = own_kind(collector, agents=2)
    console = make_console()
    view = fleet_loaded(console, qtbot)
    row = next(i for i, r in enumerate(view.model.rows) if r.signature == signature)
    view.table.setCurrentIndex(view.model.index(row, 0))
    view.approve_all.click()
    qtbot.waitUntil(lambda: console.agents.confirm_box is not None and console.agents.confirm_box.isVisible(),
                    timeout=10_000)
    assert console.agents.confirm_box.windowTitle() == "Approve 4 agents?"
    console.agents.confirm_box.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: collector.get("/api/v1/agents", signature=signature, triage_state="approved",
                                          limit=1)["count"] == 4, timeout=10_000)
    # the fleet reloads after the action, and still agrees with the roster
    ungoverned = collector.get("/api/v1/agents", signature=signature, governed="false", limit=1)["count"]
    qtbot.waitUntil(lambda: any(r.signature == signature and r.ungoverned == ungoverned for r in view.model.rows),
                    timeout=10_000)
    assert ungoverned == 0


def test_a_viewer_sees_the_fleet_but_cannot_act(make_console: Any, qtbot: Any,
                                                collector: support.RunningCollector) -> None:
    console = make_console(token=collector.viewer)
    view = fleet_loaded(console, qtbot)
    view.table.setCurrentIndex(view.model.index(0, 0))
    assert view.show_roster.isEnabled()
    assert not view.sanction.isEnabled() and not view.approve_all.isEnabled()
    assert "Viewers" in view.sanction.toolTip()
