"""Reads begun before a sync's lease (``rolodex.sync.early``), against the People API
emulator over real HTTP, through a long-lived runner on a real store."""

# ruff: noqa: F811 - the fixtures come from the provider's sync tests

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from rolodex.cli.sync import make_runner
from rolodex.domain.errors import LeaseLost
from rolodex.sync.early import Gate
from rolodex.sync.lease import Lease
from tests.conftest import settings_for_tests
from tests.sync.test_google_sync import (  # noqa: F401 - fixtures
    Synced,
    running,
    synced,
)

LISTING = "/v1/people/me/connections"


def _listings(synced: Synced) -> list[str | None]:
    """The sync tokens of the people listings Google was sent, in order."""
    return [r.param("syncToken") for r in synced.google.calls(LISTING, "GET")]


def _on_start(synced: Synced, before: Callable[[], None]) -> None:
    """Run ``before`` each time the runner is about to take the lease."""
    mirror = synced.runner.mirror
    start = mirror.start_sync

    def started(*args: Any, **kwargs: Any) -> Any:
        before()
        return start(*args, **kwargs)

    mirror.start_sync = started  # type: ignore[method-assign]


def _hold_lease(synced: Synced, owner: str = "another-host:1234") -> None:
    with synced.svc.accounts.store.write() as tx:
        assert tx.accounts.acquire_lease(synced.account.id, owner, time.time(), 60)


def _free_lease(synced: Synced, owner: str = "another-host:1234") -> None:
    with synced.svc.accounts.store.write() as tx:
        tx.accounts.release_lease(synced.account.id, owner)


def test_a_kept_connector_reads_the_changes_before_the_lease_is_taken(synced: Synced) -> None:
    ann = synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.sync()
    synced.google.edit_person(ann, nicknames=[{"value": "Annie"}])
    before = len(_listings(synced))
    seen: list[int] = []

    def wait_for_the_listing() -> None:
        # Held until the read has reached Google: it began first, or this times out.
        deadline = time.monotonic() + 5
        while len(_listings(synced)) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        seen.append(len(_listings(synced)) - before)

    _on_start(synced, wait_for_the_listing)
    synced.sync()
    assert seen == [1]
    assert len(_listings(synced)) - before == 1  # read once, and used
    assert synced.by_name("Ann")["nickname"] == "Annie"


def test_the_first_sync_of_a_process_reads_after_the_lease(synced: Synced) -> None:
    before = len(_listings(synced))  # connecting read one page, to check the grant
    seen: list[int] = []
    _on_start(synced, lambda: seen.append(len(_listings(synced)) - before))
    synced.sync()
    assert seen == [0]  # no connector kept yet, no cursor: nothing to read early
    assert len(_listings(synced)) - before == 1


def test_a_read_begun_from_a_cursor_another_process_moved_is_read_again(
    synced: Synced, fresh_database_url: str
) -> None:
    ann = synced.google.add_person(names=[{"givenName": "Ann"}])
    bob = synced.google.add_person(names=[{"givenName": "Bob"}])
    synced.sync()
    # Another process syncs the account meanwhile: the cursor moves on past Ann's change.
    synced.google.edit_person(ann, nicknames=[{"value": "Annie"}])
    other = make_runner(settings_for_tests(fresh_database_url), synced.svc.accounts.store)
    other.run(synced.account.id)
    other.close()
    synced.google.edit_person(bob, nicknames=[{"value": "Bobby"}])
    before = len(_listings(synced))
    synced.sync()
    tokens = _listings(synced)[before:]
    # The early read, from this process's old cursor, then the read from the one stored.
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert synced.by_name("Ann")["nickname"] == "Annie"
    assert synced.by_name("Bob")["nickname"] == "Bobby"
    assert len(synced.contacts()) == 2


def test_a_read_begun_before_a_push_is_read_again_after_it(synced: Synced) -> None:
    ann = synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.sync()
    local = synced.by_name("Ann")
    synced.svc.contacts.update(synced.account, str(local["id"]), {"job_title": "Pilot"})
    before = len(_listings(synced))
    synced.sync()
    assert len(_listings(synced)) - before == 2  # read before the push, and again after
    person = synced.google.person(ann)
    assert [o.get("title") for o in person.get("organizations", [])] == ["Pilot"]
    shown = synced.by_name("Ann")
    assert shown["job_title"] == "Pilot" and shown["id"] == local["id"]


def test_reads_begun_while_another_process_holds_the_lease_are_dropped(synced: Synced) -> None:
    synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.sync()
    _hold_lease(synced)
    before = len(_listings(synced))
    assert synced.runner.run(synced.account.id) is None
    assert len(_listings(synced)) - before == 1  # read early, then dropped
    assert len(synced.runner.connectors) == 1  # the connector is kept, its reads over
    # While the other process holds it, tries read nothing more from Google.
    assert synced.runner.run(synced.account.id) is None
    assert len(_listings(synced)) - before == 1
    _free_lease(synced)
    synced.google.add_person(names=[{"givenName": "Bob"}])
    synced.sync()
    assert {c["given_name"] for c in synced.contacts()} == {"Ann", "Bob"}
    # Taken again: the next sync reads before the lease once more.
    seen: list[int] = []
    _on_start(synced, lambda: seen.append(len(_listings(synced))))
    count = len(_listings(synced))
    synced.sync()
    assert len(_listings(synced)) - count == 1
    assert seen and seen[0] >= count


def test_credentials_an_early_read_renews_are_stored_once_the_lease_is_taken(
    synced: Synced, fresh_database_url: str
) -> None:
    synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.sync()
    stored = synced.svc.accounts.connection(synced.account.id)
    assert stored is not None
    synced.google.expire_access_tokens()  # the next call is refused: a refresh
    synced.sync()
    renewed = synced.svc.accounts.connection(synced.account.id)
    assert renewed is not None
    assert renewed["google_access_token"] != stored["google_access_token"]
    # What is stored is what Google holds now: another process uses it without a refresh.
    tokens = len(synced.google.calls("/token"))
    other = make_runner(settings_for_tests(fresh_database_url), synced.svc.accounts.store)
    other.run(synced.account.id)
    other.close()
    assert len(synced.google.calls("/token")) == tokens


def test_credentials_renewed_while_another_process_holds_the_lease_are_not_stored(
    synced: Synced,
) -> None:
    synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.sync()
    stored = synced.svc.accounts.sealed_connection(synced.account.id)
    synced.google.expire_access_tokens()
    _hold_lease(synced)
    assert synced.runner.run(synced.account.id) is None
    assert synced.svc.accounts.sealed_connection(synced.account.id) == stored
    # The connector holds what was not stored: closed, not kept.
    assert len(synced.runner.connectors) == 0
    _free_lease(synced)
    synced.sync()
    assert synced.by_name("Ann")["given_name"] == "Ann"
    assert synced.state().sync_state == "running"


def test_a_gate_lets_credentials_through_only_once_the_lease_is_taken() -> None:
    gate = Gate("acct")
    passed: list[str] = []

    def check() -> None:
        gate.check()
        passed.append("stored")

    thread = threading.Thread(target=check)
    thread.start()
    time.sleep(0.05)
    assert passed == []  # waiting for the lease
    lease = Lease("acct", "me", lambda *_: True, lambda *_: None, seconds=30)
    assert lease.take()
    gate.decide(lease)
    thread.join(5)
    assert passed == ["stored"]
    lease.release()

    refused = Gate("acct")
    refused.decide(None)
    with pytest.raises(LeaseLost):
        refused.check()
