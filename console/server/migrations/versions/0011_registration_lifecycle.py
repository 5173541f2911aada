"""The registration lifecycle and the nudge ladder: an admin's question on a registration, and the
policy's re-attestation period, ladder (see console/server/lifecycle.py) and group approvals.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

#: the policy's new settings, kept in the policy row and in each saved version
_SETTINGS = (
    ('reattest_days', sa.Integer(), '180'),
    ('ladder', sa.String(length=16), "'report_only'"),
    ('notify_after_days', sa.Integer(), '0'),
    ('remind_after_days', sa.Integer(), '7'),
    ('deadline_days', sa.Integer(), '7'),
    ('escalate_after_days', sa.Integer(), '0'),
)


def upgrade() -> None:
    with op.batch_alter_table('registration') as batch:
        batch.add_column(sa.Column('question', sa.Text(), nullable=True))
        batch.add_column(sa.Column('asked_at', sa.Float(), nullable=True))
        batch.add_column(sa.Column('asked_by', sa.String(length=128), nullable=True))
    for table in ('policy', 'policy_version'):
        with op.batch_alter_table(table) as batch:
            for name, kind, default in _SETTINGS:
                batch.add_column(sa.Column(name, kind, nullable=False, server_default=sa.text(default)))
            batch.add_column(sa.Column('group_approvals', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('policy') as batch:
        batch.add_column(sa.Column('ladder_since', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('policy') as batch:
        batch.drop_column('ladder_since')
    for table in ('policy', 'policy_version'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('group_approvals')
            for name, _, _ in reversed(_SETTINGS):
                batch.drop_column(name)
    with op.batch_alter_table('registration') as batch:
        for name in ('asked_by', 'asked_at', 'question'):
            batch.drop_column(name)
