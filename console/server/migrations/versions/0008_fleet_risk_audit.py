"""The fleet console: each sighting's risk score (``risk``), its MCP server count (``servers``) and what
free text finds it by beyond its name (``reach``: its MCP servers' names, commands and arguments),
with the indexes that sort and count on them (``ix_sighting_sort_risk``, ``ix_sighting_fleet``, risk in
``ix_sighting_roster``); the audit of triage actions as one row each (``triage_batch``) with what undoing
them restores (``triage_undo``); every version of the policy (``policy_version``).

Existing sightings get their three new columns from their stored flags, providers and detail, and the
free-text index is rebuilt over the new column.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import time

import orjson
import sqlalchemy as sa
from alembic import op

from console import governance

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_BATCH = 2000
_OLD_COLUMNS = ("name", "signature", "user", "hostname")
_COLUMNS = (*_OLD_COLUMNS, "reach")
_TRIGGERS = ("sighting_fts_insert", "sighting_fts_delete", "sighting_fts_update")


def _fts(columns: tuple[str, ...]) -> tuple[str, ...]:
    listed = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return (
        f"CREATE VIRTUAL TABLE sighting_fts USING fts5({listed}, content='sighting', content_rowid='rowid', "
        "tokenize='trigram')",
        f"CREATE TRIGGER sighting_fts_insert AFTER INSERT ON sighting BEGIN "
        f"INSERT INTO sighting_fts(rowid, {listed}) VALUES (new.rowid, {new}); END",
        f"CREATE TRIGGER sighting_fts_delete AFTER DELETE ON sighting BEGIN "
        f"INSERT INTO sighting_fts(sighting_fts, rowid, {listed}) VALUES ('delete', old.rowid, {old}); END",
        f"CREATE TRIGGER sighting_fts_update AFTER UPDATE OF {listed} ON sighting WHEN "
        + " OR ".join(f"old.{c} IS NOT new.{c}" for c in columns) + " BEGIN "
        f"INSERT INTO sighting_fts(sighting_fts, rowid, {listed}) VALUES ('delete', old.rowid, {old}); "
        f"INSERT INTO sighting_fts(rowid, {listed}) VALUES (new.rowid, {new}); END",
        "INSERT INTO sighting_fts(sighting_fts) VALUES ('rebuild')",
    )


def _pg_index(columns: tuple[str, ...]) -> str:
    return ("CREATE INDEX IF NOT EXISTS ix_sighting_search ON sighting USING gin ("
            + ", ".join(f'"{c}" gin_trgm_ops' for c in columns) + ")")


def upgrade() -> None:
    bind = op.get_bind()
    # plain ALTER TABLE ADD COLUMN (no batch copy of the table: the free-text index points at its rowids)
    op.add_column('sighting', sa.Column('risk', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('sighting', sa.Column('servers', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('sighting', sa.Column('reach', sa.Text(), nullable=False, server_default=''))
    _fill_sightings(bind)
    op.create_index('ix_sighting_sort_risk', 'sighting', ['risk', 'device_id', 'id'])
    op.drop_index('ix_sighting_roster', 'sighting')
    op.create_index('ix_sighting_roster', 'sighting',
                    ['gone', 'governed', 'device_id', 'id', 'hostname', 'type', 'recorded_at', 'risk'])
    op.create_index('ix_sighting_fleet', 'sighting',
                    ['gone', 'signature', 'type', 'governed', 'device_id', 'user', 'servers', 'risk', 'flags'])
    _search_over(bind, _COLUMNS)

    op.add_column('triage_action', sa.Column('batch_id', sa.Integer(), nullable=True))
    op.create_table('triage_batch',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('action', sa.String(length=32), nullable=False),
                    sa.Column('actor', sa.String(length=128), nullable=False),
                    sa.Column('at', sa.Float(), nullable=False),
                    sa.Column('count', sa.Integer(), nullable=False),
                    sa.Column('owner', sa.String(length=256), nullable=True),
                    sa.Column('note', sa.Text(), nullable=True),
                    sa.Column('filter', sa.Text(), nullable=False),
                    sa.Column('undone_at', sa.Float(), nullable=True),
                    sa.Column('undone_by', sa.String(length=128), nullable=True),
                    sa.PrimaryKeyConstraint('id'))
    op.create_table('triage_undo',
                    sa.Column('batch_id', sa.Integer(), nullable=False),
                    sa.Column('device_id', sa.String(length=32), nullable=False),
                    sa.Column('sighting_id', sa.String(), nullable=False),
                    sa.Column('previous', sa.Text(), nullable=False),
                    sa.PrimaryKeyConstraint('batch_id', 'device_id', 'sighting_id'))
    op.create_table('policy_version',
                    sa.Column('sanctioned_signatures', sa.JSON(), nullable=False),
                    sa.Column('sanctioned_providers', sa.JSON(), nullable=False),
                    sa.Column('corporate_fingerprints', sa.JSON(), nullable=False),
                    sa.Column('risky_tools', sa.JSON(), nullable=False),
                    sa.Column('version', sa.Integer(), nullable=False),
                    sa.Column('at', sa.Float(), nullable=False),
                    sa.Column('actor', sa.String(length=128), nullable=False),
                    sa.Column('changes', sa.Text(), nullable=False),
                    sa.PrimaryKeyConstraint('version'))
    # the policy as it stands becomes the first version kept (who saved it before was not recorded)
    bind.execute(sa.text(
        "INSERT INTO policy_version (version, at, actor, changes, sanctioned_signatures, sanctioned_providers, "
        "corporate_fingerprints, risky_tools) SELECT version, COALESCE(updated_at, :now), '', '', "
        "sanctioned_signatures, sanctioned_providers, corporate_fingerprints, risky_tools FROM policy WHERE id = 1"),
        {"now": time.time()})


def _fill_sightings(bind: sa.Connection) -> None:
    """Each stored sighting's risk, MCP server count and reach, from what it has stored."""
    sighting = sa.table('sighting', sa.column('device_id'), sa.column('id'), sa.column('flags'),
                        sa.column('providers'), sa.column('detail'), sa.column('risk'), sa.column('servers'),
                        sa.column('reach'))
    last = ("", "")
    while True:
        rows = bind.execute(sa.select(sighting.c.device_id, sighting.c.id, sighting.c.flags, sighting.c.providers,
                                      sighting.c.detail)
                            .where(sa.tuple_(sighting.c.device_id, sighting.c.id) > sa.tuple_(*last))
                            .order_by(sighting.c.device_id, sighting.c.id).limit(_BATCH)).all()
        if not rows:
            return
        updates = []
        for device_id, sid, flags, _providers, detail in rows:
            servers = orjson.loads(detail).get("mcp_servers") or []
            updates.append({"d": device_id, "s": sid, "r": governance.risk_of(orjson.loads(flags)),
                            "n": len(servers), "t": governance.reach_of(servers)})
        bind.execute(sa.update(sighting).where(sighting.c.device_id == sa.bindparam("d"),
                                               sighting.c.id == sa.bindparam("s"))
                     .values(risk=sa.bindparam("r"), servers=sa.bindparam("n"), reach=sa.bindparam("t")), updates)
        last = (rows[-1][0], rows[-1][1])


