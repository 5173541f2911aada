"""The agent detail over a real collector: identity, type with its reason, flags explained, evidence
(credential fingerprints, never values), the chain from the human to the systems, and history."""

from __future__ import annotations

from typing import Any

import console_support as support
import pytest

pytestmark = pytest.mark.timeout(120)


def open_known(console: Any, qtbot: Any, sighting_id: str, device_id: str) -> Any:
    console.agents.open_detail((device_id, sighting_id))
    qtbot.waitUntil(lambda: console.window.detail.detail is not None
                    and console.window.detail.detail.agent.id == sighting_id, timeout=10_000)
    return console.window.detail


def test_detail_explains_type_and_flags(make_console: Any, qtbot: Any, modeltest: Any,
                                        collector: support.RunningCollector) -> None:
    console = make_console()
    detail = open_known(console, qtbot, "known-claude", collector.known_device)
    modeltest(detail.evidence)
    modeltest(detail.timeline)
    modeltest(detail.chain)
    header = detail.header.text()
    assert "Claude Code" in header and "Matches the Claude Code signature (claude-code)" in header
    assert "Ungoverned" in header and "zoe-laptop" in header
    flags = detail.flags.text()
    # readable names, what each means, and what to do next
    assert "<b>Autonomous (no human approval)</b>" in flags and "human approval turned off" in flags
    assert "<b>Personal API key</b>" in flags and "<b>Unregistered</b>" in flags
    assert "<i>Next:</i> Turn human approval back on" in flags
    # the risk score, and each flag's part of it
    assert f"<b>Risk:</b> {detail.detail.agent.risk}/100" in header and detail.detail.agent.risk > 0
    assert "<b>Autonomous (no human approval)</b> (risk +15)" in flags
    assert "<i>Next:</i> Use the organisation&#x27;s key instead of a personal one, and rotate the personal key." in flags


def test_an_unknown_agent_is_classified_from_behaviour(make_console: Any, qtbot: Any,
                                                       collector: support.RunningCollector) -> None:
    console = make_console()
    detail = open_known(console, qtbot, "known-script", collector.known_device)
    assert "Unknown agent calling openai" in detail.header.text()
    assert "=cmd" in detail.header.text()  # the name shown as text: escaped, not run, not rendered


def test_evidence_lists_processes_configs_servers_endpoints_and_fingerprints(
        make_console: Any, qtbot: Any, collector: support.RunningCollector) -> None:
    console = make_console()
    detail = open_known(console, qtbot, "known-claude", collector.known_device)
    kinds = {row[0] for row in detail.evidence.rows}
    assert kinds == {"Process", "Config", "MCP server", "Endpoint", "Credential", "Evidence"}
    process = next(r for r in detail.evidence.rows if r[0] == "Process")
    assert "node /usr/lib/node_modules/.bin/claude" in process[2]
    credential = next(r for r in detail.evidence.rows if r[0] == "Credential")
    assert credential[1] == "anthropic hmac-sha256:" + "ab" * 16


def test_the_chain_runs_from_the_human_to_the_mcp_server(make_console: Any, qtbot: Any,
                                                         collector: support.RunningCollector) -> None:
    console = make_console()
    detail = open_known(console, qtbot, "known-github-mcp", collector.known_device)
    model = detail.chain
    human = model.item(0, 0)
    assert human.text() == "zoe"
    parent = human.child(0, 0)
    assert parent.text() == "Claude Code"
    labels = [parent.child(i, 0).text() for i in range(parent.rowCount())]
    assert "github" in labels  # the sub-agent (this one) and the MCP server it is, under its parent
    current = next(parent.child(i, 0) for i in range(parent.rowCount()) if parent.child(i, 0).font().bold())
    assert current.text() == "github"


def test_history_shows_when_it_was_first_seen(make_console: Any, qtbot: Any,
                                              collector: support.RunningCollector) -> None:
    console = make_console()
    detail = open_known(console, qtbot, "known-claude", collector.known_device)
    assert [r[1:] for r in detail.timeline.rows][-1] == ("seen", "endpoint", "First seen")
    assert detail.registration.text().startswith("No registration")


def test_a_missing_agent_says_so(make_console: Any, qtbot: Any, collector: support.RunningCollector) -> None:
    console = make_console()
    console.agents.open_detail((collector.known_device, "gone-for-good"), "x")
    qtbot.waitUntil(lambda: "no longer known" in console.window.detail.header.text(), timeout=10_000)
    assert console.window.banner.isHidden()
