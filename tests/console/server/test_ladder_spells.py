"""The nudge ladder as the employee and the admin meet it, over a real collector on SQLite and PostgreSQL:
its clock runs from when an agent became ungoverned (again), a review due reaches the employee once, the
escalated agents are in the overview, the inbox says whether to notify, and two concurrent connections
make one nudge.

Time is moved by writing timestamps into the store (``recorded_at``, ``ungoverned_since``, ``decided_at``,
``ladder_since``), never by sleeping: the collector computes the ladder at read time.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fleet
import pytest
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.timeout(120)
DAY = 86400.0
LADDER = {"ladder": "escalate", "notify_after_days": 0, "remind_after_days": 7, "deadline_days": 7,
          "escalate_after_days": 3}


def in_store(collector, sql: str, **params: Any) -> None:
    engine = create_engine(collector.database_url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def stored_long_ago(device, sighting_id: str, days: float) -> None:
    """As if the collector had first stored the sighting, ungoverned, ``days`` ago."""
    in_store(device.collector, "UPDATE sighting SET recorded_at = :at, ungoverned_since = :at "
             "WHERE device_id = :d AND id = :s", at=time.time() - days * DAY, d=device.device_id, s=sighting_id)


def put_policy(collector, **body: Any) -> dict[str, Any]:
    answer = collector.http.put("/api/v1/policy", json=body, headers=collector.as_admin())
    assert answer.status_code == 200, answer.text
    in_store(collector, "UPDATE policy SET ladder_since = 0")  # as if the ladder had been on for long
    return dict(answer.json())


def register_and_approve(device, sighting_id: str) -> dict[str, Any]:
    sent = device.collector.http.post("/api/v1/registrations", headers=device.headers(), json={
        "sighting_id": sighting_id, "owner": "alice@example.com", "purpose": "refactors the billing service",
        "providers": ["anthropic"], "tools": [], "autonomy": "supervised"})
    assert sent.status_code == 201, sent.text
    answer = device.collector.http.post(f"/api/v1/registrations/{sent.json()['id']}/approve", json={"note": "fine"},
                                        headers=device.collector.as_admin())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def agent(device, sighting_id: str) -> dict[str, Any]:
    return next(a for a in device.agents() if a["id"] == sighting_id)


def inbox_answer(device, ack: int = 0) -> dict[str, Any]:
    answer = device.collector.http.get("/api/v1/inbox", params={"ack": ack}, headers=device.headers())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def inbox(device, ack: int = 0) -> list[dict[str, Any]]:
    return list(inbox_answer(device, ack)["data"])


def seconds(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


# -- the clock: from when the agent became ungoverned (again) -------------------------------------------------


def test_a_drift_restarts_the_ladder_of_an_approved_agent_and_nudges_again(own_collector, enroll_on) -> None:
    put_policy(own_collector, **LADDER)
    device = enroll_on(own_collector)
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    stored_long_ago(device, made["id"], 30)
    assert agent(device, made["id"])["ladder"] == "escalate"  # ungoverned for 30 days
    first_spell = inbox(device)
    assert sorted(i["kind"] for i in first_spell) == ["notify", "remind"]
    register_and_approve(device, made["id"])
    assert agent(device, made["id"])["ladder"] is None
    before = time.time()
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai")))  # a provider not declared
    after = time.time()
    row = agent(device, made["id"])
    assert row["governed"] is False and "drift" in row["flags"]
    # its clock starts at the drift, not when the collector first stored it 30 days ago
    assert before - 1 <= seconds(row["ungoverned_since"]) <= after + 1
    assert (row["ladder"], row["overdue"]) == ("notify", False)
    assert seconds(row["ladder_due"]) == pytest.approx(seconds(row["ungoverned_since"]) + 7 * DAY, abs=5)
    # the employee is told again about this spell, once (the first spell's nudges were acknowledged)
    arrived = inbox(device, ack=max(i["id"] for i in first_spell))
    nudges = [(i["kind"], i["sighting_id"]) for i in arrived if i["kind"] in ("notify", "remind")]
    assert nudges == [("notify", made["id"])]
    assert inbox(device, ack=max(i["id"] for i in arrived)) == []


def test_a_policy_that_stops_covering_an_agent_starts_its_clock_then(own_collector, enroll_on) -> None:
    put_policy(own_collector, sanctioned_signatures=["claude-code"], **LADDER)
    device = enroll_on(own_collector)
    made = fleet.sighting()
    device.snapshot(made)
    stored_long_ago(device, made["id"], 30)
    governed = agent(device, made["id"])
    assert (governed["governed"], governed["ladder"], governed["ungoverned_since"]) == (True, None, None)
    before = time.time()
    put_policy(own_collector, sanctioned_signatures=[])
    row = agent(device, made["id"])
    assert row["governed"] is False
    assert seconds(row["ungoverned_since"]) >= before - 1
    assert (row["ladder"], row["overdue"]) == ("notify", False)
    names = [a["id"] for a in own_collector.agents(device=device.device_id, ladder="escalate")["data"]]
    assert names == []  # the roster's rung filter reads the same clock
    assert [a["id"] for a in own_collector.agents(device=device.device_id, ladder="notify")["data"]] == [made["id"]]


def test_an_agent_that_stays_ungoverned_keeps_its_clock_across_reports(own_collector, enroll_on) -> None:
    put_policy(own_collector, **LADDER)
    device = enroll_on(own_collector)
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    stored_long_ago(device, made["id"], 20)
    device.snapshot(fleet.sighting(id=made["id"], providers=("anthropic", "openai")))  # changed, still ungoverned
    row = agent(device, made["id"])
    assert (row["ladder"], row["overdue"]) == ("escalate", True)
    assert seconds(row["ungoverned_since"]) == pytest.approx(time.time() - 20 * DAY, abs=60)


# -- review due reaches the employee --------------------------------------------------------------------------


def test_a_review_due_reaches_the_employee_once(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    registration = register_and_approve(device, made["id"])
    decision = inbox(device)
    assert [i["kind"] for i in decision] == ["decision"]
    acked = decision[0]["id"]
    assert inbox(device, ack=acked) == []  # not due yet
    decided = time.time() - 181 * DAY
    in_store(own_collector, "UPDATE registration SET decided_at = :at WHERE id = :id", at=decided,
             id=registration["id"])
    items = inbox(device, ack=acked)
    assert [(i["kind"], i["sighting_id"], i["user"], i["status"]) for i in items] == \
        [("review", made["id"], "alice", "review_due")]
    by = datetime.fromtimestamp(decided + 180 * DAY + 7 * DAY, UTC).strftime("%Y-%m-%d")
    assert f"#{registration['id']}" in items[0]["text"] and f"needs re-attesting by {by}" in items[0]["text"]
    assert [i["id"] for i in inbox(device, ack=acked)] == [items[0]["id"]]  # given again until acknowledged
    assert inbox(device, ack=items[0]["id"]) == []  # and never made twice
    sent = own_collector.get("/api/v1/inbox/sent", device=device.device_id).json()["data"]
    assert [i["kind"] for i in sent].count("review") == 1


def test_a_review_long_past_when_first_gathered_is_not_sent(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    made = fleet.sighting(providers=("anthropic",))
    device.snapshot(made)
    registration = register_and_approve(device, made["id"])
    in_store(own_collector, "UPDATE registration SET decided_at = :at WHERE id = :id", at=time.time() - 400 * DAY,
             id=registration["id"])
    assert [i["kind"] for i in inbox(device)] == []  # its decision too is history by now


# -- escalation reaches the admin -----------------------------------------------------------------------------


def test_the_overview_counts_and_lists_the_escalated_with_when(own_collector, enroll_on) -> None:
    put_policy(own_collector, **LADDER)
    device = enroll_on(own_collector)
    made = {name: fleet.sighting(name=name) for name in ("oldest", "escalated", "fresh", "noise")}
    device.snapshot(*made.values())
    for name, days in (("oldest", 30), ("escalated", 18), ("fresh", 1), ("noise", 40)):
        stored_long_ago(device, made[name]["id"], days)
    hidden = own_collector.http.post(f"/api/v1/agents/{device.device_id}/{made['noise']['id']}/actions",
                                     json={"action": "false_positive"}, headers=own_collector.as_admin())
    assert hidden.status_code == 201, hidden.text
    overview = own_collector.get("/api/v1/overview").json()
    assert overview["escalated"] == 2
    listed = overview["escalated_agents"]
    assert [a["id"] for a in listed] == [made["oldest"]["id"], made["escalated"]["id"]]  # escalated first, first
    # notify at once, remind 7 days on, deadline 7 more, escalated 3 days after it: 17 days in
    assert seconds(listed[1]["escalated_at"]) == pytest.approx(time.time() - 1 * DAY, abs=60)
    assert seconds(listed[1]["deadline"]) == pytest.approx(time.time() - 4 * DAY, abs=60)
    assert (listed[0]["hostname"], listed[0]["user"]) == (device.doc["hostname"], "alice")
    put_policy(own_collector, ladder="remind")  # a ladder that stops before escalating escalates no one
    assert own_collector.get("/api/v1/overview").json()["escalated"] == 0


# -- quiet when the policy says so ----------------------------------------------------------------------------


def test_the_inbox_says_whether_the_devices_users_are_nudged(own_collector, enroll_on) -> None:
    device = enroll_on(own_collector)
    assert inbox_answer(device)["notify"] is False  # the default ladder: report only
    put_policy(own_collector, ladder="notify")
    assert inbox_answer(device)["notify"] is True
    put_policy(own_collector, ladder="report_only")
    assert inbox_answer(device)["notify"] is False


def test_the_daemon_keeps_the_policys_quiet_and_its_socket_says_so(own_collector, enroll_on) -> None:
    """The daemon's own fetch (endpoint/service/inbox.py) from the real collector into a real data dir, and
    the daemon's real local socket handler over it, asked as root."""
    import httpx

    from endpoint.service import localsock
    from endpoint.service.inbox import Inbox, fetch
    from endpoint.service.inventory import Inventory
    from endpoint.service.registration.socket_handler import Handler

    device = enroll_on(own_collector)
    base = Path(tempfile.mkdtemp(prefix="ar-quiet-", dir="/tmp"))  # short: a socket path has a length limit
    data = base / "data"
    data.mkdir(mode=0o700)
    inventory = Inventory(data)  # the daemon's state, which ``mine`` reads
    try:
        inventory.record([], device={"hostname": "h"})
    finally:
        inventory.close()
    server = localsock.LocalServer(localsock.socket_path(data), Handler(data), read_timeout_s=2.0)
    server.start()
    try:
        with httpx.Client(base_url=own_collector.process.base_url, timeout=30) as http:
            def fetched() -> tuple[bool, bool, bool]:
                fetch(http, device.key, Inbox(data), own_collector.process.base_url, dict)
                asked = [localsock.call(server.path, {"op": op}, timeout_s=30.0) for op in ("inbox", "mine")]
                assert all(a["ok"] for a in asked), asked
                return Inbox(data).read()["notify"], asked[0]["notify"], asked[1]["notify"]

            assert fetched() == (False, False, False)  # report only: nobody is nudged
            put_policy(own_collector, ladder="remind")
            assert fetched() == (True, True, True)
            put_policy(own_collector, ladder="report_only")
            assert fetched() == (False, False, False)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- nudges unique under concurrency --------------------------------------------------------------------------


