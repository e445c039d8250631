"""Two-way sync with Microsoft Graph (the emulator, over real HTTP), through the runner.

Each test connects an account to a fresh emulated mailbox, plays Outlook through the
emulator's own methods, and checks both sides after Rolodex's sync runs.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from rolodex.api.app import build_services
from rolodex.api.deps import Services
from rolodex.cli.sync import make_runner
from rolodex.config import Settings
from rolodex.connectors.microsoft.connector import ROLODEX_ID_PROPERTY
from rolodex.connectors.microsoft.folders import FolderTree
from rolodex.domain.account import Account
from rolodex.domain.errors import NoSuchPicture
from rolodex.domain.query import ListQuery
from rolodex.store import Store
from rolodex.sync.report import SyncReport
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.conftest import settings_for_tests
from tests.emulators.microsoft import GraphEmulator

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)
JPEG = b"\xff\xd8\xff\xe0" + b"0" * 64


@dataclasses.dataclass
class Synced:
    graph: GraphEmulator
    svc: Services
    account: Account
    runner: SyncRunner
    settings: Settings
    store: Store

    def sync(self) -> None:
        self.runner.run(self.account.id)

    def contacts(self) -> list[dict[str, Any]]:
        docs = self.svc.contacts.page(self.account, ListQuery(limit=1000))
        return [orjson.loads(d) for d in docs]

    def by_name(self, given_name: str) -> dict[str, Any]:
        found = [c for c in self.contacts() if c["given_name"] == given_name]
        assert len(found) == 1, [c["given_name"] for c in self.contacts()]
        return found[0]

    def group(self, path: str) -> str:
        groups = self.svc.groups.list(self.account)
        for group in groups:
            if group.path == path:
                return group.id
        raise AssertionError(f"no group {path}: {[g.path for g in groups]}")

    def remote(self, given_name: str) -> dict[str, Any]:
        found = [
            self.graph.contact(c.id)
            for c in list(self.graph.contacts.values())
            if c.props.get("givenName") == given_name
        ]
        assert len(found) == 1, found
        return found[0]

    def rolodex_id_of(self, remote_id: str) -> str | None:
        return self.graph.contacts[remote_id].extended.get(ROLODEX_ID_PROPERTY.lower())


@pytest.fixture
def synced(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Synced]:
    with GraphEmulator() as graph:
        monkeypatch.setenv("ROLODEX_MICROSOFT_GRAPH_URL", graph.graph_url)
        monkeypatch.setenv("ROLODEX_MICROSOFT_LOGIN_URL", graph.login_url)
        url = fresh_database_url
        settings: Settings = settings_for_tests(url)
        store = Store(url)
        store.migrate()
        svc = build_services(settings, store)
        created = svc.accounts.connect(
            graph.email,
            name="Adele",
            provider="office365",
            settings={
                "microsoft_client_id": graph.client_id,
                "microsoft_client_secret": graph.client_secret,
                "microsoft_refresh_token": graph.refresh_token,
                "redirect_uri": "http://localhost:8400/callback",
            },
        )
        yield Synced(graph, svc, created.account, make_runner(settings, store), settings, store)
        store.close()


def test_first_sync_brings_every_folder_as_a_group_with_its_path(synced: Synced) -> None:
    graph = synced.graph
    friends = graph.add_folder("Friends")
    close = graph.add_folder("Close", parent=friends)
    graph.add_contact(
        {
            "givenName": "Ann",
            "emailAddresses": [{"address": "ann@example.com", "name": "Ann"}],
            "birthday": "1990-05-17T00:00:00+02:00",
            "categories": ["Red"],
        }
    )
    graph.add_contact({"givenName": "Bob", "mobilePhone": "+1 415 888 9990"}, folder=friends)
    graph.add_contact({"givenName": "Cyd"}, folder=close)
    synced.sync()
    ann, bob, cyd = synced.by_name("Ann"), synced.by_name("Bob"), synced.by_name("Cyd")
    assert ann["emails"] == [{"type": None, "email": "ann@example.com"}]
    assert ann["birthday"] == "1990-05-17"
    assert bob["phone_numbers"] == [{"type": "mobile", "number": "+1 415 888 9990"}]
    assert [(g["name"], g["path"]) for g in ann["groups"]] == [("Contacts", "Contacts")]
    assert [(g["name"], g["path"]) for g in bob["groups"]] == [("Friends", "Contacts/Friends")]
    assert [(g["name"], g["path"]) for g in cyd["groups"]] == [("Close", "Contacts/Friends/Close")]
    account = synced.svc.accounts.get(synced.account.id)
    assert account.sync_state == "running" and account.last_error is None


def test_api_writes_reach_the_mailbox(synced: Synced) -> None:
    graph = synced.graph
    friends = graph.add_folder("Friends")
    graph.add_contact({"givenName": "Seed"}, folder=friends)
    synced.sync()
    group = synced.group("Contacts/Friends")
    doc = orjson.loads(
        synced.svc.contacts.create(
            synced.account,
            {
                "given_name": "Dora",
                "surname": "Explorer",
                "emails": [{"type": "work", "email": "dora@example.com"}],
                "group": group,
            },
        )
    )
    synced.sync()
    remote = synced.remote("Dora")
    assert remote["parentFolderId"] == friends
    assert remote["emailAddresses"] == [{"address": "dora@example.com", "name": "dora@example.com"}]
    assert synced.rolodex_id_of(remote["id"]) == doc["id"]
    graph.edit_contact(remote["id"], {"categories": ["Blue"], "spouseName": "Diego"})
    synced.sync()
    synced.svc.contacts.update(synced.account, doc["id"], {"job_title": "Explorer"})
    synced.sync()
    remote = synced.remote("Dora")
    assert remote["jobTitle"] == "Explorer"
    assert remote["categories"] == ["Blue"] and remote["spouseName"] == "Diego"
    patches = graph.graph_requests("PATCH")
    assert orjson.loads(b"{}") == {} and patches[-1].headers["if-match"].startswith('W/"')
    synced.svc.contacts.delete(synced.account, doc["id"])
    synced.sync()
    assert all(c.props.get("givenName") != "Dora" for c in graph.contacts.values())
    assert len(synced.contacts()) == 1


def test_a_push_of_new_contacts_lists_the_folders_once(synced: Synced) -> None:
    graph = synced.graph
    graph.add_folder("Friends", parent=graph.add_folder("People"))
    synced.sync()
    for n in range(5):
        synced.svc.contacts.create(synced.account, {"given_name": f"New{n}"})
    graph.requests.clear()
    synced.runner.run(synced.account.id, pull=False)
    creates = [r for r in graph.requests if r.method == "POST"]
    listings = [r for r in graph.requests if r.path == "/v1.0/me/contactFolders"]
    assert len(creates) == 5
    assert len(listings) == 1, [(r.method, r.path) for r in graph.requests]


def test_rolodex_own_writes_coming_back_in_the_delta_are_not_read_again(synced: Synced) -> None:
    # Delta pages lack the photo and the extended property, so a changed contact is read
    # again (two requests); the next round names Rolodex's own creates and updates too,
    # with the etags their replies gave, and those are known already.
    graph = synced.graph
    graph.add_contact({"givenName": "Seed"})
    synced.sync()
    synced.sync()  # Seed's picture checked (a first sync reads none)
    ids = [
        orjson.loads(synced.svc.contacts.create(synced.account, {"given_name": f"Mine{n}"}))["id"]
        for n in range(3)
    ]
    graph.requests.clear()
    synced.sync()
    assert len(graph.graph_requests("POST")) == 3
    reads = [r.path for r in graph.requests if r.method == "GET" and "/delta" not in r.path]
    assert not [p for p in reads if "/me/contacts/" in p], reads
    # Made in the default folder, they are in its group, as a pull shows them.
    assert [g["path"] for g in synced.by_name("Mine1")["groups"]] == ["Contacts"]
    for contact_id in ids:
        synced.svc.contacts.update(synced.account, contact_id, {"job_title": "Mine"})
    graph.requests.clear()
    synced.sync()
    assert len(graph.graph_requests("PATCH")) == 3
    reads = [r.path for r in graph.requests if r.method == "GET" and "/delta" not in r.path]
    assert not [p for p in reads if "/me/contacts/" in p], reads
    # A change made in Outlook is still read whole.
    graph.edit_contact(synced.remote("Mine0")["id"], {"surname": "Outlook"})
    synced.sync()
    assert synced.by_name("Mine0")["surname"] == "Outlook"
    assert synced.by_name("Mine0")["job_title"] == "Mine"
    assert len(synced.contacts()) == 4


def test_moving_a_contact_to_another_group_moves_it_between_folders(synced: Synced) -> None:
    graph = synced.graph
    friends = graph.add_folder("Friends")
    work = graph.add_folder("Work")
    old = graph.add_contact({"givenName": "Moe", "categories": ["Green"]}, folder=friends)
    synced.sync()
    moe = synced.by_name("Moe")
    synced.svc.contacts.update(synced.account, moe["id"], {"group": synced.group("Contacts/Work")})
    synced.sync()
    assert old not in graph.contacts
    remote = synced.remote("Moe")
    assert remote["parentFolderId"] == work
    assert synced.rolodex_id_of(remote["id"]) == moe["id"]
    synced.sync()
    again = synced.by_name("Moe")
    assert again["id"] == moe["id"]
    assert [g["path"] for g in again["groups"]] == ["Contacts/Work"]


@pytest.mark.parametrize("same_id", [False, True])
def test_contacts_moved_in_outlook_both_ways_between_folders_are_kept(
    synced: Synced, same_id: bool
) -> None:
    """The folder a contact left reports it removed; the one it went to reports it. With an
    id that stays (immutable ids), whichever folder's round comes first, the removal must not
    delete the contact the other folder holds now."""
    graph = synced.graph
    friends = graph.add_folder("Friends")
    work = graph.add_folder("Work")
    graph.add_contact({"givenName": "Fay"}, folder=friends)
    graph.add_contact({"givenName": "Wes"}, folder=work)
    synced.sync()
    fay, wes = synced.by_name("Fay"), synced.by_name("Wes")
    for contact in list(graph.contacts.values()):
        target = work if contact.folder == friends else friends
        graph.move_contact(contact.id, target, same_id=same_id)
    synced.sync()
    synced.sync()
    assert sorted(c["given_name"] for c in synced.contacts()) == ["Fay", "Wes"]
    assert [g["path"] for g in synced.by_name("Fay")["groups"]] == ["Contacts/Work"]
    assert [g["path"] for g in synced.by_name("Wes")["groups"]] == ["Contacts/Friends"]
    if same_id:  # the same contact, moved: it keeps its id here too
        assert synced.by_name("Fay")["id"] == fay["id"]
        assert synced.by_name("Wes")["id"] == wes["id"]
    assert len(graph.contacts) == 2


def test_a_move_keeps_what_was_changed_in_outlook_since_the_last_sync(synced: Synced) -> None:
    """A move is a create in the new folder and a delete of the old contact: the old one
    is read first, so a change made there since the last pull moves with it."""
    graph = synced.graph
    friends = graph.add_folder("Friends")
    work = graph.add_folder("Work")
    old = graph.add_contact({"givenName": "Moe", "jobTitle": "Cook"}, folder=friends)
    synced.sync()
    moe = synced.by_name("Moe")
    graph.edit_contact(old, {"jobTitle": "Chef", "spouseName": "Flo"})
    synced.svc.contacts.update(synced.account, moe["id"], {"group": synced.group("Contacts/Work")})
    synced.sync()
    remote = synced.remote("Moe")
    assert remote["parentFolderId"] == work
    assert remote["jobTitle"] == "Chef" and remote["spouseName"] == "Flo"
    synced.sync()
    again = synced.by_name("Moe")
    assert again["id"] == moe["id"] and again["job_title"] == "Chef"
    assert [g["path"] for g in again["groups"]] == ["Contacts/Work"]


def test_a_conflict_is_merged_field_by_field(synced: Synced) -> None:
    graph = synced.graph
    cid = graph.add_contact({"givenName": "Eve", "surname": "Old"})
    synced.sync()
    eve = synced.by_name("Eve")
    graph.edit_contact(cid, {"surname": "Theirs"})  # the etag Rolodex holds is stale now
    synced.svc.contacts.update(synced.account, eve["id"], {"job_title": "Ours"})
    synced.sync()
    remote = graph.contact(cid)
    assert remote["surname"] == "Theirs" and remote["jobTitle"] == "Ours"
    assert any(r.status == 412 for r in graph.graph_requests("PATCH"))
    merged = synced.by_name("Eve")
    assert merged["surname"] == "Theirs" and merged["job_title"] == "Ours"


def test_a_create_whose_reply_was_lost_is_not_made_twice(synced: Synced) -> None:
    graph = synced.graph
    synced.sync()
    synced.svc.contacts.create(synced.account, {"given_name": "Lost"})
    graph.fail(500, method="POST", after=True)  # carried out, but the reply is lost
    synced.sync()
    account = synced.svc.accounts.get(synced.account.id)
    assert account.last_error is not None and "500" in account.last_error
    synced.sync()
    synced.sync()
    assert [c.props["givenName"] for c in graph.contacts.values()] == ["Lost"]
    assert len(synced.contacts()) == 1


def test_an_expired_delta_token_resyncs_without_duplicates(synced: Synced) -> None:
    graph = synced.graph
    ids = graph.add_contacts([{"givenName": f"N{i}"} for i in range(30)])
    synced.sync()
    graph.expire_delta_tokens()
    graph.delete_contact(ids[0])
    graph.edit_contact(ids[1], {"surname": "Changed"})
    synced.sync()
    names = sorted(c["given_name"] for c in synced.contacts())
    assert names == sorted(f"N{i}" for i in range(1, 30))
    assert synced.by_name("N1")["surname"] == "Changed"


def test_removals_replays_and_duplicates_converge(synced: Synced) -> None:
    graph = synced.graph
    ids = graph.add_contacts([{"givenName": f"N{i}"} for i in range(12)])
    synced.sync()
    graph.duplicates = True
    graph.replay_next_round = True
    graph.delete_contact(ids[3])
    synced.sync()
    assert len(synced.contacts()) == 11
    synced.sync()
    assert len(synced.contacts()) == 11


def test_a_first_sync_with_duplicates_and_empty_pages_makes_each_contact_once(
    synced: Synced,
) -> None:
    # The initial round too may list an item more than once, and a nextLink page may be
    # empty (DOC delta-query-overview: "It's possible that a single entity will be
    # contained multiple times in the response"; "This is true even if the current
    # response may contain an empty result").
    graph = synced.graph
    graph.add_contacts([{"givenName": f"N{i}"} for i in range(900)])  # two pages of 500
    graph.duplicates = True
    graph.empty_first_page = True
    synced.sync()
    names = [c["given_name"] for c in synced.contacts()]
    assert sorted(names) == sorted(f"N{i}" for i in range(900))


def test_a_contact_moved_into_a_new_folder_keeps_its_id_while_the_folders_are_listed(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync reads the folders' deltas while it lists the folders. The folder a contact
    left names it removed; the folder it went to is new, not in the tree the last sync
    listed: the removal must wait for a listing that knows it, not delete the contact (and
    make it again, under a new id, from the new folder). The listing is held here until
    the removal has been looked into."""
    graph = synced.graph
    friends = graph.add_folder("Friends")
    graph.add_contact({"givenName": "Fay"}, folder=friends)
    synced.sync()
    fay = synced.by_name("Fay")
    graph.move_contact(next(iter(graph.contacts)), graph.add_folder("New"), same_id=True)
    plain = FolderTree._load
    held = threading.Event()

    def late_listing(self: FolderTree) -> Any:
        if threading.current_thread() is threading.main_thread() and not held.is_set():
            held.set()
            deadline = time.monotonic() + 5
            while not graph.graph_requests("GET", "parentFolderId"):
                assert time.monotonic() < deadline, "the removal was not looked into"
                time.sleep(0.01)
            time.sleep(0.2)  # its answer on its way back
        return plain(self)

    monkeypatch.setattr(FolderTree, "_load", late_listing)
    synced.sync()
    assert held.is_set()
    assert [c["id"] for c in synced.contacts()] == [fay["id"]]
    assert [g["path"] for g in synced.by_name("Fay")["groups"]] == ["Contacts/New"]


