"""Snapshots in parts: a device's snapshot too big for one report comes in several, and the collector
keeps, between them, where the snapshot began (``device.snapshot_from``).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.add_column(sa.Column('snapshot_from', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.drop_column('snapshot_from')
