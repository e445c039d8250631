"""Rate-limit counts summed over the API processes (``rolodex.api.sharedcounts`` keeps
them): each process adds what it counted since it last did, and reads the sums back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from rolodex.store.schema import rate_limit_counts as counts

PROCESS_PREFIX = "process:"
_CHUNK = 500

# (window_end, key)
Slot = tuple[int, str]


class RateCountRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, rows: Iterable[tuple[int, str, int]]) -> dict[Slot, int]:
        """Add each (window_end, key, n) to its sum; returns the sums after. Rows go in
        one order in every process, so two processes' additions never deadlock."""
        ordered = sorted(rows)
        dialect: Any = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        sums: dict[Slot, int] = {}
        for start in range(0, len(ordered), _CHUNK):
            statement = dialect.insert(counts).values(
                [{"window_end": w, "key": k, "count": n} for w, k, n in ordered[start:][:_CHUNK]]
            )
            statement = statement.on_conflict_do_update(
                index_elements=[counts.c.window_end, counts.c.key],
                set_={"count": counts.c.count + statement.excluded.count},
            ).returning(counts.c.window_end, counts.c.key, counts.c.count)
            sums.update(((w, k), n) for w, k, n in self.conn.execute(statement))
        return sums

    def sums(self, slots: Sequence[Slot]) -> dict[Slot, int]:
        """The sums of those of ``slots`` that any process counted."""
        found: dict[Slot, int] = {}
        wanted = set(slots)
        windows = sorted({w for w, _ in wanted})
        keys = sorted({k for _, k in wanted})
        for start in range(0, len(keys), _CHUNK):
            rows = self.conn.execute(
                select(counts.c.window_end, counts.c.key, counts.c.count).where(
                    counts.c.window_end.in_(windows), counts.c.key.in_(keys[start:][:_CHUNK])
                )
            )
            found.update(((w, k), n) for w, k, n in rows if (w, k) in wanted)
        return found

    def reached(self, prefix: str, window_end: int, limit: int) -> dict[str, int]:
        """Keys starting with ``prefix`` whose sum in the window has reached ``limit``."""
        rows = self.conn.execute(
            select(counts.c.key, counts.c.count).where(
                counts.c.window_end == window_end,
                counts.c.key.startswith(prefix, autoescape=True),
                counts.c.count >= limit,
            )
        )
        return {k: n for k, n in rows}

    def alive(self, process: str, until: int, round_number: int) -> None:
        """Say that ``process`` is alive until ``until`` and has added its counts of
        round ``round_number``."""
        dialect: Any = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(counts).values(window_end=until, key=process, count=round_number)
        self.conn.execute(
            statement.on_conflict_do_update(
                index_elements=[counts.c.window_end, counts.c.key],
                set_={"count": statement.excluded.count},
            )
        )

    def processes(self, alive_until: Sequence[int]) -> list[int]:
        """The last round each process alive until one of ``alive_until`` added its counts
        of (ends that no count of a second has, so the rows read are the processes' own,
        and at times a minute's)."""
        statement = (
            select(func.max(counts.c.count))
            .where(counts.c.window_end.in_(alive_until), counts.c.key.startswith(PROCESS_PREFIX))
            .group_by(counts.c.key)
        )
        return [int(n) for n in self.conn.execute(statement).scalars()]

    def prune(self, before: float) -> None:
        self.conn.execute(delete(counts).where(counts.c.window_end < before))