def test_0012_starts_stored_clocks_and_keeps_one_of_each_nudge(new_database) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.exc import IntegrityError

    from console.server.db import MIGRATIONS, Database, migrate

    db = Database(new_database())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.writing() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0011")
    nudge = ("INSERT INTO inbox_item (device_id, sighting_id, sighting_name, kind, source_id, sent_by, created_at) "
             "VALUES ('d1', 's1', 'Claude Code', '{kind}', {source}, '', 5.0)")
    with db.writing() as conn:
        conn.exec_driver_sql("INSERT INTO device (id, host_identifier, enrolled_at, hostname, os, os_version, arch, "
                             "agentroster_version, seq, applied, spool, shedding, status, units_failed, degraded, "
                             "hardware_id, key_salt, key_hash) VALUES ('d1', 'host:d1', 1.0, 'ws-1', 'linux', '', "
                             "'', '', 0, 0, 'normal', false, '{}', 0, '', '', '', '')")
        conn.exec_driver_sql(
            "INSERT INTO sighting (device_id, id, signature, name, vendor, type, \"user\", running, confidence, "
            "hostname, governed, flags, providers, fingerprints, detail, section_checksums, first_seen, last_seen, "
            "recorded_at, updated_at, gone, touched) VALUES ('d1', 's1', 'claude-code', 'Claude Code', '', 'coding', "
            "'alice', true, 0.9, 'ws-1', false, '[]', '[]', '[]', '{}', '', 1.0, 1.0, 3.0, 3.0, false, 0)")
        for kind, source in (("notify", "NULL"), ("notify", "NULL"), ("remind", "NULL"), ("request", "7")):
            conn.exec_driver_sql(nudge.format(kind=kind, source=source))
    migrate(db)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT ungoverned_since FROM sighting").scalar() == 3.0
        kept = conn.exec_driver_sql("SELECT id, kind, ungoverned_since FROM inbox_item ORDER BY id").all()
    assert [tuple(r) for r in kept] == [(1, "notify", 3.0), (3, "remind", 3.0), (4, "request", None)]
    with pytest.raises(IntegrityError), db.writing() as conn:  # the store refuses a second one itself
        conn.exec_driver_sql("INSERT INTO inbox_item (device_id, sighting_id, sighting_name, kind, sent_by, "
                             "created_at, ungoverned_since) VALUES ('d1', 's1', '', 'notify', '', 6.0, 3.0)")
    db.dispose()


