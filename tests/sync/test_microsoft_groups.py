"""Folder writes of a Microsoft account, end to end: the API's group routes (the service),
the outbox, the engine and the connector, against the Graph emulator over real HTTP."""

# ruff: noqa: F811 - the fixtures come from the provider's sync tests

from __future__ import annotations

import pytest
from sqlalchemy import update

from rolodex.domain.errors import FixedGroup, InvalidGroup
from rolodex.store.schema import outbox
from tests.sync.test_microsoft_sync import Synced, synced  # noqa: F401 - fixture


def _paths(synced: Synced) -> list[str]:
    return sorted(g.path for g in synced.svc.groups.list(synced.account))


def _folders(synced: Synced) -> dict[str, str]:
    """Folder name -> id of every folder but the default one."""
    graph = synced.graph
    return {f.name: f.id for f in graph.folders.values() if f.id != graph.default_folder.id}


def _changes(synced: Synced) -> int:
    types = frozenset({"contact", "contact_group"})
    return len(synced.svc.changes.since(synced.account, "0", types).deltas)


def _outbox(synced: Synced) -> int:
    with synced.store.read() as tx:
        return tx.outbox.count(synced.account.id)


def _due_now(synced: Synced) -> None:
    with synced.store.write() as tx:
        tx.outbox.conn.execute(
            update(outbox)
            .where(outbox.c.account_id == synced.account.id)
            .values(next_attempt_at=0.0)
        )


def test_a_group_made_through_the_api_is_a_folder_in_the_default_one(synced: Synced) -> None:
    synced.sync()
    group = synced.svc.groups.create(synced.account, {"name": "Friends"})
    assert group.path == "Contacts/Friends"
    synced.svc.contacts.create(synced.account, {"given_name": "Ann", "group": group.id})
    synced.sync()
    folders = _folders(synced)
    assert list(folders) == ["Friends"]
    assert synced.graph.folders[folders["Friends"]].parent == synced.graph.default_folder.id
    assert synced.remote("Ann")["parentFolderId"] == folders["Friends"]
    before = _changes(synced)
    synced.sync()
    synced.sync()
    assert _changes(synced) == before  # Rolodex's own folder comes back quietly
    assert _paths(synced) == ["Contacts", "Contacts/Friends"]
    assert synced.group("Contacts/Friends") == group.id
    assert [g["id"] for g in synced.by_name("Ann")["groups"]] == [group.id]


@pytest.mark.parametrize(("listing", "alias"), [("default", False), ("both", True)])
def test_a_mailbox_that_lists_its_default_folder_has_it_once(
    synced: Synced, listing: str, alias: bool
) -> None:
    # The reference's example answers GET /me/contactFolders with the default folder itself
    # (DOC user-list-contactfolders); it is still the one "Contacts" group, and what is in it
    # and what the API makes goes there, whichever id form the folder is named by.
    graph = synced.graph
    graph.folder_listing = listing
    if alias:
        graph.default_alias = "AQMkAD" + graph.default_folder.id[6:]
    graph.add_contact({"givenName": "Eve"})
    friends = graph.add_folder("Friends")
    graph.add_contact({"givenName": "Bob"}, folder=friends)
    synced.sync()
    assert _paths(synced) == ["Contacts", "Contacts/Friends"]
    group = synced.svc.groups.create(synced.account, {"name": "Work"})
    synced.svc.contacts.create(synced.account, {"given_name": "Ann"})
    synced.svc.contacts.create(synced.account, {"given_name": "Cyd", "group": group.id})
    synced.sync()
    synced.sync()
    assert _paths(synced) == ["Contacts", "Contacts/Friends", "Contacts/Work"]
    assert synced.remote("Ann")["parentFolderId"] == graph.default_folder.id
    assert graph.folders[synced.remote("Cyd")["parentFolderId"]].name == "Work"
    assert [g["path"] for g in synced.by_name("Ann")["groups"]] == ["Contacts"]
    assert [g["path"] for g in synced.by_name("Bob")["groups"]] == ["Contacts/Friends"]
    assert [g["path"] for g in synced.by_name("Eve")["groups"]] == ["Contacts"]


def test_a_create_whose_reply_was_lost_is_not_made_twice(synced: Synced) -> None:
    synced.sync()
    synced.graph.fail(500, method="POST", path_contains="/contactFolders", after=True)
    group = synced.svc.groups.create(synced.account, {"name": "Friends"})
    synced.sync()  # made in the mailbox; the reply lost: the write waits
    assert list(_folders(synced)) == ["Friends"]
    assert _outbox(synced) == 1
    _due_now(synced)
    synced.sync()  # the retry's 409 says it is there: that one is linked
    assert list(_folders(synced)) == ["Friends"]
    assert _outbox(synced) == 0
    assert _paths(synced) == ["Contacts", "Contacts/Friends"]
    synced.svc.groups.rename(synced.account, group.id, {"name": "Pals"})
    synced.sync()
    assert list(_folders(synced)) == ["Pals"]


