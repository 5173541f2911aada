"""The policy's risky-tool patterns at the collector: a sighting whose MCP server matches one is stored
with ``broad_tools`` (the roster's flag filter, the tag table), at ingest and when the policy changes,
and loses it with the pattern unless its device sent ``broad_tools`` itself."""

from __future__ import annotations

from typing import Any

import fleet
import pytest

pytestmark = pytest.mark.timeout(180)


def server(name: str, command: str, *args: str, enabled: bool = True) -> dict[str, Any]:
    """An MCP server entry in the contract's shape."""
    return {"name": name, "transport": "stdio", "command": command, "args": list(args), "url": None,
            "source": "/home/alice/.claude.json", "enabled": enabled, "project": None}


SHELL = server("shell", "/opt/mcp-shell", "--root", "/")
GIT = server("git", "uvx", "mcp-server-git")


def put_policy(collector, **policy: Any) -> dict[str, Any]:
    answer = collector.http.put("/api/v1/policy", json=policy, headers=collector.as_admin())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def flags_of(device, sighting_id: str) -> list[str]:
    return next(a["flags"] for a in device.agents(state="all") if a["id"] == sighting_id)


def broad(device) -> list[str]:
    """The ids the roster lists under ``flag=broad_tools`` (through the tag table), sorted."""
    return sorted(a["id"] for a in device.agents(flag="broad_tools"))


