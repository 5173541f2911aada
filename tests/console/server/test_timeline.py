"""Intent over time (console/server/timeline.py) on a real collector, SQLite and PostgreSQL, filled through
the ingest API: each sighting's behaviour facts with first and last seen, drift as an event with the exact
difference and when it began, and an admin accepting the new behaviour, which governs the agent again."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import fleet
import pytest

from console.server import timeline

pytestmark = pytest.mark.timeout(120)

MCP_GITHUB = {"name": "github", "transport": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
              "url": None, "source": "/home/alice/.claude.json", "enabled": True, "project": None}
MCP_POSTGRES = {**MCP_GITHUB, "name": "postgres",
                "args": ["-y", "@modelcontextprotocol/server-postgres", "postgresql://db.internal:5432/payroll"]}
MCP_REMOTE = {**MCP_GITHUB, "name": "linear", "transport": "http", "command": None, "args": [],
              "url": "https://mcp.linear.app/sse"}


def timeline_of(device, sighting_id: str, token: str | None = None) -> dict:
    answer = device.collector.get(f"/api/v1/agents/{device.device_id}/{sighting_id}/timeline", token=token)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def facts(device, sighting_id: str) -> dict[tuple[str, str], dict]:
    return {(f["kind"], f["value"]): f for f in timeline_of(device, sighting_id)["facts"]}


def register_and_approve(device, sighting_id: str, **declared) -> int:
    body = {"sighting_id": sighting_id, "owner": "alice@example.com", "purpose": "refactors the billing service",
            "providers": ["anthropic"], "tools": ["github"], "data_systems": [], "autonomy": "supervised", **declared}
    answer = device.collector.http.post("/api/v1/registrations", json=body, headers=device.headers())
    assert answer.status_code == 201, answer.text
    registration_id = int(answer.json()["id"])
    answer = device.collector.http.post(f"/api/v1/registrations/{registration_id}/approve", json={"note": "fine"},
                                        headers=device.collector.as_admin())
    assert answer.status_code == 200, answer.text
    return registration_id


def accept(device, sighting_id: str, event_id: int, token: str | None = None):
    return device.collector.http.post(f"/api/v1/agents/{device.device_id}/{sighting_id}/drift/{event_id}/accept",
                                      headers={"authorization": f"Bearer {token or device.collector.admin}"})


def row(device, sighting_id: str) -> dict:
    return next(a for a in device.agents() if a["id"] == sighting_id)


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


def test_facts_of_a_document_name_providers_servers_systems_and_autonomy() -> None:
    doc = fleet.sighting(providers=("anthropic",), flags=("autonomous",),
                         mcp_servers=[MCP_GITHUB, MCP_POSTGRES, MCP_REMOTE])
    assert timeline.facts_of(doc) == [
        ("autonomy", "autonomous"), ("mcp_server", "github"), ("mcp_server", "linear"), ("mcp_server", "postgres"),
        ("provider", "anthropic"), ("system", "mcp.linear.app"), ("system", "postgresql://db.internal/payroll")]


def test_a_data_system_never_keeps_the_user_password_or_query_of_its_url() -> None:
    server = {**MCP_POSTGRES, "args": ["postgres://FAKE-user:FAKE-password-0000@db.internal/crm?sslpassword=FAKE-x"]}
    [system] = timeline.systems_of([server])
    assert system == "postgres://db.internal/crm"
    assert timeline.systems_of([{**MCP_GITHUB, "args": ["http://[::1", "postgres://"]}]) == []  # malformed: nothing


def test_a_hostile_document_cannot_fill_the_timeline() -> None:
    servers = [{**MCP_GITHUB, "name": f"s{i:04d}" + "x" * 600} for i in range(1000)]
    found = timeline.facts_of(fleet.sighting(mcp_servers=servers))
    assert len(found) == timeline.MAX_FACTS and all(len(v) <= timeline.MAX_VALUE for _, v in found)


def test_each_fact_has_first_and_last_seen_and_gone_at_when_it_disappears(device) -> None:
    made = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    before = time.time()
    device.snapshot(made)
    first = facts(device, made["id"])
    assert set(first) == {("provider", "anthropic"), ("mcp_server", "github"), ("autonomy", "supervised")}
    assert all(f["gone_at"] is None and seconds(f["first_seen"]) >= before - 1 for f in first.values())
    middle = time.time()
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai"), mcp_servers=[MCP_POSTGRES]))
    later = facts(device, made["id"])
    assert later[("provider", "anthropic")]["first_seen"] == first[("provider", "anthropic")]["first_seen"]
    assert later[("provider", "anthropic")]["gone_at"] is None
    assert seconds(later[("provider", "openai")]["first_seen"]) >= middle - 1
    assert later[("mcp_server", "github")]["gone_at"] is not None  # no longer shown: gone, kept
    assert later[("system", "postgresql://db.internal/payroll")]["gone_at"] is None


def test_a_report_that_changes_nothing_writes_no_fact(device) -> None:
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    first = facts(device, made["id"])
    assert set(first) == {("provider", "anthropic"), ("autonomy", "supervised")}
    device.snapshot(made)
    assert facts(device, made["id"]) == first


def test_new_behaviour_of_a_registered_agent_is_a_drift_event_and_accepting_it_governs_again(device) -> None:
    made = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    device.snapshot(made)
    register_and_approve(device, made["id"], data_systems=["git"])
    assert row(device, made["id"])["governed"] is True
    assert timeline_of(device, made["id"])["events"] == []
    began = time.time()
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai"),
                                   mcp_servers=[MCP_GITHUB, MCP_POSTGRES]))
    assert row(device, made["id"])["governed"] is False
    [event] = timeline_of(device, made["id"])["events"]
    assert event["added"] == {"providers": ["openai"], "mcp_servers": ["postgres"], "tools": [],
                              "systems": ["postgresql://db.internal/payroll"], "autonomy": False, "via": []}
    assert event["status"] == "open" and began - 1 <= seconds(event["began_at"]) <= time.time() + 1
    since = datetime.fromtimestamp(began - 1, UTC).isoformat()
    fleet_wide = device.collector.get("/api/v1/drift", since=since).json()["data"]
    assert event["id"] in [e["id"] for e in fleet_wide]
    later = datetime.fromtimestamp(time.time() + 60, UTC).isoformat()
    assert event["id"] not in [e["id"] for e in device.collector.get("/api/v1/drift", since=later).json()["data"]]
    assert device.collector.get("/api/v1/drift", since="yesterday").status_code == 422

    answer = accept(device, made["id"], event["id"])
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["ended_by"]) == ("accepted", "test admin")
    shown = row(device, made["id"])
    assert shown["governed"] is True and "drift" not in shown["flags"]
    declared = device.collector.get("/api/v1/registrations", device=device.device_id).json()["data"][0]
    assert set(declared["providers"]) == {"anthropic", "openai"} and set(declared["tools"]) == {"github", "postgres"}
    assert "postgresql://db.internal/payroll" in declared["data_systems"]
    audit = device.collector.get("/api/v1/agents/actions").json()
    assert any(a["action"] == "accept_drift" and "openai" in (a["note"] or "") for a in audit)
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai"),
                                   mcp_servers=[MCP_GITHUB, MCP_POSTGRES]))
    assert row(device, made["id"])["governed"] is True  # the next report keeps it governed
    assert accept(device, made["id"], event["id"]).status_code == 409  # accepted already


def test_later_additions_join_the_open_event_which_keeps_its_start(device) -> None:
    made = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    device.snapshot(made)
    register_and_approve(device, made["id"])
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai"), mcp_servers=[MCP_GITHUB]))
    [first] = timeline_of(device, made["id"])["events"]
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai"), flags=("autonomous",),
                                   mcp_servers=[MCP_GITHUB]))
    [grown] = timeline_of(device, made["id"])["events"]
    assert (grown["id"], grown["began_at"]) == (first["id"], first["began_at"])
    assert grown["added"]["providers"] == ["openai"] and grown["added"]["autonomy"] is True


def test_an_agent_back_inside_its_declaration_resolves_the_event(device) -> None:
    made = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    device.snapshot(made)
    register_and_approve(device, made["id"])
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai"), mcp_servers=[MCP_GITHUB]))
    device.snapshot(made)
    [event] = timeline_of(device, made["id"])["events"]
    assert event["status"] == "resolved" and event["ended_at"] is not None
    assert accept(device, made["id"], event["id"]).status_code == 409


def test_accepting_drift_from_an_admins_approval_widens_what_was_approved(device) -> None:
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    answer = device.collector.http.post(f"/api/v1/agents/{device.device_id}/{made['id']}/actions",
                                        json={"action": "approve"}, headers=device.collector.as_admin())
    assert answer.status_code in (200, 201), answer.text
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "mistral")))
    [event] = timeline_of(device, made["id"])["events"]
    assert event["added"]["providers"] == ["mistral"] and event["added"]["systems"] == []
    assert accept(device, made["id"], event["id"]).status_code == 200
    assert row(device, made["id"])["governed"] is True


def test_an_unregistered_agent_has_facts_but_no_drift_event(device) -> None:
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai")))
    assert timeline_of(device, made["id"])["events"] == []
    assert ("provider", "openai") in facts(device, made["id"])


def test_viewers_read_the_timeline_but_cannot_accept(device) -> None:
    made = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    device.snapshot(made)
    register_and_approve(device, made["id"])
    device.snapshot(fleet.sighting(id=made["id"], providers=("openai",), mcp_servers=[MCP_GITHUB]))
    [event] = timeline_of(device, made["id"], token=device.collector.viewer)["events"]
    assert accept(device, made["id"], event["id"], token=device.collector.viewer).status_code == 403
    other = fleet.sighting()
    device.snapshot(other)
    assert accept(device, other["id"], event["id"]).status_code == 404  # not this sighting's event
    missing = device.collector.get(f"/api/v1/agents/{device.device_id}/nope/timeline")
    assert missing.status_code == 404


def tool_server(parent: str, server: dict, **extra) -> dict:
    return fleet.sighting(name=server["name"], signature=f"mcp-{server['name']}", type="tool_server", parent=parent,
                          mcp_servers=[server], **extra)


def test_a_tool_server_or_sub_agent_is_judged_against_the_root_of_its_chain(device) -> None:
    root = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    covered = tool_server(root["id"], MCP_GITHUB)
    device.snapshot(root, covered)
    register_and_approve(device, root["id"])
    device.snapshot(root, covered)
    assert timeline_of(device, root["id"])["events"] == []  # the root's declaration covers its github server
    sub_agent = fleet.sighting(name="reviewer", parent=root["id"], providers=("openai",))
    deeper = tool_server(sub_agent["id"], MCP_POSTGRES)  # spawned by the sub-agent: its root is the same
    device.snapshot(root, covered, sub_agent, deeper)
    [event] = timeline_of(device, root["id"])["events"]
    assert event["added"] == {"providers": ["openai"], "mcp_servers": ["postgres"], "tools": [],
                              "systems": ["postgresql://db.internal/payroll"], "autonomy": False,
                              "via": sorted([sub_agent["id"], deeper["id"]])}
    assert timeline_of(device, sub_agent["id"])["events"] == []  # drift is on the root, not on the sub-agent
    device.snapshot(root, covered, sub_agent, deeper)  # the root changed nothing: its event stays open
    assert timeline_of(device, root["id"])["events"][0]["status"] == "open"
    assert accept(device, root["id"], event["id"]).status_code == 200
    declared = device.collector.get("/api/v1/registrations", device=device.device_id).json()["data"][0]
    assert set(declared["providers"]) == {"anthropic", "openai"} and set(declared["tools"]) == {"github", "postgres"}
    device.snapshot(root, covered, sub_agent, deeper, tool_server(sub_agent["id"], {**MCP_GITHUB, "name": "git"},
                                                                  id=deeper["id"] + "x"))
    [newer, _] = timeline_of(device, root["id"])["events"]  # a server it did not declare yet: a new event
    assert newer["status"] == "open" and newer["added"]["mcp_servers"] == ["git"]


def test_a_chain_that_loops_or_has_no_known_root_is_not_judged(device) -> None:
    looped = fleet.sighting(id="loop-a", parent="loop-b", providers=("openai",))
    other = fleet.sighting(id="loop-b", parent="loop-a")
    orphan = fleet.sighting(parent="nobody-knows-it", providers=("openai",))
    answer = device.send(device.report("snapshot", [looped, other, orphan]))
    assert answer.status_code == 200, answer.text
    assert device.collector.get("/api/v1/drift", status="open", limit=1000).status_code == 200
    assert timeline_of(device, "loop-a")["events"] == [] and timeline_of(device, orphan["id"])["events"] == []


def test_the_fleets_open_events_are_found_past_newer_closed_ones_and_a_nul_is_a_422(device) -> None:
    early = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    late = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    device.snapshot(early, late)
    register_and_approve(device, early["id"])
    register_and_approve(device, late["id"])
    drifted = fleet.sighting(id=early["id"], providers=("anthropic", "mistral"), mcp_servers=[MCP_GITHUB])
    device.snapshot(drifted, late)  # early's event: open
    time.sleep(0.01)
    device.snapshot(drifted, fleet.sighting(id=late["id"], providers=("anthropic", "openai"), mcp_servers=[MCP_GITHUB]))
    device.snapshot(drifted, late)  # late's event, the newest: resolved
    answer = device.collector.get("/api/v1/drift", status="open", limit=1)
    assert answer.status_code == 200, answer.text
    assert [(e["sighting_id"], e["status"]) for e in answer.json()["data"]] == [(early["id"], "open")]
    for path in (f"/api/v1/agents/{device.device_id}/a%00b/timeline", "/api/v1/inbox/sent?device=a%00"):
        assert device.collector.http.get(path, headers=device.collector.as_admin()).status_code == 422, path


def test_a_system_that_is_no_url_is_compared_whole() -> None:
    assert timeline._covers(["postgres://a]/db"], "postgres://a]/db")
    assert not timeline._covers(["payroll"], "postgres://a]/db")
