"""Every table of the collector: devices, sightings with their tags and history, report epochs,
the policy (one row), admin tokens and the enroll secret.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_token',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('salt', sa.String(), nullable=False),
    sa.Column('hash', sa.String(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('device',
    sa.Column('hostname', sa.String(), nullable=False),
    sa.Column('os', sa.String(), nullable=False),
    sa.Column('os_version', sa.String(), nullable=False),
    sa.Column('arch', sa.String(), nullable=False),
    sa.Column('agentroster_version', sa.String(), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('host_identifier', sa.String(), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=True),
    sa.Column('key_salt', sa.String(), nullable=False),
    sa.Column('key_hash', sa.String(), nullable=False),
    sa.Column('enrolled_at', sa.Float(), nullable=False),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.Column('last_seen', sa.Float(), nullable=True),
    sa.Column('epoch', sa.String(), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('applied', sa.Integer(), nullable=False),
    sa.Column('spool', sa.String(), nullable=False),
    sa.Column('shedding', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('host_identifier'),
    sa.UniqueConstraint('key_id')
    )
    op.create_index('ix_device_hostname', 'device', ['hostname'])
    op.create_index('ix_device_last_seen', 'device', ['last_seen'])
    op.create_table('enroll_secret',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('salt', sa.String(), nullable=False),
    sa.Column('hash', sa.String(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('retired_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    policy = op.create_table('policy',
    sa.Column('sanctioned_signatures', sa.JSON(), nullable=False),
    sa.Column('sanctioned_providers', sa.JSON(), nullable=False),
    sa.Column('corporate_fingerprints', sa.JSON(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(policy, [{'id': 1, 'version': 0, 'updated_at': None, 'sanctioned_signatures': [],
                            'sanctioned_providers': [], 'corporate_fingerprints': []}])
    op.create_table('report_epoch',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('epoch', sa.String(length=64), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('last_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('device_id', 'epoch')
    )
    op.create_table('sighting_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('sighting_id', sa.String(), nullable=False),
    sa.Column('epoch', sa.String(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('change', sa.String(length=16), nullable=False),
    sa.Column('fields', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sighting_history_sighting', 'sighting_history', ['device_id', 'sighting_id', 'id'])
    op.create_table('sighting_tag',
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('sighting_id', sa.String(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('device_id', 'sighting_id', 'kind', 'value'),
    sqlite_with_rowid=False,
    )
    op.create_index('ix_sighting_tag_kind_value', 'sighting_tag', ['kind', 'value'])
    op.create_table('sighting',
    sa.Column('signature', sa.String(), nullable=True),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('vendor', sa.String(), nullable=False),
    sa.Column('type', sa.String(), nullable=False),
    sa.Column('user', sa.String(), nullable=False),
    sa.Column('running', sa.Boolean(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('parent', sa.String(), nullable=True),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('hostname', sa.String(), nullable=False),
    sa.Column('governed', sa.Boolean(), nullable=False),
    sa.Column('flags', sa.String(), nullable=False),
    sa.Column('providers', sa.String(), nullable=False),
    sa.Column('fingerprints', sa.String(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(), nullable=False),
    sa.Column('first_seen', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.Column('recorded_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('gone', sa.Boolean(), nullable=False),
    sa.Column('gone_at', sa.Float(), nullable=True),
    sa.Column('touched', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.PrimaryKeyConstraint('device_id', 'id')
    )
    op.create_index('ix_sighting_governed', 'sighting', ['governed'])
    op.create_index('ix_sighting_recorded_at', 'sighting', ['recorded_at'])
    op.create_index('ix_sighting_signature', 'sighting', ['signature'])
    op.create_index('ix_sighting_sort_confidence', 'sighting', ['confidence', 'device_id', 'id'])
    op.create_index('ix_sighting_sort_first_seen', 'sighting', ['first_seen', 'device_id', 'id'])
    op.create_index('ix_sighting_sort_hostname', 'sighting', ['hostname', 'device_id', 'id'])
    op.create_index('ix_sighting_sort_last_seen', 'sighting', ['last_seen', 'device_id', 'id'])
    op.create_index('ix_sighting_sort_name', 'sighting', ['name', 'device_id', 'id'])
    op.create_index('ix_sighting_sort_type', 'sighting', ['type', 'device_id', 'id'])
    op.create_index('ix_sighting_sort_user', 'sighting', ['user', 'device_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_sighting_sort_user', table_name='sighting')
    op.drop_index('ix_sighting_sort_type', table_name='sighting')
    op.drop_index('ix_sighting_sort_name', table_name='sighting')
    op.drop_index('ix_sighting_sort_last_seen', table_name='sighting')
    op.drop_index('ix_sighting_sort_hostname', table_name='sighting')
    op.drop_index('ix_sighting_sort_first_seen', table_name='sighting')
    op.drop_index('ix_sighting_sort_confidence', table_name='sighting')
    op.drop_index('ix_sighting_signature', table_name='sighting')
    op.drop_index('ix_sighting_recorded_at', table_name='sighting')
    op.drop_index('ix_sighting_governed', table_name='sighting')
    op.drop_table('sighting')
    op.drop_index('ix_sighting_tag_kind_value', table_name='sighting_tag')
    op.drop_table('sighting_tag')
    op.drop_index('ix_sighting_history_sighting', table_name='sighting_history')
    op.drop_table('sighting_history')
    op.drop_table('report_epoch')
    op.drop_table('policy')
    op.drop_table('enroll_secret')
    op.drop_index('ix_device_last_seen', table_name='device')
    op.drop_index('ix_device_hostname', table_name='device')
    op.drop_table('device')
    op.drop_table('api_token')
