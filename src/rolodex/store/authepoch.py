"""Whether any access token was revoked (or account deleted) since a moment, cheaply.

Each process caches the accounts of the tokens it has checked; a revocation in another
process must end that trust at once. Every revocation writes a new random *auth epoch* into
the settings table in its own transaction; a cached token holds while the epoch it was
checked under is still current. On SQLite the epoch is re-read only after some commit moved
the WAL-index header on (rolodex.store.walstamp), so a request between writes costs two
small memory reads; on PostgreSQL it is one indexed single-row read per request.
"""

from __future__ import annotations

import secrets
import threading

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
        self._known: tuple[bytes, str] | None = None  # (WAL stamp, epoch read under it)
        self._lock = threading.Lock()

    def current(self) -> str:
        # The stamp is read before the epoch: if it is unchanged later, nothing committed
        # in between, so the epoch read then is still the current one.
        stamp = self._wal.read() if self._wal is not None else None
        known = self._known
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        with self.store.read() as tx:
            if self._wal is not None and not self._wal.is_open:
                with self._lock:
                    if not self._wal.is_open:
                        self._wal.open()
            epoch = tx.settings.get(KEY) or ""
        if stamp is not None:
            self._known = (stamp, epoch)
        return epoch
