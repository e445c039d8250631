"""The auth epoch across processes on PostgreSQL: announced, acknowledged, and asked for
whenever the announcements cannot be trusted (rolodex.store.authepoch, rolodex.store.notify).

Each ``Store`` here stands for a process: its own engine, connections and listener.
"""

from __future__ import annotations

import logging
import select
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from rolodex.domain.errors import Unauthenticated
from rolodex.service.accounts import AccountService
from rolodex.store import Store, authepoch, notify
from rolodex.store.notify import APPLICATION, AUTH_CHANNEL, AccountVersions, libpq_dsn

pytestmark = pytest.mark.postgres


@pytest.fixture
def processes(postgres_url: str) -> Iterator[list[Store]]:
    stores = [Store(postgres_url) for _ in range(3)]
    stores[0].migrate()
    for store in stores:
        versions = store.versions()
        assert versions is not None and versions.wait_connected(10)
    yield stores
    for store in stores:
        store.close()


def _count_reads(epoch: authepoch.AuthEpoch, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    read = epoch._read_postgresql

    def counted() -> str:
        calls[0] += 1
        return read()

    monkeypatch.setattr(epoch, "_read_postgresql", counted)
    return calls


def _served_from_memory(svc: AccountService, token: str, reads: list[int]) -> bool:
    """Whether a cached token is accepted with no query at all once the listener is caught
    up. It is not caught up, rightly, while a notification waits on its socket (another
    process's acknowledgement, say) or its liveness check runs, so a busy host gets a few
    tries."""
    versions = svc._epoch._versions
    assert versions is not None
    for _ in range(20):
        deadline = time.monotonic() + 5
        while not versions.caught_up():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        before = reads[0]
        svc.authenticate(token)
        if reads[0] == before:
            return True
        time.sleep(0.05)
    return False


def test_a_revocation_is_refused_by_every_process_as_soon_as_it_returns(
    processes: list[Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = [AccountService(store) for store in processes]
    revoker, others = services[0], services[1:]
    reads = [_count_reads(svc._epoch, monkeypatch) for svc in others]
    for round_ in range(20):
        created = revoker.create(f"{uuid.uuid4().hex[:8]}@example.com")
        kept = revoker.issue_token(created.account.id)
        for svc in others:
            assert svc.authenticate(created.access_token).id == created.account.id
            assert svc.authenticate(kept).id == created.account.id
        for svc, count in zip(others, reads, strict=True):
            assert _served_from_memory(svc, created.access_token, count), f"round {round_}"
        if round_ % 2:
            revoker.revoke(created.access_token)
        else:
            revoker.delete(created.account.id)
        for svc in others:  # at once: no waiting for the notification here
            with pytest.raises(Unauthenticated):
                svc.authenticate(created.access_token)
            if round_ % 2:
                assert svc.authenticate(kept).id == created.account.id


def test_a_listener_that_never_acknowledges_delays_a_revocation_only_so_long(
    processes: list[Store], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(authepoch, "ANNOUNCED_WITHIN_SECONDS", 0.3)
    accounts = AccountService(processes[0])
    created = accounts.create(f"{uuid.uuid4().hex[:8]}@example.com")
    # A process that listens and then hangs: it never replies.
    with psycopg.connect(
        libpq_dsn(processes[0].url), autocommit=True, application_name=APPLICATION
    ) as hung:
        hung.execute(f"LISTEN {AUTH_CHANNEL}")
        hung_pid = hung.info.backend_pid
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="rolodex.store.authepoch"):
            accounts.revoke(created.access_token)
        took = time.monotonic() - started
    assert 0.3 <= took < 2.0
    assert "did not acknowledge a revocation" in caplog.text
    assert str(hung_pid) in caplog.text


class _SlowToWake:
    """``select`` for the listener: once its socket is readable, the thread takes a while to
    get on (as behind a busy event loop holding the GIL)."""

    poll = staticmethod(select.poll)
    POLLIN, POLLERR, POLLHUP = select.POLLIN, select.POLLERR, select.POLLHUP
    woke = threading.Event()

    @classmethod
    def select(cls, *args: Any) -> Any:
        ready = select.select(*args)
        if ready[0]:
            cls.woke.set()
            time.sleep(0.5)
        return ready


def test_a_notification_on_the_socket_not_yet_handled_sends_readers_to_the_database(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(postgres_url)
    store.migrate()
    monkeypatch.setattr(notify, "select", _SlowToWake)
    versions = AccountVersions(libpq_dsn(postgres_url))
    try:
        assert versions.wait_connected(10)
        versions.committed("someone", 1)
        deadline = time.monotonic() + 5
        while versions.known("someone") != 1:  # until the listener waits on its socket
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with store.engine.connect() as conn:
            conn.exec_driver_sql(f"NOTIFY {notify.CHANNEL}, 'someone 2'")
            conn.commit()
        assert _SlowToWake.woke.wait(5)
        assert versions.healthy and versions.known("someone") is None  # not caught up
        versions.begin_answer()  # a request arriving now: one look serves all its reads
        assert versions.known("someone") is None and versions.auth_epoch() is None
        versions.end_answer()
        deadline = time.monotonic() + 5
        while versions.known("someone") != 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        versions.close()
        store.close()