def test_a_rename_renames_the_folder_and_keeps_its_members(synced: Synced) -> None:
    graph = synced.graph
    friends = graph.add_folder("Friends")
    close = graph.add_folder("Close", parent=friends)
    graph.add_contact({"givenName": "Ren"}, folder=friends)
    graph.add_contact({"givenName": "Cyd"}, folder=close)
    synced.sync()
    group = synced.group("Contacts/Friends")
    renamed = synced.svc.groups.rename(synced.account, group, {"name": "Pals"})
    assert (renamed.name, renamed.path) == ("Pals", "Contacts/Pals")
    # The folder inside moves with it, here as in the mailbox.
    assert _paths(synced) == ["Contacts", "Contacts/Pals", "Contacts/Pals/Close"]
    synced.sync()
    assert graph.folders[friends].name == "Pals"
    (patch,) = graph.graph_requests("PATCH", contains="/contactFolders/")
    before = _changes(synced)
    synced.sync()
    assert _changes(synced) == before
    assert synced.group("Contacts/Pals") == group
    assert [g["path"] for g in synced.by_name("Cyd")["groups"]] == ["Contacts/Pals/Close"]
    assert [g["id"] for g in synced.by_name("Ren")["groups"]] == [group]
    assert patch.status == 200


def test_a_delete_moves_the_contacts_to_the_default_folder_first(synced: Synced) -> None:
    graph = synced.graph
    friends = graph.add_folder("Friends")
    graph.add_contact(
        {"givenName": "Ann", "categories": ["Red"], "spouseName": "Al"}, folder=friends
    )
    graph.add_contact({"givenName": "Bob"}, folder=friends)
    synced.sync()
    ids = {c["given_name"]: c["id"] for c in synced.contacts()}
    synced.svc.groups.delete(synced.account, synced.group("Contacts/Friends"))
    assert [g["path"] for g in synced.by_name("Ann")["groups"]] == ["Contacts"]
    synced.sync()
    assert friends not in graph.folders
    for name in ("Ann", "Bob"):
        remote = synced.remote(name)  # still in the mailbox, once each
        assert remote["parentFolderId"] == graph.default_folder.id
        assert synced.rolodex_id_of(remote["id"]) == ids[name]
    # What Rolodex does not map moves with the contact.
    assert synced.remote("Ann")["categories"] == ["Red"]
    assert synced.remote("Ann")["spouseName"] == "Al"
    before = _changes(synced)
    synced.sync()
    assert _changes(synced) == before
    assert {c["given_name"]: c["id"] for c in synced.contacts()} == ids
    assert _paths(synced) == ["Contacts"]


def test_a_folder_that_still_holds_contacts_is_not_deleted(synced: Synced) -> None:
    graph = synced.graph
    friends = graph.add_folder("Friends")
    synced.sync()
    synced.svc.groups.delete(synced.account, synced.group("Contacts/Friends"))
    graph.add_contact({"givenName": "Late"}, folder=friends)  # made in Outlook meanwhile
    synced.sync()
    assert friends in graph.folders and synced.remote("Late")["parentFolderId"] == friends
    account = synced.svc.accounts.get(synced.account.id)
    assert account.last_error is not None and "Contacts/Friends still holds" in account.last_error
    assert _outbox(synced) == 1  # kept, and visible, not dropped
    # The folder is still there, so the next pull shows it again, with its contact.
    assert [g["path"] for g in synced.by_name("Late")["groups"]] == ["Contacts/Friends"]


def test_the_default_folder_and_folders_holding_others_are_refused(synced: Synced) -> None:
    friends = synced.graph.add_folder("Friends")
    synced.graph.add_folder("Close", parent=friends)
    synced.sync()
    default = synced.group("Contacts")
    with pytest.raises(FixedGroup) as raised:
        synced.svc.groups.rename(synced.account, default, {"name": "People"})
    assert "default contact folder" in raised.value.reason
    with pytest.raises(FixedGroup):
        synced.svc.groups.delete(synced.account, default)
    with pytest.raises(InvalidGroup):
        synced.svc.groups.delete(synced.account, synced.group("Contacts/Friends"))
    assert _outbox(synced) == 0


def test_throttled_folder_writes_back_off_and_resume(synced: Synced) -> None:
    synced.sync()
    group = synced.svc.groups.create(synced.account, {"name": "Friends"})
    synced.sync()
    synced.graph.fail(429, method="PATCH", path_contains="/contactFolders/", retry_after="120")
    synced.svc.groups.rename(synced.account, group.id, {"name": "Pals"})
    synced.sync()  # Retry-After is longer than the client waits: the write is deferred
    assert list(_folders(synced)) == ["Friends"]
    account = synced.svc.accounts.get(synced.account.id)
    assert account.last_error is not None and "429" in account.last_error
    _due_now(synced)
    synced.sync()
    assert list(_folders(synced)) == ["Pals"]
    assert _paths(synced) == ["Contacts", "Contacts/Pals"]
