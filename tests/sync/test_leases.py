"""Leases and failure isolation (rolodex.sync.lease, rolodex.sync.runner), on SQLite and on
PostgreSQL, where processes really compete for accounts.

A sync waits for the one in progress instead of failing; a holder that dies loses its lease
within the lease's length; a long sync keeps its lease; a holder that lost it stops before
its next write; an account whose sync raises anything is recorded, backs off, and never
stops the others.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from rolodex.api.app import build_services
from rolodex.connectors.base import Connector, CredentialsChanged
from rolodex.domain.account import SYNC_ERROR, SYNC_RUNNING
from rolodex.domain.contact import ContactFields
from rolodex.domain.errors import LeaseLost
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.sync.lease import Lease
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.conftest import settings_for_tests
from tests.sync.memory_connector import MemoryConnector


class Rig:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.svc = build_services(settings_for_tests(str(store.engine.url)), store)
        self.remotes: dict[str, Connector] = {}

    def account(self, remote: Connector | None = None) -> str:
        created = self.svc.accounts.create(
            f"lease-{time.monotonic_ns()}@example.com",
            provider="carddav",
            connection={"url": "memory://", "username": "u", "password": "p"},
        )
        self.remotes[created.account.id] = remote or MemoryConnector()
        return created.account.id

    def open(self, _provider: str, settings: dict[str, Any], _changed: CredentialsChanged) -> Any:
        return self.current

    def runner(self, lease_seconds: float = 30.0) -> SyncRunner:
        rig = self

        class Runner(SyncRunner):
            def run(self, account_id: str, *args: Any, **kwargs: Any) -> Any:
                rig.current = rig.remotes[account_id]
                return super().run(account_id, *args, **kwargs)

        return Runner(
            self.svc.accounts, Mirror(self.store), self.open, 60, lease_seconds=lease_seconds
        )


@pytest.fixture
def rig(store: Store) -> Rig:
    return Rig(store)


def _lease(rig: Rig, account_id: str, owner: str, seconds: float) -> Lease:
    mirror = Mirror(rig.store)
    return Lease(account_id, owner, mirror.lease, mirror.release, seconds=seconds)


def test_a_sync_waits_for_the_one_in_progress_then_runs(rig: Rig) -> None:
    account_id = rig.account()
    other = _lease(rig, account_id, "other-process", 30)
    assert other.take()
    runner = rig.runner()
    assert runner.run(account_id) is None  # --no-wait: refused at once
    told: list[str] = []
    threading.Timer(1.0, other.release).start()
    started = time.monotonic()
    report = runner.wait_and_run(account_id, waiting=told.append)
    assert report is not None
    assert told == ["other-process"]
    assert 0.9 < time.monotonic() - started < 10


def test_a_long_sync_keeps_its_lease_and_others_are_refused(rig: Rig) -> None:
    account_id = rig.account()
    held = _lease(rig, account_id, "long-sync", 1.0)
    assert held.take()
    try:
        deadline = time.monotonic() + 3.0  # three times the lease's length
        while time.monotonic() < deadline:
            assert not Mirror(rig.store).lease(account_id, "newcomer", 1.0)
            held.check()
            time.sleep(0.2)
    finally:
        held.release()
    assert Mirror(rig.store).lease(account_id, "newcomer", 1.0)


_HOLDER = """
import sys, time
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.sync.lease import Lease