def test_new_and_deleted_folders_are_noticed(synced: Synced) -> None:
    graph = synced.graph
    old = graph.add_folder("Old")
    graph.add_contact({"givenName": "Gone"}, folder=old)
    synced.sync()
    assert synced.by_name("Gone")
    graph.delete_folder(old)
    new = graph.add_folder("New")
    graph.add_contact({"givenName": "Fresh"}, folder=new)
    synced.sync()
    assert [c["given_name"] for c in synced.contacts()] == ["Fresh"]
    assert [g["path"] for g in synced.by_name("Fresh")["groups"]] == ["Contacts/New"]


def test_pictures_both_ways(synced: Synced) -> None:
    graph = synced.graph
    cid = graph.add_contact({"givenName": "Pic"})
    synced.sync()
    pic = synced.by_name("Pic")
    graph.set_photo(cid, PNG, "image/png")
    graph.edit_contact(cid, {"jobTitle": "Model"})  # a photo alone is not in delta
    synced.sync()
    assert synced.svc.pictures.get(synced.account, pic["id"]).data == PNG
    jpeg = (Path(__file__).parent.parent / "fixtures").glob("**/*.jpg")
    data = next(iter(jpeg), None)
    if data is not None:
        synced.svc.pictures.put(synced.account, pic["id"], data.read_bytes())
        synced.sync()
        assert graph.contacts[cid].photo == data.read_bytes()


