"""The store's reads and writes folded together for a sync (rolodex.service.mirror), on
every backend: what a sync starts from in one statement, the lease read with the account's
lock, the cursors of a sync's end written together, and an update whose groups did not
change leaving its membership rows alone."""

from __future__ import annotations

import dataclasses

from rolodex.domain.query import ContactFilter
from rolodex.domain.remote import RemoteLink
from rolodex.store import Store
from rolodex.store.contacts import NewContact
from tests.store.test_contract import NOW, add_contact, add_group, ids_of, make_account


def test_sync_start_reads_the_account_its_settings_request_and_due_writes(
    store: Store,
) -> None:
    account_id = make_account(store)
    with store.write() as tx:
        account, sealed, request, due = tx.accounts.sync_start(account_id, NOW, take_request=True)
        assert (account.id, sealed, request, due) == (account_id, b"sealed", None, False)
        tx.accounts.request_sync(account_id, NOW, "req-1")
        tx.outbox.enqueue(account_id, 1, "contact", "c1", "update", (), NOW + 10)
    with store.write() as tx:
        # Not taken: still waiting; the write is not due before its time.
        assert tx.accounts.sync_start(account_id, NOW, take_request=False)[2:] == (None, False)
        assert tx.accounts.sync_start(account_id, NOW + 10, take_request=True)[2:] == (
            "req-1",
            True,
        )
    with store.read() as tx:
        assert tx.accounts.sync_request(account_id) is None


def test_a_locked_account_answers_for_its_lease_as_its_own_writes_leave_it(
    store: Store,
) -> None:
    account_id = make_account(store)
    with store.write() as tx:
        assert tx.accounts.acquire_lease(account_id, "me", NOW, 30)
    with store.write(account_id) as tx:
        assert tx.accounts.holds_lease(account_id, "me", NOW + 1)
        assert not tx.accounts.holds_lease(account_id, "other", NOW + 1)
        assert not tx.accounts.holds_lease(account_id, "me", NOW + 31)  # run out
        tx.accounts.release_lease(account_id, "me")
        assert not tx.accounts.holds_lease(account_id, "me", NOW + 1)
        assert tx.accounts.acquire_lease(account_id, "other", NOW, 30)
        assert tx.accounts.holds_lease(account_id, "other", NOW + 1)
        assert tx.accounts.end_sync(account_id, "other", NOW + 1)
        assert not tx.accounts.holds_lease(account_id, "other", NOW + 1)


def test_set_cursors_updates_those_there_and_adds_the_new(store: Store) -> None:
    account_id = make_account(store)
    with store.write() as tx:
        tx.remotes.set_cursors(account_id, {"a": "1", "b": None})
    with store.write() as tx:
        tx.remotes.set_cursors(account_id, {"a": "2", "b": "3"})
        tx.remotes.set_cursors(account_id, {"b": "4", "c": "5"})
    with store.read() as tx:
        assert tx.remotes.cursors(account_id) == {"a": "2", "b": "4", "c": "5"}


def test_an_update_of_the_same_groups_keeps_its_memberships(store: Store) -> None:
    account_id = make_account(store)
    friends = add_group(store, account_id, "Friends")
    work = add_group(store, account_id, "Work")
    new = add_contact(store, account_id, group_ids=(friends.id,))
    same = dataclasses.replace(new, doc=b'{"v":2}', terms=frozenset({("email", "a@x.com")}))
    with store.write() as tx:
        tx.contacts.update_many(account_id, [dataclasses.replace(same, same_groups=True)], NOW)
    assert ids_of(store, account_id, ContactFilter(group_id=friends.id)) == [new.id]
    assert ids_of(store, account_id, ContactFilter(terms=(("email", "a@x.com"),))) == [new.id]
    moved = NewContact(new.pk, new.id, b'{"v":3}', frozenset(), (work.id,))
    with store.write() as tx:
        tx.contacts.update_many(account_id, [moved], NOW)
    assert ids_of(store, account_id, ContactFilter(group_id=friends.id)) == []
    assert ids_of(store, account_id, ContactFilter(group_id=work.id)) == [new.id]
    assert ids_of(store, account_id, ContactFilter(terms=(("email", "a@x.com"),))) == []


def test_linked_rows_are_the_links_and_the_rows_of_the_contacts_there(store: Store) -> None:
    account_id = make_account(store)
    here = add_contact(store, account_id)
    with store.write() as tx:
        tx.remotes.put(account_id, RemoteLink(here.id, "book", "r1", None, '"e1"', None))
        tx.remotes.put(account_id, RemoteLink("gone", "book", "r2", None, '"e2"', b"raw"))
    with store.read() as tx:
        links, rows = tx.remotes.linked_rows(account_id, ["r1", "r2", "r3"])
        assert links == tx.remotes.for_remote_ids(account_id, ["r1", "r2", "r3"])
    assert sorted(links) == ["r1", "r2"] and links["r2"].raw == b"raw"
    assert list(rows) == [here.id] and rows[here.id].pk == here.pk
