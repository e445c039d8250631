"""The hot reads (a page of an unfiltered list, one contact) on raw DBAPI connections.

``GET /contacts`` and ``GET /contacts/{id}`` are most of an API's traffic. Through
SQLAlchemy's Connection each costs a pool checkout, an event-driven BEGIN, statement
construction, result processing and a reset on return: several times the query itself
(bench/README.md). Here the same statements, built once with SQLAlchemy Core from the same
schema and compiled for the engine's dialect, run on DBAPI connections kept aside for this
purpose, in a transaction of their own (one snapshot per ``read()``, as ``Store.read``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.sql.elements import BindParameter, ClauseElement

from rolodex.domain.errors import NoSuchAccount, NoSuchContact
from rolodex.domain.query import ContactFilter
from rolodex.store.contacts import ContactRow, storable
from rolodex.store.schema import accounts, contacts

_ACCOUNT: BindParameter[str] = bindparam("account_id")

_GENERATION = select(accounts.c.generation).where(accounts.c.id == _ACCOUNT)
_GET = select(contacts.c.pk, contacts.c.id, contacts.c.doc).where(
    contacts.c.account_id == _ACCOUNT, contacts.c.id == bindparam("contact_id")
)
# After a remembered page end: a seek on the primary key.
_PAGE_AFTER = (
    select(contacts.c.pk, contacts.c.id, contacts.c.doc)
    .where(contacts.c.account_id == _ACCOUNT, contacts.c.pk > bindparam("after_pk"))
    .order_by(contacts.c.pk)
    .limit(bindparam("limit"))
)
# By offset: skip over the narrow key index, then join the documents (as ContactRepository).
_PAGE_KEYS = (
    select(contacts.c.pk)
    .where(contacts.c.account_id == _ACCOUNT)
    .order_by(contacts.c.pk)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_PAGE_OFFSET = (
    select(contacts.c.pk, contacts.c.id, contacts.c.doc)
    .where(contacts.c.account_id == _ACCOUNT, contacts.c.pk.in_(_PAGE_KEYS.scalar_subquery()))
    .order_by(contacts.c.pk)
)
_IDS_AFTER = _PAGE_AFTER.with_only_columns(contacts.c.pk, contacts.c.id)
_IDS_OFFSET = _PAGE_OFFSET.with_only_columns(contacts.c.pk, contacts.c.id)

# Connections kept for hot reads; more are opened when more threads read at once.
MAX_IDLE_CONNECTIONS = 16


class _Statement:
    """A Core statement compiled once for a dialect, with its parameter order."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        compiled = statement.compile(
            dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        self.sql = str(compiled)
        self.positional = bool(getattr(compiled, "positional", False))
        self.order: Sequence[str] = list(getattr(compiled, "positiontup", None) or ())
        # Parameters the dialect adds itself (SQLite's OFFSET 0 after a LIMIT).
        self.defaults: dict[str, Any] = {k: v for k, v in compiled.params.items() if v is not None}

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        if self.positional:
            return tuple(merged[name] for name in self.order)
        return merged


class HotTx:
    """One read transaction on a raw connection: the hot reads only."""

    def __init__(self, reads: HotReads, cursor: Any) -> None:
        self._reads = reads
        self._cursor = cursor
        # Shaped like ``Tx`` for the reads it serves: tx.accounts.generation, tx.contacts.page.
        self.accounts = self
        self.contacts = self

    def _rows(self, statement: _Statement, **values: Any) -> list[Any]:
        self._cursor.execute(statement.sql, statement.params(values))
        rows: list[Any] = self._cursor.fetchall()
        return rows

    def generation(self, account_id: str) -> int:
        rows = self._rows(self._reads.generation_sql, account_id=account_id)
        if not rows:
            raise NoSuchAccount(account_id)
        return int(rows[0][0])

    def get(self, account_id: str, contact_id: str) -> ContactRow:
        if not storable(contact_id):
            raise NoSuchContact(contact_id)
        rows = self._rows(self._reads.get_sql, account_id=account_id, contact_id=contact_id)
        if not rows:
            raise NoSuchContact(contact_id)
        pk, id_, doc = rows[0]
        return ContactRow(pk, id_, bytes(doc))

    def page(
        self,
        account_id: str,
        where: ContactFilter,
        limit: int,
        offset: int = 0,
        after_pk: int | None = None,
        *,
        documents: bool = True,
    ) -> list[ContactRow]:
        """As ``ContactRepository.page``, for the unfiltered list only."""
        if not where.is_empty:
            raise ValueError("hot reads serve the unfiltered list only")
        r = self._reads
        if after_pk is not None:
            sql = r.page_after_sql if documents else r.ids_after_sql
            rows = self._rows(sql, account_id=account_id, after_pk=after_pk, limit=limit)
        else:
            sql = r.page_offset_sql if documents else r.ids_offset_sql
            rows = self._rows(sql, account_id=account_id, limit=limit, offset=offset)
        if not documents:
            return [ContactRow(pk, id_, b"") for pk, id_ in rows]
        if self._reads.sqlite:  # BLOBs arrive as bytes
            return list(map(ContactRow._make, rows))
        return [ContactRow(pk, id_, bytes(doc)) for pk, id_, doc in rows]


class HotReads:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.generation_sql = _Statement(_GENERATION, engine)
        self.get_sql = _Statement(_GET, engine)
        self.page_after_sql = _Statement(_PAGE_AFTER, engine)
        self.page_offset_sql = _Statement(_PAGE_OFFSET, engine)
        self.ids_after_sql = _Statement(_IDS_AFTER, engine)
        self.ids_offset_sql = _Statement(_IDS_OFFSET, engine)
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # A pooled connection (the engine's connect events have set it up), taken out of
        # the pool's management: it is ours until closed.
        proxy = self.engine.raw_connection()
        proxy.detach()
        return proxy

    def _release(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def read(self) -> Iterator[HotTx]:
        """A read transaction: one snapshot for the reads made in it."""
        conn = self._acquire()
        cursor = conn.cursor()
        try:
            if self.sqlite:
                cursor.execute("BEGIN")  # the engine's connections leave BEGIN to us
            yield HotTx(self, cursor)
        finally:
            try:
                cursor.close()
                conn.rollback()  # a read: ending it is all there is to do
            except Exception:
                conn.close()  # a broken connection is not reused
                raise
            self._release(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
