"""The per-account change log and the outbox of writes waiting to reach the provider."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from rolodex.domain.remote import OutboxItem
from rolodex.store.bulk import insert_rows
from rolodex.store.schema import changes, outbox


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    object_type: str
    object_id: str
    event: str
    created_at: float


_APPEND = insert(changes)  # built once: every write of a contact or group appends one


class ChangeRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def append(
        self, account_id: str, seq: int, object_type: str, object_id: str, event: str, now: float
    ) -> None:
        # (Through SQLAlchemy, not the driver as append_many: its errors are SQLAlchemy's,
        # also when sent together.)
        self.conn.execute(
            _APPEND,
            {
                "account_id": account_id,
                "seq": seq,
                "object_type": object_type,
                "object_id": object_id,
                "event": event,
                "created_at": now,
            },
        )

    def append_many(
        self, account_id: str, rows: Iterable[tuple[int, str, str, str]], now: float
    ) -> None:
        """``append`` of many (seq, object_type, object_id, event) in one statement."""
        insert_rows(
            self.conn,
            changes,
            ("account_id", "seq", "object_type", "object_id", "event", "created_at"),
            (
                (account_id, seq, kind, object_id, event, now)
                for seq, kind, object_id, event in rows
            ),
        )

    def was_deleted(self, account_id: str, object_id: str) -> bool:
        """Whether the change log records the deletion of this object."""
        return (
            self.conn.execute(
                select(changes.c.seq)
                .where(
                    changes.c.account_id == account_id,
                    changes.c.object_id == object_id,
                    changes.c.event == "delete",
                )
                .limit(1)
            ).first()
            is not None
        )

    def since(self, account_id: str, after_seq: int, limit: int) -> list[Change]:
        rows = self.conn.execute(
            select(changes)
            .where(changes.c.account_id == account_id, changes.c.seq > after_seq)
            .order_by(changes.c.seq)
            .limit(limit)
        )
        return [Change(r.seq, r.object_type, r.object_id, r.event, r.created_at) for r in rows]


# Read for every batch a sync applies: built once.
_WITH_PENDING = (
    select(outbox.c.object_id)
    .where(
        outbox.c.account_id == bindparam("b_account"),
        outbox.c.object_id.in_(bindparam("b_ids", expanding=True)),
    )
    .distinct()
)


class OutboxRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def enqueue(
        self,
        account_id: str,
        seq: int,
        object_type: str,
        object_id: str,
        operation: str,
        fields: tuple[str, ...],
        now: float,
        request_id: str | None = None,
    ) -> None:
        self.conn.execute(
            insert(outbox).values(
                account_id=account_id,
                seq=seq,
                object_type=object_type,
                object_id=object_id,
                operation=operation,
                fields=json.dumps(list(fields)),
                created_at=now,
                next_attempt_at=now,
                request_id=request_id,
            )
        )

    def pending(self, account_id: str, now: float, limit: int = 100) -> list[OutboxItem]:
        rows = self.conn.execute(
            select(outbox)
            .where(outbox.c.account_id == account_id, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.seq)
            .limit(limit)
        )
        return _items(rows)

    def waiting(
        self,
        account_id: str,
        object_type: str,
        operation: str,
        object_ids: Iterable[str] | None = None,
    ) -> list[OutboxItem]:
        """The writes waiting of that type and operation for these objects (None: for
        every object), in order, due or not."""
        query = select(outbox).where(
            outbox.c.account_id == account_id,
            outbox.c.object_type == object_type,
            outbox.c.operation == operation,
        )
        if object_ids is not None:
            ids = list(dict.fromkeys(object_ids))
            if not ids:
                return []
            query = query.where(outbox.c.object_id.in_(ids))
        return _items(self.conn.execute(query.order_by(outbox.c.seq)))

    def has_pending(self, account_id: str, object_id: str) -> bool:
        return (
            self.conn.execute(
                select(outbox.c.seq)
                .where(outbox.c.account_id == account_id, outbox.c.object_id == object_id)
                .limit(1)
            ).first()
            is not None
        )

    def with_pending(self, account_id: str, object_ids: Iterable[str]) -> set[str]:
        """Those of ``object_ids`` with writes waiting in the outbox (one query per 500)."""
        ids = list(dict.fromkeys(object_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            found.update(
                self.conn.execute(
                    _WITH_PENDING, {"b_account": account_id, "b_ids": ids[start : start + 500]}
                ).scalars()
            )
        return found

    def fields_of(self, account_id: str, object_id: str) -> list[str]:
        """The fields touched by every write of the object waiting in the outbox."""
        rows = self.conn.execute(
            select(outbox.c.fields)
            .where(outbox.c.account_id == account_id, outbox.c.object_id == object_id)
            .order_by(outbox.c.seq)
        )
        return [name for text in rows.scalars() for name in json.loads(text)]

    def fields_of_write(self, account_id: str, seq: int) -> list[str]:
        """The fields one waiting write touches."""
        text = self.conn.execute(
            select(outbox.c.fields).where(outbox.c.account_id == account_id, outbox.c.seq == seq)
        ).scalar()
        return list(json.loads(text)) if text else []

    def accounts_due(self, now: float, limit: int = 100) -> list[str]:
        """Accounts with writes waiting for the provider whose next attempt is due."""
        rows = self.conn.execute(
            select(outbox.c.account_id)
            .where(outbox.c.next_attempt_at <= now)
            .group_by(outbox.c.account_id)
            .limit(limit)
        )
        return list(rows.scalars())

    def count(self, account_id: str) -> int:
        statement = (
            select(func.count()).select_from(outbox).where(outbox.c.account_id == account_id)
        )
        return int(self.conn.execute(statement).scalar_one())

    def done(self, account_id: str, seq: int) -> None:
        self.conn.execute(
            delete(outbox).where(outbox.c.account_id == account_id, outbox.c.seq == seq)
        )

    def mark_attempt(self, account_id: str, seq: int) -> None:
        """Count an attempt before it is made: a create whose outcome is then unknown (a
        lost reply, a crash) is retried as one that may have landed."""
        self.conn.execute(
            update(outbox)
            .where(outbox.c.account_id == account_id, outbox.c.seq == seq)
            .values(attempts=outbox.c.attempts + 1)
        )

    def set_fields(self, account_id: str, seq: int, fields: tuple[str, ...]) -> None:
        self.conn.execute(
            update(outbox)
            .where(outbox.c.account_id == account_id, outbox.c.seq == seq)
            .values(fields=json.dumps(list(fields)))
        )

    def defer(self, account_id: str, at: float, error: str) -> None:
        """Hold every write of the account until ``at`` (its sync failed unexpectedly)."""
        self.conn.execute(
            update(outbox)
            .where(outbox.c.account_id == account_id, outbox.c.next_attempt_at < at)
            .values(next_attempt_at=at, last_error=error)
        )

    def retry_later(self, account_id: str, seq: int, at: float, error: str) -> None:
        self.conn.execute(
            update(outbox)
            .where(outbox.c.account_id == account_id, outbox.c.seq == seq)
            .values(attempts=outbox.c.attempts + 1, next_attempt_at=at, last_error=error)
        )


def _items(rows: Iterable[Any]) -> list[OutboxItem]:
    return [
        OutboxItem(
            r.seq,
            r.account_id,
            r.object_type,
            r.object_id,
            r.operation,
            tuple(json.loads(r.fields)),
            r.attempts,
            r.request_id,
        )
        for r in rows
    ]
