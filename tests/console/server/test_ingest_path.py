"""The ingest write path in process, on a real store (SQLite file, or the PostgreSQL test cluster): a
report prepared ahead of the write lock is stored exactly as one prepared inside it, a policy change in
between is honoured, removals read only the device's rows, and a server checkpoints SQLite's WAL from
a thread of its own."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fleet
import orjson
import pytest
from sqlalchemy import text

from console import governance
from console.server import auth, ingest, ingest_store
from console.server.db import Database, migrate
from console.server.models import Device

Store = tuple[Database, list[auth.Presented]]


def open_store(url: str, devices: int) -> Store:
    """A migrated store with ``devices`` enrolled devices (host:sim-N), and their keys."""
    db = Database(url, pool_size=2)
    migrate(db)
    keys = []
    with db.write_session() as session:
        for index in range(devices):
            made = auth.issue(auth.DEVICE_PREFIX)
            host = f"host:sim-{index}"
            session.add(Device(id=made.key_id, host_identifier=host, key_id=made.key_id, key_salt=made.salt,
                               key_hash=made.hash, enrolled_at=time.time(), hostname=host.removeprefix("host:"),
                               os="linux", agentroster_version="0.1.0"))
            keys.append(auth.parse(made.token))
        session.commit()
    return db, [k for k in keys if k is not None]


@pytest.fixture
def store(new_database: Any) -> Iterator[Store]:
    db, keys = open_store(new_database(), 2)
    yield db, keys
    db.dispose()


def sim_reports(index: int, deltas: int) -> list[dict[str, Any]]:
    """A snapshot and then ``deltas`` deltas of one simulated machine, as plain JSON data."""
    sim = fleet.SimDevice.build(index, seed=11)
    sim.device_id = f"host:sim-{index}"
    documents = [sim.snapshot(), *(sim.delta(20, 0.3) for _ in range(deltas))]
    return [orjson.loads(orjson.dumps(d)) for d in documents]


def apply(db: Database, key: auth.Presented, report: dict[str, Any], *, ahead: bool, now: float) -> str:
    """Apply as the server does: prepared by the request (``ahead``), or inside the transaction."""
    prepared = None
    if ahead:
        policy = ingest.cached_policy()
        assert policy is not None
        prepared = ingest.prepare_report(report, policy, now)
    with db.writing() as conn:
        return ingest_store.apply_report(conn, key, report, now, prepared).result


def stored(db: Database, device_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """A device's sightings (but for their device id), history and tags."""
    with db.engine.connect() as conn:
        sightings = conn.execute(text("SELECT * FROM sighting WHERE device_id = :d ORDER BY id"), {"d": device_id})
        return {
            "sighting": [tuple(v for k, v in r.items() if k != "device_id") for r in sightings.mappings()],
            "history": [tuple(r) for r in conn.execute(text(
                "SELECT sighting_id, epoch, seq, at, change, fields FROM sighting_history WHERE device_id = :d "
                "ORDER BY sighting_id, seq, change"), {"d": device_id})],
            "tags": [tuple(r) for r in conn.execute(text(
                "SELECT sighting_id, kind, value FROM sighting_tag WHERE device_id = :d "
                "ORDER BY sighting_id, kind, value"), {"d": device_id})],
        }


def test_a_report_prepared_ahead_is_stored_as_one_prepared_in_the_transaction(store: Store) -> None:
    db, (inside, ahead) = store
    reports = sim_reports(0, 6)
    for seq, report in enumerate(reports, start=1):
        now = 1_800_000_000.0 + seq
        assert apply(db, inside, report, ahead=False, now=now) == "applied"
        twin = {**report, "device": {**report["device"], "id": "host:sim-1"}}  # the same machine, twice
        assert apply(db, ahead, twin, ahead=True, now=now) == "applied"
    first, second = stored(db, inside.key_id), stored(db, ahead.key_id)
    assert len(first["history"]) > len(first["sighting"])  # the deltas changed, added and removed sightings
    assert second == first


