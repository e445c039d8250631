"""Reads of an account's changes begun before its sync has taken the lease.

A long-lived worker's sync of an account starts with one transaction (the lease, the
account, its cursors: ``Mirror.start_sync``), then reads the provider. With the connector
kept from the account's last sync (``rolodex.sync.connections``) and the cursors that sync
left, the reads need nothing of that transaction: they begin first, and the two overlap
(on a sync with one change, the transaction was a fifth of the time).

Nothing read early is trusted blindly. The engine keeps a read only if its cursor is the
one the lease's transaction found, and only if the push had nothing to deliver
(``SyncEngine.sync``); the connector is used only if it holds the settings stored now
(``OpenConnectors.take``). A read that renews the account's credentials stores them only
once the lease is taken (``Gate``), as every sync does; if the lease is not taken, they are
not stored and the connector, which holds them, is closed. An account whose last start
found its lease held elsewhere is not read early (a caller waiting for another process's
sync would read the provider at every try).
"""

from __future__ import annotations

import threading
from concurrent import futures

from rolodex.domain.errors import LeaseLost
from rolodex.sync.connections import Held, OpenConnectors
from rolodex.sync.engine import ReadsAhead, SyncEngine
from rolodex.sync.lease import LEASE_SECONDS, Lease


class Gate:
    """The check of a connector whose reads began before the lease: new credentials
    wait until the lease is taken (``decide``), and are stored only then."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self._decided = threading.Event()
        self._lease: Lease | None = None

    def decide(self, lease: Lease | None) -> None:
        """The lease was taken (``lease``), or not (None)."""
        self._lease = lease
        self._decided.set()

    def check(self) -> None:
        if not self._decided.wait(LEASE_SECONDS) or self._lease is None:
            raise LeaseLost(self.account_id, "(the lease was not taken)")
        self._lease.check()


class EarlyReads:
    """An account's kept connector, borrowed, and the reads begun with it."""

    def __init__(self, held: Held, reads: ReadsAhead, gate: Gate) -> None:
        self.held = held
        self.reads = reads
        self.gate = gate

    @classmethod
    def begin(
        cls, engine: SyncEngine, connectors: OpenConnectors, account_id: str
    ) -> EarlyReads | None:
        """Begin the reads with the connector kept from the account's last sync, from the
        cursors that sync left; None when there is nothing to read early with."""
        gate = Gate(account_id)
        held = connectors.borrow(account_id, gate.check)
        if held is None:
            return None
        if held.connector is None or not held.cursors:
            connectors.give_back(held, reusable=True)
            return None
        reads = engine.read_ahead(account_id, held.connector, held.cursors)
        if not reads:
            connectors.give_back(held, reusable=True)
            return None
        return cls(held, reads, gate)

    def settle(self) -> bool:
        """Wait until every read is over; whether each ended well (a read that failed
        may have left the connector holding what was not stored)."""
        futures.wait([read for _cursor, read in self.reads.values()])
        ok = all(read.exception() is None for _cursor, read in self.reads.values())
        self.reads = {}
        return ok

    def drop(self, connectors: OpenConnectors) -> None:
        """The sync will not use them (its lease was not taken, or it stopped before
        reading): once they are over, the connector goes back, or is closed."""
        self.gate.decide(None)
        connectors.give_back(self.held, reusable=self.settle())
