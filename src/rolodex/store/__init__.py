"""The only place with SQL: one schema on SQLite (embedded default) or PostgreSQL.

The lock order
--------------

Every write transaction that changes an account's data takes its locks in one order:

1. the account row (``Store.write(account_id)`` locks it first thing, before anything of the
   account is read; ``AccountRepository.allocate``, which numbers the changes, then finds
   it already held);
2. the contact row (``ContactRepository.get(..., for_update=True)``), read only after 1;
3. what hangs off the contact: its picture, memberships and index rows; the change-log and
   outbox rows last.

Contacts, pictures, groups, memberships, deletes and sync's apply paths
(``service.mirror``) all follow it. Holding the account row from the first statement to the
commit is what makes writers of one account queue instead of reading a row another writer
is about to change (PostgreSQL's READ COMMITTED would let them: a lost update) or taking
row locks in opposite orders (a deadlock). It also keeps the change log in commit order:
numbers are taken under the lock that is held until commit, so no reader ever sees change
``n + 1`` committed before change ``n``. On SQLite a write transaction holds the database's
one write lock from BEGIN IMMEDIATE, which serialises writers the same way, and the row
lock statements are no-ops there.

Writers of one account therefore wait for each other, and on PostgreSQL each round trip
the holder makes under the lock is paid by every writer queued behind it: a write's tail
of inserts, whose results nothing reads, goes out at once (``Tx.together``).

A transaction that writes only rows of its own (a lease, a cursor, an outbox retry time,
an access token) takes no account lock; it never holds two, so it cannot close a cycle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Connection, Engine

from rolodex.store.accounts import AccountRepository, AuthCodeRepository, SettingsRepository
from rolodex.store.changes import ChangeRepository, OutboxRepository
from rolodex.store.contacts import ContactRepository
from rolodex.store.database import (
    brief_write_connection,
    create_store_engine,
    is_sqlite,
    normalize_url,
    read_connection,
    together,
    write_connection,
)
from rolodex.store.groups import GroupRepository
from rolodex.store.locks import lock_account_leased
from rolodex.store.notify import AccountVersions, libpq_dsn
from rolodex.store.nowait import may_wait
from rolodex.store.pictures import PictureRepository
from rolodex.store.ratecounts import RateCountRounds
from rolodex.store.remotes import RemoteRepository
from rolodex.store.signin import RedirectUriRepository, SignInRepository


class Tx:
    """The repositories, bound to one connection and so to one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.accounts = AccountRepository(conn)
        self.settings = SettingsRepository(conn)
        self.contacts = ContactRepository(conn)
        self.groups = GroupRepository(conn)
        self.pictures = PictureRepository(conn)
        self.changes = ChangeRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.remotes = RemoteRepository(conn)
        self.auth_codes = AuthCodeRepository(conn)
        self.redirect_uris = RedirectUriRepository(conn)
        self.sign_ins = SignInRepository(conn)

    def together(self) -> AbstractContextManager[None]:
        """From here to the commit, statements whose results nothing reads go out at
        once, with the commit (``database.together``)."""
        return together(self.conn)


class Store:
    def __init__(self, url: str, *, pool_size: int = 8, mmap: bool = True) -> None:
        """``mmap``: SQLite reads through a memory map (``database.SQLITE_MMAP_BYTES``)."""
        self.url = normalize_url(url)
        self.engine: Engine = create_store_engine(self.url, pool_size=pool_size, mmap=mmap)
        self._versions: AccountVersions | None = None
        self._versions_lock = threading.Lock()
        # Told the account id after each committed write(account_id), in the writing thread.
        self.on_commit: list[Callable[[str], None]] = []

    def versions(self) -> AccountVersions | None:
        """On PostgreSQL, this process's listener of account generations
        (``rolodex.store.notify``), started on first use; None on SQLite."""
        if self.is_sqlite:
            return None
        with self._versions_lock:
            if self._versions is None:
                self._versions = AccountVersions(libpq_dsn(self.url))
            return self._versions

    def rate_count_rounds(self) -> RateCountRounds:
        """The statements that share rate-limit counts with the other processes
        (``rolodex.store.ratecounts``; PostgreSQL only), on a connection of their own."""
        return RateCountRounds(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @contextmanager
    def write(self, account_id: str | None = None) -> Iterator[Tx]:
        """A write transaction; with ``account_id``, that account's row is locked first
        (the lock order above), and a missing account raises ``NoSuchAccount``."""
        may_wait()
        if account_id is None:
            with write_connection(self.engine) as conn:
                yield Tx(conn)
            return
        with write_connection(self.engine) as conn:
            locked = lock_account_leased(conn, account_id)
            before = locked.generation
            tx = Tx(conn)
            tx.accounts.generations[account_id] = before
            tx.accounts.leases[account_id] = (locked.lease_owner, locked.lease_until)
            tx.accounts.sync_states[account_id] = locked.sync_state
            yield tx
        after = tx.accounts.generations[account_id]
        if self._versions is not None and after != before:
            self._versions.committed(account_id, after)
        for hook in self.on_commit:
            hook(account_id)

    @contextmanager
    def brief_write(self) -> Iterator[Tx]:
        """A write of rows of its own that gives up (``Busy``) rather than wait for other
        writers (``brief_write_connection``)."""
        may_wait()
        with brief_write_connection(self.engine) as conn:
            yield Tx(conn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        may_wait()
        with read_connection(self.engine) as conn:
            yield Tx(conn)

    def migrate(self) -> None:
        from rolodex.store.migrations import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        if self._versions is not None:
            self._versions.close()
            self._versions = None
        self.engine.dispose()


__all__ = ["Store", "Tx"]
