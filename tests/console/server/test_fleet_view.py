"""The collector side of the fleet console: the fleet by kind, risk, finding (several types and flags,
providers and MCP commands in free text, hostnames), sorting refused with a sentence, the overview's
risk-first figures. A collector of this module's own, filled through the ingest API by simulated devices
(tests/console/server/fleet.py: coding agents with their MCP servers as tool-server sightings, runtimes,
unknown scripts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fleet
import pytest
from conftest import Collector, Device, enroll_device, start_collector

from console import governance

pytestmark = pytest.mark.timeout(180)
DEVICES = 12


@pytest.fixture(scope="module")
def filled(new_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Collector, list[Device]]]:
    """A collector holding DEVICES simulated machines (about 25 sightings each), one snapshot each."""
    running = start_collector(new_database(), tmp_path_factory.mktemp("fleet-view"))
    devices = []
    for i in range(DEVICES):
        sim = fleet.SimDevice.build(i, seed=7)
        device = enroll_device(running, sim.device_id)
        document = sim.snapshot()
        document["device"] = device.doc
        document["epoch"], document["seq"] = device.epoch, 1
        device.seq = 1
        answer = device.send(document)
        assert answer.status_code == 200, answer.text
        devices.append(device)
    yield running, devices
    running.process.stop()


def fleet_of(collector: Collector, **params: Any) -> dict[str, Any]:
    answer = collector.get("/api/v1/agents/fleet", **params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def count_of(collector: Collector, params: dict[str, Any]) -> int:
    answer = collector.get("/api/v1/agents", limit=1, **params)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["count"])


def every_row(collector: Collector, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = collector.agents(limit=500, **params, **({"cursor": cursor} if cursor else {}))
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


# -- the fleet by kind --------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"governed": "false"}, {"flag": "autonomous"}, {"user": "alice"}])
def test_each_fleet_row_counts_what_the_roster_filtered_to_it_lists(filled, params) -> None:
    collector, _ = filled
    answer = fleet_of(collector, **params)
    rows = answer["agents"] + answer["tool_servers"]
    assert rows, answer
    assert sum(r["sightings"] for r in rows) == answer["sightings"] == count_of(collector, params)
    for row in rows:
        listed = every_row(collector, **row["filter"])
        assert len(listed) == row["sightings"], row["key"]
        assert len({a["device_id"] for a in listed}) == row["devices"]
        assert sum(not a["governed"] for a in listed) == row["ungoverned"]
        for flag, n in row["flags"].items():
            assert sum(flag in a["flags"] for a in listed) == n, (row["key"], flag)
        assert max(a["risk"] for a in listed) == row["max_risk"]


def test_agents_and_tool_servers_are_counted_apart(filled) -> None:
    collector, _ = filled
    answer = fleet_of(collector)
    assert {r["type"] for r in answer["tool_servers"]} == {"tool_server"}
    assert "tool_server" not in {r["type"] for r in answer["agents"]}
    assert answer["tool_server_sightings"] == count_of(collector, {"type": "tool_server"})
    claude = next(r for r in answer["agents"] if r["key"] == "claude-code")
    listed = every_row(collector, signature="claude-code")
    servers = sum(len(collector.get(f"/api/v1/agents/{a['device_id']}/{a['id']}").json()["mcp_servers"])
                  for a in listed)
    assert claude["mcp_servers"] == servers > 0 and claude["name"] == "Claude Code"
    assert all(r["mcp_servers"] == 0 for r in answer["tool_servers"])


def test_agents_no_signature_matched_are_a_row_of_their_own(filled) -> None:
    collector, _ = filled
    unknown = next(r for r in fleet_of(collector)["agents"] if r["signature"] is None)
    assert unknown["key"] == "unknown:unknown" and unknown["filter"] == {"signature": "", "type": "unknown"}
    assert {a["name"] for a in every_row(collector, **unknown["filter"])} == {"python3 report.py"}


# -- risk ---------------------------------------------------------------------------------------------


def test_every_sighting_carries_the_risk_of_its_flags(filled) -> None:
    collector, _ = filled
    for row in every_row(collector, type="coding"):
        assert row["risk"] == governance.risk_of(row["flags"])
    assert sum(governance.RISK_WEIGHTS.values()) == 100


def test_the_roster_sorts_and_filters_on_risk(filled) -> None:
    collector, _ = filled
    page = collector.agents(sort="-risk", limit=500)
    risks = [a["risk"] for a in page["data"]]
    assert risks == sorted(risks, reverse=True) and risks[0] > risks[-1]
    top = risks[0]
    assert count_of(collector, {"min_risk": top}) == sum(1 for a in every_row(collector) if a["risk"] >= top)
    ascending = every_row(collector, sort="risk", order="asc")
    assert [a["risk"] for a in ascending] == sorted(a["risk"] for a in ascending)


def test_the_detail_says_what_makes_up_the_risk_and_what_to_do(filled) -> None:
    collector, _ = filled
    agent = every_row(collector, flag="autonomous")[0]
    detail = collector.get(f"/api/v1/agents/{agent['device_id']}/{agent['id']}").json()
    reasons = {r["flag"]: r for r in detail["risk_reasons"]}
    assert sum(r["weight"] for r in reasons.values()) == detail["risk"]
    assert "human" in reasons["autonomous"]["meaning"] and "--yolo" in reasons["autonomous"]["next_step"]


@pytest.mark.parametrize(("sort", "reason", "says"), [("flags", "unsortable", "sort by risk"),
                                                      ("governed", "unsortable", "filter on governed"),
                                                      ("password", "unknown_sort", "Sort by one of")])
def test_a_sort_the_roster_lacks_is_refused_with_a_sentence(filled, sort, reason, says) -> None:
    collector, _ = filled
    answer = collector.get("/api/v1/agents", sort=sort)
    assert (answer.status_code, fleet.reason(answer)) == (400, reason)
    assert says in answer.json()["detail"]["message"]


# -- finding ------------------------------------------------------------------------------------------


def test_several_types_match_any_and_several_flags_match_all(filled) -> None:
    collector, _ = filled
    both = count_of(collector, {"type": ["coding", "runtime"]})
    assert both == count_of(collector, {"type": "coding"}) + count_of(collector, {"type": "runtime"})
    flags = ["autonomous", "personal_credential"]
    listed = every_row(collector, flag=flags)
    assert listed and all(set(flags) <= set(a["flags"]) for a in listed)
    assert len(listed) == count_of(collector, {"flag": flags}) < count_of(collector, {"flag": "personal_credential"})


@pytest.mark.parametrize(("text", "where"), [("anthropic", "providers"), ("server-postgres", "mcp"),
                                             ("POSTGRESQL://DB/APP", "mcp")])
def test_free_text_finds_providers_and_mcp_servers_commands(filled, text, where) -> None:
    collector, _ = filled
    found = every_row(collector, q=text)
    assert found
    for row in found[:20]:
        detail = collector.get(f"/api/v1/agents/{row['device_id']}/{row['id']}").json()
        if where == "providers":
            assert text in detail["providers"]
        else:
            assert any(text.lower() in " ".join([s["command"] or "", *s["args"]]).lower()
                       for s in detail["mcp_servers"])


def test_a_device_is_found_by_its_hostname_and_completed_from_a_prefix(filled) -> None:
    collector, devices = filled
    device = devices[3]
    hostname = device.doc["hostname"]
    by_host = every_row(collector, device=hostname)
    assert by_host and {a["device_id"] for a in by_host} == {device.device_id}
    assert len(by_host) == len(every_row(collector, device=device.device_id))
    completed = collector.get("/api/v1/devices/complete", prefix=hostname[:-1]).json()
    assert {"id": device.device_id, "hostname": hostname} in completed
    assert all(c["hostname"].startswith(hostname[:-1]) for c in completed)
    assert collector.get("/api/v1/devices/complete", prefix="no-such-host").json() == []


# -- the overview ----------------------------------------------------------------------------------------


def test_the_overview_leads_with_the_riskiest_agents_and_counts_agents_and_servers_apart(filled) -> None:
    collector, _ = filled
    overview = collector.get("/api/v1/overview").json()
    riskiest = overview["riskiest"]
    assert riskiest and all(r["type"] != "tool_server" for r in riskiest)
    assert [r["risk"] for r in riskiest] == sorted((r["risk"] for r in riskiest), reverse=True)
    assert riskiest[0]["risk"] == max(a["risk"] for a in every_row(collector) if a["type"] != "tool_server")
    assert overview["tool_servers"] == count_of(collector, {"type": "tool_server"})
    assert overview["agents"] + overview["tool_servers"] == overview["sightings"]
    assert overview["new_agents"] == overview["agents"]  # all stored just now
    assert {c["key"]: c["count"] for c in overview["by_flag"]}["autonomous"] == count_of(collector, {"flag": "autonomous"})
    later = collector.get("/api/v1/overview", since="2999-01-01T00:00:00Z").json()
    assert (later["new_agents"], later["new_tool_servers"]) == (0, 0)


def test_an_unknown_parameter_value_gets_a_sentence_not_validation_text(filled) -> None:
    collector, _ = filled
    answer = collector.get("/api/v1/agents", limit=501)
    body = answer.json()["detail"]
    assert (answer.status_code, body["reason"]) == (422, "invalid_request")
    assert body["message"] == "Limit must be at most 500: ask for fewer rows and page with next_cursor."
    assert "Input should" not in body["message"]


def test_hostnames_and_names_are_returned_as_sent_never_interpreted(own_collector, enroll_on) -> None:
    device: Device = enroll_on(own_collector)
    hostile = "<b>x</b>'; DROP TABLE sighting; --"
    device.snapshot(fleet.sighting(name=hostile, signature=None, type="unknown", providers=("openai",)))
    row = fleet_of(own_collector)["agents"][0]
    assert row["key"] == "unknown:unknown"
    assert [a["name"] for a in every_row(own_collector, **row["filter"])] == [hostile]



def test_a_signature_seen_under_two_types_counts_each_device_and_user_once(own_collector, enroll_on) -> None:
    device: Device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(signature="mixed-agent", name="Mixed", type="coding", user="alice"),
                    fleet.sighting(signature="mixed-agent", name="Mixed", type="unknown", user="alice"),
                    fleet.sighting(signature="mixed-agent", name="Mixed", type="unknown", user="bob"))
    row = next(r for r in fleet_of(own_collector)["agents"] if r["key"] == "mixed-agent")
    assert (row["sightings"], row["devices"], row["users"]) == (3, 1, 2)
    assert row["type"] == "unknown"  # listed under its most common type


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v1/agents", {"sort": "-"}),
    ("/api/v1/agents", {"sort": "name\x00"}),
    ("/api/v1/agents", {"min_risk": "101"}),
    ("/api/v1/agents", {"min_risk": "-1"}),
    ("/api/v1/agents", {"cursor": "not-a-cursor"}),
    ("/api/v1/agents", {"flag": ["autonomous"] * 10}),
    ("/api/v1/agents/fleet", {"type": "robot"}),
    ("/api/v1/agents/fleet", {"q": "x\x00"}),
    ("/api/v1/devices/complete", {}),
    ("/api/v1/devices/complete", {"prefix": "a" * 300}),
    ("/api/v1/overview", {"since": "yesterday"}),
])  # fmt: skip
def test_hostile_parameters_get_a_sentence_and_change_nothing(filled, path, params) -> None:
    collector, _ = filled
    before = count_of(collector, {})
    answer = collector.get(path, **params)
    assert 400 <= answer.status_code < 500, answer.text
    message = answer.json()["detail"]["message"]
    assert message.endswith(".") and "Input should" not in message and "\x00" not in message
    assert count_of(collector, {}) == before


def test_device_completion_takes_percent_and_underscore_literally_and_ignores_case(filled) -> None:
    collector, devices = filled
    hostname = devices[0].doc["hostname"]
    assert collector.get("/api/v1/devices/complete", prefix=hostname.upper()).json()[0]["hostname"] == hostname
    assert collector.get("/api/v1/devices/complete", prefix="%").json() == []
    assert collector.get("/api/v1/devices/complete", prefix="ws_0").json() == []


def test_a_filter_action_with_hostile_text_in_its_filter_is_refused_with_a_sentence(filled) -> None:
    collector, _ = filled
    answer = collector.http.post("/api/v1/agents/actions/filter", headers=collector.as_admin(),
                                 json={"action": "approve", "filter": {"q": "a\x00b", "min_risk": 500}})
    detail = answer.json()["detail"]
    assert (answer.status_code, detail["reason"]) == (422, "invalid_request")
    assert detail["message"].startswith("Filter.q holds a character it may not")
    assert "1 other value is wrong too." in detail["message"]
    assert count_of(collector, {"governed": "true"}) == 0


def test_pages_sorted_by_risk_follow_each_other_without_gaps(filled) -> None:
    collector, _ = filled
    whole = [(a["device_id"], a["id"]) for a in collector.agents(sort="-risk", limit=500)["data"]]
    paged: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = collector.agents(sort="-risk", limit=37, **({"cursor": cursor} if cursor else {}))
        paged += [(a["device_id"], a["id"]) for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == whole and len(set(paged)) == len(paged)
    stale = collector.get("/api/v1/agents", sort="name", cursor=collector.agents(sort="-risk", limit=5)["next_cursor"])
    assert (stale.status_code, fleet.reason(stale)) == (400, "invalid_cursor")
    assert "first page" in stale.json()["detail"]["message"]
