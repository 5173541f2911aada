"""The device inbox: requests to register, decisions on registrations (with the admin's comment) and
questions, each addressed to the user of one sighting on one device, with when the device acknowledged
it (``inbox_item``; see console/server/inbox.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbox_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('sighting_id', sa.String(length=128), nullable=False),
    sa.Column('sighting_name', sa.String(length=256), nullable=False),
    sa.Column('user', sa.String(length=256), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('sent_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('delivered_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_inbox_item_source', 'inbox_item', ['device_id', 'kind', 'source_id'], unique=True)
    op.create_index('ix_inbox_item_waiting', 'inbox_item', ['device_id', 'delivered_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_inbox_item_waiting', table_name='inbox_item')
    op.drop_index('ix_inbox_item_source', table_name='inbox_item')
    op.drop_table('inbox_item')
