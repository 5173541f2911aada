"""An action on many sightings re-assesses each one, and each sighting of the chains under them, once:
the work of an action on a filter is proportional to the sightings it touches, its statements to the
chunks and the levels of the chains, not to the sightings; verdicts that do not change are not written,
and the flag tags stay the flags' after the action and after its undo.

On a real SQLite store filled through the collector's own ingest code; the action is taken as
``POST /agents/actions/filter`` takes it (console/server/routes/triage.py): a chunk of the filter at a
time, then one re-assessment. (tests/console/server/test_filter_actions.py and test_chain_cover.py take
the same actions through a real collector on SQLite and PostgreSQL.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fleet
import orjson
import pytest
import servers
from sqlalchemy import Connection, event, select
from sqlalchemy.orm import Session

from console.server import auth, chains, ingest_store, roster, triage
from console.server.db import Database
from console.server.models import Device, Sighting, SightingTag, TriageAction, TriageActionCreate

pytestmark = pytest.mark.timeout(120)

DEVICES = 12
MCP = [{"name": f"server-{n}", "transport": "stdio", "command": "npx", "args": ["-y", f"pkg-{n}"], "url": None,
        "source": "/home/alice/.claude.json", "enabled": True, "project": None} for n in range(2)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Database, list[triage.Key]]]:
    """Each device: a coding agent (the root), a tool server for each of its two MCP servers, a coding
    sub-agent under it (a sighting the filter "coding" matches that is also in the root's chain) and a
    tool server under the sub-agent (two levels down). Returns the store and every sighting's key."""
    url = f"sqlite:///{tmp_path / 'collector.sqlite3'}"
    servers.provision(url)
    db = Database(url, pool_size=2)
    keys: list[triage.Key] = []
    with db.writing() as conn:
        presented = []
        for i in range(DEVICES):
            made = auth.issue(auth.DEVICE_PREFIX)
            conn.execute(Device.__table__.insert(), [Device(  # type: ignore[attr-defined]
                id=f"d{i:015d}", host_identifier=f"host:ws-{i:03d}", key_id=made.key_id, key_salt=made.salt,
                key_hash=made.hash, enrolled_at=time.time(), hostname=f"ws-{i:03d}", os="linux").model_dump()])
            presented.append(auth.parse(made.token))
        for i in range(DEVICES):
            root = fleet.sighting(id=f"root-{i}", providers=("anthropic",), mcp_servers=MCP)
            sub = fleet.sighting(id=f"sub-{i}", name="reviewer", parent=root["id"], providers=("anthropic",),
                                 mcp_servers=MCP[:1])
            chain = [fleet.sighting(id=f"tool-{i}-{n}", name=m["name"], signature=None, type="tool_server",
                                    parent=root["id"], mcp_servers=[m]) for n, m in enumerate(MCP)]
            chain += [sub, fleet.sighting(id=f"deep-{i}", name=MCP[0]["name"], signature=None, type="tool_server",
                                          parent=sub["id"], mcp_servers=MCP[:1])]
            report = fleet.report(fleet.device_doc(f"host:ws-{i:03d}"), kind="snapshot", upserts=[root, *chain])
            assert ingest_store.apply_report(conn, presented[i], report).result == "applied"
            keys += [(f"d{i:015d}", s["id"]) for s in (root, *chain)]
    yield db, keys
    db.dispose()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 rather than 500 or 2,000, so that this small fleet spans many of them, as 22,000 agents
    do, and a sub-agent's chunk is not its root's."""
    monkeypatch.setattr(roster, "_CHUNK", 7)
    monkeypatch.setattr(triage, "_CHUNK", 7)
    monkeypatch.setattr(chains, "_CHUNK", 7)


def approve_coding(conn: Connection) -> int:
    """What ``POST /agents/actions/filter`` does with {"action": "approve", "filter": {"type": ["coding"]}}."""
    action = TriageActionCreate(action="approve")
    plan = roster.Plan(Session(bind=conn), roster.RosterFilter(type=["coding"]))
    batch_id = triage.open_batch(conn, action, "admin", 0, time.time(), "")
    touched: list[triage.Key] = []
    count = sum(len(triage.apply_actions(conn, keys, action, "admin", batch_id=batch_id, checked=True,
                                         deferred=touched)) for keys in plan.chunks())
    triage.reassess(conn, touched)
    return count


def state(conn: Connection) -> dict[triage.Key, tuple[bool, list[str], set[tuple[str, str]]]]:
    """Each sighting's governed, flags and tags."""
    tags: dict[triage.Key, set[tuple[str, str]]] = {}
    for d, s, kind, value in conn.execute(select(SightingTag.__table__)):  # type: ignore[attr-defined]
        tags.setdefault((d, s), set()).add((kind, value))
    return {(d, s): (bool(g), orjson.loads(f), tags.get((d, s), set())) for d, s, g, f in conn.execute(
        select(Sighting.device_id, Sighting.id, Sighting.governed, Sighting.flags))}  # type: ignore[call-overload]


def tags_are_the_flags(conn: Connection) -> None:
    providers = {(d, s): orjson.loads(p) for d, s, p in conn.execute(
        select(Sighting.device_id, Sighting.id, Sighting.providers))}  # type: ignore[call-overload]
    for key, (_, flags, tags) in state(conn).items():
        assert tags == set(triage.tags_of(flags, providers[key])), key


def counted_assessments(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every call of the real ``triage.assess_stored`` (a spy: it calls through, nothing is replaced)."""
    calls: list[str | None] = []
    real = triage.assess_stored

    def spy(signature: str | None, *args: Any, **kwargs: Any) -> Any:
        calls.append(signature)
        return real(signature, *args, **kwargs)

    monkeypatch.setattr(triage, "assess_stored", spy)
    return calls


def test_a_filter_action_and_its_undo_assess_each_sighting_of_the_chains_once(
        store: tuple[Database, list[triage.Key]], small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    db, keys = store
    calls = counted_assessments(monkeypatch)
    with db.writing() as conn:
        assert approve_coding(conn) == 2 * DEVICES  # the roots and their sub-agents
    assert len(calls) == len(keys)  # 60 sightings, 60 assessments (chunk by chunk, then chain by chain: 104)
    with db.engine.connect() as conn:
        after = state(conn)
    for key in keys:
        governed, flags, _ = after[key]
        assert governed and "unregistered" not in flags, key  # approved, or covered by its approved root
    calls.clear()
    with db.writing() as conn:
        assert triage.undo(conn, "admin")[1] == 2 * DEVICES
    assert len(calls) == len(keys)
    with db.engine.connect() as conn:
        undone = state(conn)
    assert all(not undone[k][0] and "unregistered" in undone[k][1] for k in keys if k[1].startswith("tool-"))


def test_an_actions_statements_do_not_grow_with_its_sightings(store: tuple[Database, list[triage.Key]]) -> None:
    db, keys = store
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.writing() as conn:
            approve_coding(conn)
        approving = list(statements)
        statements.clear()
        with db.writing() as conn:
            triage.undo(conn, "admin")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # one chunk of each: a statement per read, per level of the chains and per kind of write, whatever
    # the count (an audit row a statement made 43 here, and 24,358 for all 22,816 coding agents)
    assert len(approving) <= 24, approving  # 20 today
    assert len(statements) <= 24, statements  # 18
    assert sum(s.startswith("UPDATE sighting") for s in approving) <= 2  # the verdicts: one executemany
    assert len(keys) > 30


def test_flag_tags_follow_the_flags_and_the_undo_restores_every_verdict(
        store: tuple[Database, list[triage.Key]], small_chunks: None) -> None:
    db, _ = store
    with db.engine.connect() as conn:
        before = state(conn)
        tags_are_the_flags(conn)
    with db.writing() as conn:
        approve_coding(conn)
        tags_are_the_flags(conn)
        assert {k for k, v in state(conn).items() if v != before[k]} == set(before)  # every one changed
        assert triage.reassess(conn, list(before)) == 0  # nothing left to write: unchanged verdicts are not
    with db.writing() as conn:
        triage.undo(conn, "admin")
        tags_are_the_flags(conn)
        assert state(conn) == before


def test_the_audit_rows_of_a_chunk_come_back_with_their_own_ids(store: tuple[Database, list[triage.Key]]) -> None:
    db, keys = store
    with db.writing() as conn:
        first = triage.apply_actions(conn, keys[:5], TriageActionCreate(action="note", note="seen"), "admin")
        second = triage.apply_actions(conn, keys[5:9], TriageActionCreate(action="note", note="again"), "admin")
        stored = {i: (d, s, n) for i, d, s, n in conn.execute(select(
            TriageAction.id, TriageAction.device_id, TriageAction.sighting_id, TriageAction.note))}  # type: ignore[call-overload]
    for record in first + second:
        assert stored[record["id"]] == (record["device_id"], record["sighting_id"], record["note"])
    assert [(r["device_id"], r["sighting_id"]) for r in first + second] == keys[:9]
