"""Engines for the two dialects, and the transaction discipline the repositories rely on."""

from __future__ import annotations

import contextvars
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

DEFAULT_DATABASE_URL = "sqlite:///rolodex.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_SIZE = -65536  # KiB
# Memory-mapped reads serve the API's hot reads without copying pages into the cache. Every
# page mapped stays in the process's resident set, though: a process that only syncs, and
# writes far more than it reads, opens its store without (``mmap=False``); a first sync of
# 100,000 people had mapped most of its 256 MB.
SQLITE_MMAP_BYTES = 268435456


def normalize_url(url: str) -> str:
    """Accept the URLs users write (``postgresql://``) and pick our drivers for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> str | None:
    """The database file of a SQLite URL; None for PostgreSQL and in-memory databases."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def create_store_engine(url: str, *, pool_size: int = 8, mmap: bool = True) -> Engine:
    url = normalize_url(url)
    if is_sqlite(url):
        return _sqlite_engine(url, pool_size, SQLITE_MMAP_BYTES if mmap else 0)
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_engine(url: str, pool_size: int, mmap_bytes: int) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        folder = os.path.dirname(os.path.abspath(database))
        os.makedirs(folder, exist_ok=True)
        _create_private(database)
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    else:
        engine = create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit transactions would defer
        # the write lock and turn concurrent writers into "database is locked" errors.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA cache_size={SQLITE_CACHE_SIZE}")
        cursor.execute(f"PRAGMA mmap_size={mmap_bytes}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _create_private(path: str) -> None:
    """Create a new database file readable by its owner only: it holds everyone's address
    books. SQLite gives its -wal and -shm files the database file's permissions. (An
    existing file is left alone, and so is any descriptor SQLite may hold on it.)"""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


# How long a write transaction begun in this context waits for SQLite's write lock, where
# that is less than the busy timeout: an API request's write gives up (``Busy``, a 503)
# rather than hang while another process holds the file locked; sync work, with no
# client waiting, waits the whole busy timeout.
WRITE_WAIT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "sqlite_write_wait", default=None
)


@contextmanager
def write_connection(engine: Engine, wait: float | None = None) -> Iterator[Connection]:
    """A connection in a write transaction, committed on success, rolled back on error.

    On SQLite the transaction takes the write lock at BEGIN (IMMEDIATE), so it never fails
    half-way for want of a lock; it waits for it at most ``wait`` seconds (by default the
    context's ``WRITE_WAIT``, if set), then raises ``Busy``.
    """
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn, _until_committed(conn), conn.begin():
            yield conn
        return
    # SQLite has one writer at a time. Threads of this process queue on a lock instead of
    # in SQLite's busy handler, which sleeps in growing steps and turned eight concurrent
    # writers into a few hundred writes a second; other processes still wait in the handler.
    if wait is None:
        wait = WRITE_WAIT.get()
    lock = _sqlite_write_lock(engine)
    started = time.monotonic()
    if not lock.acquire(timeout=-1 if wait is None else wait):
        raise Busy()
    try:
        with engine.connect() as conn:
            if wait is None:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
                return
            left = max(1, int((wait - (time.monotonic() - started)) * 1000))
            # On the driver's connection: through SQLAlchemy a PRAGMA would begin and
            # commit a transaction of its own, a quarter of a small write's time.
            raw: Any = conn.connection.dbapi_connection
            raw.execute(f"PRAGMA busy_timeout={left}")
            try:
                with _busy_is_busy():
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                    with conn.begin():
                        yield conn
            finally:
                raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        lock.release()


@contextmanager
def _busy_is_busy() -> Iterator[None]:
    """SQLite's "database is locked" once its busy timeout ran out, as ``Busy``."""
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Busy() from exc
        raise


# Where ``together`` finds how to keep its pipeline open until the commit (conn.info), and
# whether it has opened it.
_UNTIL_COMMITTED = "rolodex.until_committed"
_PIPELINED = "rolodex.pipelined"


