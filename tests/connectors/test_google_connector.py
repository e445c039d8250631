"""The Google connector against the People API emulator, over real HTTP, with faults."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator

import orjson
import pytest

from rolodex.connectors.base import (
    CursorExpired,
    InvalidCredentials,
    LocalContact,
    LocalGroup,
    PermanentError,
    PreconditionFailed,
    RemoteContact,
    RemoteNotFound,
    TransientError,
)
from rolodex.connectors.google.client import PeopleClient
from rolodex.connectors.google.connector import OTHER, PEOPLE, GoogleConnector
from rolodex.domain.contact import (
    ContactFields,
    Email,
    IMAddress,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)
from tests.emulators.google import GoogleEmulator, GoogleServer, free_port

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(64)
ADA = LocalContact(
    fields=ContactFields(
        given_name="Ada",
        surname="Lovelace",
        job_title="Analyst",
        company_name="Engines Ltd",
        birthday=dt.date(1815, 12, 10),
        manager_name="Charles",
        notes="Poet of science",
        emails=(Email("work", "ada@example.org"), Email("personal", "ada@home.example")),
        phone_numbers=(PhoneNumber("business", "+44 20 7946 0000"), PhoneNumber("mobile", "1")),
        physical_addresses=(PhysicalAddress("home", street_address="1 St James", city="London"),),
        web_pages=(WebPage("homepage", "https://ada.example"),),
    ),
    group_names=("Friends",),
)
# Ada with a change to write (a field touched but reading as before is no change to send).
PROMOTED = dataclasses.replace(
    ADA, fields=dataclasses.replace(ADA.fields, job_title="Lead Analyst"), touched=("job_title",)
)


@pytest.fixture(scope="module")
def running() -> Iterator[GoogleServer]:
    with GoogleServer() as server:
        yield server


@pytest.fixture
def server(running: GoogleServer) -> GoogleServer:
    running.reset()
    return running


@dataclasses.dataclass
class Google:
    server: GoogleServer
    refresh_token: str
    saved: list[dict[str, str]]

    @property
    def emulator(self) -> GoogleEmulator:
        return self.server.emulator

    def connector(self, **kwargs: object) -> GoogleConnector:
        client = PeopleClient(
            "client-id",
            "client-secret",
            self.refresh_token,
            people_url=self.server.people_url,
            token_url=self.server.token_url,
            on_token=self.saved.append,
            read_retries=0,
            **kwargs,  # type: ignore[arg-type]
        )
        return GoogleConnector(client)


@pytest.fixture
def google(server: GoogleServer) -> Google:
    return Google(server, server.emulator.grant("client-id", "client-secret"), [])


@pytest.fixture
def connector(google: Google) -> Iterator[GoogleConnector]:
    conn = google.connector()
    yield conn
    conn.close()


def _drain(connector: GoogleConnector) -> tuple[list[RemoteContact], str]:
    snap = connector.snapshot(PEOPLE)
    assert snap.stream is not None and snap.complete
    items = [i for i in snap.stream if isinstance(i, RemoteContact)]
    assert snap.cursor is not None
    return items, snap.cursor


def _person(connector: GoogleConnector, resource_name: str) -> RemoteContact:
    """The person as the connector reads it now."""
    [item] = connector.fetch(PEOPLE, [resource_name])
    assert isinstance(item, RemoteContact)
    return item


class TestReading:
    def test_google_refuses_a_parameter_or_field_its_method_does_not_take(
        self, connector: GoogleConnector
    ) -> None:
        # Every call the connector makes passes here (the emulator refuses the rest, as
        # Google does: "Unknown name ...: Cannot bind query parameter.").
        with pytest.raises(PermanentError):
            connector._client.get(
                "people/me/connections", {"personFields": "names", "readMask": "names"}
            )
        # otherContacts.list: the profile source without the contact's is not permitted;
        # with the contact's alone, readMask takes five paths. pageSize 0 is the default.
        for params in (
            {"readMask": "names", "sources": "READ_SOURCE_TYPE_PROFILE"},
            {"readMask": "names,birthdays"},
        ):
            with pytest.raises(PermanentError):
                connector._client.get("otherContacts", params)
        connector._client.get(
            "otherContacts",
            [
                ("readMask", "names,birthdays"),
                ("sources", "READ_SOURCE_TYPE_CONTACT"),
                ("sources", "READ_SOURCE_TYPE_PROFILE"),
                ("pageSize", "0"),
            ],
        )
        with pytest.raises(PermanentError):  # nor a body field ("Cannot find field.")
            connector._client.call(
                "POST",
                "people:createContact",
                params={"personFields": "names"},
                body={"names": [{"givenName": "X"}], "emails": [{"value": "x@example.org"}]},
            )

    def test_first_sync_pages_with_the_same_parameters_and_maps_fields(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        emulator = google.emulator
        friends = emulator.add_group("Friends")
        rn = emulator.add_person(
            names=[{"givenName": "Grace", "familyName": "Hopper", "honorificPrefix": "Adm."}],
            emailAddresses=[{"value": "grace@navy.example", "type": "home"}],
            phoneNumbers=[{"value": "+1 202 555 0100", "type": "workFax"}],
            birthdays=[{"date": {"year": 1906, "month": 12, "day": 9}}],
            organizations=[{"name": "Navy", "title": "Rear Admiral", "location": "DC"}],
            relations=[{"person": "Boss", "type": "manager"}, {"person": "Kim", "type": "spouse"}],
            urls=[{"value": "https://grace.example", "type": "homePage"}],
            imClients=[{"username": "grace", "protocol": "googleTalk"}],
            memberships=[
                {"contactGroupMembership": {"contactGroupResourceName": friends}},
                {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/starred"}},
                {
                    "contactGroupMembership": {
                        "contactGroupResourceName": "contactGroups/myContacts"
                    }
                },
            ],
        )
        for i in range(2100):
            emulator.add_person(names=[{"givenName": f"P{i}"}])
        items, cursor = _drain(connector)
        assert len(items) == 2101
        pages = emulator.calls("/v1/people/me/connections")
        assert len(pages) == 3
        assert all(p.param("pageSize") == "1000" for p in pages)
        assert all(p.param("requestSyncToken") == "true" for p in pages)
        assert len({p.param("personFields") for p in pages}) == 1
        grace = next(i for i in items if i.remote_id == rn)
        f = grace.fields
        assert (f.given_name, f.surname, f.birthday) == ("Grace", "Hopper", dt.date(1906, 12, 9))
        assert (f.company_name, f.job_title, f.office_location) == ("Navy", "Rear Admiral", "DC")
        assert f.manager_name == "Boss"
        assert f.emails == (Email("personal", "grace@navy.example"),)
        assert f.phone_numbers == (PhoneNumber("business_fax", "+1 202 555 0100"),)
        assert f.web_pages == (WebPage("homepage", "https://grace.example"),)
        assert f.im_addresses[0].type == "gtalk"
        # myContacts is the address book itself, not a label; starred is shown as Google does.
        assert set(grace.group_names) == {"Friends", "Starred"}
        assert grace.picture is None  # the default monogram is not a picture
        assert cursor.startswith("g1:")

    def test_an_address_google_holds_only_as_free_text_is_shown_and_kept(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Address.formattedValue: "The unstructured value of the address. If this is not
        # set by the user it will be automatically constructed from structured values." An
        # address typed or imported as one text has no structured part to show it by.
        emulator = google.emulator
        text = "221B Baker Street\nLondon NW1 6XE"
        rn = emulator.add_person(
            names=[{"givenName": "S"}], addresses=[{"formattedValue": text, "type": "home"}]
        )
        item = _person(connector, rn)
        [address] = item.fields.physical_addresses
        assert (address.type, address.street_address) == ("home", text)
        added = PhysicalAddress("work", street_address="1 Work Way", city="Leeds")
        fields = dataclasses.replace(
            item.fields, physical_addresses=(*item.fields.physical_addresses, added)
        )
        touched = ("physical_addresses",)
        connector.update(rn, item.etag, LocalContact(fields=fields, touched=touched), item.raw)
        kept = emulator.person(rn)["addresses"]
        assert kept[0] == {"formattedValue": text, "type": "home", "formattedType": "Home"}
        assert kept[1]["streetAddress"] == "1 Work Way"

    def test_a_name_held_only_as_free_text_is_shown_and_kept(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Name.unstructuredName: "The free form name value", writable beside the parts; a
        # name given so alone has no part to show it by.
        emulator = google.emulator
        rn = emulator.add_person(names=[{"unstructuredName": "Ada King"}])
        item = _person(connector, rn)
        assert (item.fields.given_name, item.fields.surname) == ("Ada King", None)
        fields = dataclasses.replace(item.fields, suffix="PhD")
        connector.update(rn, item.etag, LocalContact(fields=fields, touched=("suffix",)), item.raw)
        [name] = emulator.person(rn)["names"]
        assert (name["givenName"], name["honorificSuffix"]) == ("Ada King", "PhD")

    def test_yearless_birthday_reads_as_null(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        google.emulator.add_person(
            names=[{"givenName": "Y"}], birthdays=[{"date": {"month": 3, "day": 4}}]
        )
        [item], _ = _drain(connector)
        assert item.fields.birthday is None

    def test_incremental_reports_changes_deletions_and_rekeys(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        emulator = google.emulator
        a = emulator.add_person(names=[{"givenName": "A"}])
        b = emulator.add_person(names=[{"givenName": "B"}])
        c = emulator.add_person(names=[{"givenName": "C"}])
        _, cursor = _drain(connector)
        emulator.edit_person(a, names=[{"givenName": "A2"}])
        emulator.remove_person(b)
        new_c = emulator.rekey(c)
        changes = connector.changes(PEOPLE, cursor, with_data=True)
        assert set(changes.changed) == {a, new_c}
        assert set(changes.removed) == {b, c}
        assert {i.remote_id: i.fields.given_name for i in changes.fetched} == {  # type: ignore[union-attr]
            a: "A2",
            new_c: "C",
        }
        again = connector.changes(PEOPLE, changes.cursor, with_data=True)
        assert not again.changed and not again.removed

    def test_a_rekeyed_person_read_by_its_old_name_names_it_as_previous(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # people:batchGet may answer an old resource name with the person under its new one
        # (PersonResponse.requestedResourceName), and only sync-token listings fill
        # previousResourceNames: the item must still say which name it was asked by, or a
        # direct read after a full listing takes it for a new contact and the old for gone.
        emulator = google.emulator
        old = emulator.add_person(names=[{"givenName": "Linked"}])
        new = emulator.rekey(old)
        [item] = connector.fetch(PEOPLE, [old])
        assert isinstance(item, RemoteContact)
        assert item.remote_id == new and item.previous_ids == (old,)

    def test_a_batch_read_refused_whole_for_a_person_gone_still_reads_the_rest(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # people:batchGet answers each name apart (PersonResponse.status); a server that
        # answers the whole request 404 for one gone must not hide the others, which a
        # resync reads before it counts them as deleted.
        emulator = google.emulator
        kept = [emulator.add_person(names=[{"givenName": f"K{i}"}]) for i in range(3)]
        gone = emulator.add_person(names=[{"givenName": "Gone"}])
        emulator.remove_person(gone)
        emulator.fail(404, path="people:batchGet")
        found = list(connector.fetch(PEOPLE, [kept[0], gone, *kept[1:]]))
        assert sorted(i.remote_id for i in found) == sorted(kept)
        emulator.fail(404, path="people:batchGet", times=5)
        assert list(connector.fetch(PEOPLE, [gone])) == []

    def test_deleting_a_rekeyed_person_by_its_old_name_deletes_it(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        emulator = google.emulator
        old = emulator.add_person(names=[{"givenName": "Linked"}])
        etag = emulator.person(old)["etag"]
        emulator.rekey(old)
        connector.delete(old, etag)
        assert emulator.find_people() == []

    def test_a_sync_token_google_no_longer_knows_is_cursor_expired(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # 400 INVALID_ARGUMENT "Request contains an invalid argument.", no EXPIRED_SYNC_TOKEN
        # reason: without a full sync the account would fail for good.
        google.emulator.add_person(names=[{"givenName": "A"}])
        _, cursor = _drain(connector)
        google.emulator.forget_sync_tokens()
        with pytest.raises(CursorExpired):
            connector.changes(PEOPLE, cursor)
        # A 410 GONE with no reason: the expiry as it is "often described" (P §2a).
        cursor = _drain(connector)[1]
        google.emulator.fail(410, path="/v1/people/me/connections", grpc_status="GONE")
        with pytest.raises(CursorExpired):
            connector.changes(PEOPLE, cursor)
        assert [i.fields.given_name for i in _drain(connector)[0]] == ["A"]  # type: ignore[union-attr]

    def test_a_person_with_more_emails_than_a_listing_sends_is_read_whole(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Listings cut emailAddresses and phoneNumbers at 100 (Person); an update of what
        # was listed would drop the rest.
        emails = [{"value": f"a{i}@example.org"} for i in range(120)]
        rn = google.emulator.add_person(names=[{"givenName": "Many"}], emailAddresses=emails)
        [item], cursor = _drain(connector)
        assert len(item.fields.emails) == 120
        google.emulator.edit_person(rn, phoneNumbers=[{"value": str(i)} for i in range(101)])
        [changed] = connector.changes(PEOPLE, cursor).fetched
        assert isinstance(changed, RemoteContact)
        assert (len(changed.fields.emails), len(changed.fields.phone_numbers)) == (120, 101)

    def test_a_photo_the_api_host_serves_goes_with_the_access_token(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Google's photo URLs are on another host and need no token; one on the API's own
        # host may sit behind its sign-in (the 401 here): read with the token, refreshed.
        written = connector.create(PEOPLE, dataclasses.replace(ADA, picture=JPEG), "p1")
        google.emulator.fail(401, path="/photos/")
        [item] = connector.fetch(PEOPLE, [written.remote_id])
        assert isinstance(item, RemoteContact) and item.picture == JPEG

    def test_other_contacts_refused_for_scope_without_a_reason_are_left_out(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Google's 403 names ACCESS_TOKEN_SCOPE_INSUFFICIENT; its message says as much.
        google.emulator.add_other_contact(names=[{"givenName": "Mailer"}])
        google.emulator.fail(
            403,
            path="/v1/otherContacts",
            grpc_status="PERMISSION_DENIED",
            message="Request had insufficient authentication scopes.",
        )
        changes = connector.snapshot(OTHER)
        assert changes.fetched == () and changes.cursor is None

    @pytest.mark.parametrize(
        ("status", "grpc_status", "message"),
        [
            (403, "PERMISSION_DENIED", "The caller does not have permission"),
            (404, "NOT_FOUND", "Method not found."),
        ],
    )
    def test_other_contacts_refused_alone_leave_the_contacts_syncing(
        self,
        google: Google,
        connector: GoogleConnector,
        status: int,
        grpc_status: str,
        message: str,
    ) -> None:
        # Other contacts are a read-only extra behind a scope of their own
        # (contacts.other.readonly, GM §3.1): refused however Google words it, or not
        # served at all, they are not synced; the account's own contacts still are (a
        # RemoteNotFound here failed every sync of the account "unexpectedly").
        google.emulator.add_other_contact(names=[{"givenName": "Mailer"}])
        google.emulator.fail(
            status, path="/v1/otherContacts", grpc_status=grpc_status, message=message
        )
        changes = connector.changes(OTHER, None)
        assert changes.fetched == () and changes.cursor is None and not changes.complete

    def test_an_other_contacts_own_photo_is_read(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Its photo's metadata.source is of type OTHER_CONTACT, not CONTACT.
        google.emulator.add_other_contact(names=[{"givenName": "Mailer"}], photo=JPEG)
        [item] = connector.snapshot(OTHER).fetched
        assert isinstance(item, RemoteContact) and item.picture == JPEG

    @pytest.mark.parametrize("status", [400, 410])
    def test_expired_sync_token_is_cursor_expired(
        self, google: Google, connector: GoogleConnector, status: int
    ) -> None:
        google.emulator.expired_status = status
        google.emulator.add_person(names=[{"givenName": "A"}])
        _, cursor = _drain(connector)
        google.emulator.expire_sync_tokens()
        with pytest.raises(CursorExpired):
            connector.changes(PEOPLE, cursor)

    def test_an_expired_groups_token_lists_the_groups_not_every_person(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # The groups have a sync token of their own: when it alone is refused, a listing of
        # the groups (a few) stands in for it, and the people's changes are still read
        # with theirs, not by reading every person again.
        emulator = google.emulator
        old = emulator.add_group("Old")
        emulator.add_person(names=[{"givenName": "A"}])
        _, cursor = _drain(connector)
        connector._client.call("DELETE", old)  # as another client: contactGroups.delete
        new = emulator.add_group("New")
        emulator.expire_sync_tokens("groups")
        emulator.clear_log()
        changes = connector.changes(PEOPLE, cursor)
        assert dict(changes.groups) == {new: "New"}
        assert all(c.param("syncToken") for c in emulator.calls("connections"))
        again = connector.changes(PEOPLE, changes.cursor or "")
        assert dict(again.groups) == {new: "New"}

    def test_picture_is_read_from_the_photo_url(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        written = connector.create(PEOPLE, dataclasses.replace(ADA, picture=JPEG), "x1")
        assert google.emulator.photo_of(written.remote_id) == JPEG
        [item] = connector.fetch(PEOPLE, [written.remote_id])
        assert isinstance(item, RemoteContact)
        assert item.picture == JPEG and item.picture_type == "image/jpeg"

    def test_a_group_renamed_keeps_its_resource_name_and_its_members_are_not_read_again(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        emulator = google.emulator
        group = emulator.add_group("Team")
        member = emulator.add_person(
            names=[{"givenName": "M"}],
            memberships=[{"contactGroupMembership": {"contactGroupResourceName": group}}],
        )
        [item], cursor = _drain(connector)
        assert isinstance(item, RemoteContact)
        assert (item.group_names, item.group_ids) == (("Team",), (group,))
        emulator.edit_group(group, name="Crew")
        emulator.clear_log()
        changes = connector.changes(PEOPLE, cursor, with_data=True)
        # The group is known by its resource name: renamed, it is the same group, and its
        # members (whose etags a rename leaves alone) are not read again for it.
        assert changes.groups == ((group, "Crew"),)
        assert changes.changed == {}
        assert emulator.calls(group) == []
        [fresh] = connector.fetch(PEOPLE, [member])
        assert isinstance(fresh, RemoteContact)
        assert (fresh.group_names, fresh.group_ids) == (("Crew",), (group,))

    def test_system_groups_are_named_on_contacts_but_not_listed(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        starred = "contactGroups/starred"
        google.emulator.add_person(
            names=[{"givenName": "S"}],
            memberships=[{"contactGroupMembership": {"contactGroupResourceName": starred}}],
        )
        changes = connector.snapshot(PEOPLE)
        assert changes.stream is not None
        [item] = list(changes.stream)
        assert isinstance(item, RemoteContact)
        assert (item.group_names, item.group_ids) == (("Starred",), (None,))
        assert changes.groups == ()


class TestWriting:
    def test_create_maps_every_field_and_carries_the_rolodex_id(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        written = connector.create(PEOPLE, ADA, "rolodex-1")
        person = google.emulator.person(written.remote_id)
        assert person["clientData"] == [{"key": "rolodex.id", "value": "rolodex-1"}]
        assert person["names"][0]["givenName"] == "Ada"
        assert person["birthdays"] == [{"date": {"year": 1815, "month": 12, "day": 10}}]
        assert {e["type"] for e in person["emailAddresses"]} == {"work", "home"}
        assert person["phoneNumbers"][0]["type"] == "work"
        assert person["relations"] == [{"person": "Charles", "type": "manager"}]
        groups = {
            m["contactGroupMembership"]["contactGroupResourceName"] for m in person["memberships"]
        }
        assert "contactGroups/myContacts" in groups and len(groups) == 2  # Friends was created
        [item] = connector.fetch(PEOPLE, [written.remote_id])
        assert isinstance(item, RemoteContact)
        assert item.rolodex_id == "rolodex-1" and item.etag == written.etag
        assert item.fields == ADA.fields and item.group_names == ("Friends",)

    def test_retried_create_finds_the_first(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        for i in range(5):
            google.emulator.add_person(names=[{"givenName": f"Other{i}"}])
        first = connector.create(PEOPLE, ADA, "rolodex-2")
        again = connector.create(PEOPLE, ADA, "rolodex-2", maybe_exists=True)
        assert again.existed and again.remote_id == first.remote_id
        assert len(google.emulator.find_people()) == 6
        fresh = connector.create(PEOPLE, ADA, "rolodex-3", maybe_exists=True)
        assert not fresh.existed and len(google.emulator.find_people()) == 7

    def test_update_names_only_touched_fields_and_keeps_the_rest(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        emulator = google.emulator
        rn = emulator.add_person(
            names=[{"givenName": "Old", "familyName": "Name", "phoneticGivenName": "Oold"}],
            birthdays=[{"date": {"month": 7, "day": 1}}],  # no year
            events=[{"date": {"year": 2000, "month": 1, "day": 1}, "type": "anniversary"}],
            userDefined=[{"key": "k", "value": "v"}],
            externalIds=[{"value": "E-1", "type": "account"}],
            relations=[{"person": "Kim", "type": "spouse"}],
            emailAddresses=[{"value": "x@example.com", "type": "work"}],
        )
        item = _person(connector, rn)
        local = LocalContact(
            fields=dataclasses.replace(item.fields, given_name="New", manager_name="Boss"),
            group_names=item.group_names,
            touched=("given_name", "manager_name"),
        )
        result = connector.update(rn, item.etag, local, item.raw)
        [call] = emulator.calls(":updateContact")
        assert call.param("updatePersonFields") == "names,relations"
        person = emulator.person(rn)
        assert person["names"][0]["givenName"] == "New"
        assert person["names"][0]["phoneticGivenName"] == "Oold"
        assert person["birthdays"] == [{"date": {"month": 7, "day": 1}}]  # yearless survives
        assert person["events"] and person["userDefined"] and person["externalIds"]
        assert {r["type"] for r in person["relations"]} == {"manager", "spouse"}
        assert result.etag == person["etag"]
        assert orjson.loads(result.raw or b"{}")["etag"] == person["etag"]

    def test_items_written_back_keep_which_is_primary_and_leave_out_what_google_computes(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # FieldMetadata.sourcePrimary: "True if the field is the primary field for the
        # source" (writable); formattedType, canonicalForm and formattedProtocol are "Output
        # only" (developers.google.com/people/api/rest/v1/people).
        emulator = google.emulator
        rn = emulator.add_person(
            emailAddresses=[
                {"value": "a@example.org", "type": "home"},
                {"value": "b@example.org", "type": "work", "metadata": {"sourcePrimary": True}},
            ],
            phoneNumbers=[{"value": "+1 202 555 0100", "type": "work"}],
            imClients=[{"username": "bee", "protocol": "skype", "formattedProtocol": "Skype"}],
        )
        item = _person(connector, rn)
        fields = dataclasses.replace(
            item.fields,
            emails=(*item.fields.emails, Email("other", "c@example.org")),
            phone_numbers=(*item.fields.phone_numbers, PhoneNumber("mobile", "+1 202 555 0199")),
            im_addresses=(*item.fields.im_addresses, IMAddress("aim", "bee2")),
        )
        touched = ("emails", "phone_numbers", "im_addresses")
        connector.update(rn, item.etag, LocalContact(fields=fields, touched=touched), item.raw)
        [call] = emulator.calls(":updateContact")
        sent = orjson.loads(call.body)
        items = [*sent["emailAddresses"], *sent["phoneNumbers"], *sent["imClients"]]
        computed = {"formattedType", "canonicalForm", "formattedProtocol"}
        assert not [i for i in items if computed & set(i)]
        assert [e.get("metadata") for e in sent["emailAddresses"]] == [
            None,
            {"sourcePrimary": True},
            None,
        ]
        person = emulator.person(rn)
        assert person["emailAddresses"][1]["metadata"] == {"sourcePrimary": True}
        assert person["phoneNumbers"][0]["canonicalForm"] == "+12025550100"  # Google's again

    def test_an_edited_item_keeps_what_rolodex_does_not_map_of_the_one_it_replaces(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Issue 10. Pairing: same-reading items first, then the one original of a type
        # left once on each side, then in order when as many are left on each side; an
        # edit never sends what Google computes or an address's old formattedValue, and
        # keeps FieldMetadata.sourcePrimary, the one metadata key a client writes (Person
        # schema, developers.google.com/people/api/rest/v1/people).
        emulator = google.emulator
        rn = emulator.add_person(
            emailAddresses=[
                {"value": "a@example.org", "type": "home", "displayName": "A"},
                {"value": "b@example.org", "type": "work", "displayName": "B"},
                {"value": "c@example.org", "type": "other", "displayName": "C"},
            ],
            phoneNumbers=[
                {"value": "+1 202 555 0100", "type": "work", "canonicalForm": "+12025550100"}
            ],
            addresses=[
                {
                    "type": "home",
                    "streetAddress": "1 Rue",
                    "extendedAddress": "Apt 3",
                    "country": "United Kingdom",
                    "countryCode": "GB",
                    "formattedValue": "1 Rue, Apt 3, United Kingdom",
                    "formattedType": "Home",
                    "metadata": {"primary": True, "sourcePrimary": True},
                },
                {"type": "work", "city": "Oslo", "countryCode": "NO", "poBox": "PB 7"},
            ],
        )
        item = _person(connector, rn)
        home, work = item.fields.physical_addresses
        assert work.country == "NO"  # read from the code alone
        fields = dataclasses.replace(
            item.fields,
            # b and a swapped and edited (paired by type), c kept, d added.
            emails=(
                Email("work", "b2@example.org"),
                Email("personal", "a2@example.org"),
                Email("other", "c@example.org"),
                Email("work", "d@example.org"),
            ),
            phone_numbers=(PhoneNumber("business", "+1 202 555 0111"),),
            physical_addresses=(
                dataclasses.replace(home, country="France"),
                dataclasses.replace(work, city="Bergen"),
            ),
        )
        touched = ("emails", "phone_numbers", "physical_addresses")
        connector.update(rn, item.etag, LocalContact(fields=fields, touched=touched), item.raw)
        [call] = emulator.calls(":updateContact")
        sent = orjson.loads(call.body)
        # "work" is left twice among the new items: b2 and d pair by neither type nor order.
        assert [(e["value"], e.get("displayName")) for e in sent["emailAddresses"]] == [
            ("b2@example.org", None),
            ("a2@example.org", "A"),
            ("c@example.org", "C"),
            ("d@example.org", None),
        ]
        assert sent["phoneNumbers"] == [{"value": "+1 202 555 0111", "type": "work"}]
        assert sent["addresses"] == [
            # The country edited: the old code is stale, the old text too; of the metadata
            # only what a client writes: still the source's primary address.
            {
                "type": "home",
                "streetAddress": "1 Rue",
                "extendedAddress": "Apt 3",
                "country": "France",
                "metadata": {"sourcePrimary": True},
            },
            # The country unchanged stays as Google held it: the code alone.
            {"type": "work", "city": "Bergen", "countryCode": "NO", "poBox": "PB 7"},
        ]
        person = emulator.person(rn)
        assert person["addresses"][1]["poBox"] == "PB 7"
        again = _person(connector, rn)
        assert again.fields == fields

    def test_an_edited_item_takes_nothing_from_an_original_it_may_not_replace(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Two home emails become one other: which one it replaces (if either) is a guess.
        emulator = google.emulator
        rn = emulator.add_person(
            emailAddresses=[
                {"value": "a@example.org", "type": "home", "displayName": "A"},
                {"value": "b@example.org", "type": "home", "displayName": "B"},
            ],
            imClients=[{"username": "old", "protocol": "skype", "type": "work"}],
        )
        item = _person(connector, rn)
        fields = dataclasses.replace(
            item.fields,
            emails=(Email("personal", "c@example.org"),),
            im_addresses=(IMAddress("skype", "new"),),  # one for one: edited in place
        )
        touched = ("emails", "im_addresses")
        connector.update(rn, item.etag, LocalContact(fields=fields, touched=touched), item.raw)
        person = emulator.person(rn)
        assert [e.get("displayName") for e in person["emailAddresses"]] == [None]
        assert person["imClients"] == [{"username": "new", "protocol": "skype", "type": "work"}]

    def test_list_items_v2_does_not_show_survive_a_write_of_their_field(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Issue 10: what Rolodex does not map survives an update. An address of a PO box
        # alone has nothing v2's physical address shows: the client never saw it.
        emulator = google.emulator
        rn = emulator.add_person(
            addresses=[{"type": "home", "city": "Oslo"}, {"type": "work", "poBox": "PB 9"}],
        )
        item = _person(connector, rn)
        [home] = item.fields.physical_addresses
        fields = dataclasses.replace(
            item.fields, physical_addresses=(dataclasses.replace(home, city="Bergen"),)
        )
        local = LocalContact(fields=fields, touched=("physical_addresses",))
        connector.update(rn, item.etag, local, item.raw)
        kept = [{"type": "work", "poBox": "PB 9", "formattedType": "Work"}]
        assert emulator.person(rn)["addresses"] == [
            {"type": "home", "city": "Bergen", "formattedType": "Home"},
            *kept,
        ]
        # Cleared as v2 sees it: what it never showed is still there.
        item = _person(connector, rn)
        local = LocalContact(
            fields=dataclasses.replace(item.fields, physical_addresses=()),
            touched=("physical_addresses",),
        )
        connector.update(rn, item.etag, local, item.raw)
        assert emulator.person(rn)["addresses"] == kept

    def test_a_birthday_with_a_year_is_cleared_one_without_is_kept(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        emulator = google.emulator
        dated = emulator.add_person(birthdays=[{"date": {"year": 1990, "month": 1, "day": 2}}])
        yearless = emulator.add_person(birthdays=[{"date": {"month": 1, "day": 2}}])
        for rn in (dated, yearless):
            item = _person(connector, rn)
            fields = dataclasses.replace(item.fields, birthday=None, nickname="N")
            local = LocalContact(fields=fields, touched=("birthday", "nickname"))
            connector.update(rn, item.etag, local, item.raw)
        assert "birthdays" not in emulator.person(dated)
        assert emulator.person(yearless)["birthdays"] == [{"date": {"month": 1, "day": 2}}]
        updates = emulator.calls(":updateContact")
        assert [c.param("updatePersonFields") for c in updates] == [
            "birthdays,nicknames",
            "nicknames",
        ]

    def test_a_field_only_its_linked_profile_holds_is_shown_and_not_written_back(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # A contact added by its address alone: Google Contacts names it by its profile.
        emulator = google.emulator
        rn = emulator.add_person(emailAddresses=[{"value": "lee@contact.example"}])
        emulator.link_profile(rn, names=[{"givenName": "Lee", "familyName": "Profile"}])
        item = _person(connector, rn)
        assert (item.fields.given_name, item.fields.surname) == ("Lee", "Profile")
        fields = dataclasses.replace(item.fields, nickname="L")
        connector.update(
            rn, item.etag, LocalContact(fields=fields, touched=("nickname",)), item.raw
        )
        assert "names" not in emulator.person(rn)  # the contact's own: still none
        again = _person(connector, rn)
        assert (again.fields.given_name, again.fields.nickname) == ("Lee", "L")

    def test_a_profile_linked_to_the_contact_is_neither_read_nor_written_as_its_data(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # People merges a linked profile's fields into the person (sources defaults to
        # CONTACT and PROFILE), each item's metadata.source saying so, in no guaranteed
        # order; updateContact writes the contact source only. The contact's data is its own.
        emulator = google.emulator
        rn = emulator.add_person(
            names=[{"givenName": "Kim", "familyName": "Contact"}],
            emailAddresses=[{"value": "kim@contact.example", "type": "work"}],
        )
        emulator.link_profile(
            rn,
            names=[{"givenName": "Kimberly", "familyName": "Profile"}],
            emailAddresses=[{"value": "kim@profile.example"}],
        )
        item = _person(connector, rn)
        assert (item.fields.given_name, item.fields.surname) == ("Kim", "Contact")
        assert [e.email for e in item.fields.emails] == ["kim@contact.example"]
        fields = dataclasses.replace(
            item.fields, suffix="Jr", emails=(*item.fields.emails, Email("home", "k@h.example"))
        )
        local = LocalContact(fields=fields, touched=("suffix", "emails"))
        connector.update(rn, item.etag, local, item.raw)
        person = emulator.person(rn)
        assert person["names"] == [
            {
                "givenName": "Kim",
                "familyName": "Contact",
                "honorificSuffix": "Jr",
                "displayName": "Kim Contact Jr",
            }
        ]
        assert [e["value"] for e in person["emailAddresses"]] == [
            "kim@contact.example",
            "k@h.example",
        ]

    def test_stale_etag_is_precondition_failed(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        written = connector.create(PEOPLE, ADA, "r4")
        google.emulator.edit_person(written.remote_id, nicknames=[{"value": "Countess"}])
        local = PROMOTED
        with pytest.raises(PreconditionFailed):
            connector.update(written.remote_id, written.etag, local, written.raw)

    def test_update_names_the_contact_source_and_its_etag(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # updateContact: "The server returns a 400 error if person.metadata.sources is not
        # specified for the contact to be updated", and compares person.metadata.sources.etag
        # with the contact's (developers.google.com/people/api/rest/v1/people/updateContact).
        google.emulator.log_bodies = True
        written = connector.create(PEOPLE, ADA, "r4s")
        source = google.emulator.person(written.remote_id)["metadata"]["sources"][0]
        local = PROMOTED
        connector.update(written.remote_id, written.etag, local, written.raw)
        [call] = google.emulator.calls(":updateContact")
        sent = orjson.loads(call.body)["metadata"]["sources"]
        assert sent == [{"type": "CONTACT", "id": source["id"], "etag": source["etag"]}]

    def test_update_without_the_person_as_read_checks_the_etag_it_was_given(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Without the person as last read, the source etag sent is the one read now: a
        # change made there since the given etag must still be a precondition failure.
        written = connector.create(PEOPLE, ADA, "r4n")
        google.emulator.edit_person(written.remote_id, nicknames=[{"value": "Countess"}])
        local = PROMOTED
        with pytest.raises(PreconditionFailed):
            connector.update(written.remote_id, written.etag, local, None)
        assert not google.emulator.calls(":updateContact")
        person = google.emulator.person(written.remote_id)
        connector.update(written.remote_id, person["etag"], local, None)
        assert (
            google.emulator.person(written.remote_id)["organizations"][0]["title"] == "Lead Analyst"
        )

    @pytest.mark.parametrize(
        "fault",
        [
            # updateContact's reference: "a 400 error with reason "failedPrecondition"";
            # its older text: "The request throws a 412 error if person.metadata.sources.etag
            # is different than the contact's etag".
            {
                "status": 400,
                "grpc_status": "INVALID_ARGUMENT",
                "errors_reason": "failedPrecondition",
            },
            {"status": 412, "grpc_status": "FAILED_PRECONDITION"},
        ],
    )
    def test_every_documented_stale_etag_answer_is_precondition_failed(
        self, google: Google, connector: GoogleConnector, fault: dict[str, object]
    ) -> None:
        written = connector.create(PEOPLE, ADA, "r4f")
        google.emulator.fail(path=":updateContact", **fault)  # type: ignore[arg-type]
        local = PROMOTED
        with pytest.raises(PreconditionFailed):
            connector.update(written.remote_id, written.etag, local, written.raw)

    def test_a_failed_precondition_to_a_create_is_a_refusal_not_a_stale_etag(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # FAILED_PRECONDITION is a stale etag only for a write made over one; a create has
        # none to re-read, and "the system is not in a state required for the operation"
        # (google.rpc.Code) is then the account's refusal, shown as such.
        google.emulator.fail(
            400, path=":createContact", grpc_status="FAILED_PRECONDITION", message="Full."
        )
        with pytest.raises(PermanentError) as refused:
            connector.create(PEOPLE, ADA, "r4p")
        assert refused.value.status == 400

    def test_groups_write_memberships_and_keep_my_contacts(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        written = connector.create(PEOPLE, ADA, "r5")
        local = dataclasses.replace(ADA, group_names=("Starred", "Work"), touched=("groups",))
        connector.update(written.remote_id, written.etag, local, written.raw)
        person = google.emulator.person(written.remote_id)
        groups = [
            m["contactGroupMembership"]["contactGroupResourceName"] for m in person["memberships"]
        ]
        assert groups[:2] == ["contactGroups/myContacts", "contactGroups/starred"]
        assert len(groups) == 3

    def test_groups_saved_back_as_they_were_read_are_no_change(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # A client saving back the whole contact sends its groups too: as read, they are
        # not written, so a membership Google takes no additions to (a deprecated system
        # group, P §3) stays, and no label of its name is made.
        emulator = google.emulator
        team = emulator.add_group("Team")
        rn = emulator.add_person(names=[{"givenName": "Fay"}])
        memberships = emulator.person(rn)["memberships"]
        for group in (team, "contactGroups/friends"):
            memberships.append({"contactGroupMembership": {"contactGroupResourceName": group}})
        emulator.edit_person(rn, memberships=memberships)
        item = _person(connector, rn)
        assert sorted(item.group_names) == ["Friends", "Team"]
        fields = dataclasses.replace(item.fields, job_title="Florist")
        local = LocalContact(
            fields=fields,
            group_names=item.group_names,
            group_ids=item.group_ids,
            touched=("job_title", "groups"),
        )
        connector.update(rn, item.etag, local, item.raw)
        [call] = emulator.calls(":updateContact")
        assert call.param("updatePersonFields") == "organizations"
        assert set(emulator.user_groups()) == {"Team"}
        kept = {
            m["contactGroupMembership"]["contactGroupResourceName"]
            for m in emulator.person(rn)["memberships"]
        }
        assert kept == {"contactGroups/myContacts", team, "contactGroups/friends"}

    def test_a_label_added_beside_a_deprecated_system_group_makes_no_label_of_its_name(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Fay is in Friends, one of Google's deprecated system groups (P §3), and gets the
        # label Team. "Friends" is the system group she is in, not a label to make: one made
        # by that name was a second "Friends" (or a 409, where Google counts the system
        # group's name as taken) and took her out of the system group. Keeping a deprecated
        # membership may itself be refused as an addition (as this emulator does), and then
        # she is written without it: Google allows removals only.
        emulator = google.emulator
        team = emulator.add_group("Team")
        rn = emulator.add_person(names=[{"givenName": "Fay"}])
        memberships = emulator.person(rn)["memberships"]
        friends = "contactGroups/friends"
        memberships.append({"contactGroupMembership": {"contactGroupResourceName": friends}})
        emulator.edit_person(rn, memberships=memberships)
        item = _person(connector, rn)
        assert item.group_names == ("Friends",)
        local = LocalContact(
            fields=item.fields,
            group_names=(*item.group_names, "Team"),
            group_ids=(*item.group_ids, team),
            touched=("groups",),
        )
        written = connector.update(rn, item.etag, local, item.raw)
        assert set(emulator.user_groups()) == {"Team"}
        assert emulator.calls("/v1/contactGroups", method="POST") == []
        groups = {
            m["contactGroupMembership"]["contactGroupResourceName"]
            for m in emulator.person(rn)["memberships"]
        }
        assert groups == {"contactGroups/myContacts", team}
        assert written.partial  # not in Friends, as asked: the next pull says so here
        first = orjson.loads(emulator.calls(":updateContact")[0].body)["memberships"]
        assert friends in [m["contactGroupMembership"]["contactGroupResourceName"] for m in first]

    def test_a_group_name_google_holds_taken_by_no_label_leaves_the_contact_out_of_it(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # A new contact in Friends (here a group of the name of Google's deprecated system
        # group, which takes no additions, P §3): the label made for it is refused with a
        # 409 where Google counts the system group's name as taken, and no label of that
        # name is listed. The contact is made without it (partial), not refused whole.
        google.emulator.fail(
            409,
            method="POST",
            path="/v1/contactGroups",
            grpc_status="ALREADY_EXISTS",
            message="Contact group name already exists.",
        )
        written = connector.create(PEOPLE, ADA, "r5f")  # ADA is in "Friends"
        assert written.partial
        groups = {
            m["contactGroupMembership"]["contactGroupResourceName"]
            for m in google.emulator.person(written.remote_id)["memberships"]
        }
        assert groups == {"contactGroups/myContacts"}
        assert google.emulator.user_groups() == {}

    def test_a_workspace_domain_membership_is_not_written_back(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Membership.domainMembership is "Output only", and "Only contact group memberships
        # can be modified" (developers.google.com/people/api/rest/v1/people#membership):
        # Google sets it on a Workspace colleague, and a write of memberships names groups.
        emulator = google.emulator
        rn = emulator.add_person(names=[{"givenName": "Col"}])
        memberships = emulator.person(rn)["memberships"]
        emulator.edit_person(
            rn, memberships=[*memberships, {"domainMembership": {"inViewerDomain": True}}]
        )
        item = _person(connector, rn)
        local = LocalContact(fields=item.fields, group_names=("Starred",), touched=("groups",))
        connector.update(rn, item.etag, local, item.raw)
        [call] = emulator.calls(":updateContact")
        sent = orjson.loads(call.body)["memberships"]
        assert all("contactGroupMembership" in m for m in sent)
        kept = emulator.person(rn)["memberships"]
        assert {"domainMembership": {"inViewerDomain": True}} in kept  # Google's own, kept
        assert len(kept) == 3

    @pytest.mark.parametrize("refusal", [400, 404])
    def test_a_create_in_a_group_deleted_at_google_meanwhile_is_made_without_it(
        self, google: Google, connector: GoogleConnector, refusal: int
    ) -> None:
        emulator = google.emulator
        emulator.unknown_group_status = refusal
        team = emulator.add_group("Team")
        _drain(connector)  # the groups as listed then
        connector._client.call("DELETE", team)  # by another client since
        local = dataclasses.replace(ADA, group_names=("Team",), group_ids=(team,))
        written = connector.create(PEOPLE, local, "r5g")
        assert written.partial
        groups = {
            m["contactGroupMembership"]["contactGroupResourceName"]
            for m in emulator.person(written.remote_id)["memberships"]
        }
        assert groups == {"contactGroups/myContacts"}

    def test_picture_written_and_removed(self, google: Google, connector: GoogleConnector) -> None:
        written = connector.create(PEOPLE, ADA, "r6")
        with_photo = dataclasses.replace(
            ADA, picture=JPEG, picture_type="image/jpeg", touched=("picture",)
        )
        result = connector.update(written.remote_id, written.etag, with_photo, written.raw)
        assert google.emulator.photo_of(written.remote_id) == JPEG
        updates = [c for c in google.emulator.calls() if c.path.endswith(":updateContact")]
        assert not updates  # a picture alone is no updateContact
        photo = google.emulator.calls(":updateContactPhoto")[0]
        assert base64.b64decode(orjson.loads(photo.body)["photoBytes"]) == JPEG
        without = dataclasses.replace(ADA, picture=None, touched=("picture",))
        connector.update(written.remote_id, result.etag, without, result.raw)
        assert google.emulator.photo_of(written.remote_id) is None

    def test_a_photo_whose_host_cannot_be_reached_leaves_the_picture_as_it_is(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Google serves photos from a host of their own (lh3.googleusercontent.com, P §4),
        # not the API's. One that cannot be reached failed every sync of the account, each
        # contact's change with it; the person now comes with its picture unknown, so the
        # one held here stays (RemoteContact.picture_checked), and a later change of the
        # person reads it again.
        with_photo = dataclasses.replace(ADA, picture=JPEG, picture_type="image/jpeg")
        written = connector.create(PEOPLE, with_photo, "r6u")
        other = connector.create(PEOPLE, ADA, "r6v")
        google.emulator.photo_base = f"http://127.0.0.1:{free_port()}"  # nothing listens
        items, cursor = _drain(connector)
        by_id = {i.remote_id: i for i in items}
        assert not by_id[written.remote_id].picture_checked
        assert by_id[other.remote_id].picture_checked  # a monogram is read as no photo
        google.emulator.edit_person(written.remote_id, nicknames=[{"value": "Countess"}])
        changes = connector.changes(PEOPLE, cursor)
        [item] = [i for i in changes.fetched if isinstance(i, RemoteContact)]
        assert item.fields.nickname == "Countess" and not item.picture_checked
        google.emulator.photo_base = None
        [read] = connector.fetch(PEOPLE, [written.remote_id])
        assert isinstance(read, RemoteContact) and read.picture == JPEG

    def test_a_photo_already_gone_is_no_contact_gone(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # deleteContactPhoto answering 404 for a photo removed there since it was read
        # must not pass for the contact being gone, which the engine would make again.
        with_photo = dataclasses.replace(ADA, picture=JPEG, picture_type="image/jpeg")
        written = connector.create(PEOPLE, with_photo, "r6g")
        google.emulator.fail(404, path=":deleteContactPhoto")
        without = dataclasses.replace(ADA, picture=None, touched=("picture",))
        result = connector.update(written.remote_id, written.etag, without, written.raw)
        assert result.remote_id == written.remote_id
        google.emulator.remove_person(written.remote_id)
        google.emulator.fail(404, path=":deleteContactPhoto")
        with pytest.raises(RemoteNotFound):  # and the contact itself gone is still that
            connector.update(written.remote_id, written.etag, without, written.raw)

    @pytest.mark.parametrize("kind", ["GIF", "WEBP"])
    def test_a_gif_or_webp_picture_is_written_as_png(
        self, google: Google, connector: GoogleConnector, kind: str
    ) -> None:
        # UpdateContactPhotoRequest: "All requests must have a valid photo format: JPEG or
        # PNG" (developers.google.com/people/api/rest/v1/people/updateContactPhoto).
        import io

        from PIL import Image

        out = io.BytesIO()
        Image.new("RGBA", (8, 8), (10, 200, 10, 255)).save(out, format=kind)
        picture = dataclasses.replace(ADA, picture=out.getvalue(), picture_type=f"image/{kind}")
        written = connector.create(PEOPLE, picture, f"r6{kind}")
        stored = google.emulator.photo_of(written.remote_id)
        assert stored is not None and stored.startswith(b"\x89PNG\r\n\x1a\n")

    def test_delete_and_delete_again(self, google: Google, connector: GoogleConnector) -> None:
        written = connector.create(PEOPLE, ADA, "r7")
        connector.delete(written.remote_id, written.etag)
        connector.delete(written.remote_id, written.etag)  # already gone: not an error
        assert not google.emulator.find_people()

    def test_singleton_violation_is_permanent(
        self, connector: GoogleConnector, google: Google
    ) -> None:
        google.emulator.fail(
            400, path=":createContact", message="Cannot have more than one person.names per source."
        )
        with pytest.raises(PermanentError) as caught:
            connector.create(PEOPLE, ADA, "r8")
        assert "more than one" in caught.value.message


class TestErrors:
    def test_429_with_and_without_retry_after(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        google.emulator.fail(429, path="connections", retry_after="7")
        with pytest.raises(TransientError) as caught:
            connector.verify()
        assert caught.value.retry_after == 7
        google.emulator.fail(429, path="connections")
        with pytest.raises(TransientError) as caught:
            connector.verify()
        assert caught.value.retry_after is None

    def test_a_retry_delay_in_the_error_body_is_honoured(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # google.rpc.RetryInfo "Describes when the clients can retry a failed request"
        # (cloud.google.com/apis/design/errors#error_details): Google's errors say so in the
        # body where no Retry-After header does.
        google.emulator.fail(
            429, path="connections", reason="RATE_LIMIT_EXCEEDED", retry_delay="12.5s"
        )
        with pytest.raises(TransientError) as caught:
            connector.verify()
        assert caught.value.retry_after == 12.5
        google.emulator.fail(429, path="connections", retry_after="3", retry_delay="12s")
        with pytest.raises(TransientError) as caught:
            connector.verify()
        assert caught.value.retry_after == 3  # the header, where there is one

    def test_rate_limit_403_is_transient_other_403_permanent(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        google.emulator.fail(403, path=":createContact", errors_reason="userRateLimitExceeded")
        with pytest.raises(TransientError):
            connector.create(PEOPLE, ADA, "r9")
        google.emulator.fail(403, path=":createContact", reason="RATE_LIMIT_EXCEEDED")
        with pytest.raises(TransientError):
            connector.create(PEOPLE, ADA, "r9")
        google.emulator.fail(403, path=":createContact", grpc_status="RESOURCE_EXHAUSTED")
        with pytest.raises(TransientError):
            connector.create(PEOPLE, ADA, "r9")
        google.emulator.fail(
            403,
            path=":createContact",
            message="Quota exceeded for quota metric 'Write requests' and limit 'Write requests "
            "per minute per user' of service 'people.googleapis.com'.",
        )
        with pytest.raises(TransientError):
            connector.create(PEOPLE, ADA, "r9")
        google.emulator.fail(403, path=":createContact")
        with pytest.raises(PermanentError):
            connector.create(PEOPLE, ADA, "r9")

    def test_an_aborted_mutation_is_transient_a_duplicate_name_permanent(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # google.rpc.Code ABORTED (HTTP 409): "typically due to a concurrency issue ...
        # retry at a higher level", what mutations sent side by side get (every People
        # mutation: "should be sent sequentially to avoid increased latency and failures").
        google.emulator.fail(409, path=":createContact", grpc_status="ABORTED")
        with pytest.raises(TransientError):
            connector.create(PEOPLE, ADA, "r10")
        google.emulator.fail(409, path=":createContact", grpc_status="ALREADY_EXISTS")
        with pytest.raises(PermanentError) as refused:
            connector.create(PEOPLE, ADA, "r10")
        assert not isinstance(refused.value, TransientError)

    def test_an_aborted_write_made_over_an_etag_is_read_again_not_resent(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # google.rpc.Code: "Use ABORTED if the client should retry at a higher level (e.g.,
        # when a client-specified test-and-set fails, indicating the client should restart a
        # read-modify-write sequence)": an update sent again unchanged, its etag stale, would
        # be aborted again; a precondition failure re-reads and re-applies.
        written = connector.create(PEOPLE, ADA, "r11")
        google.emulator.fail(409, path=":updateContact", grpc_status="ABORTED")
        local = PROMOTED
        with pytest.raises(PreconditionFailed):
            connector.update(written.remote_id, written.etag, local, written.raw)
        group = google.emulator.add_group("Team")
        google.emulator.fail(409, method="PUT", path=group, grpc_status="ABORTED")
        renamed = connector.rename_group(LocalGroup("Squad", "Squad", group))
        assert google.emulator.user_groups()["Squad"]["resourceName"] == renamed.remote_id

    def test_5xx_and_network_errors_are_transient(self) -> None:
        with GoogleServer() as own:
            google = Google(own, own.emulator.grant(), [])
            connector = google.connector()
            google.emulator.fail(503, path="connections")
            with pytest.raises(TransientError):
                connector.verify()
        with pytest.raises(TransientError):
            connector.verify()
        connector.close()

    def test_reads_retry_a_5xx(self, google: Google) -> None:
        client = PeopleClient(
            "client-id", "client-secret", google.refresh_token,
            people_url=google.server.people_url, token_url=google.server.token_url,
        )  # fmt: skip
        google.emulator.fail(500, path="connections", times=2)
        GoogleConnector(client).verify()
        client.close()

    def test_a_read_retried_waits_as_long_as_google_asks(self, google: Google) -> None:
        # A 503 with Retry-After says when to come back: soon, and the read waits that long
        # and is retried; later, and it is handed back with the delay, not asked again now.
        client = PeopleClient(
            "client-id", "client-secret", google.refresh_token,
            people_url=google.server.people_url, token_url=google.server.token_url,
        )  # fmt: skip
        connector = GoogleConnector(client)
        connector.verify()
        google.emulator.clear_log()
        google.emulator.fail(503, path="connections", retry_after="1")
        started = time.monotonic()
        connector.verify()
        assert time.monotonic() - started >= 1
        google.emulator.clear_log()
        google.emulator.fail(503, path="connections", retry_after="120")
        with pytest.raises(TransientError) as caught:
            connector.verify()
        assert caught.value.retry_after == 120
        assert len(google.emulator.calls("connections")) == 1
        client.close()

    def test_access_token_refreshed_before_expiry_and_on_401(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        connector.verify()
        assert google.emulator.token_requests == 1
        assert google.saved[-1]["google_access_token"].startswith("ya29.")
        connector.collections()
        google.emulator.expire_access_tokens()  # Google revoked it early: a 401
        google.emulator.add_person(names=[{"givenName": "A"}])
        items, _ = _drain(connector)
        assert len(items) == 1 and google.emulator.token_requests == 2
        assert [c.status for c in google.emulator.calls("/v1/")].count(401) == 1

    def test_a_short_lived_access_token_is_used_not_refreshed_at_every_call(
        self, server: GoogleServer
    ) -> None:
        # An access token Google grants for less than the refresh leeway is still good for
        # most of its life: refreshed near its end, not before every call.
        emulator = server.reset(GoogleEmulator(access_token_ttl=20))
        google = Google(server, emulator.grant("client-id", "client-secret"), [])
        connector = google.connector()
        for _ in range(3):
            connector._client.get("people/me/connections", {"personFields": "names"})
        assert emulator.token_requests == 1
        connector.close()

    def test_stored_access_token_is_used_until_it_nearly_expires(self, google: Google) -> None:
        connector = google.connector()
        connector.verify()
        token = google.saved[-1]
        client = PeopleClient(
            "client-id", "client-secret", google.refresh_token,
            access_token=token["google_access_token"],
            expires_at=int(token["google_access_token_expires_at"]),
            people_url=google.server.people_url, token_url=google.server.token_url,
        )  # fmt: skip
        list(GoogleConnector(client).snapshot(PEOPLE).stream or ())
        assert google.emulator.token_requests == 1
        nearly = PeopleClient(
            "client-id", "client-secret", google.refresh_token,
            access_token=token["google_access_token"], expires_at=int(time.time()) + 30,
            people_url=google.server.people_url, token_url=google.server.token_url,
        )  # fmt: skip
        list(GoogleConnector(nearly).snapshot(PEOPLE).stream or ())
        assert google.emulator.token_requests == 2  # refreshed first: 30 s is inside the leeway
        for c in (connector, GoogleConnector(client), GoogleConnector(nearly)):
            c.close()

    def test_revoked_refresh_token_is_invalid_credentials(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        google.emulator.revoke(google.refresh_token)
        with pytest.raises(InvalidCredentials) as caught:
            connector.verify()
        assert "invalid_grant" in caught.value.message and "reconnect" in caught.value.message

    def test_wrong_client_secret_is_invalid_credentials(self, google: Google) -> None:
        client = PeopleClient(
            "client-id", "wrong", google.refresh_token,
            people_url=google.server.people_url, token_url=google.server.token_url,
        )  # fmt: skip
        with pytest.raises(InvalidCredentials):
            GoogleConnector(client).verify()
        client.close()

    def test_a_token_error_in_googles_api_error_shape_is_classified(
        self, google: Google, connector: GoogleConnector
    ) -> None:
        # Beside RFC 6749's {"error": "invalid_grant", ...}, a Google front end may answer
        # the token endpoint in the google.rpc.Status shape of its APIs ({"error": {"code",
        # "message", "status"}}): a refusal of the grant, or a quota's 429.
        google.emulator.fail(400, path="/token", message="Invalid refresh token.")
        with pytest.raises(InvalidCredentials) as caught:
            connector.verify()
        assert "Invalid refresh token." in caught.value.message
        google.emulator.fail(429, path="/token", retry_after="9")
        with pytest.raises(TransientError):
            connector.verify()
        connector.verify()

    def test_rotated_refresh_token_is_handed_back(self, google: Google) -> None:
        google.emulator.rotate_refresh_tokens = True
        connector = google.connector()
        connector.verify()
        assert google.saved[-1]["google_refresh_token"] != google.refresh_token
        google.emulator.expire_access_tokens()
        connector.verify()  # the new refresh token works; the old one is dead
        connector.close()

    def test_mutations_are_sequential(self, google: Google, connector: GoogleConnector) -> None:
        for i in range(3):
            connector.create(PEOPLE, ADA, f"seq-{i}")
        assert google.emulator.concurrent_mutations == 0


def test_unknown_cursor_is_cursor_expired(connector: GoogleConnector) -> None:
    with pytest.raises(CursorExpired):
        connector.changes(PEOPLE, "not-a-cursor" + uuid.uuid4().hex)


def test_large_first_sync_on_a_pool_maps_alike(
    google: Google, connector: GoogleConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rolodex.connectors.google import parsing

    for i in range(2500):
        google.emulator.add_person(
            names=[{"givenName": f"P{i}"}], phoneNumbers=[{"value": f"+1 415 555 {i:04d}"}]
        )
    serial, cursor = _drain(connector)
    monkeypatch.setattr(parsing, "workers", lambda: 2)
    pooled, _ = _drain(connector)
    assert [i.remote_id for i in pooled] == [i.remote_id for i in serial]
    assert [i.fields for i in pooled] == [i.fields for i in serial]
    assert all(i.terms for i in pooled[1000:])  # computed in the pool
    assert cursor


# --- Group writes ---------------------------------------------------------------------------


def test_system_groups_are_refused_before_anything_is_sent(
    google: Google, connector: GoogleConnector
) -> None:
    from rolodex.domain.remote import LocalGroup

    google.emulator.clear_log()
    with pytest.raises(PermanentError) as refused:
        connector.rename_group(LocalGroup("Stars", "Stars", "Starred"))
    assert refused.value.status == 400 and "system groups" in refused.value.message
    with pytest.raises(PermanentError):
        connector.delete_group(LocalGroup("Starred", "Starred", "Starred"))
    assert google.emulator.calls("contactGroups/", method="PUT") == []
    assert google.emulator.calls("contactGroups/", method="DELETE") == []


def test_a_group_written_is_a_label_contacts_can_name(
    google: Google, connector: GoogleConnector
) -> None:
    from rolodex.domain.remote import LocalGroup

    made = connector.create_group(LocalGroup("Team", "Team"))
    # A label's provider id is its resource name, which a rename keeps.
    assert made.remote_id == google.emulator.user_groups()["Team"]["resourceName"]
    ada = connector.create(PEOPLE, dataclasses.replace(ADA, group_names=("Team",)), "r1")
    team = google.emulator.user_groups()["Team"]["resourceName"]
    memberships = google.emulator.person(ada.remote_id)["memberships"]
    assert team in [m["contactGroupMembership"]["contactGroupResourceName"] for m in memberships]
    assert len(google.emulator.calls("/v1/contactGroups", method="POST")) == 1  # not made twice


def test_a_user_label_named_like_a_system_group_is_written_as_the_label(
    google: Google, connector: GoogleConnector
) -> None:
    from rolodex.domain.remote import LocalGroup

    made = connector.create_group(LocalGroup("starred", "starred"))
    renamed = connector.rename_group(LocalGroup("Shiny", "Shiny", made.remote_id))
    assert renamed.remote_id == made.remote_id
    assert "Shiny" in google.emulator.user_groups()
    with pytest.raises(PermanentError):
        connector.rename_group(LocalGroup("Stars", "Stars", "contactGroups/starred"))


def test_a_rename_sends_the_groups_current_etag_even_when_only_the_cursor_knew_it(
    google: Google, connector: GoogleConnector
) -> None:
    # contactGroups.update takes the group with its etag (ContactGroup.etag, "The HTTP entity
    # tag of the resource"); the groups a cursor remembers have none, so it is read first.
    from rolodex.domain.remote import LocalGroup

    google.emulator.log_bodies = True
    team = google.emulator.add_group("Team")
    _items, cursor = _drain(connector)
    later = google.connector()
    later.changes(PEOPLE, cursor)
    google.emulator.clear_log()
    later.rename_group(LocalGroup("Crew", "Crew", team))
    [put] = google.emulator.calls("contactGroups/", method="PUT")
    sent = orjson.loads(put.body)["contactGroup"]
    assert sent["etag"] and sent["name"] == "Crew"
    assert google.emulator.user_groups()["Crew"]["resourceName"] == team
    later.close()
