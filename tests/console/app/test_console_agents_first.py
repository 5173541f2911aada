"""The roster lists agents first, against a real collector: every type but the tool servers by default,
with a column counting each agent's MCP servers; "List tool servers too" adds the servers; "Show its
servers" lists one agent's servers under it; the overview's and the fleet's "Agents" equal the roster's
count; and the filter bar's choices carry no fleet-wide counts that would go stale."""

from __future__ import annotations

import re
from typing import Any

import console_support as support
import pytest

from console.app import viewmodels as vm

pytestmark = pytest.mark.timeout(120)


def loaded(console: Any) -> bool:
    return console.agents.roster.count is not None and not console.agents.roster.loading


def test_the_default_roster_lists_agents_with_their_server_counts(make_console: Any, qtbot: Any, modeltest: Any,
                                                                  collector: support.RunningCollector) -> None:
    console = make_console(page_size=500)
    modeltest(console.agents.model)
    qtbot.waitUntil(lambda: console.overview.latest is not None and console.fleet.latest is not None,
                    timeout=10_000)
    everything = collector.get("/api/v1/agents", limit=1)["count"]
    servers = collector.get("/api/v1/agents", type="tool_server", limit=1)["count"]
    assert servers > 0
    roster = console.agents.roster
    assert roster.filter.agents_first and roster.count == everything - servers
    assert roster.rows and "tool_server" not in {a.type for a in roster.rows}
    # the overview's card and the fleet's figure say the same number as the roster
    assert console.overview.latest.agents == roster.count
    assert console.fleet.latest.agent_sightings == roster.count
    window = console.window
    assert window.overview.cards["Agents"].value.text() == f"{roster.count:,}"
    assert window.fleet.count.text().startswith(f"{roster.count:,} agents of ")
    assert console.window.agents.count.text() == f"{roster.count:,} agents match"
    # each agent's MCP servers are a column shown by default
    column = console.agents.model.column_of("servers")
    assert column is not None
    claude = next(i for i, a in enumerate(roster.rows) if a.id == "known-claude")
    assert console.agents.model.index(claude, column).data() == "1"


def test_list_tool_servers_too_adds_the_servers_and_clear_goes_back(make_console: Any, qtbot: Any,
                                                                     collector: support.RunningCollector) -> None:
    console = make_console()
    view = console.window.agents
    agents_only = console.agents.roster.count
    view.with_servers.setChecked(True)
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.type is None, timeout=10_000)
    assert console.agents.roster.count == collector.get("/api/v1/agents", limit=1)["count"] > agents_only
    # an explicit type wins over the box: tool servers alone, whether or not it is ticked
    view.set_filter(vm.AgentFilter(type="tool_server"))
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.type == "tool_server", timeout=10_000)
    assert {a.type for a in console.agents.roster.rows} == {"tool_server"}
    view.clear_filters()
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.agents_first, timeout=10_000)
    assert console.agents.roster.count == agents_only and not view.with_servers.isChecked()
    assert view.type.currentData() is None  # shown as "Any type", not as six ticked types


def test_show_its_servers_lists_the_servers_under_an_agent(make_console: Any, qtbot: Any,
                                                           collector: support.RunningCollector) -> None:
    console = make_console()
    view = console.window.agents
    view.set_filter(vm.AgentFilter(q="zoe-laptop", type=vm.AGENT_TYPES))
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.q == "zoe-laptop", timeout=10_000)
    assert {a.id for a in console.agents.roster.rows} == {"known-claude", "known-script"}
    claude = next(a for a in console.agents.roster.rows if a.id == "known-claude")
    menu = console.agents.context_menu([claude])
    show = next(a for a in menu.actions() if a.text().replace("&", "") == "Show its servers")
    show.trigger()
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.parent == "known-claude",
                    timeout=10_000)
    assert [(a.id, a.type) for a in console.agents.roster.rows] == [("known-github-mcp", "tool_server")]
    assert view.parent_note.isVisible() and view.parent_note.text() == "Servers of Claude Code"
    # another filter keeps to that agent's servers until the filters are cleared
    view.search.setText("nothing-like-this")
    view.search.returnPressed.emit()
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.q == "nothing-like-this",
                    timeout=10_000)
    assert console.agents.roster.filter.parent == "known-claude" and console.agents.roster.count == 0
    view.clear_filters()
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.parent is None, timeout=10_000)
    assert not view.parent_note.isVisible() and console.agents.roster.filter.agents_first
    # a tool server has no servers of its own to show
    server = support_agent(console, collector, "known-github-mcp")
    assert all(a.text().replace("&", "") != "Show its servers" for a in console.agents.context_menu([server]).actions())


def support_agent(console: Any, collector: support.RunningCollector, sighting_id: str) -> Any:
    """The roster row of one sighting on the named device (read through the console's own client)."""
    page = console.client.agents({"device": collector.known_device}, sort="name", order="asc", limit=50)
    return next(a for a in page.data if a.id == sighting_id)


def test_the_filter_choices_carry_no_stale_counts(make_console: Any, qtbot: Any,
                                                  collector: support.RunningCollector) -> None:
    """The type and governed choices said fleet-wide counts ("Runtime (212)") beside a filtered roster, and
    kept them after a triage changed them: they now name the choice only, after a refresh and a triage."""
    console = make_console()
    qtbot.waitUntil(lambda: console.overview.latest is not None, timeout=10_000)
    view = console.window.agents

    def texts() -> list[str]:
        return [box.itemText(i) for box in (view.type, view.governed) for i in range(box.count())]

    assert texts() and not any(re.search(r"\d", t) for t in texts()), texts()
    before = console.overview.latest
    view.set_filter(vm.AgentFilter(q="zoe-laptop", type=vm.AGENT_TYPES))
    qtbot.waitUntil(lambda: loaded(console) and console.agents.roster.filter.q == "zoe-laptop", timeout=10_000)
    target = next(a for a in console.agents.roster.rows if a.id == "known-script")
    console.agents.triage("note", note="FAKE note: checked by the agents-first test", targets=[target.key])
    qtbot.waitUntil(lambda: console.overview.latest is not before and console.runner.in_flight == 0,
                    timeout=10_000)
    assert not any(re.search(r"\d", t) for t in texts()), texts()
