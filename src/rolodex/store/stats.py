"""What operators watch, read from the database when metrics are scraped or readiness is
asked: nothing on the request path."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select, text

from rolodex.store import Store
from rolodex.store.migrations import at_head
from rolodex.store.schema import accounts, outbox


@dataclass(frozen=True)
class Stats:
    outbox_depth: int
    # (provider, sync_state) -> accounts
    accounts: dict[tuple[str, str], int]
    # provider -> seconds since the least recently synced connected account last synced
    sync_lag: dict[str, float]


def read_stats(store: Store) -> Stats:
    now = time.time()
    with store.read() as tx:
        conn = tx.conn
        depth = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
        by_state = {
            (row.provider, row.sync_state): int(row.n)
            for row in conn.execute(
                select(
                    accounts.c.provider, accounts.c.sync_state, func.count().label("n")
                ).group_by(accounts.c.provider, accounts.c.sync_state)
            )
        }
        lag = {
            row.provider: max(0.0, now - float(row.oldest))
            for row in conn.execute(
                select(
                    accounts.c.provider,
                    func.min(func.coalesce(accounts.c.last_synced_at, accounts.c.linked_at)).label(
                        "oldest"
                    ),
                )
                .where(accounts.c.connection.is_not(None))
                .group_by(accounts.c.provider)
            )
        }
    return Stats(int(depth), by_state, lag)


def readiness(store: Store) -> str | None:
    """None when the database answers and its schema is at the migrations' head; else why
    not, in a sentence."""
    try:
        with store.read() as tx:
            tx.conn.execute(text("SELECT 1"))
    except Exception:
        return "the database is not reachable"
    if not at_head(store.engine):
        return "the database schema is not at the current migrations (run rolodex db upgrade)"
    return None
