"""Whether any access token was revoked (or account deleted) since a moment, cheaply.

Each process caches the accounts of the tokens it has checked; a revocation in another
process must end that trust at once. Every revocation writes a new random *auth epoch* into
the settings table in its own transaction (``AuthEpoch.revoking``); a cached token holds
while the epoch it was checked under is still current.

On SQLite the epoch is re-read only after some commit moved the WAL-index header on
(rolodex.store.walstamp), so a request between writes costs two small memory reads. It is
read through a connection of its own, held for as long as this object lives: the ``-shm``
file whose header is mapped stays the one SQLite uses while a connection of this process
has the database open (the last one to close removes it).

On PostgreSQL the revoking transaction also announces the new epoch (``pg_notify``,
delivered at commit) to the listener every process keeps (rolodex.store.notify): while
that listener is caught up the epoch is a memory read; while it is not (not connected yet,
reconnecting, a notification on its socket not yet handled) every request reads the epoch
from the database, as before, and what it reads is kept only if nothing was announced
meanwhile.

A notification reaches the other processes a moment after the revoking commit returns, so
the revocation waits for them: after its commit it reads which sessions listen (named so
only once they do), and returns once each has acknowledged hearing the epoch (each
listener replies on the same channel after it has stored it). A listener that starts
listening after that read reads the epoch from the database before it serves. One that
does not reply within ``ANNOUNCED_WITHIN_SECONDS`` (its process stopped, or cut off from the
database; it finds out within the listener's check interval and asks the database again)
is logged: until it hears, that process may still accept the revoked token.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select, text

from rolodex.store import Store, Tx
from rolodex.store.database import sqlite_path
from rolodex.store.notify import APPLICATION, AUTH_CHANNEL
from rolodex.store.nowait import may_wait
from rolodex.store.walstamp import WalStamp

log = logging.getLogger(__name__)

KEY = "auth_epoch"
# How long a revocation waits for this process's listener to connect (a process that has
# just started), and then for every listener to acknowledge it.
ANNOUNCED_WITHIN_SECONDS = 2.0
_LISTENERS = text(
    "SELECT pid FROM pg_stat_activity "
    "WHERE application_name = :name AND datname = current_database()"
)


def bump(tx: Tx) -> str:
    """Mark, in the revoking transaction, that cached tokens must be checked again; on
    PostgreSQL announced to every process at commit. Returns the new epoch."""
    epoch = secrets.token_hex(8)
    tx.settings.put(KEY, epoch)
    if tx.conn.dialect.name == "postgresql":
        tx.conn.execute(select(func.pg_notify(AUTH_CHANNEL, epoch)))
    return epoch


class AuthEpoch:
    def __init__(self, store: Store) -> None:
        self.store = store
        path = sqlite_path(store.url)
        self._wal = WalStamp(path) if path is not None else None
        self._versions = store.versions()  # PostgreSQL: the announcements of every process
        self._anchor: Any = None  # the connection the epoch is read through
        self._known: tuple[bytes, str] | None = None  # (WAL stamp, epoch read under it)
        self._lock = threading.Lock()

    @contextmanager
    def revoking(self) -> Iterator[Tx]:
        """A write transaction after whose commit no process trusts a token it checked
        before: the epoch is bumped in it, and on PostgreSQL this waits for the
        announcement (see the module's note)."""
        versions = self._versions
        if versions is not None:
            versions.wait_connected(ANNOUNCED_WITHIN_SECONDS)  # to hear the replies
        with self.store.write() as tx:
            yield tx
            epoch = bump(tx)
        if versions is None:
            return
        versions.forget_auth()  # this process asks the database until it has heard it
        with self.store.read() as tx:
            listeners = set(tx.conn.execute(_LISTENERS, {"name": APPLICATION}).scalars())
        silent = versions.wait_acknowledged(epoch, listeners, ANNOUNCED_WITHIN_SECONDS)
        if silent:
            log.warning(
                "%d listening processes did not acknowledge a revocation within %.0f s "
                "(backend pids %s): they may accept the revoked token until they hear it",
                len(silent),
                ANNOUNCED_WITHIN_SECONDS,
                ", ".join(map(str, sorted(silent))),
            )

    def current(self) -> str:
        if self._wal is not None:
            return self._current_sqlite(self._wal)
        versions = self._versions
        if versions is None:  # an in-memory SQLite database: one process's own
            with self.store.read() as tx:
                return tx.settings.get(KEY) or ""
        announced = versions.auth_epoch()
        if announced is not None:
            return announced
        turn = versions.auth_turn  # before the query: what it reads may be kept then
        epoch = self._read_postgresql()
        versions.learn_auth(epoch, turn)
        return epoch

    def _current_sqlite(self, wal: WalStamp) -> str:
        # The stamp is read before the epoch: if it is unchanged later, nothing committed
        # in between, so the epoch read then is still the current one.
        stamp = wal.read()
        known = self._known
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        with self._lock:
            try:
                epoch = self._read()
            except Exception:
                self._drop_anchor()  # a broken connection is not reused
                raise
            if not wal.is_open:
                wal.open()  # now that the anchor has read, its -shm file exists
            if stamp is not None:
                self._known = (stamp, epoch)
        return epoch

    def _read_postgresql(self) -> str:
        # One statement on a connection of its own, in autocommit (a read transaction
        # through the pool is three round trips and SQLAlchemy's machinery); a thread that
        # finds it busy reads through the pool.
        may_wait()
        if self._lock.acquire(blocking=False):
            try:
                return self._read()
            except Exception:
                self._drop_anchor()
                raise
            finally:
                self._lock.release()
        with self.store.read() as tx:
            return tx.settings.get(KEY) or ""

    def _read(self) -> str:
        if self._anchor is None:
            anchor = self.store.engine.raw_connection()
            if self._wal is None:
                anchor.detach()  # ours until closed, in autocommit: one round trip a read
                driver: Any = anchor.dbapi_connection
                driver.autocommit = True
            self._anchor = anchor
        marker = "?" if self._wal is not None else "%s"
        cursor = self._anchor.cursor()
        try:
            cursor.execute(f"SELECT value FROM settings WHERE key = {marker}", (KEY,))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return str(row[0]) if row else ""

    def _drop_anchor(self) -> None:
        if self._wal is not None:
            self._wal.close()
        self._known = None
        anchor, self._anchor = self._anchor, None
        if anchor is not None:
            anchor.close()

    def close(self) -> None:
        with self._lock:
            self._drop_anchor()