def test_rotated_refresh_tokens_are_stored_and_used_after_a_restart(synced: Synced) -> None:
    first = synced.svc.accounts.connection(synced.account.id)
    assert first is not None
    # The access token from the connect check is kept and used: no refresh yet.
    refreshes = synced.graph.token_requests
    synced.sync()
    assert synced.graph.token_requests == refreshes
    synced.graph.expire_access_tokens()  # an hour later: Graph answers 401, Rolodex refreshes
    synced.sync()
    assert synced.graph.token_requests == refreshes + 1
    second = synced.svc.accounts.connection(synced.account.id)
    assert second is not None
    assert second["microsoft_refresh_token"] != first["microsoft_refresh_token"]
    assert second["microsoft_refresh_token"] in synced.graph.refresh_tokens
    assert first["microsoft_refresh_token"] not in synced.graph.refresh_tokens
    # A new process: a new runner reads the stored (rotated) token and syncs.
    synced.graph.add_contact({"givenName": "After"})
    make_runner(synced.settings, synced.store).run(synced.account.id)
    assert synced.by_name("After")


def test_a_revoked_grant_stops_the_account_until_it_is_reconnected(synced: Synced) -> None:
    synced.graph.revoke_refresh_tokens()
    synced.graph.expire_access_tokens()
    with pytest.raises(SyncFailed):
        synced.sync()
    account = synced.svc.accounts.get(synced.account.id)
    assert account.sync_state == "invalid-credentials"
    assert account.last_error is not None and "reconnect" in account.last_error


