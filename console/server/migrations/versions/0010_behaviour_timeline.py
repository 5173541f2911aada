"""Intent over time: each sighting's behaviour facts with first and last seen (``behaviour_fact``) and
drift events with what was added and since when (``drift_event``; see console/server/timeline.py).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('behaviour_fact',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('sighting_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=512), nullable=False),
    sa.Column('first_seen', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.Column('gone_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('device_id', 'sighting_id', 'kind', 'value')
    )
    op.create_table('drift_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('sighting_id', sa.String(length=128), nullable=False),
    sa.Column('began_at', sa.Float(), nullable=False),
    sa.Column('added', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ended_at', sa.Float(), nullable=True),
    sa.Column('ended_by', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_drift_event_sighting', 'drift_event', ['device_id', 'sighting_id', 'status'])
    op.create_index('ix_drift_event_began', 'drift_event', ['began_at'])


def downgrade() -> None:
    op.drop_index('ix_drift_event_began', table_name='drift_event')
    op.drop_index('ix_drift_event_sighting', table_name='drift_event')
    op.drop_table('drift_event')
    op.drop_table('behaviour_fact')
