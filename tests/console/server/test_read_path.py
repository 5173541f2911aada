"""The roster's read path: counts on the first page only, tag-filter counts, free text through the trigram
index (the same answers as the plain LIKE), the caller's own token, the parent filter, the users of a device.
"""

from __future__ import annotations

import fleet
import httpx
import psycopg
import pytest
import servers
from sqlalchemy import create_engine, or_, select
from sqlmodel import col

from console.server.models import Sighting


def _page(collector, **params):
    return collector.agents(**params)


# -- counts -----------------------------------------------------------------------------------------


def test_only_the_first_page_is_counted_unless_asked(device) -> None:
    device.snapshot(*(fleet.sighting(name=f"agent {i}") for i in range(5)))
    collector, mine = device.collector, {"device": device.device_id, "limit": 2}
    first = _page(collector, **mine)
    assert first["count"] == 5 and first["next_cursor"]
    assert _page(collector, **mine, cursor=first["next_cursor"])["count"] is None
    assert _page(collector, **mine, cursor=first["next_cursor"], count="true")["count"] == 5
    assert _page(collector, **mine, count="false")["count"] is None


def test_counts_under_tag_filters_match_the_rows(device) -> None:
    made = [fleet.sighting(name=f"a{i}", flags=("broad_tools",) if i % 2 else (),
                           providers=("openai",) if i % 3 == 0 else ()) for i in range(9)]
    device.snapshot(*made)
    hidden = made[1]
    answer = device.collector.http.post(f"/api/v1/agents/{device.device_id}/{hidden['id']}/actions",
                                        json={"action": "false_positive"}, headers=device.collector.as_admin())
    assert answer.status_code == 201, answer.text
    for params in ({"flag": "broad_tools"}, {"provider": "openai"}, {"flag": "broad_tools", "provider": "openai"},
                   {"flag": "broad_tools", "include_hidden": "true"}, {"flag": "unregistered", "user": "alice"}):
        page = device.collector.agents(device=device.device_id, limit=500, **params)
        assert page["count"] == len(page["data"]), params
    assert device.collector.agents(device=device.device_id, flag="broad_tools")["count"] == 3  # 4, one hidden


def test_fleet_wide_counts_under_common_and_rare_tags_match_the_rows(own_collector, enroll_on) -> None:
    """Without a device filter: a tag on most of the fleet is counted along the roster index, a rare one
    from the tag side; both agree with the rows, hidden ones left out."""
    device = enroll_on(own_collector)
    made = [fleet.sighting(name=f"a{i}", flags=("autonomous",) if i < 2 else (),
                           providers=("openai",) if i % 2 else ()) for i in range(12)]
    device.snapshot(*made)
    for hidden in (made[0], made[3]):
        own_collector.http.post(f"/api/v1/agents/{device.device_id}/{hidden['id']}/actions",
                                json={"action": "false_positive"}, headers=own_collector.as_admin())
    for params, expected in (({"flag": "unregistered"}, 10), ({"flag": "autonomous"}, 1), ({"provider": "openai"}, 5),
                             ({"flag": "autonomous", "provider": "openai"}, 1), ({"flag": "drift"}, 0),
                             ({"flag": "unregistered", "governed": "false", "type": "coding"}, 10),
                             ({"flag": "unregistered", "state": "all", "include_hidden": "true"}, 12)):
        page = own_collector.agents(limit=500, **params)
        assert page["count"] == len(page["data"]) == expected, params


# -- free text --------------------------------------------------------------------------------------

NAMES = ("Claude Code", "claude-desktop", "CLAUDE helper", "Ärger-Agent", "ärger-agent", "naïve bot",
         "100% sure", "under_score", "quote \"it\"", "it's", "a/b\\c", "ab", "x", "Straße", "STRASSE")
QUERIES = ("cla", "CLAUDE", "laude c", "Ärg", "ärg", "RGER", "ïve", "% s", "_sc", "\"it\"", "'s", "/b\\", "ab",
           "b", "aß", "SS", "nothing-like-it", "e", "  ", "ude-d")