def test_throttling_is_waited_out(synced: Synced) -> None:
    graph = synced.graph
    graph.add_contacts([{"givenName": f"N{i}"} for i in range(5)])
    graph.fail(429, path_contains="/delta", times=2, retry_after="0")
    graph.fail(503, path_contains="/contactFolders", times=1, retry_after="0")
    synced.sync()
    assert len(synced.contacts()) == 5
    assert graph.peak_in_flight <= 4


def test_a_renamed_folder_keeps_its_group_and_members(synced: Synced) -> None:
    graph = synced.graph
    folder = graph.add_folder("Friends")
    graph.add_contact({"givenName": "Ren"}, folder=folder)
    graph.add_folder("Empty")
    synced.sync()
    group = synced.group("Contacts/Friends")
    assert synced.group("Contacts/Empty")  # an empty folder is a group too
    graph.rename_folder(folder, "Pals")
    synced.sync()
    assert synced.group("Contacts/Pals") == group
    ren = synced.by_name("Ren")
    assert [(g["id"], g["name"], g["path"]) for g in ren["groups"]] == [
        (group, "Pals", "Contacts/Pals")
    ]


def test_a_picture_delete_is_refused_on_microsoft_accounts(synced: Synced) -> None:
    from rolodex.domain.errors import InvalidContact

    synced.graph.add_contact({"givenName": "Pic"})
    synced.sync()
    pic = synced.by_name("Pic")
    with pytest.raises(InvalidContact, match="cannot lose their picture"):
        synced.svc.pictures.delete(synced.account, pic["id"])


