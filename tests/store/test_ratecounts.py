"""The sharing rounds' statements (rolodex.store.ratecounts) on PostgreSQL: each process
adds its counts and says it is alive in one statement, and reads the processes, the sums
and the keys that reached a limit in another; two ``Store`` objects stand for two
processes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rolodex.store import Store
from rolodex.store.database import Busy
from rolodex.store.notify import libpq_dsn
from rolodex.store.ratecounts import PROCESS_PREFIX, RateCountRounds

pytestmark = pytest.mark.postgres


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[Store]]:
    stores = [Store(postgres_url), Store(postgres_url)]
    stores[0].migrate()
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def end() -> int:
    """Window ends of this test's own, far from the clock's (the database is shared)."""
    return 10**12 + uuid.uuid4().int % 10**9 * 100


def test_additions_of_two_processes_are_summed_and_read_back(stores: list[Store], end: int) -> None:
    one, two = (store.rate_count_rounds() for store in stores)
    p1, p2 = f"{PROCESS_PREFIX}{uuid.uuid4().hex[:16]}", f"{PROCESS_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        assert one.add([(end, "account#a", 3), (end, "auth:10.0.0.1", 2)], p1, end + 5, 7) == {
            (end, "account#a"): 3,
            (end, "auth:10.0.0.1"): 2,
        }
        # The sums after the addition come back, in any order the rows are given.
        assert two.add([(end, "auth:10.0.0.1", 4), (end, "account#a", 1)], p2, end + 5, 6) == {
            (end, "account#a"): 4,
            (end, "auth:10.0.0.1"): 6,
        }
        # Alone: only said alive.
        assert one.add([], p1, end + 6, 8) == {}

        learned = two.learn(
            [end + 5, end + 6],
            [(end, "account#a"), (end, "account#never")],
            [("auth:", end, 5), ("connect:", end, 1)],
        )
        assert sorted(learned.rounds) == [6, 8]  # each process's latest round
        assert learned.sums == {(end, "account#a"): 4}
        assert learned.reached == {"auth:": {"auth:10.0.0.1": 6}, "connect:": {}}
        # Below the limit, or in another window: not reached.
        assert two.learn([end + 6], [], [("auth:", end, 7), ("auth:", end + 1, 1)]).reached == {
            "auth:": {}
        }
        assert two.learn([end + 6], [], []).rounds == [8]
    finally:
        one.close()
        two.close()


def test_keys_are_stored_as_they_are_whatever_they_hold(stores: list[Store], end: int) -> None:
    """Keys go to PostgreSQL inside text array literals: quotes, backslashes, commas,
    braces and spaces in one (an urgent key is a client address) stay in it."""
    rounds = stores[0].rate_count_rounds()
    process = f"{PROCESS_PREFIX}{uuid.uuid4().hex[:16]}"
    odd = ['auth:a"b', "auth:c\\d", "auth:e,f}", "auth:{g h}", "auth:NULL", 'auth:é\\"', "auth:"]
    try:
        added = rounds.add([(end, key, 2) for key in odd], process, end + 3, 1)
        assert added == {(end, key): 2 for key in odd}
        learned = rounds.learn([end + 3], [(end, key) for key in odd], [("auth:", end, 2)])
        assert learned.sums == {(end, key): 2 for key in odd}
        assert learned.reached == {"auth:": {key: 2 for key in odd}}
    finally:
        rounds.close()


def test_a_connection_lost_fails_one_round_and_the_next_opens_another(
    stores: list[Store], end: int, postgres_url: str
) -> None:
    rounds = stores[0].rate_count_rounds()
    process = f"{PROCESS_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        rounds.add([(end, "account#lost", 1)], process, end + 3, 1)
        pid = rounds._pgconn.backend_pid  # this round's connection, and no other test's
        with psycopg.connect(libpq_dsn(postgres_url), autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.Error):
            rounds.add([(end, "account#lost", 1)], process, end + 3, 2)
        assert rounds.add([(end, "account#lost", 1)], process, end + 3, 3) == {
            (end, "account#lost"): 2
        }
    finally:
        rounds.close()


def test_old_windows_are_pruned_before_an_addition(stores: list[Store], end: int) -> None:
    rounds = stores[0].rate_count_rounds()
    process = f"{PROCESS_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        rounds.add([(end, "account#old", 1)], process, end + 3, 1)
        sums = rounds.add([(end + 50, "account#new", 1)], process, end + 53, 2, end + 10)
        assert sums == {(end + 50, "account#new"): 1}
        learned = rounds.learn([end + 3, end + 53], [(end, "account#old")], [])
        assert learned.sums == {} and learned.rounds == [2]
    finally:
        rounds.close()


def test_a_row_held_by_another_transaction_gives_up_and_the_next_round_adds(
    stores: list[Store], end: int, postgres_url: str
) -> None:
    rounds = stores[0].rate_count_rounds()
    process = f"{PROCESS_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        rounds.add([(end, "account#held", 1)], process, end + 3, 1)
        with psycopg.connect(libpq_dsn(postgres_url)) as holder:
            holder.execute(
                "UPDATE rate_limit_counts SET count = count WHERE window_end = %s AND key = %s",
                (end, "account#held"),
            )
            started = time.monotonic()
            with pytest.raises(Busy):
                rounds.add([(end, "account#held", 2)], process, end + 3, 2)
            assert time.monotonic() - started < 2
        assert rounds.add([(end, "account#held", 2)], process, end + 3, 3) == {
            (end, "account#held"): 3
        }
    finally:
        rounds.close()


def test_sqlite_does_not_share(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'alone.db'}")
    try:
        with pytest.raises(ValueError):
            RateCountRounds(store.engine)
    finally:
        store.close()
