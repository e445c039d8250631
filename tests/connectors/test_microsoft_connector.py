"""The Microsoft Graph connector against the Graph emulator, over real HTTP."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from rolodex.connectors.base import (
    CursorExpired,
    InvalidCredentials,
    LocalContact,
    PermanentError,
    PreconditionFailed,
    RemoteContact,
    TransientError,
)
from rolodex.connectors.microsoft.client import GraphClient
from rolodex.connectors.microsoft.connector import DEFAULT, MicrosoftConnector
from rolodex.domain.contact import (
    ContactFields,
    Email,
    IMAddress,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)
from tests.emulators.microsoft import GraphEmulator

JPEG = b"\xff\xd8\xff\xe0" + b"0" * 64
JPEG2 = b"\xff\xd8\xff\xe1" + b"2" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"1" * 64


@pytest.fixture
def graph() -> Iterator[GraphEmulator]:
    with GraphEmulator() as emulator:
        yield emulator


class Rotations(list[str]):
    pass


@pytest.fixture
def rotations() -> Rotations:
    return Rotations()


def make_client(graph: GraphEmulator, rotations: list[str], **kwargs: Any) -> GraphClient:
    options: dict[str, Any] = {"backoff": 0.01, "max_wait": 2.0}
    options.update(kwargs)
    return GraphClient(
        client_id=graph.client_id,
        client_secret=graph.client_secret,
        refresh_token=graph.refresh_token,
        graph_url=graph.graph_url,
        login_url=graph.login_url,
        on_tokens=lambda refresh, _access, _expires: rotations.append(refresh),
        **options,
    )


@pytest.fixture
def connector(graph: GraphEmulator, rotations: Rotations) -> Iterator[MicrosoftConnector]:
    conn = MicrosoftConnector(make_client(graph, rotations), page_size=10)
    yield conn
    conn.close()


def full_fields() -> ContactFields:
    return ContactFields(
        given_name="Ada",
        middle_name="King",
        surname="Lovelace",
        suffix="Jr.",
        nickname="Countess",
        birthday=dt.date(1815, 12, 10),
        company_name="Analytical Engines",
        job_title="Programmer",
        manager_name="Babbage",
        office_location="London",
        notes="First programmer",
        emails=(Email(None, "ada@example.com"), Email(None, "ada@work.example")),
        im_addresses=(IMAddress(None, "ada@jabber.example"),),
        phone_numbers=(
            PhoneNumber("business", "+44 20 1234 5678"),
            PhoneNumber("home", "+44 20 8765 4321"),
            PhoneNumber("mobile", "+44 7700 900123"),
        ),
        physical_addresses=(
            PhysicalAddress("home", "1 Street", "London", "W1", "Greater London", "UK"),
            PhysicalAddress("work", "2 Road", "Cambridge", "CB1", None, "UK"),
        ),
        web_pages=(WebPage("work", "https://ada.example"),),
    )


def drain(changeset: Any) -> list[RemoteContact]:
    assert changeset.stream is not None
    return list(changeset.stream)


# --- Folders ---------------------------------------------------------------------------------


def test_collections_are_the_default_folder_and_every_folder_under_it(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    friends = graph.add_folder("Friends")
    close = graph.add_folder("Close", parent=friends)
    work = graph.add_folder("Work")
    cols = {c.id: c for c in connector.collections()}
    assert cols[DEFAULT].is_default and cols[DEFAULT].name == "Contacts"
    assert cols[friends].name == "Contacts/Friends"
    assert cols[close].name == "Contacts/Friends/Close"
    assert cols[work].name == "Contacts/Work"
    assert len(cols) == 4


@pytest.mark.parametrize("listing", ["children", "default", "both"])
@pytest.mark.parametrize("holds_contacts", [True, False])
@pytest.mark.parametrize("alias", [False, True])
@pytest.mark.parametrize("parent_shown", [True, False])
def test_the_default_folder_is_known_whether_or_not_the_folder_list_names_it(
    graph: GraphEmulator,
    connector: MicrosoftConnector,
    listing: str,
    holds_contacts: bool,
    alias: bool,
    parent_shown: bool,
) -> None:
    # v1.0 lists the folders in the default one (microsoft-graph-docs-contrib#6327); the
    # reference's example lists the default folder itself (DOC user-list-contactfolders).
    # Either way the default folder is the collection "contacts", never "Contacts/Contacts",
    # and its delta goes by its own id. ``alias``: the folder answers with another id form
    # than its contacts' parentFolderId. ``parent_shown``: the default folder is answered
    # with the mailbox root as its parent, or with none.
    graph.folder_listing = listing
    graph.default_parent_shown = parent_shown
    if alias:
        graph.default_alias = "AQMkAD" + graph.default_folder.id[6:]
    friends = graph.add_folder("Friends")
    close = graph.add_folder("Close", parent=friends)
    a = graph.add_contact({"givenName": "A"}) if holds_contacts else None
    cols = {c.id: c.name for c in connector.collections()}
    assert cols == {
        DEFAULT: "Contacts",
        friends: "Contacts/Friends",
        close: "Contacts/Friends/Close",
    }
    snap = connector.snapshot(DEFAULT)
    assert [i.remote_id for i in drain(snap)] == ([a] if a else [])
    assert snap.cursor is not None and "$deltatoken=" in snap.cursor
    (delta,) = graph.graph_requests("GET", "/delta")
    named = {graph.default_folder.id, graph.default_alias}
    assert delta.path.split("/")[4] in named and delta.path.endswith("/contacts/delta")


@pytest.mark.parametrize("listing", ["children", "default"])
def test_a_mailbox_with_only_its_default_folder_has_one_collection(
    graph: GraphEmulator, connector: MicrosoftConnector, listing: str
) -> None:
    graph.folder_listing = listing
    assert [(c.id, c.name) for c in connector.collections()] == [(DEFAULT, "Contacts")]
    b = graph.add_contact({"givenName": "B"})
    assert [i.remote_id for i in drain(connector.snapshot(DEFAULT))] == [b]


def test_folder_lists_are_paged_and_new_and_deleted_folders_are_noticed(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    graph.folder_page_size = 5  # Graph pages below the $top asked for
    ids = [graph.add_folder(f"F{i:02}") for i in range(12)]
    assert {c.id for c in connector.collections()} == {DEFAULT, *ids}
    graph.delete_folder(ids[0])
    extra = graph.add_folder("New")
    assert {c.id for c in connector.collections()} == {DEFAULT, *ids[1:], extra}


def test_home_is_the_folder_the_group_names(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    friends = graph.add_folder("Friends")
    close = graph.add_folder("Close", parent=friends)
    connector.collections()
    assert connector.home(LocalContact(ContactFields(), ("Contacts/Friends/Close",))) == close
    assert connector.home(LocalContact(ContactFields(), ("Friends",))) == friends
    assert connector.home(LocalContact(ContactFields(), ("Contacts",))) == DEFAULT
    assert connector.home(LocalContact(ContactFields(), ())) is None
    assert connector.home(LocalContact(ContactFields(), ("Nowhere",))) is None


# --- Delta -----------------------------------------------------------------------------------


def test_snapshot_streams_every_page_and_ends_with_the_delta_link(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    folder = graph.add_folder("Friends")
    graph.add_contacts([{"givenName": f"N{i}"} for i in range(25)], folder=folder)
    snap = connector.snapshot(folder)
    items = drain(snap)
    assert sorted(i.fields.given_name or "" for i in items) == sorted(f"N{i}" for i in range(25))
    assert all(i.group_names == ("Contacts/Friends",) for i in items)
    assert snap.cursor is not None and "$deltatoken=" in snap.cursor
    pages = graph.graph_requests("GET", "/contacts/delta")
    assert len(pages) == 3  # 10 + 10 + 5, through the nextLinks as given
    assert all(r.headers.get("prefer") == "odata.maxpagesize=10" for r in pages)
    assert all("$top" not in r.query for r in pages)


def test_delta_and_photo_requests_carry_the_headers_their_references_name(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    cid = graph.add_contact({"givenName": "A"})
    graph.set_photo(cid, JPEG)
    drain(connector.snapshot(DEFAULT))
    (delta,) = graph.graph_requests("GET", "/delta")
    # DOC contact-delta, "Request headers": "Content-Type: application/json. Required."
    assert delta.headers["content-type"] == "application/json"
    assert delta.headers["prefer"] == "odata.maxpagesize=10"
    (picture,) = connector.pictures([cid])
    assert picture.data == JPEG
    (photo,) = graph.graph_requests("GET", "/photo/$value")
    assert photo.headers["accept"].startswith("image/*")  # not only the JSON of elsewhere


def test_the_default_folder_is_synced_through_its_documented_delta(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # DOC contact-delta: GET /me/contactFolders/{id}/contacts/delta is the documented
    # request; /me/contacts/delta is not. The default folder's id is the parentFolderId of
    # what /me/contacts and /me/contactFolders list (DOC user-list-contacts,
    # user-list-contactfolders: both are of the default folder).
    a = graph.add_contact({"givenName": "A"})
    snap = connector.snapshot(DEFAULT)
    assert [i.remote_id for i in drain(snap)] == [a]
    assert snap.cursor is not None and "$deltatoken=" in snap.cursor
    listed = connector.changes(DEFAULT, None)
    assert set(listed.changed) == {a} and listed.complete
    delta = graph.graph_requests("GET", "/delta")
    assert delta and all(
        r.path.startswith(f"/v1.0/me/contactFolders/{quote(graph.default_folder.id, safe='')}/")
        or r.path.startswith(f"/v1.0/me/contactFolders/{graph.default_folder.id}/")
        for r in delta
    )


def test_a_default_folder_not_served_under_its_id_is_read_through_me_contacts_delta(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # A Graph that answers the documented request for the default folder with a 404
    # still serves /me/contacts/delta (Microsoft Q&A 1634378).
    graph.contacts_delta = True
    a = graph.add_contact({"givenName": "A"})
    graph.fail(404, path_contains=f"/me/contactFolders/{graph.default_folder.id}/contacts/delta")
    snap = connector.snapshot(DEFAULT)
    assert [i.remote_id for i in drain(snap)] == [a] and snap.cursor is not None
    assert [r.status for r in graph.graph_requests("GET", "/delta")] == [404, 200]
    assert graph.graph_requests("GET", "/delta")[1].path == "/v1.0/me/contacts/delta"


def test_an_empty_default_folder_without_folders_syncs_as_empty(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # Nothing names the default folder's id yet: it holds nothing, which is what a sync
    # of it says (and no cursor, so the next sync looks again).
    snap = connector.snapshot(DEFAULT)
    assert drain(snap) == [] and snap.cursor is None and snap.complete
    listed = connector.changes(DEFAULT, None)
    assert listed.changed == {} and listed.complete and listed.cursor is None
    assert all(r.status < 400 for r in graph.graph_requests())
    b = graph.add_contact({"givenName": "B"})
    snap = connector.snapshot(DEFAULT)
    assert [i.remote_id for i in drain(snap)] == [b] and snap.cursor is not None


def test_requests_go_side_by_side_on_threads_kept_between_syncs(
    graph: GraphEmulator, rotations: Rotations
) -> None:
    def graph_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("graph_")}

    before = graph_threads()
    conn = MicrosoftConnector(make_client(graph, rotations), page_size=10)
    graph.add_folder("Friends")
    (a,) = graph.add_contacts([{"givenName": "A"}])
    snap = conn.snapshot(DEFAULT)
    drain(snap)
    cursor = snap.cursor
    seen: set[threading.Thread] = set()
    for n in range(3):  # a sync after one change: the folders, then the changed item read
        conn.collections()
        graph.edit_contact(a, {"surname": f"Edited {n}"})
        changes = conn.changes(DEFAULT, cursor, with_data=True)
        assert list(changes.changed) == [a]
        assert [i.remote_id for i in conn.fetch(DEFAULT, changes.changed)] == [a]
        cursor = changes.cursor
        seen |= graph_threads() - before
    assert 0 < len(seen) <= 4  # the mailbox's limit, the same threads each time
    conn.close()
    for thread in seen:
        thread.join(5)
    assert not graph_threads() - before


@pytest.mark.parametrize(("partial", "reason"), [(False, "deleted"), (True, "changed")])
def test_incremental_changes_name_edits_additions_and_removals(
    graph: GraphEmulator, connector: MicrosoftConnector, partial: bool, reason: str
) -> None:
    # ``partial``: an update in a round from a deltaLink names only what changed (DOC
    # delta-query-overview); the contact is still read whole. A removal is one whatever
    # its reason.
    graph.partial_updates = partial
    graph.removed_reason = reason
    a, b, c = graph.add_contacts([{"givenName": "A"}, {"givenName": "B"}, {"givenName": "C"}])
    snap = connector.snapshot(DEFAULT)
    drain(snap)
    graph.edit_contact(a, {"surname": "Edited"})
    graph.delete_contact(b)
    d = graph.add_contact({"givenName": "D"})
    changes = connector.changes(DEFAULT, snap.cursor, with_data=True)
    assert set(changes.changed) == {a, d}
    assert changes.removed == (b,)
    assert not changes.complete and changes.fetched == ()  # the engine fetches what differs
    found = connector.fetch(DEFAULT, changes.changed)
    fetched = {i.remote_id: i for i in found if isinstance(i, RemoteContact)}
    assert fetched[a].fields.surname == "Edited" and fetched[a].fields.given_name == "A"
    assert fetched[a].etag == changes.changed[a]
    # Nothing since: an empty round with a new deltaLink.
    again = connector.changes(DEFAULT, changes.cursor)
    assert again.changed == {} and again.removed == ()
    del c


def test_replays_duplicates_and_empty_pages_change_nothing(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    graph.add_contacts([{"givenName": f"N{i}"} for i in range(25)])
    graph.duplicates = True
    graph.empty_first_page = True
    snap = connector.snapshot(DEFAULT)
    items = drain(snap)
    assert len({i.remote_id for i in items}) == 25
    graph.replay_next_round = True
    changes = connector.changes(DEFAULT, snap.cursor, with_data=True)
    assert len(changes.changed) == 25  # a replay of everything: same ids, same etags
    assert all(changes.changed[i.remote_id] == i.etag for i in items)


def test_a_contact_removed_then_added_in_one_round_ends_as_its_last_state(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    (a,) = graph.add_contacts([{"givenName": "A"}])
    snap = connector.snapshot(DEFAULT)
    drain(snap)
    graph.delete_contact(a)
    changes = connector.changes(DEFAULT, snap.cursor)
    assert changes.removed == (a,) and changes.changed == {}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SyncStateNotFound", 410),
        ("syncStateNotFound", 400),
        ("resyncRequired", 410),
        ("SyncStateInvalid", 400),
        # DOC delta-query-overview: "a 40X-series error with error codes such as
        # syncStateNotFound": other codes, other 40x.
        ("invalidRequest", 400),
        ("ErrorItemNotFound", 404),
    ],
)
def test_expired_delta_tokens_are_cursor_expired(
    graph: GraphEmulator, connector: MicrosoftConnector, code: str, status: int
) -> None:
    graph.add_contacts([{"givenName": "A"}])
    snap = connector.snapshot(DEFAULT)
    drain(snap)
    graph.expire_delta_tokens(code=code, status=status)
    with pytest.raises(CursorExpired):
        connector.changes(DEFAULT, snap.cursor)
    # A listing from scratch is complete and names everything.
    full = connector.changes(DEFAULT, None)
    assert full.complete and len(full.changed) == 1 and full.cursor


def test_a_reset_in_the_middle_of_a_round_is_cursor_expired(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    graph.add_contacts([{"givenName": f"N{i}"} for i in range(15)])
    snap = connector.snapshot(DEFAULT)
    drain(snap)
    for cid in [c.id for c in graph.in_folder()][:12]:
        graph.edit_contact(cid, {"surname": "X"})
    graph.fail(410, path_contains="$skiptoken", code="SyncStateNotFound")
    with pytest.raises(CursorExpired):
        connector.changes(DEFAULT, snap.cursor)


# --- Mapping ---------------------------------------------------------------------------------


def test_create_writes_every_mapped_field_and_reads_back_the_same(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    folder = graph.add_folder("Friends")
    connector.collections()
    fields = full_fields()
    result = connector.create(folder, LocalContact(fields), "rolodexid123")
    stored = graph.contact(result.remote_id)
    assert stored["parentFolderId"] == folder
    assert stored["generation"] == "Jr." and stored["personalNotes"] == "First programmer"
    assert stored["birthday"] == "1815-12-10T11:59:00Z"
    assert stored["businessHomePage"] == "https://ada.example"
    assert stored["emailAddresses"][0] == {"address": "ada@example.com", "name": "ada@example.com"}
    (item,) = connector.fetch(folder, [result.remote_id])
    assert isinstance(item, RemoteContact)
    assert item.fields == fields
    assert item.rolodex_id == "rolodexid123"
    assert item.etag == result.etag
    assert item.group_names == ("Contacts/Friends",)


def test_birthday_is_the_date_typed_whatever_the_offset(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    a = graph.add_contact({"givenName": "A", "birthday": "1990-05-17T00:00:00+02:00"})
    b = graph.add_contact({"givenName": "B", "birthday": "1990-05-17T23:30:00-08:00"})
    items = {i.remote_id: i for i in connector.fetch(DEFAULT, [a, b])}
    assert isinstance(items[a], RemoteContact) and isinstance(items[b], RemoteContact)
    assert items[a].fields.birthday == dt.date(1990, 5, 17)
    assert items[b].fields.birthday == dt.date(1990, 5, 17)


def test_emails_and_ims_have_no_type(graph: GraphEmulator, connector: MicrosoftConnector) -> None:
    cid = graph.add_contact(
        {
            "emailAddresses": [{"address": "x@example.com", "name": "X"}],
            "imAddresses": ["sip:x@example.com"],
        }
    )
    (item,) = connector.fetch(DEFAULT, [cid])
    assert isinstance(item, RemoteContact)
    assert item.fields.emails == (Email(None, "x@example.com"),)
    assert item.fields.im_addresses == (IMAddress(None, "sip:x@example.com"),)


def test_update_patches_only_touched_properties_and_keeps_categories(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    cid = graph.add_contact(
        {
            "givenName": "Ada",
            "surname": "Lovelace",
            "categories": ["Red category"],
            "spouseName": "William",
            "emailAddresses": [{"address": "ada@example.com", "name": "Ada L."}],
        }
    )
    (item,) = connector.fetch(DEFAULT, [cid])
    assert isinstance(item, RemoteContact)
    fields = ContactFields(
        given_name="Augusta",
        surname="Lovelace",
        emails=(Email(None, "ada@example.com"), Email(None, "new@example.com")),
    )
    result = connector.update(
        cid, item.etag, LocalContact(fields, touched=("given_name", "emails")), item.raw
    )
    (patch,) = graph.graph_requests("PATCH")
    assert patch.headers["if-match"] == item.etag
    sent = graph.contact(cid)
    assert sent["givenName"] == "Augusta"
    assert sent["categories"] == ["Red category"] and sent["spouseName"] == "William"
    assert sent["emailAddresses"][0] == {"address": "ada@example.com", "name": "Ada L."}
    assert result.etag == sent["@odata.etag"] != item.etag
    assert result.raw is not None and orjson.loads(result.raw)["givenName"] == "Augusta"


def test_an_address_cleared_or_changed_is_sent_with_its_full_property_set(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # DOC contact-update: "When you update structured properties such as homeAddress, you
    # must pass the full property set"; an empty object would clear nothing where Graph
    # merges, so a cleared address is every part set to null.
    cid = graph.add_contact(
        {
            "givenName": "Ada",
            "homeAddress": {"street": "1 Street", "city": "London"},
            "businessAddress": {"city": "Cambridge", "countryOrRegion": "UK"},
        }
    )
    (item,) = connector.fetch(DEFAULT, [cid])
    assert isinstance(item, RemoteContact)
    fields = ContactFields(
        given_name="Ada",
        physical_addresses=(PhysicalAddress("work", None, "Oxford", None, None, None),),
    )
    connector.update(
        cid, item.etag, LocalContact(fields, touched=("physical_addresses",)), item.raw
    )
    sent = graph.contact(cid)
    assert sent["homeAddress"] == {} and sent["otherAddress"] == {}
    assert sent["businessAddress"] == {"city": "Oxford"}


def test_a_contact_in_a_folder_is_updated_and_deleted_through_its_folder(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # DOC contact-update, contact-delete: /me/contacts/{id} is "a contact from a user's
    # default contactFolder", /me/contactFolders/{id}/contacts/{id} one in another folder.
    friends = graph.add_folder("Friends")
    cid = graph.add_contact({"givenName": "A"}, folder=friends)
    connector.collections()
    (item,) = connector.fetch(friends, [cid])
    assert isinstance(item, RemoteContact)
    touched = LocalContact(ContactFields(given_name="B"), touched=("given_name",))
    result = connector.update(cid, item.etag, touched, item.raw)
    in_folder = f"/v1.0/me/contactFolders/{friends}/contacts/{cid}"
    assert [r.path for r in graph.graph_requests("PATCH")] == [in_folder]
    # Moved in Outlook since it was read: found through the mailbox.
    other = graph.add_folder("Other")
    with graph.lock:
        graph.contacts[cid].folder = other
    result = connector.update(cid, result.etag, touched, result.raw)
    assert graph.contact(cid)["givenName"] == "B"
    with graph.lock:
        graph.contacts[cid].folder = friends
    connector.delete(cid, graph.contact(cid)["@odata.etag"])
    assert [r.path for r in graph.graph_requests("DELETE")] == [in_folder]
    assert cid not in graph.contacts


def test_a_delete_the_folder_path_does_not_find_goes_through_the_mailbox(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # DOC contact-delete names /me/contactFolders/{id}/contacts/{id} for a top-level folder
    # and a childFolders chain below it: a Graph that does not serve the short path for a
    # nested folder answers 404, which is not "deleted already" while the contact is there.
    friends = graph.add_folder("Friends")
    close = graph.add_folder("Close", parent=friends)
    cid = graph.add_contact({"givenName": "A"}, folder=close)
    connector.collections()
    graph.fail(404, method="DELETE", path_contains="/contactFolders/", code="ErrorItemNotFound")
    connector.delete(cid, graph.contact(cid)["@odata.etag"])
    assert cid not in graph.contacts
    assert [r.status for r in graph.graph_requests("DELETE")] == [404, 204]
    assert graph.graph_requests("DELETE")[1].path == f"/v1.0/me/contacts/{cid}"


def test_a_contact_made_again_elsewhere_carries_only_writable_properties(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # A move is a create in the new folder from the old item's JSON: only what the
    # contact-update reference lists as writable goes back (not beta or read-only ones).
    friends = graph.add_folder("Friends")
    connector.collections()
    old = {
        "@odata.etag": 'W/"x"',
        "id": "AAMkADold",
        "givenName": "A",
        "categories": ["Red category"],
        "spouseName": "William",
        "flag": {"flagStatus": "notFlagged"},
        "primaryEmailAddress": {"address": "a@example.com"},
        "photo": {"id": "240X240"},
    }
    made = connector.create(
        friends,
        LocalContact(ContactFields(given_name="A"), replaces=orjson.dumps(old)),
        "uid1",
    )
    sent = graph.contact(made.remote_id)
    assert sent["categories"] == ["Red category"] and sent["spouseName"] == "William"
    assert graph.contacts[made.remote_id].folder == friends


def test_a_stale_etag_is_precondition_failed(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    cid = graph.add_contact({"givenName": "A"})
    (item,) = connector.fetch(DEFAULT, [cid])
    graph.edit_contact(cid, {"givenName": "Changed there"})
    with pytest.raises(PreconditionFailed):
        connector.update(
            cid,
            item.etag,
            LocalContact(ContactFields(given_name="B"), touched=("given_name",)),
            None,
        )
    with pytest.raises(PreconditionFailed):
        connector.delete(cid, item.etag)
    assert graph.contact(cid)["givenName"] == "Changed there"


def test_delete_is_204_and_deleting_again_is_not_an_error(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    cid = graph.add_contact({"givenName": "A"})
    (item,) = connector.fetch(DEFAULT, [cid])
    connector.delete(cid, item.etag)
    assert graph.in_folder() == []
    connector.delete(cid, item.etag)


def test_an_id_graph_calls_malformed_names_no_contact(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # Graph answers an id that cannot be an item's with 400 ErrorInvalidIdMalformed, not
    # 404 (invictus-ir/Microsoft-Extractor-Suite#146); no contact has it either way.
    graph.access_tokens["probe"] = time.time() + 60
    answer = httpx.get(
        f"{graph.graph_url}/me/contacts/not-an-id", headers={"Authorization": "Bearer probe"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ErrorInvalidIdMalformed"
    assert list(connector.fetch(DEFAULT, ["not-an-id"])) == []
    connector.delete("not-an-id", "")
    (picture,) = connector.pictures(["not-an-id"])
    assert picture.data is None and picture.refused is None


def test_the_emulator_filters_extended_property_values_without_case(
    graph: GraphEmulator,
) -> None:
    # DOC singlevaluelegacyextendedproperty-get: "Filtering the value property of an
    # extended property is case-insensitive."
    from rolodex.connectors.microsoft.parsing import ROLODEX_ID_PROPERTY

    cid = graph.add_contact(
        {"singleValueExtendedProperties": [{"id": ROLODEX_ID_PROPERTY, "value": "AbC"}]}
    )
    graph.access_tokens["probe"] = time.time() + 60
    flt = (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{ROLODEX_ID_PROPERTY}' "
        "and ep/value eq 'abc')"
    )
    answer = httpx.get(
        f"{graph.graph_url}/me/contacts",
        params={"$filter": flt},
        headers={"Authorization": "Bearer probe"},
    )
    assert [c["id"] for c in answer.json()["value"]] == [cid]


@pytest.mark.parametrize("into", ["default", "folder"])
def test_a_retried_create_does_not_take_the_contact_a_move_left_in_another_folder(
    graph: GraphEmulator, connector: MicrosoftConnector, into: str
) -> None:
    # An extended-property $filter "is applied to all instances of the resource in the
    # signed-in user's mailbox" (DOC singlevaluelegacyextendedproperty-get).
    from rolodex.connectors.microsoft.parsing import ROLODEX_ID_PROPERTY

    graph.filter_whole_mailbox = True
    friends, other = graph.add_folder("Friends"), graph.add_folder("Other")
    target = DEFAULT if into == "default" else friends
    left = graph.add_contact(
        {
            "givenName": "A",
            "singleValueExtendedProperties": [{"id": ROLODEX_ID_PROPERTY, "value": "uid1"}],
        },
        folder=other,
    )
    connector.collections()
    made = connector.create(
        target, LocalContact(ContactFields(given_name="A")), "uid1", maybe_exists=True
    )
    assert made.remote_id != left and not made.existed
    home = graph.default_folder.id if into == "default" else friends
    assert graph.contacts[made.remote_id].folder == home
    again = connector.create(
        target, LocalContact(ContactFields(given_name="A")), "uid1", maybe_exists=True
    )
    assert (again.remote_id, again.existed) == (made.remote_id, True)
    # The filter alone, as the extended-property reference gives it for a list.
    filtered = graph.graph_requests("GET", "filter")
    assert filtered and all("expand" not in r.query for r in filtered)


@pytest.mark.parametrize("whole_mailbox", [False, True])
def test_copies_are_the_contacts_carrying_the_id_in_every_folder(
    graph: GraphEmulator, connector: MicrosoftConnector, whole_mailbox: bool
) -> None:
    # What a move interrupted between its create and its delete leaves: the contact in
    # two folders, each found once whether the filter sees one folder or the whole mailbox.
    graph.filter_whole_mailbox = whole_mailbox
    friends = graph.add_folder("Friends")
    graph.add_folder("Other")
    connector.collections()
    home = connector.create(DEFAULT, LocalContact(ContactFields(given_name="A")), "uid1")
    moved = connector.create(friends, LocalContact(ContactFields(given_name="A")), "uid1")
    connector.create(friends, LocalContact(ContactFields(given_name="B")), "uid2")
    found = sorted((folder, copy.remote_id) for folder, copy in connector.copies("uid1"))
    assert found == sorted([(DEFAULT, home.remote_id), (friends, moved.remote_id)])


def test_a_retried_create_finds_the_contact_an_earlier_attempt_made(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    connector.collections()
    first = connector.create(DEFAULT, LocalContact(ContactFields(given_name="A")), "uid1")
    again = connector.create(
        DEFAULT, LocalContact(ContactFields(given_name="A")), "uid1", maybe_exists=True
    )
    assert again.existed and again.remote_id == first.remote_id
    assert len(graph.graph_requests("POST")) == 1
    fresh = connector.create(
        DEFAULT, LocalContact(ContactFields(given_name="B")), "uid2", maybe_exists=True
    )
    assert not fresh.existed and len(graph.in_folder()) == 2


# --- Pictures --------------------------------------------------------------------------------


def test_pictures_are_written_with_put_and_read_from_photo_value(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    connector.collections()
    result = connector.create(
        DEFAULT,
        LocalContact(ContactFields(given_name="A"), picture=JPEG, picture_type="image/jpeg"),
        "u",
    )
    assert graph.contacts[result.remote_id].photo == JPEG
    (item,) = connector.fetch(DEFAULT, [result.remote_id])
    assert isinstance(item, RemoteContact)
    assert item.picture == JPEG and item.picture_type == "image/jpeg"
    assert item.etag == result.etag  # the etag after the photo was set
    updated = connector.update(
        result.remote_id,
        item.etag,
        LocalContact(item.fields, picture=JPEG2, picture_type="image/jpeg", touched=("picture",)),
        item.raw,
    )
    assert graph.contacts[result.remote_id].photo == JPEG2
    assert updated.etag == graph.contact(result.remote_id)["@odata.etag"]
    assert not graph.graph_requests("PATCH")


def test_a_picture_delete_is_refused_before_anything_is_sent(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    cid = graph.add_contact({"givenName": "A"})
    graph.set_photo(cid, JPEG)
    (item,) = connector.fetch(DEFAULT, [cid])
    before = len(graph.requests)
    with pytest.raises(PermanentError, match="cannot delete a contact's photo"):
        connector.update(cid, item.etag, LocalContact(item.fields, touched=("picture",)), item.raw)
    assert len(graph.requests) == before
    assert graph.contacts[cid].photo == JPEG


@pytest.mark.parametrize("kind", ["PNG", "GIF", "WEBP"])
def test_pictures_in_other_formats_are_written_as_jpeg(
    graph: GraphEmulator, connector: MicrosoftConnector, kind: str
) -> None:
    # DOC profilephoto-update, "Request headers": "Content-Type image/jpeg. Required."
    picture = _image(kind)
    connector.collections()
    result = connector.create(
        DEFAULT,
        LocalContact(
            ContactFields(given_name="A"), picture=picture, picture_type=f"image/{kind.lower()}"
        ),
        "u",
    )
    [put] = graph.graph_requests("PUT", "/photo/$value")
    assert put.headers.get("content-type") == "image/jpeg"
    stored = graph.contacts[result.remote_id]
    assert stored.photo is not None and stored.photo.startswith(b"\xff\xd8")
    assert stored.photo_type == "image/jpeg"


def _image(kind: str) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (200, 10, 10, 128)).save(out, format=kind)
    return out.getvalue()


def test_without_odata_etags_the_change_key_is_the_version_sent_back(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # DOC resources/contact documents changeKey ("Identifies the version of the contact")
    # and no @odata.etag; Graph's @odata.etag is W/"<changeKey>", what If-Match compares.
    graph.odata_etags = False
    connector.collections()
    made = connector.create(DEFAULT, LocalContact(ContactFields(given_name="A")), "u")
    change_key = graph.contacts[made.remote_id].change_key
    assert made.etag == f'W/"{change_key}"'
    updated = connector.update(
        made.remote_id,
        made.etag,
        LocalContact(ContactFields(given_name="B"), touched=("given_name",)),
        made.raw,
    )
    [patch] = graph.graph_requests("PATCH")
    assert patch.headers.get("if-match") == f'W/"{change_key}"'
    assert updated.etag == f'W/"{graph.contacts[made.remote_id].change_key}"'
    with pytest.raises(PreconditionFailed):
        connector.update(
            made.remote_id,
            made.etag,
            LocalContact(ContactFields(given_name="C"), touched=("given_name",)),
            made.raw,
        )
    (item,) = connector.fetch(DEFAULT, [made.remote_id])
    assert item.etag == updated.etag
    connector.delete(made.remote_id, item.etag)
    assert made.remote_id not in graph.contacts


def test_the_emulator_refuses_photo_deletes_as_graph_does(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    cid = graph.add_contact({"givenName": "A"})
    graph.set_photo(cid, JPEG)
    client = make_client(graph, [])
    with pytest.raises(PermanentError, match="The OData request is not supported"):
        client.request("DELETE", f"/me/contacts/{cid}/photo")
    client.close()


def test_the_emulator_refuses_read_only_properties_in_a_body(graph: GraphEmulator) -> None:
    # Whatever the connector writes passes this (every write test above); a body made from
    # what Graph answered would not.
    cid = graph.add_contact({"givenName": "A"})
    client = make_client(graph, [])
    for name in ("id", "changeKey", "parentFolderId", "createdDateTime", "@odata.etag"):
        with pytest.raises(PermanentError, match="read-only"):
            client.request("PATCH", f"/me/contacts/{cid}", json={name: "x", "surname": "B"})
        with pytest.raises(PermanentError, match="read-only"):
            client.request("POST", "/me/contacts", json={name: "x", "givenName": "C"})
    assert graph.contact(cid)["surname"] is None and len(graph.contacts) == 1
    client.close()


def test_the_emulator_takes_extended_properties_in_their_documented_forms(
    graph: GraphEmulator,
) -> None:
    client = make_client(graph, [])
    for bad in ("RolodexId", "String {not-a-guid} Name RolodexId"):
        with pytest.raises(PermanentError, match="not well formed"):
            body = {"singleValueExtendedProperties": [{"id": bad, "value": "x"}]}
            client.request("POST", "/me/contacts", json=body)
    good = "String {66f5a359-4659-4830-9070-00040ec6ac6e} Name Color"
    body = {"givenName": "A", "singleValueExtendedProperties": [{"id": good, "value": "Green"}]}
    made = client.get_json("/me/contacts", params={"$top": "1"})  # nothing there yet
    assert made["value"] == []
    client.request("POST", "/me/contacts", json=body)
    assert [c.extended for c in graph.contacts.values()] == [{good.lower(): "Green"}]
    client.close()


def test_pictures_are_read_apart_in_order_four_at_a_time(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    ids = graph.add_contacts([{"givenName": f"N{i}"} for i in range(12)])
    graph.set_photo(ids[1], JPEG)
    graph.set_photo(ids[7], PNG, "image/png")
    gone = graph.add_contact({"givenName": "Gone"})
    graph.delete_contact(gone)
    graph.latency = 0.02
    found = list(connector.pictures([*ids, gone]))
    assert [p.remote_id for p in found] == [*ids, gone]
    assert [(p.data, p.content_type) for p in found if p.data] == [
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
    ]
    assert found[-1].data is None  # a contact gone meanwhile reads as having none
    assert 1 < graph.peak_in_flight <= 4
    # Delta pages and contact JSON carry no photo: what they give says so.
    (snapshot_item, *_) = connector.snapshot(DEFAULT).stream or iter(())
    assert isinstance(snapshot_item, RemoteContact) and not snapshot_item.picture_checked
    (fetched,) = connector.fetch(DEFAULT, [ids[1]])
    assert isinstance(fetched, RemoteContact) and fetched.picture_checked


def test_the_emulator_answers_a_missing_photo_as_graph_does(graph: GraphEmulator) -> None:
    # DOC profilephoto-get: 404 when no photo exists, in Graph's error body
    # (microsoftgraph/microsoft-graph-docs#2248: ErrorItemNotFound, "The photo wasn't found.").
    cid = graph.add_contact({"givenName": "A"})
    graph.access_tokens["probe"] = time.time() + 60
    answer = httpx.get(
        f"{graph.graph_url}/me/contacts/{quote(cid, safe='')}/photo/$value",
        headers={"Authorization": "Bearer probe"},
    )
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert (error["code"], error["message"]) == ("ErrorItemNotFound", "The photo wasn't found.")
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


# --- Throttling and errors -------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["0", "1", None])
def test_429_is_retried_with_or_without_retry_after(
    graph: GraphEmulator, connector: MicrosoftConnector, retry_after: str | None
) -> None:
    graph.add_contacts([{"givenName": "A"}])
    graph.fail(429, path_contains="/delta", times=2, retry_after=retry_after)
    assert len(drain(connector.snapshot(DEFAULT))) == 1
    statuses = [r.status for r in graph.graph_requests("GET", "/delta")]
    assert statuses == [429, 429, 200]


def test_503_and_500_are_retried_then_transient(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    graph.fail(503, path_contains="/me/contactFolders", times=1, retry_after="0")
    assert connector.collections()
    graph.fail(500, path_contains="/me/contactFolders", times=10)
    with pytest.raises(TransientError):
        connector.collections()


def test_throttling_past_max_wait_is_transient_with_its_retry_after(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    graph.fail(429, path_contains="/me/contactFolders", retry_after="120")
    with pytest.raises(TransientError) as caught:
        connector.collections()
    assert caught.value.retry_after == 120


def test_a_retry_after_given_as_a_date_is_waited_for(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # RFC 9110 §10.2.3: Retry-After is delay-seconds or an HTTP-date. Graph sends seconds
    # (DOC concepts/throttling), but a gateway in front of it may send the date.
    graph.fail(
        503,
        path_contains="/me/contactFolders",
        retry_after=formatdate(time.time() + 2, usegmt=True),
    )
    started = time.monotonic()
    assert connector.collections()
    assert time.monotonic() - started >= 0.9  # not the 10 ms back-off of a missing header
    graph.fail(
        429,
        path_contains="/me/contactFolders",
        retry_after=formatdate(time.time() + 600, usegmt=True),
    )
    with pytest.raises(TransientError) as caught:
        connector.collections()
    assert caught.value.retry_after is not None and 590 <= caught.value.retry_after <= 601


def test_a_create_is_not_sent_twice_after_a_server_error(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    connector.collections()
    graph.fail(500, method="POST")
    with pytest.raises(TransientError):
        connector.create(DEFAULT, LocalContact(ContactFields(given_name="A")), "uid")
    assert len(graph.graph_requests("POST")) == 1


@pytest.mark.parametrize("status", [409, 400])
def test_errors_are_known_by_their_code_whatever_the_status(
    graph: GraphEmulator, connector: MicrosoftConnector, status: int
) -> None:
    from rolodex.domain.remote import LocalGroup

    # DOC concepts/errors: "resourceModified: The resource being updated has changed since
    # the caller last read it, usually an eTag mismatch"; "nameAlreadyExists: The specified
    # item name already exists".
    cid = graph.add_contact({"givenName": "A"})
    (item,) = connector.fetch(DEFAULT, [cid])
    graph.fail(status, method="PATCH", code="resourceModified")
    with pytest.raises(PreconditionFailed):
        connector.update(
            cid,
            item.etag,
            LocalContact(ContactFields(given_name="B"), touched=("given_name",)),
            item.raw,
        )
    friends = graph.add_folder("Friends")
    graph.fail(status, method="POST", path_contains="contactFolders", code="nameAlreadyExists")
    made = connector.create_group(LocalGroup("Friends", "Contacts/Friends"))
    assert (made.remote_id, made.existed) == (friends, True)


def test_a_mailbox_graph_cannot_reach_is_refused_not_taken_for_a_missing_item(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # An inactive, soft-deleted or on-premises mailbox: 404 MailboxNotEnabledForRESTAPI,
    # "REST API is not yet supported for this mailbox." (microsoft-graph-docs-contrib#6519).
    # Not a folder or contact gone: nothing must be deleted for it, and connecting says so.
    for _ in range(2):
        graph.fail(
            404,
            path_contains="/me/",
            code="MailboxNotEnabledForRESTAPI",
            message="REST API is not yet supported for this mailbox.",
        )
    with pytest.raises(PermanentError, match="not yet supported for this mailbox"):
        connector.verify()
    with pytest.raises(PermanentError, match="not yet supported for this mailbox"):
        connector.collections()
    # Whatever the code, connecting is told the mailbox is not there, not an item.
    graph.fail(404, path_contains="/me/contacts", code="ErrorItemNotFound")
    with pytest.raises(PermanentError, match="default contact folder"):
        connector.verify()


def test_other_4xx_are_permanent_with_the_graph_message(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    connector.collections()
    fields = ContactFields(emails=tuple(Email(None, f"e{i}@example.com") for i in range(4)))
    with pytest.raises(PermanentError, match="EmailAddresses exceeds the max allowed value of 3"):
        connector.create(DEFAULT, LocalContact(fields), "uid")


def test_at_most_four_requests_in_flight(graph: GraphEmulator, rotations: Rotations) -> None:
    ids = graph.add_contacts([{"givenName": f"N{i}"} for i in range(24)])
    graph.latency = 0.05
    client = make_client(graph, rotations)
    conn = MicrosoftConnector(client)
    # Two threads at once over one connector: fetch runs 4 workers each.
    results: list[int] = []

    def run() -> None:
        results.append(len(list(conn.fetch(DEFAULT, ids))))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn.close()
    assert results == [24, 24]
    assert graph.peak_in_flight <= 4
    assert all(r.status != 429 for r in graph.graph_requests())


def test_the_emulator_throttles_a_fifth_concurrent_request(graph: GraphEmulator) -> None:
    graph.latency = 0.2
    client = make_client(graph, [], max_in_flight=8, attempts=1)
    errors: list[Exception] = []

    def run() -> None:
        try:
            client.request("GET", "/me/contactFolders")
        except TransientError as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert errors and "MailboxConcurrency" in str(errors[0])


# --- Tokens ----------------------------------------------------------------------------------


def test_every_refresh_rotates_the_refresh_token(
    graph: GraphEmulator, connector: MicrosoftConnector, rotations: Rotations
) -> None:
    old = graph.refresh_token
    connector.collections()
    assert len(rotations) == 1 and rotations[0] != old
    assert old not in graph.refresh_tokens and rotations[0] in graph.refresh_tokens
    graph.expire_access_tokens()  # Graph answers 401: one refresh, then the call again
    connector.collections()
    assert len(rotations) == 2 and rotations[1] in graph.refresh_tokens


def test_a_short_lived_access_token_is_used_until_it_nearly_expires(rotations: Rotations) -> None:
    # The lifetime is the token endpoint's to choose ("expires_in", identity platform
    # v2-oauth2-auth-code-flow); one shorter than the minute kept in hand must still serve
    # the requests of its lifetime, not one refresh each (the identity platform refuses a
    # client that asks in a loop: AADSTS50196).
    with GraphEmulator(access_token_lifetime=30) as graph:
        friends = graph.add_folder("Friends")
        graph.add_contacts([{"givenName": f"N{i}"} for i in range(5)], folder=friends)
        conn = MicrosoftConnector(make_client(graph, rotations), page_size=2)
        try:
            conn.collections()
            assert len(drain(conn.snapshot(friends))) == 5
        finally:
            conn.close()
        assert len(graph.graph_requests()) >= 5
        assert graph.token_requests == 1 and len(rotations) == 1


@pytest.mark.parametrize(
    "granted",
    [
        "offline_access https://graph.microsoft.com/Contacts.ReadWrite",
        "offline_access Contacts.ReadWrite User.Read openid profile",
    ],
)
def test_a_refresh_asks_for_no_scope_beyond_the_contacts_grant(
    graph: GraphEmulator, rotations: Rotations, granted: str
) -> None:
    # The refresh leg's scopes must be those of the grant or fewer (identity platform,
    # v2-oauth2-auth-code-flow): a grant of Contacts.ReadWrite and offline_access, as the
    # account settings describe it, is enough to sync.
    graph.refresh_token = graph.issue_refresh_token(granted)
    conn = MicrosoftConnector(make_client(graph, rotations), page_size=10)
    assert [c.id for c in conn.collections()] == [DEFAULT]
    conn.close()
    assert len(rotations) == 1


def test_the_emulator_rotates_the_refresh_token_only_when_offline_access_is_asked(
    graph: GraphEmulator,
) -> None:
    def refresh(token: str, **extra: str) -> dict[str, Any]:
        form = {
            "grant_type": "refresh_token",
            "client_id": graph.client_id,
            "client_secret": graph.client_secret,
            "refresh_token": token,
            **extra,
        }
        answer = httpx.post(f"{graph.login_url}/common/oauth2/v2.0/token", data=form)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    old = graph.refresh_token
    plain = refresh(old, scope="https://graph.microsoft.com/Contacts.ReadWrite")
    assert "refresh_token" not in plain and old in graph.refresh_tokens
    rotated = refresh(old)  # no scope: the grant's, offline_access included
    assert rotated["refresh_token"] in graph.refresh_tokens and old not in graph.refresh_tokens


def test_a_revoked_grant_is_invalid_credentials(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    graph.revoke_refresh_tokens()
    with pytest.raises(InvalidCredentials, match="AADSTS700082"):
        connector.verify()


def test_a_busy_token_endpoint_is_transient_and_a_consent_gone_is_invalid_credentials(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    # Identity platform, "Error codes for token endpoint errors": temporarily_unavailable
    # "The server is temporarily too busy to handle the request. Retry the request"; and
    # consent_required: the user must consent (again), which only a new sign-in does.
    graph.token_faults.append(
        (400, "temporarily_unavailable", 50196, "AADSTS50196: The server is busy.")
    )
    with pytest.raises(TransientError, match="temporarily_unavailable"):
        connector.verify()
    connector.verify()  # the next try gets its token
    graph.token_faults.append(
        (400, "consent_required", 65001, "AADSTS65001: The user has not consented.")
    )
    with pytest.raises(InvalidCredentials, match="AADSTS65001"):
        connector.verify()


@pytest.mark.parametrize(
    ("code", "description"),
    [
        (90002, "AADSTS90002: Tenant 'contoso.example' not found."),
        (900023, "AADSTS900023: Specified tenant identifier 'x y' is neither a valid DNS name."),
        (9002313, "AADSTS9002313: Invalid request. Request is malformed or invalid."),
    ],
)
def test_an_invalid_request_the_settings_caused_is_invalid_credentials(
    graph: GraphEmulator, connector: MicrosoftConnector, code: int, description: str
) -> None:
    # invalid_request is "Protocol error, such as a missing required parameter" (identity
    # platform, "Error codes for token endpoint errors"), but with these AADSTS codes it is
    # the tenant or the refresh token the account was given: new settings are the way back.
    graph.token_faults.append((400, "invalid_request", code, description))
    with pytest.raises(InvalidCredentials, match=f"AADSTS{code}"):
        connector.verify()
    graph.token_faults.append((400, "invalid_request", 900144, "AADSTS900144: no 'scope'."))
    with pytest.raises(PermanentError, match="AADSTS900144"):
        connector.verify()


def test_a_busy_token_endpoint_at_sign_in_is_unreachable_not_refused(
    graph: GraphEmulator,
) -> None:
    from rolodex.connectors import oauth
    from rolodex.domain.errors import BadCredentials, ProviderUnreachable

    graph.token_faults.append(
        (400, "temporarily_unavailable", 50196, "AADSTS50196: The server is busy.")
    )
    args = {
        "title": "Microsoft",
        "client_id": graph.client_id,
        "client_secret": graph.client_secret,
        "code": "c",
        "redirect_uri": "http://localhost/cb",
        "code_verifier": "v" * 43,
    }
    token_url = f"{graph.login_url}/common/oauth2/v2.0/token"
    with pytest.raises(ProviderUnreachable, match="temporarily_unavailable"):
        oauth.exchange_code(token_url, **args)
    with pytest.raises(BadCredentials):  # an unknown code: refused
        oauth.exchange_code(token_url, **args)


def test_a_wrong_client_secret_is_invalid_credentials(
    graph: GraphEmulator, rotations: Rotations
) -> None:
    client = make_client(graph, rotations)
    client._oauth.client_secret = "wrong"
    with pytest.raises(InvalidCredentials, match="AADSTS7000215"):
        MicrosoftConnector(client).verify()
    client.close()


def test_a_large_snapshot_is_parsed_on_every_core_with_the_same_result(
    graph: GraphEmulator, rotations: Rotations
) -> None:
    from rolodex.connectors.microsoft import parsing
    from rolodex.domain.normalize import index_terms

    many = parsing.PARALLEL_PARSE + 300
    graph.add_contacts(
        [{"givenName": f"N{i}", "mobilePhone": f"+1 415 555 {i % 10000:04}"} for i in range(many)]
    )
    conn = MicrosoftConnector(make_client(graph, rotations), page_size=250)
    try:
        snap = conn.snapshot(DEFAULT)
        items = drain(snap)
    finally:
        conn.close()
    assert len({i.remote_id for i in items}) == many
    assert snap.cursor is not None
    assert all(i.index_terms() == frozenset(index_terms(i.fields)) for i in items)
    assert sum(i.terms is not None for i in items) > 0  # those came from the pool


# --- Folder writes --------------------------------------------------------------------------


def test_the_default_folder_is_refused_and_a_folder_holding_contacts_is_not_deleted(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    from rolodex.domain.remote import LocalGroup

    with pytest.raises(PermanentError):
        connector.rename_group(LocalGroup("People", "People", DEFAULT))
    with pytest.raises(PermanentError):
        connector.delete_group(LocalGroup("Contacts", "Contacts", DEFAULT))
    friends = graph.add_folder("Friends")
    graph.add_contact({"givenName": "Kept"}, folder=friends)
    with pytest.raises(PermanentError) as refused:
        connector.delete_group(LocalGroup("Friends", "Contacts/Friends", friends))
    assert "still holds contacts" in refused.value.message
    assert friends in graph.folders and len(graph.in_folder(friends)) == 1
    assert graph.graph_requests("DELETE") == []


def test_a_folder_is_made_inside_the_folder_its_path_names(
    graph: GraphEmulator, connector: MicrosoftConnector
) -> None:
    from rolodex.domain.remote import LocalGroup

    friends = graph.add_folder("Friends")
    made = connector.create_group(LocalGroup("Close", "Contacts/Friends/Close"))
    assert graph.folders[made.remote_id].parent == friends
    # A contact created in it right away finds it (no folder listing in between).
    home = connector.home(
        LocalContact(fields=ContactFields(), group_names=("Contacts/Friends/Close",))
    )
    assert home == made.remote_id


def test_a_token_answer_that_is_not_json_is_transient() -> None:
    # A proxy or captive portal may answer 200 with a page: a retry later may get the real
    # endpoint, and the grant itself was not refused.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Sign in to the network</html>")

    client = GraphClient(
        client_id="id",
        client_secret="secret",
        refresh_token="refresh",
        graph_url="http://graph.invalid/v1.0",
        login_url="http://login.invalid",
        transport=httpx.MockTransport(answer),
        attempts=1,
    )
    try:
        with pytest.raises(TransientError, match="garbage"):
            client.verify_grant()
    finally:
        client.close()
