"""Page ends of offset paging, in the database so every API process pages alike.

A row says: at generation G of the account, offset N of one list (``scope``: a digest of
its filter) continues after key ``after_pk`` (null: plain OFFSET N), until ``expires_at``
when that is set (then plain OFFSET). Rows are decided once, by whichever process asks
first (``INSERT ... ON CONFLICT DO NOTHING``, then the winner's row is read back), and
never changed: a decision is the same from every process and may be remembered by each
(``rolodex.service.contacts.PageCursors``). They are rows of their own (no account lock,
``rolodex.store``); old ones are pruned.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from rolodex.store.schema import page_ends

_COLUMNS = (
    page_ends.c.generation,
    page_ends.c.after_pk,
    page_ends.c.expires_at,
    page_ends.c.created_at,
)


class PageEnd(NamedTuple):
    generation: int
    after_pk: int | None
    expires_at: float | None
    created_at: float

    def after(self, now: float) -> int | None:
        """Where the page continues at ``now``: None for plain OFFSET."""
        if self.expires_at is not None and now > self.expires_at:
            return None
        return self.after_pk


def _where(account_id: str, scope: str, end_offset: int) -> Any:
    return (
        (page_ends.c.account_id == account_id)
        & (page_ends.c.scope == scope)
        & (page_ends.c.end_offset == end_offset)
    )


def latest(
    conn: Connection, account_id: str, scope: str, end_offset: int, generation: int
) -> PageEnd | None:
    """The newest decision for offset ``end_offset`` at ``generation`` or before it."""
    row = conn.execute(
        select(*_COLUMNS)
        .where(_where(account_id, scope, end_offset), page_ends.c.generation <= generation)
        .order_by(page_ends.c.generation.desc())
        .limit(1)
    ).first()
    return None if row is None else PageEnd(*row)


def decide(
    conn: Connection, account_id: str, scope: str, end_offset: int, decision: PageEnd
) -> PageEnd:
    """Record ``decision`` for (offset, its generation) unless one exists; returns the
    decision that holds (this one or the earlier one)."""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(
        dialect.insert(page_ends)
        .values(
            account_id=account_id,
            scope=scope,
            end_offset=end_offset,
            generation=decision.generation,
            after_pk=decision.after_pk,
            expires_at=decision.expires_at,
            created_at=decision.created_at,
        )
        .on_conflict_do_nothing()
    ).rowcount
    if inserted:
        return decision
    row = conn.execute(
        select(*_COLUMNS).where(
            _where(account_id, scope, end_offset),
            page_ends.c.generation == decision.generation,
        )
    ).one()
    return PageEnd(*row)


def prune(conn: Connection, account_id: str, below_generation: int, before: float) -> None:
    """Remove decisions of older generations made before ``before``: no request of the
    current generation (whose rows stay) can need them."""
    conn.execute(
        delete(page_ends).where(
            page_ends.c.account_id == account_id,
            page_ends.c.generation < below_generation,
            page_ends.c.created_at < before,
        )
    )
