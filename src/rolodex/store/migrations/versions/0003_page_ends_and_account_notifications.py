"""page ends, and PostgreSQL notifications of account generations

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# rolodex.store.notify listens on this channel; the payload is "<account id> <generation>".
_FUNCTION = """
CREATE OR REPLACE FUNCTION rolodex_notify_generation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('rolodex_accounts', NEW.id || ' ' || NEW.generation);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
_TRIGGER = """
CREATE TRIGGER accounts_generation_notify
AFTER UPDATE OF generation ON accounts
FOR EACH ROW WHEN (OLD.generation IS DISTINCT FROM NEW.generation)
EXECUTE FUNCTION rolodex_notify_generation()
"""


def upgrade() -> None:
    op.create_table(
        "page_ends",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("end_offset", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("after_pk", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_page_ends_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "scope", "end_offset", "generation", name=op.f("pk_page_ends")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Every change of an account takes numbers from its generation (in the change's
        # own transaction), so this tells every API process, at commit, that what it
        # cached of the account is stale: no process asks the database per request.
        op.execute(_FUNCTION)
        op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS accounts_generation_notify ON accounts")
        op.execute("DROP FUNCTION IF EXISTS rolodex_notify_generation()")
    op.drop_table("page_ends")
