"""Rate-limit counts summed over the API processes (``rolodex.api.sharedcounts`` keeps
them): each process adds what it counted since it last did, and reads the sums back.

PostgreSQL only (on SQLite each process counts alone). The sharing thread runs a statement
every half round (0.05 s), in every API process, for as long as it lives, and every
statement's CPU comes out of the requests the process serves (the GIL). Through the pool,
in a transaction, a half round was five or six round trips (the pool's ping, BEGIN, SET, the
statements, COMMIT and its WAL flush) and 2 to 3 ms of the process's CPU: 6% of a core.
Here each half round is one prepared statement on a connection of the thread's own, in
autocommit, sent through libpq itself (``PGconn.exec_prepared``, which leaves the GIL while
it waits) with its parameters as text: psycopg's cursor (adapting each value, waiting on the
socket in Python) cost about 1 ms of CPU a statement beside busy request threads, libpq
about 0.3 to 0.5 ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Engine

from rolodex.store.database import Busy

PROCESS_PREFIX = "process:"
# How long a statement waits for another process's row lock before giving up (``Busy``):
# the next round adds what this one could not.
LOCK_TIMEOUT_MS = 50

# (window_end, key)
Slot = tuple[int, str]

# What this process counted since it last added, and its row saying it is alive and done
# with a round (``count`` is the round number), in one statement. The counts go in one
# order in every process, so two processes' additions never deadlock; the sums after each
# addition come back.
_ADD = """
WITH alive AS (
    INSERT INTO rate_limit_counts (window_end, key, count)
    VALUES ($1::bigint, $2::varchar, $3::bigint)
    ON CONFLICT (window_end, key) DO UPDATE SET count = excluded.count
)
INSERT INTO rate_limit_counts AS c (window_end, key, count)
SELECT w, k, n FROM unnest($4::bigint[], $5::varchar[], $6::bigint[])
    AS r (w, k, n)
ORDER BY w, k
ON CONFLICT (window_end, key) DO UPDATE SET count = c.count + excluded.count
RETURNING c.window_end, c.key, c.count
"""

# What ``learn`` reads, in one statement (one snapshot): 0, the rounds of the processes
# alive (rows of their own ends, so no count of a second's window is read, and at times a
# minute's, which the prefix leaves out); 1, the sums of the slots asked for; 2, the keys
# of each prefix that reached its limit in its window.
_LEARN = """
SELECT 0, window_end, key, count FROM rate_limit_counts
WHERE window_end = ANY($1::bigint[]) AND starts_with(key, $2::varchar)
UNION ALL
SELECT 1, c.window_end, c.key, c.count
FROM unnest($3::bigint[], $4::varchar[]) AS s (w, k)
JOIN rate_limit_counts AS c ON c.window_end = s.w AND c.key = s.k
UNION ALL
SELECT 2, c.window_end, c.key, c.count
FROM unnest($5::varchar[], $6::bigint[], $7::bigint[])
    AS r (p, w, l)