mirror = Mirror(Store(sys.argv[1]))
lease = Lease(sys.argv[2], "doomed-process", mirror.lease, mirror.release, seconds=2.0)
assert lease.take()
print("holding", flush=True)
time.sleep(600)
"""


def test_the_lease_of_a_killed_holder_is_taken_over_soon(rig: Rig) -> None:
    account_id = rig.account()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _HOLDER,
            str(rig.store.engine.url.render_as_string(False)),
            account_id,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        runner = rig.runner()
        time.sleep(2.5)  # renewed meanwhile: still held
        assert runner.run(account_id) is None
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        assert runner.wait_and_run(account_id) is not None
        assert time.monotonic() - killed < 4.0  # the lease's length, and a poll
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_holder_that_lost_its_lease_writes_nothing(rig: Rig) -> None:
    account_id = rig.account()
    account = rig.svc.accounts.get(account_id)
    stalled = Mirror(rig.store)
    assert stalled.lease(account_id, "stalled", 0.2)  # never renewed: it stalls
    time.sleep(0.3)
    assert Mirror(rig.store).lease(account_id, "new-holder", 30)
    fenced = stalled.fenced(account_id, "stalled")
    with pytest.raises(LeaseLost):
        fenced.set_cursor(account_id, "contacts", "token-1")
    assert Mirror(rig.store).cursor(account_id, "contacts") is None
    remote = MemoryConnector()
    item = remote.remote_create(ContactFields(given_name="Late"))
    with pytest.raises(LeaseLost):
        fenced.apply(account, [item.remote()])
    assert rig.svc.accounts.get(account_id).contact_count == 0


class Exploding(MemoryConnector):
    def collections(self) -> Any:
        raise RuntimeError("boom in the connector")


def test_an_unexpected_error_is_recorded_and_the_others_are_synced(rig: Rig) -> None:
    healthy = MemoryConnector()
    healthy.remote_create(ContactFields(given_name="Healthy"))
    broken_id = rig.account(Exploding())
    healthy_id = rig.account(healthy)
    runner = rig.runner()
    # Only these two are due: the shared store holds other tests' accounts.
    rig.current = rig.remotes[broken_id]
    with pytest.raises(SyncFailed):
        runner.run(broken_id)
    assert runner.run(healthy_id) is not None
    broken = rig.svc.accounts.get(broken_id)
    assert broken.sync_state == SYNC_ERROR
    assert broken.last_error is not None
    assert "RuntimeError: boom in the connector" in broken.last_error
    assert rig.svc.accounts.get(healthy_id).sync_state == SYNC_RUNNING
    assert rig.svc.accounts.get(healthy_id).contact_count == 1
    # Backed off: not due again at once, so a worker does not spin on it.
    pull_due, push_due = Mirror(rig.store).due(time.time() + 30)
    assert broken_id not in pull_due and broken_id not in push_due


def test_a_round_goes_on_past_a_failing_account(tmp_path: Any) -> None:
    # A database of its own, so that the round sees only these accounts.
    url = f"sqlite:///{tmp_path / 'round.db'}"
    own = Store(url)
    own.migrate()
    rig = Rig(own)
    healthy = [MemoryConnector() for _ in range(2)]
    for remote in healthy:
        remote.remote_create(ContactFields(given_name="Kept"))
    ids = [rig.account(healthy[0]), rig.account(Exploding()), rig.account(healthy[1])]
    runner = rig.runner()
    assert runner.run_due() == 3
    states = [rig.svc.accounts.get(i) for i in ids]
    assert [a.sync_state for a in states] == [SYNC_RUNNING, SYNC_ERROR, SYNC_RUNNING]
    assert [a.contact_count for a in states] == [1, 0, 1]
    assert runner.run_due() == 0  # nothing due: the failing account waits too
    own.close()


def test_request_sync_says_whether_one_is_running(rig: Rig) -> None:
    account_id = rig.account()
    mirror = Mirror(rig.store)
    assert mirror.request_sync(account_id) is False
    assert mirror.lease(account_id, "busy", 30)
    assert mirror.request_sync(account_id) is True


class Rotating(MemoryConnector):
    """Hands back new credentials in the middle of its work, as an OAuth connector does
    when it refreshes an access token or its refresh token is rotated."""

    def __init__(self, changed: CredentialsChanged, settings: dict[str, Any]) -> None:
        super().__init__()
        self.changed, self.settings = changed, settings

    def collections(self) -> Any:
        self.changed({**self.settings, "password": "rotated"})
        return super().collections()


def test_credentials_handed_back_mid_sync_are_stored_sealed_at_once(rig: Rig) -> None:
    account_id = rig.account()
    seen: list[dict[str, Any]] = []

    def open_rotating(_p: str, settings: dict[str, Any], changed: CredentialsChanged) -> Any:
        seen.append(settings)
        return Rotating(changed, settings)

    runner = SyncRunner(rig.svc.accounts, Mirror(rig.store), open_rotating, 60)
    assert runner.run(account_id) is not None
    assert rig.svc.accounts.connection(account_id) == {
        "url": "memory://",
        "username": "u",
        "password": "rotated",
    }
    with rig.store.read() as tx:
        sealed = tx.accounts.connection(account_id)
    assert sealed is not None and b"rotated" not in sealed
    # The next sync of this process goes on with the connector that holds the new ones;
    # another process (or this one restarted) starts from the new ones.
    assert runner.run(account_id) is not None
    assert len(seen) == 1
    restarted = SyncRunner(rig.svc.accounts, Mirror(rig.store), open_rotating, 60)
    assert restarted.run(account_id) is not None
    assert seen[-1]["password"] == "rotated"
