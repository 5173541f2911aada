"""Alembic migrations: run from code on an empty database, they build exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import console.server.models  # noqa: F401
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
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    db.dispose()
    assert diff == []


def test_migrating_twice_changes_nothing(new_database) -> None:
    db = Database(new_database())
    migrate(db)
    migrate(db)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM policy WHERE id = 1").scalar() == 0
    db.dispose()
