"""Saving the policy assesses each stored sighting once, with its standing and its user: a sighting a group
approval governs is not judged without its user first (ungoverned) and then again (governed), two writes
for nothing. A real collector (SQLite and PostgreSQL) filled through the ingest API; the save itself runs
in this process, on the collector's own database, so that the statements it sends can be counted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fleet
import pytest
from conftest import Collector
from sqlalchemy import event, text

from console.server.db import Database
from console.server.models import PolicyChange
from console.server.routes import policy

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def database(own_collector: Collector) -> Iterator[Database]:
    db = Database(own_collector.database_url, pool_size=2)
    yield db
    db.dispose()


def rows_written(db: Database) -> list[int]:
    """How many sighting rows each UPDATE of the sighting table sends, from now on."""
    written: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE SIGHTING "):
            written.append(len(parameters) if executemany else 1)

    event.listen(db.engine, "before_cursor_execute", count)
    return written


def save(db: Database, **change: Any) -> None:
    """What PUT /api/v1/policy does with a document, in this process."""
    with db.writing() as conn:
        before = policy._current(conn)
        body = PolicyChange.model_validate({**before.model_dump(), **change})
        policy._save(conn, policy._checked(conn, body, before), before, "test")


def governed(db: Database) -> dict[str, bool]:
    with db.engine.connect() as conn:
        return {user: bool(g) for user, g in conn.execute(text("SELECT \"user\", governed FROM sighting"))}


def test_saving_the_policy_writes_no_sighting_whose_verdict_stays(own_collector, enroll_on, database) -> None:
    device = enroll_on(own_collector)
    device.snapshot(fleet.sighting(user="alice"), fleet.sighting(user="bob"),
                    fleet.sighting(signature="cursor", name="Cursor", user="carol", vendor="Anysphere"))
    answer = own_collector.http.put("/api/v1/policy", headers=own_collector.as_admin(), json={
        "group_approvals": [{"signature": "claude-code", "users": ["alice"]}]})
    assert answer.status_code == 200, answer.text
    assert governed(database) == {"alice": True, "bob": False, "carol": False}

    written = rows_written(database)
    save(database, risky_tools=["some-tool-nobody-runs"])  # changes no sighting's verdict
    assert sum(written) == 0
    assert governed(database) == {"alice": True, "bob": False, "carol": False}

    save(database, sanctioned_signatures=["cursor"])  # changes carol's alone
    assert sum(written) == 1
    assert governed(database) == {"alice": True, "bob": False, "carol": True}


def test_saving_the_policy_keeps_a_tool_server_covered_by_its_approved_root(own_collector, enroll_on,
                                                                            database) -> None:
    from test_timeline import MCP_GITHUB, tool_server

    device = enroll_on(own_collector)
    root = fleet.sighting(providers=("anthropic",), mcp_servers=[MCP_GITHUB])
    github = tool_server(root["id"], MCP_GITHUB)
    device.snapshot(root, github)
    answer = own_collector.http.post(f"/api/v1/agents/{device.device_id}/{root['id']}/actions",
                                     json={"action": "approve"}, headers=own_collector.as_admin())
    assert answer.status_code == 201, answer.text
    covered = own_collector.agents(device=device.device_id, parent=root["id"])["data"]
    assert [(r["governed"], r["covered_by"]["by"]) for r in covered] == [(True, "approval")]

    written = rows_written(database)
    save(database, risky_tools=["some-tool-nobody-runs"])  # changes no sighting's verdict
    assert sum(written) == 0
    covered = own_collector.agents(device=device.device_id, parent=root["id"])["data"]
    assert [(r["governed"], r["covered_by"]["by"]) for r in covered] == [(True, "approval")]
