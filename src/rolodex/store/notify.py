"""Account generations as PostgreSQL announces them: what the read cache and the delta
waiters of every API process need to know, without a query per request or per waiter.

Migration 0003 installs a trigger that runs ``pg_notify('rolodex_accounts', '<id> <gen>')``
whenever an account's generation changes, which every change of its contacts and groups
does in its own transaction; PostgreSQL delivers it at commit. One thread per process
listens on one connection of its own and keeps the newest generation of each account it
has heard of or been told (``learn``, after a query).

A generation is served from here only while the listener is connected (``known``); while
it is not, readers ask the database as before. Every (re)connection starts a new epoch:
LISTEN first, then forget everything, then serve again, and a value read from the database
is kept only if no reconnection happened since it was read (``learn`` checks the epoch),
so a notification missed while disconnected can never leave a stale generation behind.
What this gives up is only the notification's latency (a commit is seen a moment later
by other processes than by the one that made it; the writing process forgets the account
at once, ``Store.write``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "rolodex_accounts"
# The listener's connection, as pg_stat_activity shows it.
APPLICATION = "rolodex-listen"
# How long the listener waits for a notification before checking its connection.
CHECK_SECONDS = 2.0
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
MAX_KNOWN = 100_000

# Called from the listener thread with the account that changed, or None when anything
# may have changed (the listener reconnected, or lost its connection).
Subscriber = Callable[[str | None], None]


class AccountVersions:
    def __init__(self, dsn: str, *, connect: Callable[[str], Any] | None = None) -> None:
        self._dsn = dsn
        self._connect = connect or _connect
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()
        self._epoch = 0
        self._healthy = False
        self._closed = threading.Event()
        self._connected = threading.Event()
        self._subscribers: list[Subscriber] = []
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="rolodex-listen", daemon=True)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def epoch(self) -> int:
        return self._epoch

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def known(self, account_id: str) -> int | None:
        """The account's current generation, if the listener is connected and knows it."""
        if not self._healthy:
            return None
        return self._known.get(account_id)

    def learn(self, account_id: str, generation: int, epoch: int) -> None:
        """Keep a generation read from the database in ``epoch`` (read before the query)."""
        with self._lock:
            if not self._healthy or epoch != self._epoch:
                return
            self._store(account_id, generation)

    def committed(self, account_id: str, generation: int) -> None:
        """This process committed a change of the account that left it at ``generation``:
        known at once here (other processes hear it from PostgreSQL)."""
        with self._lock:
            self._store(account_id, generation)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def close(self) -> None:
        """Stop listening: the thread ends within ``CHECK_SECONDS`` (it is a daemon, and
        closes its connection itself), and nothing is served from here any more."""
        self._closed.set()
        with self._lock:
            self._healthy = False
            self._known.clear()
        self._thread.join(0.05)

    # The listener ---------------------------------------------------------------------

    def _store(self, account_id: str, generation: int) -> None:
        if len(self._known) >= MAX_KNOWN:
            self._known.clear()
        known = self._known.get(account_id)
        if known is None or known < generation:
            self._known[account_id] = generation

    def _reset(self, healthy: bool) -> None:
        with self._lock:
            self._healthy = healthy
            self._epoch += 1
            self._known.clear()
        if healthy:
            self._connected.set()
        else:
            self._connected.clear()
        self._tell(None)

    def _tell(self, account_id: str | None) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(account_id)
            except Exception:
                log.exception("account change subscriber failed")

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                self._listen()
                failures = 0
            except Exception as exc:
                if self._closed.is_set():
                    break
                log.warning("listening for account changes failed (%s); retrying", exc)
                failures += 1
            finally:
                if self._healthy:
                    self._reset(healthy=False)
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            pause = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            self._closed.wait(pause)

    def _listen(self) -> None:
        conn = self._conn = self._connect(self._dsn)
        conn.execute(f"LISTEN {CHANNEL}")
        self._reset(healthy=True)
        while not self._closed.is_set():
            for note in conn.notifies(timeout=CHECK_SECONDS):
                account_id, _, generation = note.payload.partition(" ")
                with self._lock:
                    self._store(account_id, int(generation))
                self._tell(account_id)
            if not self._closed.is_set():
                conn.execute("SELECT 1")  # a dead connection raises here


def _connect(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True, connect_timeout=5, application_name=APPLICATION)


def libpq_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)
