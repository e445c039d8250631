"""Connectors kept between the syncs of an account (rolodex.sync.connections), through the
runner: reused while the stored credentials are those the connector holds, replaced when
they changed anywhere else, closed after a failed sync, when idle too long, and with the
runner."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rolodex.api.app import build_services
from rolodex.connectors.base import CredentialsChanged
from rolodex.domain.contact import ContactFields
from rolodex.domain.errors import LeaseLost
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.conftest import settings_for_tests
from tests.sync.memory_connector import MemoryConnector


class Opened(MemoryConnector):
    def __init__(self, settings: dict[str, Any], changed: CredentialsChanged) -> None:
        super().__init__()
        self.settings, self.changed = dict(settings), changed
        self.hand_back: str | None = None  # a password to hand back at the next listing

    def collections(self) -> Any:
        if self.hand_back is not None:  # as an OAuth connector refreshing its token
            self.changed({**self.settings, "password": self.hand_back})
            self.hand_back = None
        return super().collections()


class Rig:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.svc = build_services(settings_for_tests(str(store.engine.url)), store)
        self.opened: list[Opened] = []
        self.account_id = self.svc.accounts.create(
            f"reuse-{time.monotonic_ns()}@example.com",
            provider="carddav",
            connection={"url": "memory://", "username": "u", "password": "p"},
        ).account.id
        self.runner = SyncRunner(self.svc.accounts, Mirror(store), self.open, 60)

    def open(self, _provider: str, settings: dict[str, Any], changed: CredentialsChanged) -> Any:
        opened = Opened(settings, changed)
        self.opened.append(opened)
        return opened

    def sync(self) -> None:
        assert self.runner.run(self.account_id) is not None


def test_an_account_s_syncs_share_one_connector(store: Store) -> None:
    rig = Rig(store)
    rig.sync()
    rig.opened[0].remote_create(ContactFields(given_name="Later"))
    rig.sync()
    rig.sync()
    assert len(rig.opened) == 1
    assert rig.opened[0].closed == 0
    assert rig.svc.accounts.get(rig.account_id).contact_count == 1
    rig.runner.close()
    assert rig.opened[0].closed == 1


def test_credentials_it_handed_back_itself_keep_the_connector(store: Store) -> None:
    rig = Rig(store)
    rig.sync()
    rig.opened[0].hand_back = "refreshed"
    rig.sync()
    rig.sync()
    assert len(rig.opened) == 1
    assert rig.svc.accounts.connection(rig.account_id)["password"] == "refreshed"  # type: ignore[index]


def test_credentials_changed_elsewhere_open_a_new_connector(store: Store) -> None:
    rig = Rig(store)
    rig.sync()
    # Reconnected through the API, or refreshed by another worker: the old connector's
    # credentials (a rotated refresh token) may no longer work.
    rig.svc.accounts.update_connection(
        rig.account_id, {"url": "memory://", "username": "u", "password": "new"}
    )
    rig.sync()
    assert len(rig.opened) == 2
    assert rig.opened[0].closed == 1
    assert rig.opened[1].settings["password"] == "new"


def test_a_connector_whose_sync_failed_is_not_reused(store: Store) -> None:
    rig = Rig(store)
    rig.sync()
    rig.opened[0].plan.fail("collections")
    with pytest.raises(SyncFailed):
        rig.runner.run(rig.account_id)
    assert rig.opened[0].closed == 1
    with store.write() as tx:
        tx.accounts.schedule_sync(rig.account_id, time.time())
    rig.sync()
    assert len(rig.opened) == 2


def test_credentials_handed_back_outside_a_sync_are_refused(store: Store) -> None:
    rig = Rig(store)
    rig.sync()
    first = rig.opened[0]
    with pytest.raises(LeaseLost):
        first.changed({**first.settings, "password": "late"})
    assert rig.svc.accounts.connection(rig.account_id)["password"] == "p"  # type: ignore[index]


def test_idle_connectors_are_closed(store: Store) -> None:
    rig = Rig(store)
    other = Rig(store)
    other.runner = rig.runner
    other.opened = rig.opened
    rig.sync()
    rig.runner.connectors.idle_seconds = 0.0
    time.sleep(0.01)
    other.sync()  # another account's sync finds the first one's connector idle too long
    assert rig.opened[0].closed == 1
    assert len(rig.runner.connectors) == 1
