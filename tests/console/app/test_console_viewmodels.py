"""The console's plain-Python state, without Qt or a server: filters, paging generations, columns,
the trend, the detail's timeline and chain, and export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from console.app import api
from console.app import viewmodels as vm

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def agent(i: int, **kw: object) -> api.Agent:
    values: dict[str, object] = {"device_id": "d1", "id": f"s{i}", "name": f"agent {i}", "type": "coding",
                                 "user": None, "hostname": "", "governed": False, "flags": [], "providers": [],
                                 "first_seen": T0, "last_seen": T0, "recorded_at": T0, "gone": False}
    values.update(kw)
    return api.Agent.model_validate(values)


def page(*agents: api.Agent, count: int | None = 10, cursor: str | None = "next") -> api.AgentPage:
    made = api.AgentPage(data=list(agents), count=count, next_cursor=cursor)
    made._raw = [{"device_id": a.device_id, "id": a.id, "name": a.name} for a in agents]
    return made


def detail(of: api.Agent, **sections: object) -> api.AgentDetail:
    values: dict[str, object] = {"processes": [], "configs": [], "mcp_servers": [], "endpoints": [], "credentials": [],
                                 "evidence": [], "history": [], "actions": [], "registration": None, "reasons": {}}
    values.update(sections)
    return api.AgentDetail.model_validate({**of.model_dump(), **values})


def server(**kw: object) -> dict[str, object]:
    """An MCP server of a sighting's detail, as the contract has it."""
    return {"command": None, "args": [], "url": None, "source": "/home/zoe/.claude.json", "enabled": True, **kw}


def device(**kw: object) -> api.Device:
    values: dict[str, object] = {"id": "d1", "hostname": "h", "host_identifier": "host:h", "enrolled_at": T0,
                                 "last_seen": T0, "revoked": False, "stale": False, "sightings": 0, "status": {}}
    values.update(kw)
    return api.Device.model_validate(values)


def test_a_filter_sends_only_what_is_set() -> None:
    f = vm.AgentFilter().with_(type="coding", q="  claude ", governed=False, device="")
    assert f.params() == {"type": "coding", "q": "claude", "governed": False}
    assert vm.AgentFilter(state="all").params() == {"state": "all"}


def test_a_page_for_an_older_filter_is_dropped() -> None:
    roster = vm.AgentList(page_size=2)
    first = roster.next_request()
    assert first is not None and roster.next_request() is None  # one request in flight at a time
    roster.reset(filter=vm.AgentFilter(type="runtime"))
    assert roster.receive(first.generation, page(agent(1))) is None
    second = roster.next_request()
    assert second is not None and second.params == {"type": "runtime"}
    fresh = roster.receive(second.generation, page(agent(1), agent(2), count=3))
    roster.append(fresh or [])
    assert [a.id for a in roster.rows] == ["s1", "s2"] and roster.count == 3 and roster.can_fetch_more()


def test_a_row_seen_on_an_earlier_page_is_not_shown_twice() -> None:
    roster = vm.AgentList()
    request = roster.next_request()
    assert request is not None
    roster.append(roster.receive(request.generation, page(agent(1), agent(2))) or [])
    request = roster.next_request()
    assert request is not None
    fresh = roster.receive(request.generation, page(agent(2), agent(3), cursor=None))
    assert [a.id for a in fresh or []] == ["s3"]
    assert roster.done and not roster.can_fetch_more()


def test_the_first_pages_count_stands_for_the_uncounted_pages_after_it() -> None:
    roster = vm.AgentList(page_size=2)
    request = roster.next_request()
    assert request is not None
    roster.append(roster.receive(request.generation, page(agent(1), agent(2), count=3)) or [])
    request = roster.next_request()
    assert request is not None
    roster.append(roster.receive(request.generation, page(agent(3), count=None, cursor=None)) or [])
    assert roster.count == 3 and len(roster.rows) == 3


def test_column_choice_keeps_order_and_at_least_one_column() -> None:
    choice = vm.ColumnChoice.restore(["name", "bogus", "name"])
    assert choice.visible == ["name"]
    assert not choice.toggle("name")
    assert choice.toggle("vendor") and choice.toggle("type")
    assert choice.visible == ["name", "type", "vendor"]
    assert vm.ColumnChoice.restore(None).visible == list(vm.DEFAULT_COLUMNS)


def test_trend_keeps_samples_in_time_order_and_survives_damage() -> None:
    trend = vm.Trend(limit=3)
    for i in range(5):
        trend.add(T0 + timedelta(minutes=i), i)
    trend.add(T0, 99)  # older than the last: ignored
    assert [n for _, n in trend.samples] == [2, 3, 4]
    assert vm.Trend.load(trend.dump()).samples == trend.samples
    assert vm.Trend.load("{not json").samples == []


def test_timeline_merges_changes_actions_and_registration_newest_first() -> None:
    shown = detail(
        agent(1),
        history=[{"epoch": "e", "seq": 1, "at": T0, "change": "new", "fields": []},
                 {"epoch": "e", "seq": 2, "at": T0 + timedelta(hours=2), "change": "changed", "fields": ["flags"]}],
        actions=[{"id": 1, "device_id": "d1", "sighting_id": "s1", "action": "assign_owner", "actor": "alice",
                  "at": T0 + timedelta(hours=1), "owner": "bob", "note": None}],
        registration={"id": 1, "device_id": "d1", "sighting_id": "s1", "status": "pending", "owner": "bob",
                      "purpose": "reports", "created_at": T0 + timedelta(hours=3), "decided_at": None,
                      "decided_by": None, "decision_note": None},
    )
    entries = vm.timeline(shown)
    assert [e.kind for e in entries] == ["registration", "seen", "triage", "seen"]
    assert entries[2].who == "alice" and "bob" in entries[2].what
    assert entries[1].what == "Changed: flags"


