"""A sighting's checksums of its material sections are ``sighting.section_checksums`` (was
``content_hash``, the name the endpoint gives its digest of a whole sighting, a different thing).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite (3.25 and later) and PostgreSQL both rename a column in place, indexes and data untouched
    op.execute("ALTER TABLE sighting RENAME COLUMN content_hash TO section_checksums")


def downgrade() -> None:
    op.execute("ALTER TABLE sighting RENAME COLUMN section_checksums TO content_hash")
