"""Scan health: each device's last report says how many units its scan could not process and which
sensors they came from (``device.units_failed``, ``device.degraded``), so that the console can list the
devices whose last scan was incomplete.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.add_column(sa.Column('units_failed', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('degraded', sa.String(), nullable=False, server_default=''))
        batch.create_index('ix_device_units_failed', ['units_failed'])


def downgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.drop_index('ix_device_units_failed')
        batch.drop_column('degraded')
        batch.drop_column('units_failed')
