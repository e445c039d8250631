"""Whether any access token was revoked (or account deleted) since a moment, cheaply.

Each process caches the accounts of the tokens it has checked; a revocation in another
process must end that trust at once. Every revocation writes a new random *auth epoch* into
the settings table in its own transaction; a cached token holds while the epoch it was
checked under is still current. On SQLite the epoch is re-read only after some commit moved
the WAL-index header on (rolodex.store.walstamp), so a request between writes costs two
small memory reads; on PostgreSQL it is one indexed single-row read per request.

On SQLite the epoch is read through a connection of its own, held for as long as this
object lives: the ``-shm`` file whose header is mapped stays the one SQLite uses while a
connection of this process has the database open (the last one to close removes it).
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from rolodex.store import Store, Tx
from rolodex.store.database import sqlite_path
from rolodex.store.walstamp import WalStamp

KEY = "auth_epoch"


def bump(tx: Tx) -> None:
    """Mark, in the revoking transaction, that cached tokens must be checked again."""
    tx.settings.put(KEY, secrets.token_hex(8))


class AuthEpoch:
    def __init__(self, store: Store) -> None:
        self.store = store
        path = sqlite_path(store.url)
        self._wal = WalStamp(path) if path is not None else None
        self._anchor: Any = None  # the connection the epoch is read through (SQLite)
        self._known: tuple[bytes, str] | None = None  # (WAL stamp, epoch read under it)
        self._lock = threading.Lock()

    def current(self) -> str:
        if self._wal is None:
            # PostgreSQL: one statement on a connection of its own, in autocommit (a read
            # transaction through the pool is three round trips and SQLAlchemy's
            # machinery, which cost the hot reads more than the reads themselves);
            # a thread that finds it busy reads through the pool.
            if self._lock.acquire(blocking=False):
                try:
                    return self._read_direct()
                except Exception:
                    self._drop_anchor()
                    raise
                finally:
                    self._lock.release()
            with self.store.read() as tx:
                return tx.settings.get(KEY) or ""
        # The stamp is read before the epoch: if it is unchanged later, nothing committed
        # in between, so the epoch read then is still the current one.
        stamp = self._wal.read()
        known = self._known
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        with self._lock:
            try:
                epoch = self._read()
            except Exception:
                self._drop_anchor()  # a broken connection is not reused
                raise
            if not self._wal.is_open:
                self._wal.open()  # now that the anchor has read, its -shm file exists
            if stamp is not None:
                self._known = (stamp, epoch)
        return epoch

    def _read(self) -> str:
        if self._anchor is None:
            self._anchor = self.store.engine.raw_connection()
        cursor = self._anchor.cursor()
        try:
            cursor.execute("SELECT value FROM settings WHERE key = ?", (KEY,))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return str(row[0]) if row else ""

    def _read_direct(self) -> str:
        if self._anchor is None:
            anchor = self.store.engine.raw_connection()
            anchor.detach()  # ours until closed, in autocommit: one round trip a read
            driver: Any = anchor.dbapi_connection
            driver.autocommit = True
            self._anchor = anchor
        cursor = self._anchor.cursor()
        try:
            cursor.execute("SELECT value FROM settings WHERE key = %s", (KEY,))
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
