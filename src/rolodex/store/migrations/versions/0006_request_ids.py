"""request ids on outbox rows and on requested syncs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("request_id", sa.String(length=64), nullable=True))
    op.add_column("accounts", sa.Column("sync_request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("sync_request_id")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("request_id")