def test_a_lost_create_reply_during_the_first_sync_is_not_taken_for_a_new_contact(
    synced: Synced,
) -> None:
    # Written before the first sync: the push comes first, its reply is lost, and the
    # snapshot that follows in the same sync sees the contact without Rolodex's id (delta
    # pages do not carry it).
    graph = synced.graph
    graph.add_contact({"givenName": "Outlook"})
    synced.svc.contacts.create(synced.account, {"given_name": "Early"})
    graph.fail(500, method="POST", after=True)
    synced.sync()
    assert sorted(c["given_name"] for c in synced.contacts()) == ["Early", "Outlook"]
    synced.sync()
    assert sorted(c["given_name"] for c in synced.contacts()) == ["Early", "Outlook"]
    assert sorted(c.props["givenName"] for c in graph.contacts.values()) == ["Early", "Outlook"]


def _folders_with_contacts(graph: GraphEmulator) -> dict[str, str]:
    friends = graph.add_folder("Friends")
    close = graph.add_folder("Close", parent=friends)
    work = graph.add_folder("Work")
    graph.add_contact({"givenName": "Ann"})
    graph.add_contact({"givenName": "Bob"}, folder=friends)
    graph.add_contact({"givenName": "Cyd"}, folder=close)
    graph.add_contact({"givenName": "Dan"}, folder=work)
    return {"friends": friends, "close": close, "work": work}