def test_a_policy_change_after_a_report_was_prepared_decides_its_governance(store: Store) -> None:
    db, (key, _) = store
    snapshot, delta = sim_reports(0, 1)
    assert apply(db, key, snapshot, ahead=False, now=time.time()) == "applied"
    prepared = ingest.prepare_report(delta, ingest.cached_policy() or pytest.fail("no policy read"), time.time())
    assert all("unregistered" in orjson.loads(row["flags"]) for row in prepared.rows)
    signatures = sorted({s["signature"] for s in delta["upserts"] if s["signature"]})
    with db.writing() as conn:  # what PUT /api/v1/policy does, between the request and the write
        conn.execute(text("UPDATE policy SET sanctioned_signatures = :s, version = version + 1 WHERE id = 1"),
                     {"s": orjson.dumps(signatures).decode()})
    with db.writing() as conn:
        assert ingest_store.apply_report(conn, key, delta, time.time(), prepared).result == "applied"
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, governed, flags FROM sighting WHERE device_id = :d AND signature IS "
                                 "NOT NULL AND NOT gone"), {"d": key.key_id}).all()
    carried = {s["id"] for s in delta["upserts"] if s["signature"]}
    assert carried
    for sid, governed, flags in rows:
        if sid in carried:
            assert governed and "unregistered" not in orjson.loads(flags), sid


def flags_by_id(db: Database, device_id: str) -> dict[str, list[str]]:
    with db.engine.connect() as conn:
        return {sid: orjson.loads(flags) for sid, flags in conn.execute(
            text("SELECT id, flags FROM sighting WHERE device_id = :d"), {"d": device_id})}


def uses(report: dict[str, Any], server: str) -> set[str]:
    return {s["id"] for s in report["upserts"] if any(m["name"] == server for m in s["mcp_servers"])}


def test_a_risky_tool_pattern_added_after_a_report_was_prepared_flags_its_sightings(store: Store) -> None:
    db, (key, _) = store
    snapshot, delta = sim_reports(0, 1)
    assert apply(db, key, snapshot, ahead=False, now=time.time()) == "applied"
    prepared = ingest.prepare_report(delta, ingest.cached_policy() or pytest.fail("no policy read"), time.time())
    assert not any("broad_tools" in orjson.loads(r["flags"]) for r in prepared.rows if r["type"] == "coding")
    with db.writing() as conn:  # what PUT /api/v1/policy does, between the request and the write
        conn.execute(text("UPDATE policy SET risky_tools = :r, version = version + 1 WHERE id = 1"),
                     {"r": orjson.dumps(["*playwright*"]).decode()})
    with db.writing() as conn:
        assert ingest_store.apply_report(conn, key, delta, time.time(), prepared).result == "applied"
    flags = flags_by_id(db, key.key_id)
    carried = uses(delta, "playwright")
    assert carried
    for doc in delta["upserts"]:
        assert ("broad_tools" in flags[doc["id"]]) == (doc["id"] in carried or "broad_tools" in doc["flags"]), doc


def test_sightings_stored_without_the_devices_own_flags_lose_a_policys_broad_tools_again(store: Store) -> None:
    db, (key, _) = store
    snapshot = sim_reports(0, 0)[0]
    assert apply(db, key, snapshot, ahead=False, now=time.time()) == "applied"
    before, original = stored(db, key.key_id), flags_by_id(db, key.key_id)
    with db.writing() as conn:  # as a collector that did not keep the device's flags apart stored them
        for sid, detail in conn.execute(text("SELECT id, detail FROM sighting WHERE device_id = :d"),
                                        {"d": key.key_id}).all():
            kept = {k: v for k, v in orjson.loads(detail).items() if k != "device_flags"}
            conn.execute(text("UPDATE sighting SET detail = :t WHERE device_id = :d AND id = :i"),
                         {"t": orjson.dumps(kept).decode(), "d": key.key_id, "i": sid})
    sent = {s["id"]: set(s["flags"]) for s in snapshot["upserts"]}
    assert any("broad_tools" in f for f in sent.values())  # some the device flagged itself
    with db.writing() as conn:
        assert ingest_store.recompute_governance(conn, governance.Policy.of(risky_tools=["playwright"])) > 0
    flags = flags_by_id(db, key.key_id)
    for sid, own in sent.items():
        assert ("broad_tools" in flags[sid]) == (sid in uses(snapshot, "playwright") or "broad_tools" in own), sid
    with db.writing() as conn:
        ingest_store.recompute_governance(conn, governance.Policy())
    assert stored(db, key.key_id)["tags"] == before["tags"]
    assert flags_by_id(db, key.key_id) == original