JOIN rate_limit_counts AS c ON c.window_end = r.w AND starts_with(c.key, r.p) AND c.count >= r.l
"""

_PRUNE = "DELETE FROM rate_limit_counts WHERE window_end < $1::bigint"


class Learned(NamedTuple):
    rounds: list[int]  # the last round each process alive has added its counts of
    sums: dict[Slot, int]  # of the slots asked for that any process counted
    reached: dict[str, dict[str, int]]  # per prefix asked for: key -> its sum


class RateCountRounds:
    """The sharing thread's statements, on a PostgreSQL connection of its own (opened on
    first use, and again after an error). Not for use by two threads at once."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("rate-limit counts are shared through PostgreSQL only")
        self.engine = engine
        self._conn: Any = None
        self._pgconn: Any = None

    def add(
        self,
        rows: Iterable[tuple[int, str, int]],
        process: str,
        until: int,
        round_number: int,
        prune_before: float | None = None,
    ) -> dict[Slot, int]:
        """Add each (window_end, key, n) to its sum, and say that ``process`` is alive
        until ``until`` and has added its counts of round ``round_number``; returns the
        sums after. With ``prune_before``, rows of windows that ended before it are
        removed first."""
        ordered = sorted(rows)
        if prune_before is not None:
            self._execute(b"prune", [_int(prune_before)])
        found = self._execute(
            b"add",
            [
                _int(until),
                process.encode(),
                _int(round_number),
                _ints(w for w, _, _ in ordered),
                _texts(k for _, k, _ in ordered),
                _ints(n for _, _, n in ordered),
            ],
        )
        return {(int(w), k.decode()): int(n) for w, k, n in found}

    def learn(
        self,
        alive_until: Sequence[int],
        slots: Sequence[Slot],
        reached: Sequence[tuple[str, int, int]],
    ) -> Learned:
        """The rounds of the processes alive until one of ``alive_until``, the sums of
        ``slots``, and for each (prefix, window_end, limit) of ``reached`` the keys
        starting with the prefix whose sum in that window has reached the limit."""
        rows = self._execute(
            b"learn",
            [
                _ints(alive_until),
                PROCESS_PREFIX.encode(),
                _ints(w for w, _ in slots),
                _texts(k for _, k in slots),
                _texts(p for p, _, _ in reached),
                _ints(w for _, w, _ in reached),
                _ints(n for _, _, n in reached),
            ],
        )
        rounds: dict[str, int] = {}
        sums: dict[Slot, int] = {}
        keys: dict[str, dict[str, int]] = {p: {} for p, _, _ in reached}
        for kind, raw_w, raw_k, raw_n in rows:
            w, k, n = int(raw_w), raw_k.decode(), int(raw_n)
            if kind == b"0":
                rounds[k] = max(n, rounds.get(k, n))
            elif kind == b"1":
                sums[(w, k)] = n
            else:
                for prefix, end, _ in reached:
                    if end == w and k.startswith(prefix):
                        keys[prefix][k] = n
        return Learned(list(rounds.values()), sums, keys)

    def close(self) -> None:
        conn, self._conn, self._pgconn = self._conn, None, None
        if conn is not None:
            conn.close()

    def _execute(self, name: bytes, values: list[bytes]) -> list[tuple[bytes, ...]]:
        """The rows (text values) of prepared statement ``name`` run with ``values``."""
        if self._pgconn is None:
            self._open()
        try:
            return _rows(self._pgconn.exec_prepared(name, values))
        except Exception:
            self.close()  # a broken connection is not reused
            raise

    def _open(self) -> None:
        # A pooled connection (the engine's connect events have set it up), taken out of
        # the pool: the thread's until closed.
        proxy = self.engine.raw_connection()
        proxy.detach()
        driver: Any = proxy.dbapi_connection
        driver.autocommit = True
        pgconn = driver.pgconn
        try:
            _rows(pgconn.exec_(f"SET lock_timeout = {LOCK_TIMEOUT_MS}".encode()))
            # Counts live for a second or a minute: waiting for the WAL flush of each
            # round (milliseconds) buys nothing. A database crash may lose the last
            # fraction of a second of them, which lets a key pass its limit once, by what
            # was lost, in the window of the crash.
            _rows(pgconn.exec_(b"SET synchronous_commit = off"))
            for name, sql in _STATEMENTS.items():
                _rows(pgconn.prepare(name, sql.encode()))
        except Exception:
            proxy.close()
            raise
        self._conn, self._pgconn = proxy, pgconn


_STATEMENTS = {b"add": _ADD, b"learn": _LEARN, b"prune": _PRUNE}


def _rows(result: Any) -> list[tuple[bytes, ...]]:
    """A libpq result's rows, or the error it holds raised as psycopg raises it."""
    # Here, not at the top: psycopg took a tenth of a second of every command's start,
    # on SQLite too, where no rate counts are shared.
    from psycopg import OperationalError, errors, pq

    status = result.status
    if status == pq.ExecStatus.TUPLES_OK:
        width = result.nfields
        return [
            tuple(result.get_value(row, column) for column in range(width))
            for row in range(result.ntuples)
        ]
    if status == pq.ExecStatus.COMMAND_OK:
        return []
    sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
    message = (result.error_message or b"the statement failed").decode(errors="replace")
    if sqlstate == "55P03":  # lock_not_available
        raise Busy()
    raise errors.lookup(sqlstate)(message) if sqlstate else OperationalError(message)


def _int(value: float) -> bytes:
    return str(int(value)).encode()


def _ints(values: Iterable[int]) -> bytes:
    return ("{" + ",".join(str(int(v)) for v in values) + "}").encode()


def _texts(values: Iterable[str]) -> bytes:
    """A text array literal (each element quoted, so that no key, a client address among
    them, is read as more than itself)."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return ("{" + ",".join(quoted) + "}").encode()