def _paths(synced: Synced) -> dict[str, list[str]]:
    return {str(c["given_name"]): [g["path"] for g in c["groups"]] for c in synced.contacts()}


EVERYONE = {
    "Ann": ["Contacts"],
    "Bob": ["Contacts/Friends"],
    "Cyd": ["Contacts/Friends/Close"],
    "Dan": ["Contacts/Work"],
}


def test_folder_lists_paged_by_the_server_are_read_whole(synced: Synced) -> None:
    graph = synced.graph
    graph.folder_page_size = 1  # every folder list comes one folder a page, with nextLinks
    folders = _folders_with_contacts(graph)
    graph.add_folder("Other", parent=folders["friends"])
    synced.sync()
    synced.sync()
    assert _paths(synced) == EVERYONE
    assert graph.graph_requests("GET", "$skip=")  # the pages were followed
    graph.delete_folder(folders["close"])  # a real deletion is still noticed
    synced.sync()
    assert _paths(synced) == {k: v for k, v in EVERYONE.items() if k != "Cyd"}


@pytest.mark.parametrize("status", [503, 500, 404])
def test_a_folder_list_that_fails_part_way_deletes_nothing(synced: Synced, status: int) -> None:
    # One childFolders call fails (past the client's retries; a 404: the folder seemed to
    # vanish between the listing of its parent and its own): the listing is incomplete, so
    # it cannot say that any folder was deleted. Only a complete, successful one may.
    graph = synced.graph
    folders = _folders_with_contacts(graph)
    synced.sync()
    groups = {g.path: g.id for g in synced.svc.groups.list(synced.account)}
    graph.fail(
        status,
        path_contains=f"/contactFolders/{folders['friends']}/childFolders",
        times=10,
        retry_after="0",
    )
    with pytest.raises(SyncFailed):
        synced.sync()
    assert _paths(synced) == EVERYONE
    assert {g.path: g.id for g in synced.svc.groups.list(synced.account)} == groups
    account = synced.svc.accounts.get(synced.account.id)
    assert account.last_error is not None and "unexpectedly" not in account.last_error
    graph.faults.clear()
    synced.sync()
    assert _paths(synced) == EVERYONE
    assert {g.path: g.id for g in synced.svc.groups.list(synced.account)} == groups


