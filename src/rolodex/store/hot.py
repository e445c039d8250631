"""The hot reads (a page of an unfiltered list, one contact) on raw DBAPI connections.

``GET /contacts`` and ``GET /contacts/{id}`` are most of an API's traffic. Through
SQLAlchemy's Connection each costs a pool checkout, an event-driven BEGIN, statement
construction, result processing and a reset on return: several times the query itself
(bench/README.md). Here the same statements, built once with SQLAlchemy Core from the same
schema (rolodex.store.hotsql) and compiled for the engine's dialect, run on DBAPI
connections kept aside for this purpose, in a transaction of their own (one snapshot per
``read()``, as ``Store.read``; REPEATABLE READ on PostgreSQL, whose default would take a
new snapshot per statement).

Outside a transaction, ``generation()`` reads an account's generation with one statement:
all a read answered from the in-process cache needs (rolodex.service.readcache). On SQLite
it skips even that while the WAL-index header shows no commit since it last asked
(rolodex.store.walstamp); on PostgreSQL while the database's notifications of account
generations are heard (rolodex.store.notify). A page the cache does not hold is read the
same way, with the generation it was read at, in one statement (``page_body_at``): one
round trip where a transaction took four.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from rolodex.domain.errors import NoSuchAccount, NoSuchContact
from rolodex.domain.query import ContactFilter
from rolodex.store import hotsql as sql
from rolodex.store.contacts import ContactRow, storable
from rolodex.store.notify import AccountVersions
from rolodex.store.nowait import may_wait
from rolodex.store.paging import PageEnd
from rolodex.store.schema import page_ends
from rolodex.store.walstamp import WalStamp

# Connections kept for hot reads; more are opened when more threads read at once.
MAX_IDLE_CONNECTIONS = 16
# Accounts whose generation is remembered with the WAL stamp it was read under.
MAX_KNOWN_GENERATIONS = 100_000
# How long a decision waits for a decider (``decide_page_end``), and how many PostgreSQL has.
DECIDER_WAIT_SECONDS = 0.05
MAX_DECIDERS = 8


class PageBody(NamedTuple):
    """A page as the list endpoint sends it: the stored documents as one JSON array; from
    ``page_body_at``, with the decision made for where it ends, if any yet."""

    body: bytes
    length: int
    last_pk: int | None
    end: PageEnd | None = None


class HotTx:
    """One read transaction on a raw connection: the hot reads only."""

    def __init__(self, reads: HotReads, cursor: Any) -> None:
        self._reads = reads
        self._cursor = cursor
        # Shaped like ``Tx`` for the reads it serves: tx.accounts.generation, tx.contacts.page.
        self.accounts = self
        self.contacts = self

    def _rows(self, statement: sql.Statement, **values: Any) -> list[Any]:
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

    def page_body(
        self,
        account_id: str,
        limit: int,
        offset: int = 0,
        after_pk: int | None = None,
        skip: int = 0,
    ) -> PageBody:
        """The unfiltered page of ``page``, joined into the JSON array (documents as stored);
        with ``skip``, the rows after ``after_pk`` from the ``skip``-th on.

        Builds no row objects: a hundred of them cost more than joining the bytes.
        """
        statement, values = self._reads.page_statement(
            account_id, limit, offset, after_pk, skip, generation=False
        )
        return _joined(self._rows(statement, **values))


def _joined(rows: list[Any]) -> PageBody:
    if not rows:
        return PageBody(b"[]", 0, None)
    body = b"[" + b",".join([row[1] for row in rows]) + b"]"
    return PageBody(body, len(rows), rows[-1][0])


class HotReads:
    def __init__(self, engine: Engine, versions: AccountVersions | None = None) -> None:
        self.engine = engine
        # PostgreSQL: generations as announced by the database (rolodex.store.notify).
        self.versions = versions
        self.sqlite = engine.dialect.name == "sqlite"
        self.generation_sql = sql.Statement(sql.GENERATION, engine)
        self.get_sql = sql.Statement(sql.GET, engine)
        self.page_after_sql = sql.Statement(sql.PAGE_AFTER, engine)
        self.page_offset_sql = sql.Statement(sql.PAGE_OFFSET, engine)
        self.ids_after_sql = sql.Statement(sql.IDS_AFTER, engine)
        self.ids_offset_sql = sql.Statement(sql.IDS_OFFSET, engine)
        self.docs_after_sql = sql.Statement(sql.DOCS_AFTER, engine)
        self.docs_offset_sql = sql.Statement(sql.DOCS_OFFSET, engine)
        self.docs_after_skip_sql = sql.Statement(sql.DOCS_AFTER_SKIP, engine)
        self.docs_after_at_sql = sql.Statement(sql.DOCS_AFTER_AT, engine)
        self.docs_offset_at_sql = sql.Statement(sql.DOCS_OFFSET_AT, engine)
        self.docs_after_skip_at_sql = sql.Statement(sql.DOCS_AFTER_SKIP_AT, engine)
        self.page_end_sql = sql.Statement(sql.PAGE_END_LATEST, engine)
        dialect_insert: Any = sqlite_insert if self.sqlite else postgresql_insert
        self.decide_sql = sql.Statement(
            dialect_insert(page_ends).values(**sql.PAGE_END_VALUES).on_conflict_do_nothing(), engine
        )
        self._deciders: list[tuple[Any, Any]] = []
        self._decider_slots = threading.BoundedSemaphore(1 if self.sqlite else MAX_DECIDERS)
        # Hot connections run in autocommit mode, so a lone statement (``generation``) is
        # one round trip; ``read`` opens its transaction explicitly.
        self._begin = "BEGIN" if self.sqlite else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._peek_lock = threading.Lock()
        self._peek_conn: Any = None
        self._peek_cursor: Any = None
        database = engine.url.database if self.sqlite else None
        self._wal = (
            WalStamp(database)
            if database and database != ":memory:" and not database.startswith("file:")
            else None
        )
        # account id -> (WAL stamp read before the generation was, that generation)
        self._known: dict[str, tuple[bytes, int]] = {}

    def _acquire(self) -> Any:
        may_wait()
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # A pooled connection (the engine's connect events have set it up), taken out of
        # the pool's management: it is ours until closed.
        proxy = self.engine.raw_connection()
        proxy.detach()
        if not self.sqlite:
            # (The engine's SQLite connections are in autocommit mode already.)
            driver: Any = proxy.dbapi_connection
            driver.autocommit = True
        return proxy

    def _cursor(self, conn: Any) -> Any:
        # PostgreSQL's binary format sends bytea as is, not as hex text twice its size.
        return conn.cursor() if self.sqlite else conn.cursor(binary=True)

    def _lone(self, statement: sql.Statement, values: dict[str, Any]) -> list[Any]:
        """One statement on its own, outside a transaction (its own snapshot)."""
        conn = self._acquire()
        try:
            cursor = self._cursor(conn)
            try:
                cursor.execute(statement.sql, statement.params(values))
                rows: list[Any] = cursor.fetchall()
            finally:
                cursor.close()
        except Exception:
            conn.close()  # a broken connection is not reused
            raise
        self._release(conn)
        return rows

    def generation(self, account_id: str) -> int:
        """The account's generation now (one statement, no transaction).

        Every cached read asks this first, so it has a connection and cursor of its own
        (taking one from the idle list and making a cursor cost as much as the query); a
        caller that finds it busy (another thread) uses a pooled connection instead.
        """
        versions = self.versions
        epoch = 0
        if versions is not None:
            announced = versions.known(account_id)
            if announced is not None:
                return announced
            epoch = versions.epoch  # before the query: what it reads may be kept then
        # The stamp is read before the generation: if it is unchanged later, nothing was
        # committed since, so the generation read after it is still the current one.
        stamp = self._wal.read() if self._wal is not None else None
        if stamp is not None:
            known = self._known.get(account_id)
            if known is not None and known[0] == stamp:
                return known[1]
        if self._peek_lock.acquire(blocking=False):
            try:
                rows = self._peek(account_id)
            finally:
                self._peek_lock.release()
        else:
            rows = self._lone(self.generation_sql, {"account_id": account_id})
        if not rows:
            raise NoSuchAccount(account_id)
        generation = int(rows[0][0])
        if versions is not None:
            versions.learn(account_id, generation, epoch)
        if stamp is not None:
            if len(self._known) >= MAX_KNOWN_GENERATIONS:
                self._known.clear()
            self._known[account_id] = (stamp, generation)
        return generation

    def _peek(self, account_id: str) -> list[Any]:
        may_wait()
        if self._peek_cursor is None:
            self._peek_conn = self._acquire()
            self._peek_cursor = self._cursor(self._peek_conn)
        statement = self.generation_sql
        try:
            self._peek_cursor.execute(statement.sql, statement.params({"account_id": account_id}))
            rows: list[Any] = self._peek_cursor.fetchall()
        except Exception:
            self._close_peek()  # a broken connection is not reused
            raise
        if self._wal is not None and not self._wal.is_open:
            # Now that this connection has read the database its -shm file exists, and it
            # stays while the connection is open (the last connection to close removes it;
            # a new one would not be the file mapped here): the map lives as long as it.
            self._wal.open()
        return rows

    def _close_peek(self) -> None:
        conn, self._peek_conn, self._peek_cursor = self._peek_conn, None, None
        if self._wal is not None:
            self._wal.close()
            self._known.clear()
        if conn is not None:
            conn.close()

    def page_statement(
        self,
        account_id: str,
        limit: int,
        offset: int,
        after_pk: int | None,
        skip: int,
        *,
        generation: bool,
    ) -> tuple[sql.Statement, dict[str, Any]]:
        """The statement of a page (``HotTx.page_body``), with the account's generation on
        every row or not, and its values."""
        values: dict[str, Any] = {"account_id": account_id, "limit": limit}
        if after_pk is not None and skip:
            values.update(after_pk=after_pk, skip=skip)
            return (self.docs_after_skip_at_sql if generation else self.docs_after_skip_sql), values
        if after_pk is not None:
            values["after_pk"] = after_pk
            return (self.docs_after_at_sql if generation else self.docs_after_sql), values
        values["offset"] = offset
        return (self.docs_offset_at_sql if generation else self.docs_offset_sql), values

    def page_body_at(
        self,
        generation: int,
        account_id: str,
        limit: int,
        offset: int = 0,
        after_pk: int | None = None,
        skip: int = 0,
        scope: str = "",
    ) -> PageBody | None:
        """``HotTx.page_body`` in one statement outside a transaction (one round trip, not
        four), if the page read is of ``generation``; None if it is not, or has no rows to
        tell (then read it in a transaction). With it, when the page is full, the decision
        of list ``scope`` for offset ``offset + limit`` at that generation, if made."""
        statement, values = self.page_statement(
            account_id, limit, offset, after_pk, skip, generation=True
        )
        values.update(end_scope=scope, end_offset=offset + limit)
        rows = self._lone(statement, values)
        if not rows or rows[0][2] != generation:
            return None
        page = _joined(rows)
        created_at, end_after, expires_at = rows[0][3:6]
        if created_at is None or page.length != limit:
            return page
        return page._replace(end=PageEnd(generation, end_after, expires_at, created_at))

    def document(self, account_id: str, contact_id: str) -> bytes:
        """One contact's stored document now (one statement, no transaction)."""
        if not storable(contact_id):
            raise NoSuchContact(contact_id)
        rows = self._lone(self.get_sql, {"account_id": account_id, "contact_id": contact_id})
        if not rows:
            raise NoSuchContact(contact_id)
        return bytes(rows[0][2])

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
        try:
            cursor = self._cursor(conn)
            cursor.execute(self._begin)
        except Exception:
            conn.close()
            raise
        try:
            yield HotTx(self, cursor)
        finally:
            try:
                cursor.execute("ROLLBACK")  # a read: ending it is all there is to do
                cursor.close()
            except Exception:
                conn.close()  # a broken connection is not reused
                raise
            self._release(conn)

    def page_end(
        self, account_id: str, scope: str, end_offset: int, generation: int
    ) -> PageEnd | None:
        """``paging.latest`` in one statement on a hot connection."""
        rows = self._lone(
            self.page_end_sql,
            {
                "account_id": account_id,
                "scope": scope,
                "end_offset": end_offset,
                "generation": generation,
            },
        )
        return PageEnd(*rows[0]) if rows else None

    def decide_page_end(
        self, account_id: str, scope: str, end_offset: int, decision: PageEnd
    ) -> PageEnd | None:
        """``paging.decide`` as one autocommitted statement on a connection kept for
        decisions, which never waits for a database lock (a read must not queue behind
        writers for bookkeeping); None when it could not be written now.

        It does wait, briefly, for a decider: a decision left unrecorded is decided again
        by the next page's request, as plain OFFSET for good (no page end to continue).
        SQLite has one writer at a time, so one decider; PostgreSQL one per reader thread,
        up to ``MAX_DECIDERS`` (through one, the readers' decisions queued behind each
        other's round trips: most of the time of a cold page)."""
        may_wait()
        if not self._decider_slots.acquire(timeout=DECIDER_WAIT_SECONDS):
            return None
        try:
            with self._lock:
                decider = self._deciders.pop() if self._deciders else None
            if decider is None:
                decider = self._new_decider()
            conn, cursor = decider
            values = {
                "account_id": account_id,
                "scope": scope,
                "end_offset": end_offset,
                "generation": decision.generation,
                "after_pk": decision.after_pk,
                "expires_at": decision.expires_at,
                "created_at": decision.created_at,
            }
            try:
                cursor.execute(self.decide_sql.sql, self.decide_sql.params(values))
                inserted = cursor.rowcount
            except Exception:
                conn.close()  # busy, or broken: a fresh connection next time
                return None
            with self._lock:
                self._deciders.append(decider)
        finally:
            self._decider_slots.release()
        if inserted:
            return decision
        held = self.page_end(account_id, scope, end_offset, decision.generation)
        return held if held is not None and held.generation == decision.generation else None

    def _new_decider(self) -> tuple[Any, Any]:
        conn = self._acquire()
        cursor = self._cursor(conn)
        if self.sqlite:
            cursor.execute("PRAGMA busy_timeout=0")
        else:
            cursor.execute("SET lock_timeout = 50")
            # A decision is visible to every process at commit either way; waiting for its
            # WAL flush as well (milliseconds; a cold page makes two) is not needed for
            # that. A database crash may lose the last few decisions, as SQLite's
            # synchronous=NORMAL may lose the last commits.
            cursor.execute("SET synchronous_commit = off")
        return conn, cursor

    def close(self) -> None:
        with self._lock:
            deciders, self._deciders = self._deciders, []
        for conn, _ in deciders:
            conn.close()
        with self._peek_lock:
            self._close_peek()
            self._wal = None
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
