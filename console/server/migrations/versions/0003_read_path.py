"""Read path: a trigram index for free-text search (SQLite FTS5 kept in step by triggers, or PostgreSQL
pg_trgm where the extension can be had), the hourly ungoverned trend, and the policy's risky-tool patterns.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

log = logging.getLogger("agentroster.server")
_COLUMNS = ("name", "signature", "user", "hostname")
_NEW = ", ".join(f"new.{c}" for c in _COLUMNS)
_OLD = ", ".join(f"old.{c}" for c in _COLUMNS)
_LIST = ", ".join(_COLUMNS)
_SQLITE_FTS = (
    f"CREATE VIRTUAL TABLE sighting_fts USING fts5({_LIST}, content='sighting', content_rowid='rowid', "
    "tokenize='trigram')",
    f"CREATE TRIGGER sighting_fts_insert AFTER INSERT ON sighting BEGIN "
    f"INSERT INTO sighting_fts(rowid, {_LIST}) VALUES (new.rowid, {_NEW}); END",
    f"CREATE TRIGGER sighting_fts_delete AFTER DELETE ON sighting BEGIN "
    f"INSERT INTO sighting_fts(sighting_fts, rowid, {_LIST}) VALUES ('delete', old.rowid, {_OLD}); END",
    # the ingest's upsert names every column: only a real change of a searched one touches the index
    f"CREATE TRIGGER sighting_fts_update AFTER UPDATE OF {_LIST} ON sighting WHEN "
    + " OR ".join(f"old.{c} IS NOT new.{c}" for c in _COLUMNS) + " BEGIN "
    f"INSERT INTO sighting_fts(sighting_fts, rowid, {_LIST}) VALUES ('delete', old.rowid, {_OLD}); "
    f"INSERT INTO sighting_fts(rowid, {_LIST}) VALUES (new.rowid, {_NEW}); END",
    "INSERT INTO sighting_fts(sighting_fts) VALUES ('rebuild')",
)
_PG_INDEX = ("CREATE INDEX IF NOT EXISTS ix_sighting_search ON sighting USING gin ("
             + ", ".join(f'"{c}" gin_trgm_ops' for c in _COLUMNS) + ")")  # serves the search's ILIKE


def upgrade() -> None:
    op.create_table('ungoverned_trend',
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('ungoverned', sa.Integer(), nullable=False),
    sa.Column('sightings', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('at')
    )
    with op.batch_alter_table('policy') as batch:
        batch.add_column(sa.Column('risky_tools', sa.JSON(), nullable=False, server_default='[]'))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_fts(bind)
    elif bind.dialect.name == "postgresql":
        _pg_trgm(bind)


def _sqlite_fts(bind: sa.Connection) -> None:
    try:
        bind.exec_driver_sql("CREATE VIRTUAL TABLE temp.trigram_probe USING fts5(x, tokenize='trigram')")
        bind.exec_driver_sql("DROP TABLE temp.trigram_probe")
    except sa.exc.OperationalError:
        log.warning("this SQLite has no FTS5 trigram tokenizer: free-text search will scan")
        return
    for statement in _SQLITE_FTS:
        bind.exec_driver_sql(statement)


def _pg_trgm(bind: sa.Connection) -> None:
    """CREATE EXTENSION needs a privileged role: without it the search scans (said at start-up)."""
    present = bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first()
    if not present:
        try:
            with bind.begin_nested():
                bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except sa.exc.DBAPIError as exc:
            log.warning("pg_trgm is not available (%s): free-text search will scan",
                        str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__)
            return
    bind.exec_driver_sql(_PG_INDEX)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("sighting_fts_insert", "sighting_fts_delete", "sighting_fts_update"):
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        bind.exec_driver_sql("DROP TABLE IF EXISTS sighting_fts")
    elif bind.dialect.name == "postgresql":
        bind.exec_driver_sql("DROP INDEX IF EXISTS ix_sighting_search")
    with op.batch_alter_table('policy') as batch:
        batch.drop_column('risky_tools')
    op.drop_table('ungoverned_trend')