# --- Pictures checked apart (a first sync reads none; rolodex.sync.pictures) -------------


def _run(synced: Synced) -> SyncReport:
    report = synced.runner.run(synced.account.id)
    assert report is not None
    return report


def _picture(synced: Synced, contact_id: object) -> bytes | None:
    try:
        return synced.svc.pictures.get(synced.account, str(contact_id)).data
    except NoSuchPicture:
        return None


def test_the_pictures_a_mailbox_has_come_in_after_its_first_sync(synced: Synced) -> None:
    graph = synced.graph
    friends = graph.add_folder("Friends")
    ann = graph.add_contact({"givenName": "Ann"})
    bob = graph.add_contact({"givenName": "Bob"}, folder=friends)
    graph.add_contact({"givenName": "Cyd"})
    graph.set_photo(ann, PNG, "image/png")
    graph.set_photo(bob, JPEG)
    # Set here before the first sync: pushed with its picture, then read back by the
    # snapshot without it, which must not take the picture away.
    local = orjson.loads(synced.svc.contacts.create(synced.account, {"given_name": "Dot"}))
    synced.svc.pictures.put(synced.account, local["id"], PNG)
    first = _run(synced)
    assert first.snapshots == 2 and first.pictures_unchecked is None
    assert not graph.graph_requests("GET", "/photo")  # the first sync reads no photos
    assert _picture(synced, synced.by_name("Ann")["id"]) is None
    assert _picture(synced, local["id"]) == PNG
    cursor = synced.svc.changes.latest_cursor(synced.account)

    second = _run(synced)
    assert (second.pictures_checked, second.pictures_unchecked) == (4, 0)
    assert _picture(synced, synced.by_name("Ann")["id"]) == PNG
    assert _picture(synced, synced.by_name("Bob")["id"]) == JPEG
    assert _picture(synced, synced.by_name("Cyd")["id"]) is None
    # Dot's PNG went to Outlook as a JPEG (Graph's photo update takes image/jpeg only, DOC
    # profilephoto-update): what the mailbox holds came back with the checks.
    dot = _picture(synced, local["id"])
    assert dot is not None and dot.startswith(b"\xff\xd8")
    assert dot == graph.in_folder()[-1].photo
    assert synced.by_name("Ann")["picture_url"]
    # Only the contacts whose picture came in changed, in the delta feed too.
    changed = synced.svc.changes.since(synced.account, cursor, frozenset({"contact"})).deltas
    assert sorted(str(d.object_id) for d in changed) == sorted(
        [*(str(synced.by_name(n)["id"]) for n in ("Ann", "Bob")), str(local["id"])]
    )
    missing = [r for r in graph.graph_requests("GET", "/photo/$value") if r.status == 404]
    assert len(missing) == 1  # Cyd's: Graph's 404 for a contact without a photo

    graph.requests.clear()
    third = _run(synced)
    assert (third.pictures_checked, third.pictures_unchecked) == (0, 0)
    assert not graph.graph_requests("GET", "/photo")


