"""rate-limit counts shared by the API processes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 02:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counts",
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("window_end", "key", name=op.f("pk_rate_limit_counts")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_counts")