def _search_over(bind: sa.Connection, columns: tuple[str, ...]) -> None:
    """Rebuild the free-text index (where 0003 could build one) over ``columns``."""
    if bind.dialect.name == "sqlite":
        if not bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sighting_fts'").first():
            return  # no trigram tokenizer: the search scans, as before
        for trigger in _TRIGGERS:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        bind.exec_driver_sql("DROP TABLE sighting_fts")
        for statement in _fts(columns):
            bind.exec_driver_sql(statement)
    elif bind.dialect.name == "postgresql":
        if not bind.exec_driver_sql("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_sighting_search'").first():
            return  # no pg_trgm: the search scans; the start-up builds the index once an admin adds it
        bind.exec_driver_sql("DROP INDEX ix_sighting_search")
        bind.exec_driver_sql(_pg_index(columns))


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table('policy_version')
    op.drop_table('triage_undo')
    op.drop_table('triage_batch')
    with op.batch_alter_table('triage_action') as batch:
        batch.drop_column('batch_id')
    _search_over(bind, _OLD_COLUMNS)
    op.drop_index('ix_sighting_fleet', 'sighting')
    op.drop_index('ix_sighting_roster', 'sighting')
    op.create_index('ix_sighting_roster', 'sighting',
                    ['gone', 'governed', 'device_id', 'id', 'hostname', 'type', 'recorded_at'])
    op.drop_index('ix_sighting_sort_risk', 'sighting')
    for column in ('reach', 'servers', 'risk'):
        op.drop_column('sighting', column)