def test_chain_runs_from_the_human_through_the_parent_to_systems() -> None:
    parent = detail(agent(0, name="Claude Code", user="zoe", hostname="zoe-laptop"))
    child = detail(
        agent(1, name="github", type="tool_server", user="zoe", parent="s0"),
        mcp_servers=[server(name="github", transport="http", url="https://mcp.example.com/github")],
        endpoints=[{"host": "api.github.com", "port": 443, "provider": None, "via": "sni", "first_seen": 1.0,
                    "last_seen": 1.0, "count": 1}],
    )
    root = vm.chain(child, parent)
    rows = [(depth, node.kind, node.label) for depth, node in vm.walk(root)]
    assert rows[:3] == [(0, "human", "zoe"), (1, "agent", "Claude Code"), (2, "agent", "github")]
    assert (3, "mcp_server", "github") in rows and (4, "system", "https://mcp.example.com/github") in rows
    assert (3, "system", "api.github.com:443") in rows
    assert [n.current for _, n in vm.walk(root) if n.kind == "agent"] == [False, True]


def test_csv_export_defuses_formulas() -> None:
    out = io.StringIO()
    columns = [vm.COLUMN_BY_KEY["name"], vm.COLUMN_BY_KEY["type"]]
    n = vm.export_csv([page(agent(1, name="=HYPERLINK(1)")), page(agent(2), cursor=None)], columns, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert n == 2 and rows == [["Agent", "Type"], ["'=HYPERLINK(1)", "Coding"], ["agent 2", "Coding"]]


FORMULA_CELLS = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "\n=1", "\n", " =1", "   +1", " \t-1",
                 "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff201", "  \uff1d1", "\u3000=1", "\u00a0@x"]


def test_csv_export_neutralises_every_formula_prefix() -> None:
    """OWASP's CSV injection list: = + - @, tab, CR, LF, their full-width forms, also after leading spaces."""
    out = io.StringIO()
    columns = [vm.COLUMN_BY_KEY["name"]]
    agents = [agent(i, name=text) for i, text in enumerate(FORMULA_CELLS)] + [agent(99, name="a=b"),
                                                                                agent(98, name="  plain")]
    vm.export_csv([page(*agents, cursor=None)], columns, out)
    cells = [row[0] for row in csv.reader(io.StringIO(out.getvalue()))][1:]
    assert cells[:len(FORMULA_CELLS)] == ["'" + text for text in FORMULA_CELLS]
    assert cells[len(FORMULA_CELLS):] == ["a=b", "  plain"]


def test_json_export_is_one_document_with_the_collectors_rows() -> None:
    out = io.StringIO()
    progress: list[tuple[int, int]] = []
    n = vm.export_json([page(agent(1), agent(2)), page(cursor=None)], out, {"filter": {"type": "coding"}},
                       lambda done, total: progress.append((done, total)))
    doc = json.loads(out.getvalue())
    assert n == 2 and doc["export"] == {"filter": {"type": "coding"}}
    assert [r["id"] for r in doc["agents"]] == ["s1", "s2"] and progress == [(2, 10), (2, 10)]
    empty = io.StringIO()
    vm.export_json([page(cursor=None)], empty, {})
    assert json.loads(empty.getvalue())["agents"] == []


def test_chain_places_spawned_sightings_under_their_agent() -> None:
    agent_detail = detail(
        agent(0, name="Claude Code", user="zoe"),
        mcp_servers=[server(name="github", transport="stdio", command="npx", args=["server-github"])],
    )
    children = [agent(1, name="github", type="tool_server", parent="s0", running=True, flags=["broad_tools"]),
                agent(2, name="reviewer", type="coding", parent="s0", signature="claude-code"),
                agent(3, name="unrelated", parent="elsewhere")]
    root = vm.chain(agent_detail, None, children)
    me = root.children[0]
    assert [(c.kind, c.label) for c in me.children] == [("mcp_server", "github"), ("agent", "reviewer")]
    assert me.children[0].detail == "stdio: npx server-github; running; risk: Broad tools"
    assert me.children[0].risk == ("broad_tools",)


def test_a_device_row_shows_the_users_the_collector_lists() -> None:
    users = dict(vm.DEVICE_COLUMNS)["User(s)"]
    assert users(device(users=["alice", "bob"])) == "alice, bob"
    assert users(device()) == ""


def test_the_collectors_hourly_trend_is_drawn_once_it_has_two_points() -> None:
    mine = vm.Trend()
    mine.add(T0, 5)
    mine.add(T0 + timedelta(minutes=5), 6)
    base = {"sightings": 1, "devices": 1, "stale_devices": 0, "by_type": [], "by_governed": [], "new_last_day": 0,
            "top_providers": [], "top_ungoverned_devices": []}
    one = api.Overview.model_validate({**base, "trend": [{"at": "2026-01-05T09:00:00Z", "ungoverned": 7}]})
    two = api.Overview.model_validate({**base, "trend": [{"at": "2026-01-05T10:00:00Z", "ungoverned": 8},
                                                     {"at": "2026-01-05T09:00:00Z", "ungoverned": 7}]})
    assert [n for _, n in mine.points(one)] == [5, 6]  # one hourly point: the console's own samples
    assert [n for _, n in mine.points(two)] == [7, 8]