def _like_ids(url: str, device_id: str, q: str) -> set[str]:
    """The ids the plain LIKE finds, asked of the store directly (the answer the index must give)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            query = select(Sighting.id).where(col(Sighting.device_id) == device_id, or_(*(
                col(getattr(Sighting, c)).icontains(q, autoescape=True) for c in ("name", "signature", "user", "hostname"))))
            return set(conn.scalars(query))
    finally:
        engine.dispose()


def test_free_text_finds_what_like_finds(device) -> None:
    device.snapshot(*(fleet.sighting(name=n, signature=None, user="svc" if i % 2 else None) for i, n in enumerate(NAMES)))
    collector = device.collector
    for q in QUERIES:
        found = {a["id"] for a in device.agents(q=q)}
        assert found == _like_ids(collector.database_url, device.device_id, q), q
        page = collector.agents(device=device.device_id, q=q)
        assert page["count"] == len(found), q


@pytest.mark.parametrize("param", ["q", "user", "device", "parent", "owner"])
def test_a_nul_in_a_text_filter_is_refused_with_a_reason(collector, param) -> None:
    answer = collector.get("/api/v1/agents", **{param: "abc\x00def"})
    assert answer.status_code == 422 and fleet.reason(answer)


def test_free_text_follows_renames(device) -> None:
    first = fleet.sighting(name="orchestrator-alpha")
    device.snapshot(first)
    assert [a["id"] for a in device.agents(q="alpha")] == [first["id"]]
    device.snapshot(dict(first, name="orchestrator-omega"))
    assert device.agents(q="alpha") == []
    assert [a["id"] for a in device.agents(q="omega")] == [first["id"]]
    assert collector_search(device.collector) in ("fts5_trigram", "pg_trgm")


def collector_search(collector) -> str:
    return str(collector.http.get("/healthz").json()["search"])


def test_without_pg_trgm_the_search_scans_and_says_so(pg_cluster, tmp_path) -> None:
    """A role that may not create extensions: the collector starts, says "scan", and finds the same rows."""
    cluster = pg_cluster  # a PostgreSQL role's privileges: there is no SQLite half to this test
    with psycopg.connect(host=str(cluster.dir), port=cluster.port, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute("CREATE ROLE plain LOGIN")
        conn.execute("CREATE DATABASE plainstore")
    with psycopg.connect(host=str(cluster.dir), port=cluster.port, user="postgres", dbname="plainstore",
                         autocommit=True) as conn:
        conn.execute("GRANT CREATE, USAGE ON SCHEMA public TO plain")
    url = f"postgresql+psycopg://plain@/plainstore?host={cluster.dir}&port={cluster.port}"
    tokens = servers.provision(url)
    process = servers.CollectorProcess(url, log=tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=process.base_url, timeout=30) as http:
            assert http.get("/healthz").json()["search"] == "scan"
            assert "pg_trgm" in (tmp_path / "server.log").read_text()
            host = "host:plain-1"
            enrolled = http.post("/api/v1/enroll", json={"enroll_secret": tokens["enroll_secret"],
                                                         "host_identifier": host, "device": fleet.device_doc(host)})
            key = enrolled.json()["device_key"]
            made = fleet.sighting(name="orchestrator-beta")
            report = fleet.report(fleet.device_doc(host), kind="snapshot", upserts=[made, fleet.sighting(name="x")],
                                  epoch="e1", seq=1)
            assert http.post("/api/v1/reports", json=report, headers={"authorization": f"Bearer {key}"}).is_success
            found = http.get("/api/v1/agents", params={"q": "beta"},
                             headers={"authorization": f"Bearer {tokens['viewer']}"}).json()
            assert [a["id"] for a in found["data"]] == [made["id"]] and found["count"] == 1
    finally:
        process.stop()



# -- the caller, parents, users ---------------------------------------------------------------------


def test_me_names_the_callers_token_and_role(collector) -> None:
    admin = collector.get("/api/v1/me").json()
    viewer = collector.get("/api/v1/me", token=collector.viewer).json()
    assert admin["role"] == "admin" and viewer["role"] == "viewer"
    assert set(admin) == {"name", "role"}


def test_me_refuses_a_device_token(device) -> None:
    answer = device.collector.http.get("/api/v1/me", headers=device.headers())
    assert (answer.status_code, fleet.reason(answer)) == (403, "device_token_not_allowed")


def test_the_parent_filter_lists_the_children(device) -> None:
    parent = fleet.sighting(name="Claude Code")
    children = [fleet.sighting(name=f"mcp {i}", type="tool_server", parent=parent["id"]) for i in range(2)]
    device.snapshot(parent, *children, fleet.sighting(name="lone"))
    page = device.collector.agents(device=device.device_id, parent=parent["id"])
    assert sorted(a["id"] for a in page["data"]) == sorted(c["id"] for c in children) and page["count"] == 2


def test_a_device_row_lists_its_users(device) -> None:
    device.snapshot(fleet.sighting(user="bob"), fleet.sighting(user="alice"), fleet.sighting(user="bob"),
                    fleet.sighting(user=None))
    row, skip = None, 0
    while row is None:  # the shared collector holds the other tests' devices too
        rows = device.collector.get("/api/v1/devices", limit=500, skip=skip).json()["data"]
        assert rows, "the device is not listed"
        row = next((r for r in rows if r["id"] == device.device_id), None)
        skip += len(rows)
    assert row["users"] == ["alice", "bob"]