def detail(collector, device, sighting_id: str) -> dict[str, Any]:
    answer = collector.get(f"/api/v1/agents/{device.device_id}/{sighting_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_pattern_flags_a_matching_sighting_at_ingest(own_collector, enroll_on) -> None:
    put_policy(own_collector, risky_tools=["*mcp-shell*"])
    device = enroll_on(own_collector)
    risky, plain = fleet.sighting(mcp_servers=[SHELL, GIT]), fleet.sighting(mcp_servers=[GIT])
    device.snapshot(risky, plain)
    assert "broad_tools" in flags_of(device, risky["id"])
    assert "broad_tools" not in flags_of(device, plain["id"])
    assert broad(device) == [risky["id"]]
    assert own_collector.agents(flag="broad_tools")["count"] == 1
    assert "shell" in detail(own_collector, device, risky["id"])["reasons"]["broad_tools"]


def test_a_later_report_of_a_flagged_sighting_keeps_the_flag(own_collector, enroll_on) -> None:
    put_policy(own_collector, risky_tools=["shell"])
    device = enroll_on(own_collector)
    risky = fleet.sighting(mcp_servers=[SHELL])
    device.snapshot(risky)
    answer = device.send(device.report("delta", [{**risky, "running": False, "processes": []}]))
    assert answer.status_code == 200 and answer.json()["applied"], answer.text
    assert broad(device) == [risky["id"]]


def test_a_policy_change_adds_and_removes_the_flag_on_stored_sightings(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    risky, plain = fleet.sighting(mcp_servers=[SHELL]), fleet.sighting(mcp_servers=[GIT])
    device.snapshot(risky, plain)
    assert broad(device) == []
    put_policy(own_collector, risky_tools=["*SHELL*"])
    assert broad(device) == [risky["id"]]
    assert flags_of(device, risky["id"]) == ["broad_tools", "unregistered"]
    put_policy(own_collector, risky_tools=[])
    assert broad(device) == []
    assert flags_of(device, risky["id"]) == ["unregistered"]
    assert "broad_tools" not in detail(own_collector, device, risky["id"])["reasons"]


def test_a_pattern_removed_while_reports_arrive_leaves_no_flag_behind(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    risky = fleet.sighting(mcp_servers=[SHELL])
    put_policy(own_collector, risky_tools=["shell"])
    device.snapshot(risky)  # stored flagged, by ingest
    put_policy(own_collector, risky_tools=["git"])
    assert broad(device) == []
    device.snapshot(risky)  # and stored again under the new policy
    assert broad(device) == []


def test_broad_tools_sent_by_the_device_survives_the_patterns_removal(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    sent = fleet.sighting(mcp_servers=[SHELL], flags=("broad_tools",))
    matched = fleet.sighting(mcp_servers=[SHELL])
    put_policy(own_collector, risky_tools=["*mcp-shell*"])
    device.snapshot(sent, matched)
    assert broad(device) == sorted([sent["id"], matched["id"]])
    put_policy(own_collector, risky_tools=[])
    assert broad(device) == [sent["id"]]
    assert "broad_tools" not in detail(own_collector, device, sent["id"])["reasons"]  # the endpoint's own call


def test_broad_tools_sent_by_the_device_stays_when_a_pattern_comes_and_goes(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    sent = fleet.sighting(mcp_servers=[SHELL], flags=("broad_tools", "autonomous"))
    device.snapshot(sent)
    put_policy(own_collector, risky_tools=["shell"])
    put_policy(own_collector, risky_tools=[])
    assert flags_of(device, sent["id"]) == ["autonomous", "broad_tools", "unregistered"]


def test_a_pattern_matches_only_a_sightings_enabled_mcp_servers(own_collector, enroll_on) -> None:
    put_policy(own_collector, risky_tools=["*ollama*", "*serve", "*claude*", "*node*", "off"])
    device = enroll_on(own_collector)
    runtime = fleet.sighting(name="Ollama", signature="ollama", type="runtime", vendor="Ollama", user=None)
    runtime["processes"][0].update(name="ollama", exe="/usr/local/bin/ollama", cmdline=["ollama", "serve"])
    runtime["evidence"] = [{"kind": "process", "rule": "exe", "detail": "ollama serve"}]
    agent = fleet.sighting(mcp_servers=[server("off", "/opt/mcp-off", enabled=False), GIT])  # its name, its node
    unknown = fleet.sighting(name="python3 serve.py", signature=None, type="unknown", vendor="",
                             providers=("openai",))
    device.snapshot(runtime, agent, unknown)
    assert broad(device) == []
    for made in (runtime, agent, unknown):
        assert "broad_tools" not in detail(own_collector, device, made["id"])["reasons"]


def test_an_approved_sighting_keeps_its_standing_and_gains_the_flag(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    risky = fleet.sighting(mcp_servers=[SHELL])
    device.snapshot(risky)
    approved = own_collector.http.post(f"/api/v1/agents/{device.device_id}/{risky['id']}/actions",
                                       json={"action": "approve"}, headers=own_collector.as_admin())
    assert approved.status_code == 201, approved.text
    put_policy(own_collector, risky_tools=["shell"])
    row = device.agents()[0]
    assert (row["governed"], row["flags"]) == (True, ["broad_tools"])
    device.snapshot(risky)  # ingest re-assesses it with its approval
    row = device.agents()[0]
    assert (row["governed"], row["flags"]) == (True, ["broad_tools"])
    put_policy(own_collector, risky_tools=[])
    assert device.agents()[0]["flags"] == []


def test_a_risky_tool_is_a_risk_not_a_governance_gap_in_the_overview(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(signature="copilot", name="Copilot", mcp_servers=[SHELL]),
                    fleet.sighting(mcp_servers=[SHELL]), fleet.sighting(mcp_servers=[GIT]))
    put_policy(own_collector, sanctioned_signatures=["copilot"])
    before = own_collector.get("/api/v1/overview").json()
    put_policy(own_collector, sanctioned_signatures=["copilot"], risky_tools=["shell"])
    after = own_collector.get("/api/v1/overview").json()
    assert {c["key"]: c["count"] for c in after["by_governed"]} == {"governed": 1, "ungoverned": 2}
    assert after["by_governed"] == before["by_governed"]
    assert after["top_ungoverned_devices"] == before["top_ungoverned_devices"]
    assert len(broad(device)) == 2


@pytest.mark.parametrize(("patterns", "why"), [
    (["x" * 129], "too long"),
    ([f"tool-{i}" for i in range(1001)], "too many"),
    (["shell\x00"], "a NUL character"),
    (["   "], "blank"),
    ([7], "not text"),
])  # fmt: skip
def test_a_bad_risky_tool_pattern_is_refused_and_the_policy_kept(own_collector, patterns, why) -> None:
    put_policy(own_collector, risky_tools=["shell"])
    answer = own_collector.http.put("/api/v1/policy", json={"risky_tools": patterns}, headers=own_collector.as_admin())
    assert (answer.status_code, fleet.reason(answer)) == (422, "invalid_request"), why
    policy = own_collector.get("/api/v1/policy").json()
    assert (policy["risky_tools"], policy["version"]) == (["shell"], 1), why


def test_the_longest_and_most_patterns_allowed_are_taken(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    risky = fleet.sighting(mcp_servers=[SHELL])
    device.snapshot(risky)
    patterns = [f"*tool-{i:04d}*" + "?" * 100 for i in range(999)] + ["*" * 128]
    assert len(put_policy(own_collector, risky_tools=patterns)["risky_tools"]) == 1000
    assert broad(device) == [risky["id"]]  # "*...*" matches every server
