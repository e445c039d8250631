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
Between a commit and its notification's arrival lies only its delivery: PostgreSQL
signals every listening backend at commit, before the committing client hears that its
commit is done, and each backend then writes the notification to its listener's socket.
``caught_up`` closes the part of that gap on this side: it holds only while the listener
thread is waiting and nothing has arrived on its socket, so a notification already
delivered to this host but not yet handled (the thread waiting for the GIL, say) sends
readers to the database instead. What stays open is the time a listening backend takes to
be scheduled and write (measured in ``tests/store/test_notify.py``, well under a
millisecond on an idle host; a busy one may take longer). The writing process knows its own
commits at once (``committed``, ``Store.write``).

The same connection carries the *auth epoch* (``rolodex.store.authepoch``) on a channel
of its own: each revocation of a token or deletion of an account announces the new epoch,
so every process ends its trust in cached tokens without a query per request.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "rolodex_accounts"
# The auth epoch's announcements; the payload is the new epoch (rolodex.store.authepoch).
AUTH_CHANNEL = "rolodex_auth"
# The listener's connection, as pg_stat_activity shows it once it listens (before that, as
# STARTING).
APPLICATION = "rolodex-listen"
STARTING = "rolodex-listen-starting"
# A listener's reply to an auth epoch it has heard: this prefix and the epoch.
ACKNOWLEDGED = "heard "
MAX_ACKNOWLEDGED = 1000
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
        # The listener thread is waiting for its socket (set just before it waits, cleared
        # as soon as it wakes): with nothing on the socket, everything delivered is handled.
        self._waiting = False
        self._readable: Callable[[], bool] = _never
        self._held = _Held()  # per thread: ``caught_up`` as ``begin_answer`` found it
        # The auth epoch as last announced (None: unknown, ask the database), and a count
        # that moves whenever that may have changed, so a value read from the database is
        # kept only if nothing was heard meanwhile (``learn_auth``).
        self._auth: str | None = None
        self._auth_turn = 0
        # Epochs heard and not yet acknowledged; epoch -> the listening backends that
        # have acknowledged it (``wait_acknowledged``).
        self._to_acknowledge: list[str] = []
        self._acknowledged: dict[str, set[int]] = {}
        self._auth_changed = threading.Condition(self._lock)
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

    def caught_up(self) -> bool:
        """Whether every notification that has reached this host has been handled: the
        listener is connected, waiting, and nothing has arrived on its socket. The socket is
        looked at first: the thread clears ``_waiting`` before it reads from it. Between
        ``begin_answer`` and ``end_answer``, what it was at ``begin_answer``."""
        held = self._held.answer
        if held is not None:
            return held
        return self._healthy and not self._readable() and self._waiting

    def begin_answer(self) -> None:
        """This thread answers a request that arrived before now: one look at the socket
        (a system call) serves all its reads (the auth epoch, the generation), which are
        then at least as new as everything committed before it arrived."""
        self._held.answer = None
        self._held.answer = self.caught_up()

    def end_answer(self) -> None:
        self._held.answer = None

    def known(self, account_id: str) -> int | None:
        """The account's current generation, if the listener is caught up and knows it."""
        if not self.caught_up():
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

    # The auth epoch ---------------------------------------------------------------------

    def auth_epoch(self) -> str | None:
        """The auth epoch as announced, if the listener is caught up and has one."""
        if not self.caught_up():
            return None
        return self._auth

    @property
    def auth_turn(self) -> int:
        return self._auth_turn

    def learn_auth(self, epoch: str, turn: int) -> None:
        """Keep an auth epoch read from the database after ``auth_turn`` was ``turn``."""
        with self._lock:
            if self._healthy and turn == self._auth_turn:
                self._auth = epoch

    def forget_auth(self) -> None:
        """This process changed the auth epoch: ask the database until it is announced."""
        with self._lock:
            self._auth_turn += 1
            self._auth = None

    def wait_acknowledged(self, epoch: str, listeners: set[int], timeout: float) -> set[int]:
        """Until every one of ``listeners`` (backend pids) has acknowledged hearing
        ``epoch``; the ones that did not within ``timeout`` (all of them while this
        process is not listening: it would not hear them)."""
        with self._auth_changed:
            self._auth_changed.wait_for(
                lambda: not self._healthy or listeners <= self._acknowledged.get(epoch, set()),
                timeout,
            )
            return listeners - self._acknowledged.get(epoch, set()) if self._healthy else listeners

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def close(self) -> None:
        """Stop listening: the thread ends within ``CHECK_SECONDS`` (it is a daemon, and
        closes its connection itself), and nothing is served from here any more."""
        self._closed.set()
        with self._lock:
            self._healthy = False
            self._known.clear()
            self._auth = None
            self._auth_turn += 1
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
            self._auth = None
            self._auth_turn += 1
            self._to_acknowledge.clear()  # acknowledgements name the connection they go on
            self._auth_changed.notify_all()
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

    def _heard(self, channel: str, payload: str, pid: int) -> None:
        if channel == AUTH_CHANNEL:
            with self._lock:
                if payload.startswith(ACKNOWLEDGED):
                    epoch = payload[len(ACKNOWLEDGED) :]
                    if len(self._acknowledged) >= MAX_ACKNOWLEDGED:
                        self._acknowledged.clear()
                    self._acknowledged.setdefault(epoch, set()).add(pid)
                else:
                    self._auth = payload
                    self._auth_turn += 1
                    self._to_acknowledge.append(payload)
                self._auth_changed.notify_all()
            return
        account_id, _, generation = payload.partition(" ")
        with self._lock:
            self._store(account_id, int(generation))
        self._tell(account_id)

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
                self._waiting = False
                self._readable = _never
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
        # Notifications that arrive while a statement runs (LISTEN, the liveness check)
        # are handed over by psycopg; the rest are read below.
        conn.add_notify_handler(lambda note: self._heard(note.channel, note.payload, note.pid))
        conn.execute(f"LISTEN {CHANNEL}")
        conn.execute(f"LISTEN {AUTH_CHANNEL}")
        # Named only once listening: a revocation waits for the sessions of this name to
        # acknowledge it (rolodex.store.authepoch), and one named after the revocation's
        # commit reads the epoch from the database instead.
        conn.execute(f"SET application_name TO '{APPLICATION}'")
        pgconn = conn.pgconn
        fd = pgconn.socket
        self._readable = _readable(fd)
        self._reset(healthy=True)
        while not self._closed.is_set():
            # What libpq has read already (after a statement) but not yet parsed, first:
            # the socket would not show it.
            self._drain(pgconn)
            self._acknowledge(conn)
            self._waiting = True
            ready, _, _ = select.select([fd], [], [], CHECK_SECONDS)
            self._waiting = False
            if not ready and not self._closed.is_set():
                conn.execute("SELECT 1")  # a dead connection raises here

    def _acknowledge(self, conn: Any) -> None:
        """Tell the revoking process (every listener hears it) that this one has heard
        the epochs it has: its requests no longer trust tokens checked before them."""
        while self._to_acknowledge:
            with self._lock:
                epochs, self._to_acknowledge = self._to_acknowledge, []
            for epoch in epochs:
                conn.execute("SELECT pg_notify(%s, %s)", (AUTH_CHANNEL, ACKNOWLEDGED + epoch))

    def _drain(self, pgconn: Any) -> None:
        from psycopg import pq

        pgconn.consume_input()  # raises on a broken connection
        if pgconn.status != pq.ConnStatus.OK:  # or has just read that it is closed
            raise ConnectionError("the listening connection was closed")
        while (note := pgconn.notifies()) is not None:
            self._heard(note.relname.decode(), note.extra.decode(), note.be_pid)


class _Held(threading.local):
    answer: bool | None = None


def _never() -> bool:
    return False


def _readable(fd: int) -> Callable[[], bool]:
    """Whether anything waits to be read on ``fd``, without waiting (one ``poll``)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)

    def readable() -> bool:
        try:
            return bool(poller.poll(0))
        except RuntimeError:  # another thread is polling it this instant
            return bool(select.select([fd], [], [], 0)[0])

    return readable


def _connect(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True, connect_timeout=5, application_name=STARTING)


def libpq_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)