def test_removing_sightings_reads_only_the_devices_rows_on_sqlite(tmp_path: Path) -> None:
    db, _ = open_store(f"sqlite:///{tmp_path}/collector.sqlite3", 0)
    try:
        statements = ingest_store._sql_for("sqlite")
        with db.engine.connect() as conn:
            raw = conn.connection.driver_connection
            for name in ("gone_ids", "gone_untouched", "prior"):
                plan = " ".join(str(r[3]) for r in raw.execute(
                    "EXPLAIN QUERY PLAN " + statements[name],
                    {"device_id": "d", "ids": '["a"]', "now": 1.0, "touched": 1, "since": 1, "yes": True}))
                assert "sqlite_autoindex_sighting_1 (device_id=?" in plan, (name, plan)
    finally:
        db.dispose()


def checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "agentroster-checkpoint"]


@pytest.mark.timeout(60)
def test_a_server_checkpoints_the_sqlite_wal_from_its_own_thread(tmp_path: Path) -> None:
    db, (key,) = open_store(f"sqlite:///{tmp_path}/collector.sqlite3", 1)
    path = db.engine.url.database
    assert path is not None
    before = checkpointers()
    db.start_checkpoints(0.05)
    try:
        with db.engine.connect() as conn:  # commits no longer checkpoint by themselves
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() > 1000
        size = os.path.getsize(path)
        for report in sim_reports(0, 3):
            assert apply(db, key, report, ahead=False, now=time.time()) == "applied"
        while os.path.getsize(path) <= size:  # only a checkpoint writes pages into the database file
            time.sleep(0.02)
    finally:
        db.dispose()
    assert checkpointers() == before


@pytest.mark.timeout(60)
def test_reports_that_arrive_while_another_process_writes_share_one_commit(tmp_path: Path) -> None:
    """The writer gathers its batch once it holds the store's write lock: what queued while another
    collector process wrote (a second Database on the same file stands in for it: its own lock file
    descriptor) goes into one transaction, each report still applied."""
    import asyncio

    from sqlalchemy import event

    from console.server.writer import Writer

    url = f"sqlite:///{tmp_path}/collector.sqlite3"
    db, keys = open_store(url, 6)
    other = Database(url, pool_size=1)
    commits: list[float] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(time.time()))
    ingest._policy_cache.clear()
    writer = Writer(db)
    writer.start()
    reports = [sim_reports(index, 0)[0] for index in range(len(keys))]

    async def send_all() -> list[ingest.Outcome]:
        with other.write_lock():  # the other process is writing
            pending = [asyncio.ensure_future(writer.apply(key, report)) for key, report in zip(keys, reports, strict=True)]
            while writer._queue.qsize() != len(keys) - 1:  # the first is taken, waiting for the lock
                await asyncio.sleep(0.01)
        return list(await asyncio.gather(*pending))

    try:
        outcomes = asyncio.run(send_all())
    finally:
        writer.stop()
        other.dispose()
    assert [o.result for o in outcomes] == ["applied"] * len(keys)
    assert len(commits) == 1
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT device_id) FROM sighting")).scalar() == len(keys)
    db.dispose()
