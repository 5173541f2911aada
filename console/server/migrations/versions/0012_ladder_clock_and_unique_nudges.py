"""The nudge ladder's clock and its nudges: when each sighting last became ungoverned
(``sighting.ungoverned_since``, where the ladder's clock starts: the time it was first stored, for those
stored already), and one nudge of each rung per sighting and
spell ungoverned (``inbox_item.ungoverned_since`` and the unique index ``ix_inbox_item_nudge``), so that two
collector processes gathering a device's inbox at once cannot both add it. See console/server/lifecycle.py.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_NUDGES = "kind IN ('notify', 'remind')"


def upgrade() -> None:
    with op.batch_alter_table('sighting') as batch:
        batch.add_column(sa.Column('ungoverned_since', sa.Float(), nullable=True))
    # a stored sighting's spell began when it was first stored, as far as anyone knows
    op.execute("UPDATE sighting SET ungoverned_since = recorded_at")
    op.create_index('ix_sighting_ungoverned_since', 'sighting', ['ungoverned_since'])
    with op.batch_alter_table('inbox_item') as batch:
        batch.add_column(sa.Column('ungoverned_since', sa.Float(), nullable=True))
    # the nudges sent already were about their sighting's spell (the only one known), so that nobody is
    # nudged again for it (0: a sighting no longer stored)
    op.execute(f"UPDATE inbox_item SET ungoverned_since = COALESCE((SELECT s.ungoverned_since FROM sighting s "
               f"WHERE s.device_id = inbox_item.device_id AND s.id = inbox_item.sighting_id), 0) WHERE {_NUDGES}")
    # two requests at once could each add the same nudge: the first stays
    op.execute(f"DELETE FROM inbox_item WHERE {_NUDGES} AND id NOT IN (SELECT MIN(id) FROM inbox_item "
               f"WHERE {_NUDGES} GROUP BY device_id, sighting_id, kind, ungoverned_since)")
    op.create_index('ix_inbox_item_nudge', 'inbox_item', ['device_id', 'sighting_id', 'kind', 'ungoverned_since'],
                    unique=True, sqlite_where=sa.text(_NUDGES), postgresql_where=sa.text(_NUDGES))


def downgrade() -> None:
    op.drop_index('ix_inbox_item_nudge', table_name='inbox_item')
    with op.batch_alter_table('inbox_item') as batch:
        batch.drop_column('ungoverned_since')
    op.drop_index('ix_sighting_ungoverned_since', table_name='sighting')
    with op.batch_alter_table('sighting') as batch:
        batch.drop_column('ungoverned_since')
