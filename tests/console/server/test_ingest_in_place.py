"""A present sighting is updated in place, writing only the indexed columns that moved (SQLite rewrites
the entries of every index whose columns an UPDATE sets): what is stored is still exactly what the report
says, the nudge ladder's clock (``ungoverned_since``) moves as the upsert of the whole row moved it, and
the device's standings are read once per report. On PostgreSQL a report's writes are pipelined: a write the
store refuses still fails its own report alone. In process, on a real store (SQLite file, or the PostgreSQL
test cluster)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterator
from typing import Any

import fleet
import orjson
import pytest
from sqlalchemy import text
from test_ingest_path import Store, apply, open_store
from test_ingest_path import sim_reports as snapshots

from console.server import auth, ingest, ingest_store
from console.server.db import Database
from console.server.writer import StoreUnavailable, Writer

# what ingest keeps of its own rather than from the report
KEPT = {"device_id", "recorded_at", "ungoverned_since"}


@pytest.fixture
def store(new_database: Any) -> Iterator[Store]:
    db, keys = open_store(new_database(), 1)
    yield db, keys
    db.dispose()


def sim_reports(deltas: int) -> list[dict[str, Any]]:
    """A snapshot of one simulated machine, then ``deltas`` daemon-shaped deltas (agents coming and going,
    processes starting and stopping, new endpoints: flags and risk move), as plain JSON data."""
    sim = fleet.SimDevice.build(0, seed=7)
    sim.device_id = "host:sim-0"
    # each copied as it is made: the simulation changes its sightings in place
    return [orjson.loads(orjson.dumps(sim.snapshot())), *(orjson.loads(orjson.dumps(sim.delta(0, 0.3)))
                                                          for _ in range(deltas))]


_versions = itertools.count(int(time.time()))


def sanction(db: Database, signatures: list[str], providers: list[str]) -> None:
    # a version no other test's store has: the collector parses each policy version once per process
    with db.writing() as conn:
        conn.execute(text("UPDATE policy SET sanctioned_signatures = :s, sanctioned_providers = :p, "
                          "version = :v WHERE id = 1"),
                     {"s": orjson.dumps(signatures).decode(), "p": orjson.dumps(providers).decode(),
                      "v": next(_versions)})


def row_of(db: Database, device_id: str, sighting_id: str) -> dict[str, Any]:
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM sighting WHERE device_id = :d AND id = :i"),
                           {"d": device_id, "i": sighting_id}).mappings().one()
    return {k: (bool(v) if k in ("running", "gone", "governed") else v) for k, v in row.items()}


def test_every_reported_sighting_is_stored_as_the_report_says_whether_upserted_or_updated_in_place(
        store: Store) -> None:
    db, (key,) = store
    sanction(db, signatures=[], providers=["anthropic"])  # a new endpoint elsewhere moves flags and risk
    moved = 0
    for seq, report in enumerate(sim_reports(12), start=1):
        now = 1_800_000_000.0 + seq
        with db.engine.connect() as conn:
            policy = ingest_store.current_policy(conn)
        expected = ingest.prepare(report["upserts"], device_id=key.key_id, hostname=report["device"]["hostname"],
                                  policy=policy, now=now, touched=seq)
        before = {d["id"]: row_of(db, key.key_id, d["id"]) for d in report["upserts"] if seq > 1
                  and _exists(db, key.key_id, d["id"])}
        assert apply(db, key, report, ahead=seq > 1, now=now) == "applied"
        for row in expected.rows:
            got = row_of(db, key.key_id, row["id"])
            assert {k: v for k, v in got.items() if k not in KEPT} == {k: v for k, v in row.items() if k not in KEPT}
            old = before.get(row["id"])
            if old is not None and not old["gone"]:
                assert got["recorded_at"] == old["recorded_at"]  # an update in place keeps when it was first stored
                moved += any(old[c] != got[c] for c in ("flags", "risk", "servers", "governed", "name"))
    assert moved  # some present sightings had indexed columns move: the in-place path with them ran


def _exists(db: Database, device_id: str, sighting_id: str) -> bool:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM sighting WHERE device_id = :d AND id = :i"),
                            {"d": device_id, "i": sighting_id}).first() is not None


def send(db: Database, key: auth.Presented, seq: int, upserts: list[dict[str, Any]], now: float) -> None:
    report = fleet.report(fleet.device_doc("host:sim-0"), seq=seq, kind="snapshot" if seq == 1 else "delta",
                          upserts=upserts)
    with db.writing() as conn:
        assert ingest_store.apply_report(conn, key, orjson.loads(orjson.dumps(report)), now).result == "applied"


def test_the_ladder_clock_moves_as_an_upsert_of_the_whole_row_moved_it(store: Store) -> None:
    db, (key,) = store
    sanction(db, signatures=["claude-code"], providers=["anthropic"])  # Claude Code calling only it is governed
    agent = fleet.sighting(id="c1a0de0000000000000a", providers=("anthropic",))
    other = fleet.sighting(id="c1a0de0000000000000b", signature=None, name="script.py", type="unknown",
                           providers=("openai",))
    send(db, key, 1, [agent, other], now=1000.0)
    assert row_of(db, key.key_id, agent["id"])["governed"]
    assert row_of(db, key.key_id, agent["id"])["ungoverned_since"] == 1000.0  # stored governed: when it was stored
    assert not row_of(db, key.key_id, other["id"])["governed"]

    # a refresh (no indexed column moves) leaves the clock, and leaves a NULL one NULL as before
    with db.writing() as conn:
        conn.execute(text("UPDATE sighting SET ungoverned_since = NULL WHERE id = :i"), {"i": other["id"]})
    send(db, key, 2, [{**agent, "running": False, "processes": []}, {**other, "running": False, "processes": []}],
         now=2000.0)
    assert row_of(db, key.key_id, agent["id"])["ungoverned_since"] == 1000.0
    assert row_of(db, key.key_id, other["id"])["ungoverned_since"] is None

    # the agent turns out to be another, unsanctioned one: its clock restarts; the other's flags move (a key
    # of its own: personal_credential) and its NULL is filled
    called = fleet.sighting(id=agent["id"], signature="aider", name="Aider", providers=("anthropic", "openai"))
    louder = fleet.sighting(id=other["id"], signature=None, name="script.py", type="unknown",
                            providers=("openai",), fingerprints=(fleet.fingerprint(random.Random(1)),))
    send(db, key, 3, [called, louder], now=3000.0)
    stored = row_of(db, key.key_id, agent["id"])
    assert not stored["governed"] and "unsanctioned_provider" in orjson.loads(stored["flags"])
    assert stored["ungoverned_since"] == 3000.0
    assert row_of(db, key.key_id, other["id"])["ungoverned_since"] == 3000.0

    # still ungoverned, flags moving again: the spell goes on, its clock stays
    send(db, key, 4, [fleet.sighting(id=agent["id"], signature="aider", name="Aider",
                                     providers=("anthropic", "openai", "mistral")),
                      {**louder, "name": "script2.py"}], now=4000.0)
    assert row_of(db, key.key_id, agent["id"])["ungoverned_since"] == 3000.0
    assert row_of(db, key.key_id, other["id"])["ungoverned_since"] == 3000.0
    assert row_of(db, key.key_id, other["id"])["name"] == "script2.py"

    # governed again, then ungoverned again: a new spell
    send(db, key, 5, [agent], now=5000.0)
    assert row_of(db, key.key_id, agent["id"])["governed"]
    assert row_of(db, key.key_id, agent["id"])["ungoverned_since"] == 3000.0
    send(db, key, 6, [called], now=6000.0)
    assert row_of(db, key.key_id, agent["id"])["ungoverned_since"] == 6000.0
    with db.engine.connect() as conn:  # the tags followed the flags
        tags = {v for k, v in conn.execute(text("SELECT kind, value FROM sighting_tag WHERE sighting_id = :i"),
                                           {"i": agent["id"]}) if k == "flag"}
    assert tags == set(orjson.loads(row_of(db, key.key_id, agent["id"])["flags"]))


def test_sqlites_indexes_hold_what_the_in_place_updates_wrote(tmp_path: Any) -> None:
    db, (key,) = open_store(f"sqlite:///{tmp_path}/collector.sqlite3", 1)
    try:
        for report in sim_reports(12):
            assert apply(db, key, report, ahead=False, now=time.time()) == "applied"
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            # an index answers what the table holds: the risk and flags an update in place wrote
            by_index = conn.exec_driver_sql("SELECT id, risk FROM sighting INDEXED BY ix_sighting_sort_risk "
                                            "WHERE risk >= 0 ORDER BY id").all()
            by_table = conn.exec_driver_sql("SELECT id, risk FROM sighting NOT INDEXED ORDER BY id").all()
        assert by_index == by_table
    finally:
        db.dispose()


def test_a_report_reads_its_devices_standings_once_on_sqlite(tmp_path: Any) -> None:
    db, (key,) = open_store(f"sqlite:///{tmp_path}/collector.sqlite3", 1)
    try:
        reports = sim_reports(3)
        for seq, report in enumerate(reports[:-1], start=1):
            assert apply(db, key, report, ahead=False, now=1000.0 + seq) == "applied"
        last = reports[-1]
        assert any(s["parent"] for s in last["upserts"])  # a chain's member too: its root's standing is asked for
        statements: list[str] = []
        with db.writing() as conn:
            conn.connection.driver_connection.set_trace_callback(statements.append)  # type: ignore[union-attr]
            try:
                assert ingest_store.apply_report(conn, key, last, 2000.0).result == "applied"
            finally:
                conn.connection.driver_connection.set_trace_callback(None)  # type: ignore[union-attr]
        assert len([s for s in statements if "FROM sighting_triage" in s]) == 1, statements
    finally:
        db.dispose()


_PLANTED = {  # the database refuses one device's history rows: an error only the store can raise
    "sqlite": ["CREATE TRIGGER planted BEFORE INSERT ON sighting_history WHEN NEW.device_id = :d "
               "BEGIN SELECT RAISE(ABORT, 'planted failure'); END"],
    "postgresql": ["CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF NEW.device_id = current_setting('planted.device') THEN RAISE EXCEPTION 'planted failure'; "
                   "END IF; RETURN NEW; END $$",
                   "CREATE TRIGGER planted BEFORE INSERT ON sighting_history FOR EACH ROW EXECUTE FUNCTION planted()",
                   "ALTER DATABASE {database} SET planted.device = :d"],
}


@pytest.mark.timeout(120)
def test_a_write_the_store_refuses_fails_its_own_report_alone(new_database: Any) -> None:
    """A batch of reports shares one transaction; on PostgreSQL a report's writes are pipelined, so the
    error of one comes back later than the statement that caused it. The batch is rolled back and each
    report applied alone: the others are stored, the refused one is not (the device retries it)."""
    url = new_database()
    db, keys = open_store(url, 3)
    bad = keys[1].key_id
    with db.writing() as conn:
        for statement in _PLANTED[db.engine.dialect.name]:
            statement = statement.replace("{database}", str(db.engine.url.database))
            conn.exec_driver_sql(statement.replace(":d", f"'{bad}'"))  # a key id: hex, from auth.issue
    db.engine.dispose()  # PostgreSQL: new sessions read the database's setting
    ingest._policy_cache.clear()
    writer = Writer(db)
    reports = [snapshots(index, 0)[0] for index in range(len(keys))]

    async def send_all() -> list[Any]:
        pending = [asyncio.ensure_future(writer.apply(key, report)) for key, report in zip(keys, reports, strict=True)]
        while writer._queue.qsize() != len(keys):  # all queued before the writer starts: one batch
            await asyncio.sleep(0.01)
        writer.start()
        return list(await asyncio.gather(*pending, return_exceptions=True))

    try:
        outcomes = asyncio.run(send_all())
    finally:
        writer.stop()
    assert isinstance(outcomes[1], StoreUnavailable)
    assert [o.result for i, o in enumerate(outcomes) if i != 1] == ["applied", "applied"]
    with db.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT device_id, count(*) FROM sighting GROUP BY device_id")).all())
        seqs = dict(conn.execute(text("SELECT id, seq FROM device")).all())
    db.dispose()
    assert set(stored) == {keys[0].key_id, keys[2].key_id}
    assert seqs[bad] == 0 and seqs[keys[0].key_id] == seqs[keys[2].key_id] == 1
