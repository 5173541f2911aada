"""Triage and registrations: each sighting's triage state (owner, approval, the registration that
counts), the log of triage actions, and employees' registrations; and a covering index on sightings for
the roster's counts and the overview.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registration',
    sa.Column('sighting_id', sa.String(length=128), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('business_process', sa.String(length=1000), nullable=False),
    sa.Column('providers', sa.JSON(), nullable=False),
    sa.Column('tools', sa.JSON(), nullable=False),
    sa.Column('data_systems', sa.JSON(), nullable=False),
    sa.Column('autonomy', sa.String(length=16), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('decided_at', sa.Float(), nullable=True),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_registration_sighting', 'registration', ['device_id', 'sighting_id', 'id'])
    op.create_index('ix_registration_status', 'registration', ['status', 'id'])
    op.create_table('sighting_triage',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('sighting_id', sa.String(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=True),
    sa.Column('approval', sa.Text(), nullable=False),
    sa.Column('registration', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('device_id', 'sighting_id')
    )
    op.create_index('ix_sighting_triage_owner', 'sighting_triage', ['owner'])
    op.create_index('ix_sighting_triage_state', 'sighting_triage', ['state'])
    op.create_table('triage_action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('sighting_id', sa.String(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_triage_action_sighting', 'triage_action', ['device_id', 'sighting_id', 'id'])
    op.create_index('ix_sighting_roster', 'sighting',
                    ['gone', 'governed', 'device_id', 'id', 'hostname', 'type', 'recorded_at'])


def downgrade() -> None:
    op.drop_index('ix_sighting_roster', table_name='sighting')
    op.drop_index('ix_triage_action_sighting', table_name='triage_action')
    op.drop_table('triage_action')
    op.drop_index('ix_sighting_triage_state', table_name='sighting_triage')
    op.drop_index('ix_sighting_triage_owner', table_name='sighting_triage')
    op.drop_table('sighting_triage')
    op.drop_index('ix_registration_status', table_name='registration')
    op.drop_index('ix_registration_sighting', table_name='registration')
    op.drop_table('registration')