def test_two_concurrent_gathers_make_one_nudge(own_collector, enroll_on, backend: str) -> None:
    """Two real connections gather the same device's inbox at once, through the collector's write path. On
    PostgreSQL the second one's read does not see the first one's uncommitted nudge, and its insert waits on
    the unique index, then adds nothing; on SQLite the second waits for the write lock, then finds it."""
    from console.server import inbox as store
    from console.server.db import Database

    put_policy(own_collector, ladder="notify")
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting())
    db = Database(own_collector.database_url, pool_size=3)
    added: list[int] = []
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with db.writing() as conn:
                added.append(store.gather(conn, device.device_id))
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    try:
        thread = threading.Thread(target=other)
        with db.writing() as first:
            assert store.gather(first, device.device_id) == 1  # inserted, not committed yet
            thread.start()
            waiting = 0
            for _ in range(200):  # until the other connection waits on this one
                if backend == "postgresql":
                    with db.engine.connect() as watcher:
                        waiting = watcher.execute(text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND datname = current_database()")).scalar_one()
                else:
                    waiting = int(thread.is_alive())
                if waiting:
                    break
                time.sleep(0.05)
            assert waiting == 1
        thread.join(30)
        assert not errors and not thread.is_alive()
        # PostgreSQL: it found one to add, and its insert gave way; SQLite: it found the first one's
        assert added == ([1] if backend == "postgresql" else [0])
        with db.engine.connect() as conn:
            kinds = conn.execute(text("SELECT kind FROM inbox_item WHERE device_id = :d"),
                                 {"d": device.device_id}).scalars().all()
        assert kinds == ["notify"]
    finally:
        db.dispose()
