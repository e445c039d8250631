"""What one sync of a long-lived worker commits (rolodex.sync.runner, rolodex.service.mirror):
the lease, the request, the account and its cursors read in one transaction; new cursors
written with the sync's next write, at the latest with its status and the lease given back
in one last transaction; a cursor that did not change is not written. And the leases of a
process renewed by one thread (rolodex.sync.lease)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rolodex.api.app import build_services
from rolodex.connectors.base import CredentialsChanged, TransientError
from rolodex.domain.account import SYNC_RUNNING
from rolodex.domain.contact import ContactFields
from rolodex.domain.errors import LeaseLost
from rolodex.service.mirror import Mirror
from rolodex.store import Store, Tx
from rolodex.store.changes import OutboxRepository
from rolodex.sync.engine import PREFETCH
from rolodex.sync.lease import Lease
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.conftest import settings_for_tests
from tests.sync.memory_connector import MemoryConnector


class Rig:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.svc = build_services(settings_for_tests(str(store.engine.url)), store)
        self.remote = MemoryConnector(("contacts", "work"))
        self.account_id = self.svc.accounts.create(
            f"tx-{time.monotonic_ns()}@example.com",
            provider="carddav",
            connection={"url": "memory://", "username": "u", "password": "p"},
        ).account.id
        self.runner = SyncRunner(self.svc.accounts, Mirror(store), self.open, 60)
        self.writes = 0
        plain = store.write

        @contextlib.contextmanager
        def counted(account_id: str | None = None) -> Iterator[Tx]:
            with plain(account_id) as tx:
                yield tx
            self.writes += 1

        store.write = counted  # type: ignore[method-assign]

    def open(self, _provider: str, _settings: dict[str, Any], _changed: CredentialsChanged) -> Any:
        return self.remote

    def sync(self) -> int:
        """The write transactions one sync committed."""
        before = self.writes
        assert self.runner.run(self.account_id) is not None
        return self.writes - before

    def cursors(self) -> dict[str, str | None]:
        with self.store.read() as tx:
            return tx.remotes.cursors(self.account_id)


@pytest.fixture
def rig(store: Store) -> Iterator[Rig]:
    rig = Rig(store)
    yield rig
    del store.write  # type: ignore[method-assign]


def test_a_sync_with_nothing_new_commits_twice(rig: Rig) -> None:
    rig.remote.remote_create(ContactFields(given_name="Ada"))
    rig.sync()
    cursors = rig.cursors()
    # The lease (with the account and its cursors read), then the status and the lease
    # given back; no cursor moved, so none is written.
    assert rig.sync() == 2
    assert rig.cursors() == cursors
    account = rig.svc.accounts.get(rig.account_id)
    assert account.sync_state == SYNC_RUNNING and account.last_synced_at is not None
    with rig.store.read() as tx:
        assert tx.accounts.lease_holder(rig.account_id, time.time()) is None


def test_a_change_is_applied_with_the_cursors_before_it(rig: Rig) -> None:
    rig.sync()
    rig.remote.remote_create(ContactFields(given_name="Grace"), collection="work")
    # The lease; the apply, which writes the first collection's moved cursor too; then the
    # last cursor with the status and the lease.
    assert rig.sync() == 3
    assert rig.svc.accounts.get(rig.account_id).contact_count == 1
    moved = rig.cursors()
    assert rig.sync() == 2
    assert rig.cursors() == moved


def test_a_sync_that_fails_part_way_keeps_the_cursors_it_pulled(rig: Rig) -> None:
    rig.sync()
    first = rig.cursors()
    rig.remote.remote_create(ContactFields(given_name="Lin"), collection="contacts")
    plain = rig.remote.changes

    def second_fails(collection: str, cursor: str | None, **kwargs: Any) -> Any:
        if collection == "work":
            raise TransientError("down")
        return plain(collection, cursor, **kwargs)

    rig.remote.changes = second_fails  # type: ignore[method-assign]
    with pytest.raises(SyncFailed):
        rig.runner.run(rig.account_id)
    after = rig.cursors()
    assert after["contacts"] != first["contacts"]  # pulled before the failure, and kept
    assert after["work"] == first["work"]
    assert rig.svc.accounts.get(rig.account_id).contact_count == 1


def test_the_last_write_of_a_sync_that_lost_its_lease_writes_nothing(store: Store) -> None:
    svc = build_services(settings_for_tests(str(store.engine.url)), store)
    account_id = svc.accounts.create("lost@example.com").account.id
    mirror = Mirror(store)
    start = mirror.start_sync(account_id, "me", 30, take_request=True)
    assert start is not None
    local = mirror.fenced(account_id, "me", start)
    local.set_cursor(account_id, "book", "c1")
    mirror.release(account_id, "me")
    assert mirror.lease(account_id, "another", 30)
    with pytest.raises(LeaseLost):
        local.finish_sync(state=SYNC_RUNNING, next_sync_at=time.time(), succeeded=True)
    with store.read() as tx:
        assert tx.remotes.cursors(account_id) == {}
        assert tx.accounts.lease_holder(account_id, time.time()) == "another"


def test_one_thread_renews_every_lease_of_the_process(store: Store) -> None:
    svc = build_services(settings_for_tests(str(store.engine.url)), store)
    mirror = Mirror(store)
    leases = []
    for n in range(5):
        account_id = svc.accounts.create(f"keep-{n}-{time.monotonic_ns()}@example.com").account.id
        lease = Lease(account_id, "me", mirror.lease, mirror.release, seconds=0.9)
        assert lease.take()
        leases.append(lease)
    try:
        time.sleep(2.0)  # more than twice their length: renewed meanwhile
        for lease in leases:
            lease.check()
            assert not mirror.lease(lease.account_id, "newcomer", 1.0)
        assert sum(1 for t in threading.enumerate() if t.name == "leases") == 1
    finally:
        for lease in leases:
            lease.release()
    # Given back, never renewed again: another owner takes each and keeps it.
    for lease in leases:
        assert mirror.lease(lease.account_id, "newcomer", 5.0)
    time.sleep(0.7)
    for lease in leases:
        with store.read() as tx:
            assert tx.accounts.lease_holder(lease.account_id, time.time()) == "newcomer"


class Concurrent(MemoryConnector):
    """Says its reads may run at once, and records the thread of each changes call."""

    def __init__(self) -> None:
        super().__init__(("contacts", "work", "home"))
        self.threads: dict[str, str] = {}

    def capabilities(self) -> Any:
        return dataclasses.replace(super().capabilities(), concurrent_reads=True)

    def changes(self, collection: str, cursor: str | None, *, with_data: bool = False) -> Any:
        self.threads[collection] = threading.current_thread().name
        return super().changes(collection, cursor, with_data=with_data)


def test_collections_changes_are_read_at_once_where_the_connector_allows(rig: Rig) -> None:
    rig.remote = Concurrent()
    rig.sync()  # first sync: snapshots, one after the other
    rig.remote.remote_create(ContactFields(given_name="Ada"), collection="home")
    rig.remote.threads.clear()
    rig.sync()
    threads = rig.remote.threads  # type: ignore[attr-defined]
    assert set(threads) == {"contacts", "work", "home"}
    assert all(name.startswith("sync-read") for name in threads.values()), threads
    assert rig.svc.accounts.get(rig.account_id).contact_count == 1


class ConcurrentByIds(Concurrent):
    """Changes that name their items without carrying them (Graph's delta), each fetch's
    thread and size recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_data = False
        self.fetches: list[tuple[str, str, int]] = []

    def fetch(self, collection: str, remote_ids: Any) -> Any:
        wanted = list(remote_ids)
        self.fetches.append((collection, threading.current_thread().name, len(wanted)))
        return super().fetch(collection, wanted)


def test_the_few_items_changes_name_are_read_ahead_with_them(rig: Rig) -> None:
    rig.remote = remote = ConcurrentByIds()
    rig.sync()
    remote.remote_create(ContactFields(given_name="Ada"), collection="home")
    for n in range(PREFETCH + 1):
        remote.remote_create(ContactFields(given_name=f"W{n}"), collection="work")
    remote.fetches.clear()
    rig.sync()
    (home,) = [f for f in remote.fetches if f[0] == "home"]
    assert home[1].startswith("sync-read") and home[2] == 1
    # More than a few: read as they are applied, not held in memory ahead.
    (work,) = [f for f in remote.fetches if f[0] == "work"]
    assert work[1] == threading.current_thread().name and work[2] == PREFETCH + 1
    assert rig.svc.accounts.get(rig.account_id).contact_count == PREFETCH + 2
    remote.fetches.clear()
    rig.sync()  # nothing changed: nothing read by id
    assert remote.fetches == []


def test_a_read_ahead_that_fails_fails_its_collection_in_order(rig: Rig) -> None:
    rig.remote = Concurrent()
    rig.sync()
    first = rig.cursors()
    rig.remote.remote_create(ContactFields(given_name="Lin"), collection="contacts")
    plain = rig.remote.changes

    def work_fails(collection: str, cursor: str | None, **kwargs: Any) -> Any:
        if collection == "work":
            raise TransientError("down")
        return plain(collection, cursor, **kwargs)

    rig.remote.changes = work_fails  # type: ignore[method-assign]
    with pytest.raises(SyncFailed):
        rig.runner.run(rig.account_id)
    after = rig.cursors()
    # The collection before the failure is applied and its cursor kept; the one after it,
    # read at once but pulled after the failure, is not.
    assert after["contacts"] != first["contacts"]
    assert after["work"] == first["work"] and after["home"] == first["home"]
    assert rig.svc.accounts.get(rig.account_id).contact_count == 1


def test_a_sync_asked_for_while_one_runs_follows_it(rig: Rig) -> None:
    rig.sync()
    mirror = Mirror(rig.store)
    assert rig.account_id not in mirror.due(time.time())[0]  # next in a minute
    plain = rig.remote.collections

    def asked_meanwhile() -> Any:
        assert mirror.request_sync(rig.account_id)  # running: it says so
        return plain()

    rig.remote.collections = asked_meanwhile  # type: ignore[method-assign]
    rig.sync()
    assert rig.account_id in mirror.due(time.time())[0]
    rig.remote.collections = plain  # type: ignore[method-assign]
    rig.sync()  # that one, which takes the request
    assert rig.account_id not in mirror.due(time.time())[0]


def test_the_outbox_is_read_once_a_sync_when_it_was_empty_at_the_start(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.sync()
    reads: list[str] = []
    plain = OutboxRepository.pending

    def counted(self: OutboxRepository, account_id: str, *args: Any) -> Any:
        reads.append(account_id)
        return plain(self, account_id, *args)

    monkeypatch.setattr(OutboxRepository, "pending", counted)
    rig.sync()
    assert reads == []  # the start's transaction said there was nothing to push
    with rig.store.write() as tx:  # a write of a contact deleted since: dropped when pushed
        tx.outbox.enqueue(rig.account_id, 10**6, "contact", "gone", "update", (), 0.0)
    rig.sync()
    assert reads == [rig.account_id, rig.account_id]  # the write, then nothing more
    with rig.store.read() as tx:
        assert tx.outbox.count(rig.account_id) == 0


def test_the_groups_read_at_the_start_stand_for_the_first_comparison_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = build_services(settings_for_tests(str(store.engine.url)), store)
    account = svc.accounts.create(
        f"folders-{time.monotonic_ns()}@example.com",
        provider="microsoft",
        connection={"microsoft_client_id": "c", "microsoft_refresh_token": "r"},
    ).account
    mirror = Mirror(store)
    start = mirror.start_sync(account.id, "me", 30, take_request=True)
    assert start is not None and start.groups is not None
    local = mirror.fenced(account.id, "me", start)
    reads: list[str] = []
    plain = Mirror._read_groups

    def counted(self: Mirror, account_id: str) -> Any:
        reads.append(account_id)
        return plain(self, account_id)

    monkeypatch.setattr(Mirror, "_read_groups", counted)
    folders = [("f1", "Contacts/Friends")]
    local.provider_groups(account, folders)  # compared with the start's: made, a write
    assert reads == []
    local.provider_groups(account, folders)  # read again: the write changed them
    assert reads == [account.id]
    with store.read() as tx:
        assert [g.path for g in tx.groups.list(account.id)] == ["Contacts/Friends"]
    mirror.release(account.id, "me")
