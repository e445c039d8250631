"""when each synced contact's picture was last checked at the provider

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 02:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null on every link there is: their pictures were never checked (Graph's first syncs
    # read none), so the checks begin with all of them. Adding a nullable column rewrites
    # no rows on either database.
    op.add_column("contact_remotes", sa.Column("picture_checked_at", sa.Float(), nullable=True))
    op.create_index(
        "ix_contact_remotes_account_picture_checked",
        "contact_remotes",
        ["account_id", "picture_checked_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_contact_remotes_account_picture_checked", table_name="contact_remotes")
    op.drop_column("contact_remotes", "picture_checked_at")
