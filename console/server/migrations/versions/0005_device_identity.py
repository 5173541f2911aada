"""Device identity: the hardware id a device reports, an identity conflict (a device that claimed another's
identity without its key), and the organisation's fingerprint key, made here once.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.add_column(sa.Column('hardware_id', sa.String(), nullable=False, server_default=''))
        batch.add_column(sa.Column('identity_conflict', sa.String(length=32), nullable=True))
    with op.batch_alter_table('device') as batch:
        batch.alter_column('hardware_id', server_default=None)
    table = op.create_table('fingerprint_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # 256 random bits: every device fingerprints credentials under it, so the org can recognise its own
    # keys and no one else can test a guess against a fingerprint
    op.bulk_insert(table, [{'value': secrets.token_urlsafe(32), 'created_at': time.time()}])


def downgrade() -> None:
    op.drop_table('fingerprint_key')
    with op.batch_alter_table('device') as batch:
        batch.drop_column('identity_conflict')
        batch.drop_column('hardware_id')
