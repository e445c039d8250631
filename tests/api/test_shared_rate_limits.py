"""Rate limits shared by API processes through PostgreSQL (rolodex.api.sharedcounts): two
applications with stores of their own, as two processes or hosts are, on one database, are
held to one limit together; on SQLite each counts alone."""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from rolodex.api.app import build_services, create_app
from rolodex.api.observe import Observed
from rolodex.api.ratelimit import RateLimits
from rolodex.api.sharedcounts import Counts
from rolodex.store import Store
from rolodex.store.database import ensure_database
from tests.conftest import settings_for_tests

TICK = 0.05


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """An empty, migrated PostgreSQL database: counts of other tests stay out of it."""
    base = make_url(postgres_url)
    name = f"rolodex_limits_{uuid.uuid4().hex[:10]}"
    url = base.set(database=name).render_as_string(hide_password=False)
    ensure_database(url)
    store = Store(url)
    store.migrate()
    store.close()
    yield url
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Processes:
    """Two API "processes" on one database, and a token both accept."""

    def __init__(self, url: str, **limits: Any) -> None:
        self.settings = dataclasses.replace(
            settings_for_tests(url), rate_limits=True, rate_limit_share_seconds=TICK, **limits
        )
        self.stores = [Store(url), Store(url)]
        self.limits: list[RateLimits] = []
        self.apps = [create_app(self.settings, store) for store in self.stores]
        for app in self.apps:
            assert isinstance(app, Observed) and app.limits is not None
            self.limits.append(app.limits)
        created = build_services(self.settings, self.stores[0]).accounts.create("a@example.com")
        self.token = created.access_token
        # Each has said it is alive and heard of the other (a process that has just
        # started takes itself for alone until then).
        deadline = time.monotonic() + 10
        while any(not limits.shared or limits.shared.processes < 2 for limits in self.limits):
            assert time.monotonic() < deadline, "the processes never heard of each other"
            time.sleep(TICK)

    def client(self, n: int, address: str = "10.9.0.1", token: str | None = None) -> TestClient:
        client = TestClient(self.apps[n], client=(address, 1000 + n))
        client.auth = (token or self.token, "")
        return client

    def close(self) -> None:
        for limits in self.limits:
            limits.close()
        for store in self.stores:
            store.close()


@pytest.fixture
def processes(database: str) -> Iterator[Callable[..., Processes]]:
    """Two processes with the limits given."""
    made: list[Processes] = []

    def make(**limits: Any) -> Processes:
        made.append(Processes(database, **limits))
        return made[-1]

    yield make
    for both in made:
        both.close()


def start_of_a_second() -> float:
    """Wait for a fresh one-second window of the wall clock (every process's); returns
    when it ends less a margin (a request that is slow to answer, on a busy machine, must
    not carry a loop into the next window)."""
    time.sleep(1 - time.time() % 1 + 0.01)
    return math.floor(time.time()) + 0.75


def test_a_burst_over_two_processes_is_held_to_the_account_limit(
    processes: Callable[..., Processes],
) -> None:
    both = processes(rate_limit_account=10)
    clients = [both.client(0), both.client(1)]
    end = start_of_a_second()
    statuses = []
    while time.time() < end:  # as fast as the clients go, alternating
        for client in clients:
            statuses.append(client.get("/account").status_code)
    assert len(statuses) > 20  # well past the limit, even on a busy machine
    assert 5 <= statuses.count(200) <= 10, statuses
    refused = clients[0].get("/account")
    if refused.status_code == 429:
        assert refused.headers["x-ratelimit-limit"] == "10"


def test_one_process_alone_gets_the_whole_limit_within_a_window(
    processes: Callable[..., Processes],
) -> None:
    both = processes(rate_limit_account=10)
    client = both.client(0)
    end = start_of_a_second()
    statuses = []
    while time.time() < end:  # as fast as it goes
        statuses.append(client.get("/account").status_code)
    assert len(statuses) > 15
    # Its share (5) at first, then more as each round shows the other process idle.
    assert 8 <= statuses.count(200) <= 10, statuses


def test_failed_authentications_anywhere_refuse_the_address_everywhere(
    processes: Callable[..., Processes],
) -> None:
    both = processes(rate_limit_auth_failures=6)
    wrong = [both.client(n, "10.9.0.7", token="wrong-token") for n in (0, 1)]
    statuses = []
    for _ in range(6):
        for client in wrong:
            statuses.append(client.get("/contacts").status_code)
            time.sleep(0.01)
    assert statuses.count(401) <= 7, statuses
    time.sleep(TICK * 3)
    for n in (0, 1):
        good = both.client(n, "10.9.0.7")
        assert good.get("/contacts").status_code == 429  # refused whatever it sends
        assert both.client(n, "10.9.0.8").get("/contacts").status_code == 200


def test_connect_calls_of_one_address_are_counted_over_both(
    processes: Callable[..., Processes],
) -> None:
    both = processes(rate_limit_connect=4)
    clients = [both.client(n, "10.9.0.9") for n in (0, 1)]
    statuses = [clients[i % 2].post("/connect/token", json={}).status_code for i in range(8)]
    # Never more than the limit; one fewer when the shares' fractions fall badly.
    assert 3 <= statuses.count(400) <= 4 and statuses.count(429) >= 4, statuses


def test_on_sqlite_each_process_counts_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alone.db'}"
    store = Store(url)
    store.migrate()
    settings = dataclasses.replace(settings_for_tests(url), rate_limits=True)
    app = create_app(settings, store)
    assert isinstance(app, Observed) and app.limits is not None and app.limits.shared is None
    store.close()


def test_stored_keys_hash_tokens_and_keep_only_plain_addresses() -> None:
    """What goes to the shared table: tokens never as they are; a client address as it
    is (other processes learn of it), unless it holds what is not printable."""
    account = Counts("account", 10, 1)
    auth = Counts("auth", 10, 60, urgent=True)
    token_key = account.stored_key((b"Bearer secret-token", "GET /contacts"))
    assert token_key.startswith("account#") and "secret" not in token_key
    assert auth.stored_key("2001:db8::1") == "auth:2001:db8::1"
    assert auth.stored_key("10.0.0.1\x00x").startswith("auth#")
    assert auth.stored_key("x" * 57).startswith("auth#")
