"""Connectors kept open between the syncs of an account, in a long-lived process.

A worker (``rolodex serve``, ``rolodex worker``) syncs every account every interval. A new
connector per sync paid for its HTTP clients, a new TCP (and TLS) connection and, where a
protocol has one, what the connector learns on its first call (CardDAV's discovery, Graph's
folders): more than the rest of a sync with one change. So the connector of an account's
last sync is kept, idle, and handed to its next sync while it is still the one for the
account's credentials: the sealed settings stored now must be those it was opened with, or
the last ones it handed back itself (``CredentialsChanged``). Anything else (the account
reconnected, or its tokens refreshed by another process, whose rotated refresh token
replaces ours) opens a new one. A connector whose sync failed is closed, never reused.

Idle connectors are closed after ``IDLE_SECONDS`` unused, and beyond ``MAX_IDLE`` of them
the least recently used goes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rolodex.connectors.base import Connector, CredentialsChanged, KeptOpen
from rolodex.domain.errors import LeaseLost

log = logging.getLogger(__name__)

IDLE_SECONDS = 600.0
MAX_IDLE = 100

ConnectorFactory = Callable[[str, dict[str, Any], CredentialsChanged], Connector]


@dataclass(eq=False)
class Held:
    """An account's connector, lent to one sync at a time."""

    account_id: str
    provider: str
    # The sealed settings the connector holds: those it was opened with, or the last it
    # handed back and that were stored.
    sealed: bytes
    connector: Connector | None = None
    # While a sync uses it: raises unless that sync may still write (its lease).
    check: Callable[[], None] | None = None
    used_at: float = field(default=0.0)


class OpenConnectors:
    def __init__(
        self,
        open_connector: ConnectorFactory,
        unseal: Callable[[bytes], dict[str, Any] | None],
        store: Callable[[str, dict[str, str]], bytes],
        *,
        idle_seconds: float = IDLE_SECONDS,
        max_idle: int = MAX_IDLE,
    ) -> None:
        """``unseal`` opens stored settings (None: they cannot be opened here); ``store``
        seals and stores an account's new settings, returning what it stored."""
        self._open = open_connector
        self._unseal = unseal
        self._store = store
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self._idle: dict[str, Held] = {}  # account id -> connector, least recently used first
        self._lock = threading.Lock()

    def take(
        self, account_id: str, provider: str, sealed: bytes, check: Callable[[], None]
    ) -> Held | None:
        """The connector for one sync of the account, whose settings are stored as
        ``sealed`` now: the one kept from its last sync if it holds those, else a new one
        (None when the settings cannot be opened). ``check`` is called before new
        credentials the connector hands back are stored."""
        now = time.monotonic()
        with self._lock:
            held = self._idle.pop(account_id, None)
            stale = [h for h in self._idle.values() if now - h.used_at > self.idle_seconds]
            for old in stale:
                del self._idle[old.account_id]
        for old in stale:
            _close(old)
        if held is not None and (held.provider != provider or held.sealed != sealed):
            _close(held)  # reconnected, or refreshed elsewhere: what it holds is stale
            held = None
        if held is None:
            settings = self._unseal(sealed)
            if settings is None:
                return None
            held = Held(account_id, provider, sealed)
            held.connector = self._open(provider, settings, self._saver(held))
        held.check = check
        return held

    def give_back(self, held: Held, *, reusable: bool) -> None:
        """The sync is over: keep the connector for the account's next one, or close it
        (``reusable`` False: the sync failed, and what the connector holds is suspect)."""
        held.check = None
        if not reusable:
            _close(held)
            return
        if isinstance(held.connector, KeptOpen):
            try:
                held.connector.idle()
            except Exception:
                log.warning("idling the connector of %s failed", held.account_id, exc_info=True)
                _close(held)
                return
        held.used_at = time.monotonic()
        with self._lock:
            displaced = self._idle.pop(held.account_id, None)
            self._idle[held.account_id] = held
            evicted = []
            while len(self._idle) > self.max_idle:
                oldest = next(iter(self._idle))
                evicted.append(self._idle.pop(oldest))
        for old in [displaced, *evicted]:
            if old is not None and old is not held:
                _close(old)

    def forget(self, account_id: str) -> None:
        """Close the account's idle connector, if one is kept."""
        with self._lock:
            held = self._idle.pop(account_id, None)
        if held is not None:
            _close(held)

    def close(self) -> None:
        """Close every idle connector (those lent to a sync are closed when given back
        failed, or stay until the process ends)."""
        with self._lock:
            idle = list(self._idle.values())
            self._idle.clear()
        for held in idle:
            _close(held)

    def __len__(self) -> int:
        return len(self._idle)

    def _saver(self, held: Held) -> CredentialsChanged:
        def changed(new: dict[str, str]) -> None:
            check = held.check
            if check is None:
                # Only a sync may store credentials, under its lease.
                raise LeaseLost(held.account_id, "(no sync running)")
            check()
            held.sealed = self._store(held.account_id, new)

        return changed


def _close(held: Held) -> None:
    if held.connector is None:
        return
    try:
        held.connector.close()
    except Exception:
        log.warning("closing the connector of %s failed", held.account_id, exc_info=True)