def test_picture_checks_are_bounded_per_round_and_resume_after_a_failure(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rolodex.connectors.microsoft.connector.PICTURE_CHECKS", 4)
    graph = synced.graph
    ids = graph.add_contacts([{"givenName": f"N{i}"} for i in range(10)])
    for cid in ids:
        graph.set_photo(cid, PNG, "image/png")
    _run(synced)
    # The third photo read fails past the client's retries: the round stops there, keeps
    # the two before it, and the sync itself succeeds.
    order = _due_order(synced)
    graph.fail(503, path_contains=f"/contacts/{order[2]}/photo", times=10, retry_after="0")
    second = _run(synced)
    assert (second.pictures_checked, second.pictures_unchecked) == (2, 8)
    assert synced.svc.accounts.get(synced.account.id).last_error is None
    graph.faults.clear()
    # A refusal (not a 404) of one contact's photo does not hold up the others: recorded,
    # its picture left as it is, and checked again later.
    graph.fail(403, path_contains=f"/contacts/{order[3]}/photo", times=10)
    counts = [(r.pictures_checked, r.pictures_unchecked) for r in (_run(synced) for _ in range(3))]
    assert counts == [(4, 4), (4, 0), (0, 0)]
    pictures = _pictures_by_remote_id(synced)
    assert pictures.pop(order[3]) is None and set(pictures.values()) == {PNG}
    graph.faults.clear()
    monkeypatch.setattr("rolodex.connectors.microsoft.connector.PICTURE_RECHECK", 0.0)
    monkeypatch.setattr("rolodex.connectors.microsoft.connector.PICTURE_CHECKS", 10)
    assert _run(synced).pictures_checked == 10  # every one checked again, the refused too
    assert set(_pictures_by_remote_id(synced).values()) == {PNG}


def test_a_photo_changed_in_outlook_alone_is_seen_when_it_is_checked_again(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = synced.graph
    cid = graph.add_contact({"givenName": "Pic"})
    graph.set_photo(cid, JPEG)
    _run(synced)
    _run(synced)
    pic = synced.by_name("Pic")
    assert _picture(synced, pic["id"]) == JPEG
    graph.set_photo(cid, PNG, "image/png")  # a photo alone: no change in delta
    _run(synced)
    assert _picture(synced, pic["id"]) == JPEG  # checked less than a day ago
    monkeypatch.setattr("rolodex.connectors.microsoft.connector.PICTURE_RECHECK", 0.0)
    again = _run(synced)
    assert again.pictures_checked == 1
    assert _picture(synced, pic["id"]) == PNG


def _due_order(synced: Synced) -> list[str]:
    """The remote ids in the order the checks take them: the store's, for never-checked."""
    with synced.store.read() as tx:
        return [rid for _, rid in tx.remotes.pictures_never_checked(synced.account.id, 1000)]


def _pictures_by_remote_id(synced: Synced) -> dict[str, bytes | None]:
    with synced.store.read() as tx:
        links = {
            c["id"]: tx.remotes.for_contact(synced.account.id, str(c["id"]))
            for c in synced.contacts()
        }
    return {link.remote_id: _picture(synced, cid) for cid, link in links.items() if link}
