"""Alembic migrations: run from code on an empty database, they build exactly what the models describe."""

from __future__ import annotations

import orjson
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import console.server.models  # noqa: F401
from console.server import search
from console.server.db import Database, migrate


def test_the_first_migration_creates_every_table(new_database) -> None:
    db = Database(new_database())
    migrate(db)
    with db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    db.dispose()
    assert set(SQLModel.metadata.tables) <= tables


def test_the_migrated_schema_matches_the_models(new_database) -> None:
    db = Database(new_database())
    migrate(db)
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": search.outside_models})
        diff = compare_metadata(context, SQLModel.metadata)
    db.dispose()
    assert diff == []


def test_migrating_twice_changes_nothing(new_database) -> None:
    db = Database(new_database())
    migrate(db)
    migrate(db)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM policy WHERE id = 1").scalar() == 0
    db.dispose()


def test_a_store_made_by_the_first_revision_upgrades_to_the_newest(new_database) -> None:
    from alembic import command
    from alembic.config import Config

    from console.server.db import MIGRATIONS

    db = Database(new_database())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.writing() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    with db.engine.connect() as conn:
        assert "triage_action" not in inspect(conn).get_table_names()
        conn.exec_driver_sql("INSERT INTO api_token (name, role, id, salt, hash, created_at) "
                             "VALUES ('kept', 'admin', 'k1', 's', 'h', 1.0)")
        conn.commit()
    migrate(db)
    with db.engine.connect() as conn:
        assert {"triage_action", "sighting_triage", "registration"} <= set(inspect(conn).get_table_names())
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0012"
        # 0007 renamed the sighting's section checksums (content_hash before)
        assert "section_checksums" in {c["name"] for c in inspect(conn).get_columns("sighting")}
        assert conn.exec_driver_sql("SELECT name FROM api_token WHERE id = 'k1'").scalar() == "kept"
        # 0005 made the organisation's fingerprint key, once
        assert len(conn.exec_driver_sql("SELECT value FROM fingerprint_key").scalars().all()[0]) >= 40
        assert conn.exec_driver_sql("SELECT count(*) FROM fingerprint_key").scalar() == 1
    db.dispose()


def test_0008_fills_in_the_risk_servers_and_search_text_of_stored_sightings(new_database) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlmodel import Session

    from console.server.db import MIGRATIONS
    from console.server.roster import Plan, RosterFilter

    db = Database(new_database())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.writing() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
    servers = [{"name": "postgres", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres"]}]
    with db.writing() as conn:
        conn.exec_driver_sql("INSERT INTO device (id, host_identifier, enrolled_at, hostname, os, os_version, arch, "
                             "agentroster_version, seq, applied, spool, shedding, status, units_failed, degraded, "
                             "hardware_id, key_salt, key_hash) VALUES ('d1', 'host:d1', 1.0, 'ws-1', 'linux', '', "
                             "'', '', 0, 0, 'normal', false, '{}', 0, '', '', '', '')")
        conn.exec_driver_sql(
            "INSERT INTO sighting (device_id, id, signature, name, vendor, type, \"user\", running, confidence, "
            "hostname, governed, flags, providers, fingerprints, detail, section_checksums, first_seen, last_seen, "
            "recorded_at, updated_at, gone, touched) VALUES ('d1', 's1', 'claude-code', 'Claude Code', '', 'coding', "
            "'alice', true, 0.9, 'ws-1', false, '[\"autonomous\",\"plaintext_secret\",\"unregistered\"]', "
            "'[\"anthropic\"]', '[]', %s, '', 1.0, 1.0, 1.0, 1.0, false, 0)"
            % ("'" + orjson.dumps({"mcp_servers": servers}).decode() + "'"))
    migrate(db)
    with db.engine.connect() as conn:
        risk, count, reach = conn.exec_driver_sql("SELECT risk, servers, reach FROM sighting").one()
    assert (risk, count) == (25 + 15 + 4, 1)
    assert reach == "postgres npx -y @modelcontextprotocol/server-postgres"
    with Session(db.engine) as session:
        for text in ("server-postgres", "POSTGRES", "npx -y"):
            assert Plan(session, RosterFilter(q=text)).count() == 1
    db.dispose()