@contextmanager
def together(conn: Connection) -> Iterator[None]:
    """From here to the end of the transaction, statements go to PostgreSQL without
    waiting for each one's answer (psycopg's pipeline mode), and the answers come back
    together with the COMMIT's: one round trip for the inserts and the commit instead of
    one each. So the rest of the transaction only writes, and reads nothing back: no
    query (SQLAlchemy sees no result yet, and refuses to fetch from it), no RETURNING, no
    row count. An error is raised at the commit, as SQLAlchemy's exception for it.

    It matters under the account's lock: every write of an account waits for the one
    holding it (``rolodex.store``), so each round trip the holder makes is paid by all
    of them, and on a busy host a round trip is two processes waiting to be scheduled.
    Outside ``write_connection`` the pipeline ends with the block. SQLite has no round
    trips: there the block is just run."""
    if conn.dialect.name == "sqlite":
        yield
        return
    until_committed: ExitStack | None = conn.info.get(_UNTIL_COMMITTED)
    if until_committed is None:
        with _pipeline(conn):
            yield
        return
    if not conn.info.get(_PIPELINED):
        until_committed.enter_context(_pipeline(conn))
        conn.info[_PIPELINED] = True
    yield


@contextmanager
def _until_committed(conn: Connection) -> Iterator[None]:
    """A write transaction's place for a pipeline that ``together`` opens: closed after
    the commit or rollback (the connection's info outlives its checkout, so it is
    cleared too)."""
    with ExitStack() as stack:
        conn.info[_UNTIL_COMMITTED] = stack
        try:
            yield
        finally:
            conn.info.pop(_UNTIL_COMMITTED, None)
            conn.info.pop(_PIPELINED, None)


@contextmanager
def _pipeline(conn: Connection) -> Iterator[None]:
    import psycopg
    from sqlalchemy.exc import DBAPIError

    try:
        with conn.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
            yield
    except psycopg.Error as exc:  # raised by the driver at the sync, outside SQLAlchemy
        raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc


class Busy(Exception):
    """A write gave up waiting for the database's write lock (``write_connection`` with a
    wait, ``brief_write_connection``)."""


@contextmanager
def brief_write_connection(engine: Engine, wait: float = 0.05) -> Iterator[Connection]:
    """A write transaction that gives up (``Busy``) rather than wait more than about
    ``wait`` seconds for a lock: for bookkeeping written while answering a read, which
    must not hold the request up behind other writers (SQLite has one writer at a time,
    and a CLI or worker process may hold it for a while)."""
    from sqlalchemy.exc import OperationalError

    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            try:
                with conn.begin():
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(wait * 1000)}ms'")
                    yield conn
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    raise Busy() from exc
                raise
        return
    with write_connection(engine, wait) as conn:
        yield conn


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _sqlite_write_lock(engine: Engine) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.Lock()
        return lock


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction: one consistent snapshot for several queries."""
    with engine.connect() as conn, conn.begin():
        yield conn


def ensure_database(url: str, *, timeout: float = 3.0) -> None:
    """Create the PostgreSQL database ``url`` names if it is missing (SQLite files are
    created on first use). Raises if the server cannot be reached."""
    url = normalize_url(url)
    if is_sqlite(url):
        return
    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError(f"no database name in {target.render_as_string()}")
    admin = create_engine(
        target.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": int(max(1, timeout))},
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is None:
                quoted = conn.dialect.identifier_preparer.quote(name)
                conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    finally:
        admin.dispose()


# Page cache of a bulk load on SQLite. Index rows of a big load land all over the index
# B-trees; with the default cache every commit rewrites most of their pages, so a load gets
# slower with every batch. A large cache for the load's one transaction writes each page once.
BULK_CACHE_KIB = 1024 * 1024


@contextmanager
def bulk_write_connection(engine: Engine) -> Iterator[Connection]:
    """A write transaction for loading many rows at once (imports, benchmark data)."""
    with engine.connect() as conn:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
            conn.commit()
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        try:
            with conn.begin():
                yield conn
        finally:
            if sqlite:
                conn.exec_driver_sql(f"PRAGMA cache_size={SQLITE_CACHE_SIZE}")
                conn.commit()
