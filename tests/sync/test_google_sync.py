"""Two-way sync with Google (the People API emulator over real HTTP), through the runner and
engine, on a real store.

Each test connects its own account (``provider="gmail"``, v2's name) to a fresh emulated
Google user, plays Google (or another client) through the emulator's controls, and checks
both sides after Rolodex's sync runs.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator

import orjson
import pytest
from sqlalchemy import update

from rolodex.api.app import build_services
from rolodex.api.deps import Services
from rolodex.cli.sync import make_runner
from rolodex.domain.account import Account
from rolodex.domain.errors import InvalidContact
from rolodex.domain.query import ContactFilter, ListQuery
from rolodex.store import Store
from rolodex.store.schema import outbox
from rolodex.sync import engine
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.conftest import settings_for_tests
from tests.emulators.google import SCOPE_CONTACTS, GoogleEmulator, GoogleServer

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def running() -> Iterator[GoogleServer]:
    with GoogleServer() as server:
        yield server


@dataclasses.dataclass
class Synced:
    google: GoogleEmulator
    svc: Services
    account: Account
    runner: SyncRunner
    refresh_token: str

    def sync(self) -> None:
        self.runner.run(self.account.id)

    def contacts(self) -> list[dict[str, object]]:
        docs = self.svc.contacts.page(self.account, ListQuery(limit=1000))
        return [orjson.loads(d) for d in docs]

    def by_name(self, given_name: str) -> dict[str, object]:
        found = [c for c in self.contacts() if c["given_name"] == given_name]
        assert len(found) == 1, [c["given_name"] for c in self.contacts()]
        return found[0]

    def people(self) -> list[dict[str, object]]:
        return self.google.find_people()

    def person_named(self, given_name: str) -> dict[str, object]:
        found = [
            p
            for p in self.people()
            if p.get("names") and p["names"][0].get("givenName") == given_name  # type: ignore[index]
        ]
        assert len(found) == 1, found
        return found[0]

    def state(self) -> Account:
        return self.svc.accounts.get(self.account.id)

    def log_size(self) -> int:
        cursor = "0"
        return len(
            self.svc.changes.since(
                self.account, cursor, frozenset({"contact", "contact_group"})
            ).deltas
        )


@pytest.fixture
def synced(
    running: GoogleServer, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Synced]:
    google = running.reset()
    monkeypatch.setenv("ROLODEX_GOOGLE_PEOPLE_URL", running.people_url)
    monkeypatch.setenv("ROLODEX_GOOGLE_TOKEN_URL", running.token_url)
    refresh_token = google.grant("client-id", "client-secret")
    url = fresh_database_url
    settings = settings_for_tests(url)
    store = Store(url)
    store.migrate()
    svc = build_services(settings, store)
    created = svc.accounts.connect(
        "me@gmail.com",
        name="Me",
        provider="gmail",
        settings={
            "google_client_id": "client-id",
            "google_client_secret": "client-secret",
            "google_refresh_token": refresh_token,
        },
    )
    assert created.account.provider == "google"
    yield Synced(google, svc, created.account, make_runner(settings, store), refresh_token)
    store.close()


def test_first_sync_brings_people_groups_and_pictures(synced: Synced) -> None:
    google = synced.google
    team = google.add_group("Team")
    ann = google.add_person(
        names=[{"givenName": "Ann", "familyName": "Example"}],
        emailAddresses=[{"value": "ann@example.com", "type": "work"}],
        birthdays=[{"date": {"month": 5, "day": 17}}],
        memberships=[
            {"contactGroupMembership": {"contactGroupResourceName": team}},
            {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/starred"}},
            {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}},
        ],
    )
    with google.lock:  # a photo set in Google's own UI
        google.photos["p1"] = (PNG, "image/png")
        google.people.items[ann]["_photo"] = "p1"
    google.add_person(names=[{"givenName": "Bob"}])
    synced.sync()
    found = synced.by_name("Ann")
    assert found["emails"] == [{"type": "work", "email": "ann@example.com"}]
    assert found["birthday"] is None  # no year: v2 cannot show it
    assert sorted(g["name"] for g in found["groups"]) == ["Starred", "Team"]  # type: ignore[attr-defined]
    assert synced.svc.pictures.get(synced.account, str(found["id"])).data == PNG
    assert synced.by_name("Bob")["groups"] == []
    state = synced.state()
    assert state.sync_state == "running" and state.last_synced_at is not None
    # The access token is kept (encrypted) for the next sync.
    connection = synced.svc.accounts.connection(synced.account.id)
    assert connection is not None and connection["google_access_token"].startswith("ya29.")


def test_changes_at_google_reach_the_api(synced: Synced) -> None:
    google = synced.google
    keep = google.add_person(names=[{"givenName": "Keep"}])
    gone = google.add_person(names=[{"givenName": "Gone"}])
    moved = google.add_person(names=[{"givenName": "Moved"}])
    synced.sync()
    moved_id = synced.by_name("Moved")["id"]
    google.edit_person(keep, organizations=[{"title": "Chief"}])
    google.remove_person(gone)
    google.rekey(moved)
    google.add_person(names=[{"givenName": "New"}])
    synced.sync()
    assert sorted(str(c["given_name"]) for c in synced.contacts()) == ["Keep", "Moved", "New"]
    assert synced.by_name("Keep")["job_title"] == "Chief"
    assert synced.by_name("Moved")["id"] == moved_id  # re-keyed: the same contact


def test_api_writes_reach_google_exactly_once_and_come_back_quietly(synced: Synced) -> None:
    synced.sync()
    created = orjson.loads(
        synced.svc.contacts.create(
            synced.account,
            {"given_name": "Local", "surname": "Person", "emails": [{"email": "l@x.org"}]},
        )
    )
    synced.sync()
    synced.sync()  # a second run must not create it again
    [person] = synced.people()
    assert person["clientData"] == [{"key": "rolodex.id", "value": created["id"]}]
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before  # our own write, read back: no spurious change
    assert [c["id"] for c in synced.contacts()] == [created["id"]]

    synced.svc.contacts.update(synced.account, created["id"], {"job_title": "Mayor"})
    synced.svc.pictures.put(synced.account, created["id"], PNG)
    synced.sync()
    person = synced.person_named("Local")
    assert person["organizations"][0]["title"] == "Mayor"  # type: ignore[index]
    assert synced.google.photo_of(str(person["resourceName"])) == PNG
    updates = [c for c in synced.google.calls() if c.path.endswith(":updateContact")]
    assert [u.param("updatePersonFields") for u in updates] == ["organizations"]
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before

    synced.svc.contacts.delete(synced.account, created["id"])
    synced.sync()
    assert synced.people() == [] and synced.contacts() == []


def test_update_keeps_what_v2_cannot_show(synced: Synced) -> None:
    rn = synced.google.add_person(
        names=[{"givenName": "Rich"}],
        birthdays=[{"date": {"month": 2, "day": 29}}],
        events=[{"date": {"year": 2004, "month": 6, "day": 15}, "type": "anniversary"}],
        userDefined=[{"key": "k", "value": "v"}],
        relations=[{"person": "Sam", "type": "spouse"}],
    )
    synced.sync()
    rich = synced.by_name("Rich")
    synced.svc.contacts.update(synced.account, str(rich["id"]), {"job_title": "Baron"})
    synced.svc.contacts.update(synced.account, str(rich["id"]), {"manager_name": "Boss"})
    synced.sync()
    person = synced.google.person(rn)
    assert person["organizations"][0]["title"] == "Baron"
    assert person["birthdays"] == [{"date": {"month": 2, "day": 29}}]
    assert person["events"] and person["userDefined"]
    assert {r["type"] for r in person["relations"]} == {"spouse", "manager"}


def test_a_yearless_birthday_survives_a_client_saving_back_what_it_read(synced: Synced) -> None:
    # An SDK saves the whole contact it read, "birthday": null included: v2 shows a birthday
    # without a year as null, so that null is no change to it.
    rn = synced.google.add_person(
        names=[{"givenName": "Leap"}], birthdays=[{"date": {"month": 2, "day": 29}}]
    )
    synced.sync()
    leap = synced.by_name("Leap")
    assert leap["birthday"] is None
    body = {k: leap[k] for k in ("given_name", "birthday", "emails", "phone_numbers")}
    synced.svc.contacts.update(synced.account, str(leap["id"]), {**body, "job_title": "Jester"})
    synced.sync()
    person = synced.google.person(rn)
    assert person["organizations"][0]["title"] == "Jester"
    assert person["birthdays"] == [{"date": {"month": 2, "day": 29}}]


def test_a_client_saving_back_the_whole_contact_writes_only_what_it_changed(
    synced: Synced,
) -> None:
    # SDKs save the whole contact they read with the one change made: the fields that read
    # the same are no change, and keep what v2 cannot show of them (a nickname's type, an
    # HTML biography, a birthday's text).
    rn = synced.google.add_person(
        names=[{"givenName": "Whole", "familyName": "Body"}],
        nicknames=[{"value": "WB", "type": "INITIALS"}],
        biographies=[{"value": "<b>Bold</b>", "contentType": "TEXT_HTML"}],
        birthdays=[{"date": {"year": 1990, "month": 4, "day": 1}, "text": "1 April 1990"}],
        emailAddresses=[{"value": "wb@example.org", "type": "home"}],
    )
    synced.sync()
    read = synced.by_name("Whole")
    body = {k: v for k, v in read.items() if k not in ("id", "object", "account_id")}
    synced.google.clear_log()
    synced.svc.contacts.update(synced.account, str(read["id"]), {**body, "job_title": "Chief"})
    synced.sync()
    [call] = synced.google.calls(":updateContact")
    assert call.param("updatePersonFields") == "organizations"
    person = synced.google.person(rn)
    assert person["organizations"][0]["title"] == "Chief"
    assert person["nicknames"] == [{"value": "WB", "type": "INITIALS"}]
    assert person["biographies"] == [{"value": "<b>Bold</b>", "contentType": "TEXT_HTML"}]
    assert person["birthdays"][0]["text"] == "1 April 1990"


def test_editing_one_item_of_a_list_keeps_what_v2_cannot_show_of_it(synced: Synced) -> None:
    # Issue 10: on update, what Rolodex does not map survives, the unmapped parts of an
    # edited item too (Person schema, developers.google.com/people/api/rest/v1/people:
    # Address.extendedAddress, poBox, countryCode; EmailAddress.displayName; ImClient.type).
    # Address.formattedValue is Google's text of the parts ("If this is not set by the
    # user it will be automatically constructed from structured values"): the old one is
    # stale once a part changes, so it is not written back.
    rn = synced.google.add_person(
        names=[{"givenName": "Parts"}],
        addresses=[
            {
                "type": "home",
                "streetAddress": "1 Old Road",
                "extendedAddress": "Flat 2",
                "poBox": "PO 9",
                "city": "Leeds",
                "country": "United Kingdom",
                "countryCode": "GB",
                "formattedValue": "1 Old Road, Flat 2, Leeds, United Kingdom",
            },
            {"type": "work", "streetAddress": "5 Mill Lane", "city": "York", "poBox": "PO 1"},
        ],
        emailAddresses=[
            {"value": "parts@old.example", "type": "home", "displayName": "Parts Home"},
            {"value": "parts@work.example", "type": "work", "displayName": "Parts Work"},
        ],
        imClients=[{"username": "parts", "protocol": "skype", "type": "home"}],
    )
    synced.sync()
    read = synced.by_name("Parts")
    addresses = [dict(a) for a in read["physical_addresses"]]  # type: ignore[attr-defined]
    addresses[0]["street_address"] = "2 New Road"
    emails = [dict(e) for e in read["emails"]]  # type: ignore[attr-defined]
    emails[0]["email"] = "parts@new.example"
    ims = [{**dict(i), "im_address": "parts2"} for i in read["im_addresses"]]  # type: ignore[attr-defined]
    synced.svc.contacts.update(
        synced.account,
        str(read["id"]),
        {"physical_addresses": addresses, "emails": emails, "im_addresses": ims},
    )
    synced.sync()
    person = synced.google.person(rn)
    home, work = person["addresses"]
    assert home["streetAddress"] == "2 New Road" and home["city"] == "Leeds"
    assert (home["extendedAddress"], home["poBox"]) == ("Flat 2", "PO 9")
    assert (home["country"], home["countryCode"]) == ("United Kingdom", "GB")
    assert "1 Old Road" not in home.get("formattedValue", "")
    assert (work["streetAddress"], work["poBox"]) == ("5 Mill Lane", "PO 1")  # unchanged
    assert [(e["value"], e.get("displayName")) for e in person["emailAddresses"]] == [
        ("parts@new.example", "Parts Home"),
        ("parts@work.example", "Parts Work"),
    ]
    assert [(i["username"], i.get("type")) for i in person["imClients"]] == [("parts2", "home")]
    assert synced.by_name("Parts")["physical_addresses"][0]["street_address"] == "2 New Road"  # type: ignore[index]


def test_stale_etag_merges_both_sides(synced: Synced) -> None:
    rn = synced.google.add_person(
        names=[{"givenName": "Both"}], biographies=[{"value": "old note"}]
    )
    synced.sync()
    both = synced.by_name("Both")
    synced.svc.contacts.update(synced.account, str(both["id"]), {"job_title": "Here"})
    synced.google.edit_person(rn, biographies=[{"value": "changed there"}])
    synced.sync()
    person = synced.google.person(rn)
    assert person["organizations"][0]["title"] == "Here"
    assert person["biographies"][0]["value"] == "changed there"
    merged = synced.by_name("Both")
    assert merged["job_title"] == "Here" and merged["notes"] == "changed there"
    assert any(c.status == 400 for c in synced.google.calls(":updateContact"))


@pytest.mark.parametrize("status", [400, 410])
def test_expired_sync_token_resyncs_and_converges(synced: Synced, status: int) -> None:
    google = synced.google
    google.expired_status = status
    one = google.add_person(names=[{"givenName": "One"}])
    two = google.add_person(names=[{"givenName": "Two"}])
    synced.sync()
    google.expire_sync_tokens()
    google.remove_person(two)
    google.edit_person(one, nicknames=[{"value": "Uno"}])
    google.add_person(names=[{"givenName": "Three"}])
    synced.sync()
    assert sorted(str(c["given_name"]) for c in synced.contacts()) == ["One", "Three"]
    assert synced.by_name("One")["nickname"] == "Uno"
    synced.sync()  # and the new token works
    assert len(synced.contacts()) == 2


def test_a_resync_keeps_a_contact_written_just_before_it(synced: Synced) -> None:
    # people.connections.list: "Writes may have a propagation delay of several minutes for
    # sync requests" (developers.google.com/people/api/rest/v1/people.connections/list),
    # and old contacts can be missing from full lists (GM §2 #5): a full listing that
    # leaves a contact out does not say it was deleted.
    synced.sync()
    created = orjson.loads(synced.svc.contacts.create(synced.account, {"given_name": "Fresh"}))
    synced.google.list_lag = 600.0
    synced.sync()  # pushed
    [person] = synced.people()
    synced.google.expire_sync_tokens()
    synced.sync()  # a full resync, whose listing does not show it yet
    assert [c["id"] for c in synced.contacts()] == [created["id"]]
    assert [p["resourceName"] for p in synced.people()] == [person["resourceName"]]
    synced.google.remove_person(str(person["resourceName"]))
    synced.google.expire_sync_tokens()
    synced.sync()  # gone there for real: gone here
    assert synced.contacts() == []


def test_lost_create_reply_makes_no_duplicate(synced: Synced) -> None:
    synced.sync()
    synced.google.fail(503, path=":createContact", after=True)
    created = orjson.loads(synced.svc.contacts.create(synced.account, {"given_name": "Once"}))
    synced.sync()  # the push fails (and waits); the pull goes on
    assert len(synced.people()) == 1  # it landed; the reply did not
    _due_now(synced)
    synced.sync()
    synced.sync()
    assert len(synced.people()) == 1
    assert [c["id"] for c in synced.contacts()] == [created["id"]]


def _due_now(synced: Synced) -> None:
    """Make the outbox's waiting writes due now (instead of after their back-off)."""
    with synced.svc.accounts.store.write() as tx:
        tx.outbox.conn.execute(
            update(outbox)
            .where(outbox.c.account_id == synced.account.id)
            .values(next_attempt_at=0.0)
        )


def test_429_backs_off_and_resumes(synced: Synced) -> None:
    synced.sync()
    synced.google.fail(429, path=":createContact", retry_after="120")
    synced.svc.contacts.create(synced.account, {"given_name": "Later"})
    synced.sync()  # the push is deferred; the pull still runs
    assert synced.people() == []
    state = synced.state()
    assert state.last_error and "429" in state.last_error
    _due_now(synced)
    synced.sync()
    assert len(synced.people()) == 1


def test_revoked_grant_stops_syncing_until_reconnected(synced: Synced) -> None:
    synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.sync()
    synced.google.revoke(synced.refresh_token)
    synced.google.expire_access_tokens()
    with pytest.raises(SyncFailed):
        synced.sync()
    state = synced.state()
    assert state.sync_state == "invalid-credentials"
    assert state.last_error and "reconnect" in state.last_error
    fresh = synced.google.grant("client-id", "client-secret")
    again = synced.svc.accounts.connect(
        "me@gmail.com",
        name="Me",
        provider="google",
        settings={
            "google_client_id": "client-id",
            "google_client_secret": "client-secret",
            "google_refresh_token": fresh,
        },
    )
    assert again.account.id == synced.account.id
    synced.sync()
    assert synced.state().sync_state == "running"
    assert [c["given_name"] for c in synced.contacts()] == ["Ann"]


def test_what_google_changes_on_write_is_read_back(synced: Synced) -> None:
    synced.sync()

    def normalise(person: dict[str, object]) -> None:
        for phone in person.get("phoneNumbers") or ():  # type: ignore[attr-defined]
            phone["value"] = phone["value"].replace("-", " ")

    synced.google.rewrite = normalise
    created = orjson.loads(
        synced.svc.contacts.create(
            synced.account,
            {"given_name": "Norm", "phone_numbers": [{"type": "mobile", "number": "415-555-0100"}]},
        )
    )
    synced.sync()
    synced.sync()
    found = synced.by_name("Norm")
    assert found["id"] == created["id"]
    assert found["phone_numbers"] == [{"type": "mobile", "number": "415 555 0100"}]


def test_other_contacts_are_read_only_with_source_inbox(synced: Synced) -> None:
    google = synced.google
    google.add_person(names=[{"givenName": "Mine"}])
    seen = google.add_other_contact(
        names=[{"givenName": "Mailer"}], emailAddresses=[{"value": "m@example.com"}]
    )
    synced.sync()
    inbox = [
        orjson.loads(d)
        for d in synced.svc.contacts.page(
            synced.account, ListQuery(filter=ContactFilter(source="inbox"), limit=100)
        )
    ]
    assert [(c["given_name"], c["source"]) for c in inbox] == [("Mailer", "inbox")]
    assert synced.by_name("Mine")["source"] == "address_book"
    with pytest.raises(InvalidContact) as refused:
        synced.svc.contacts.update(synced.account, str(inbox[0]["id"]), {"job_title": "X"})
    assert "read-only" in str(refused.value)
    with pytest.raises(InvalidContact):
        synced.svc.contacts.delete(synced.account, str(inbox[0]["id"]))
    with pytest.raises(InvalidContact):
        synced.svc.pictures.put(synced.account, str(inbox[0]["id"]), PNG)
    # Later syncs follow the other contacts' own sync token.
    google.add_other_contact(names=[{"givenName": "Second"}])
    with google.lock:
        google._delete(google.others, seen)
    synced.sync()
    names = sorted(str(c["given_name"]) for c in synced.contacts())
    assert names == ["Mine", "Second"]


def test_a_grant_without_other_contacts_syncs_the_rest(
    running: GoogleServer, synced: Synced
) -> None:
    google = synced.google
    google.add_person(names=[{"givenName": "Mine"}])
    google.add_other_contact(names=[{"givenName": "Mailer"}])
    narrow = google.grant("client-id", "client-secret", scopes=(SCOPE_CONTACTS,))
    synced.svc.accounts.connect(
        "me@gmail.com",
        name="Me",
        provider="google",
        settings={
            "google_client_id": "client-id",
            "google_client_secret": "client-secret",
            "google_refresh_token": narrow,
        },
    )
    synced.sync()
    synced.sync()
    assert [c["given_name"] for c in synced.contacts()] == ["Mine"]
    assert synced.state().sync_state == "running"


@pytest.mark.parametrize("token_expired", [False, True])
def test_an_edit_pending_while_google_rekeys_the_person_reaches_the_new_name(
    synced: Synced, token_expired: bool
) -> None:
    # The person is re-keyed at Google (linked with a profile) after the last sync, and
    # edited here before the next one: that sync pushes first, to the old resource name,
    # which Google no longer knows. The edit must land on the new name, with a fresh etag,
    # merged with what Google holds: nothing lost, nothing made twice. With the sync token
    # expired too, the push's 404 is answered by a full resync: the contact, whose edit
    # still waits, moves to the new name there and is not made again from the listing.
    google = synced.google
    old = google.add_person(names=[{"givenName": "Linked"}], biographies=[{"value": "note"}])
    synced.sync()
    linked = synced.by_name("Linked")
    new = google.rekey(old)
    if token_expired:
        google.expire_sync_tokens()
    else:
        google.edit_person(new, nicknames=[{"value": "Lin"}])  # changed there too
    synced.svc.contacts.update(synced.account, str(linked["id"]), {"job_title": "Pending"})
    google.clear_log()
    synced.sync()
    [person] = synced.people()
    assert person["resourceName"] == new
    assert person["organizations"][0]["title"] == "Pending"  # type: ignore[index]
    assert person["biographies"][0]["value"] == "note"  # type: ignore[index]
    assert not google.calls("createContact")
    assert synced.state().last_error is None
    [contact] = synced.contacts()
    assert contact["id"] == linked["id"]
    assert contact["job_title"] == "Pending"
    if not token_expired:
        assert person["nicknames"][0]["value"] == "Lin"  # type: ignore[index]
        assert contact["nickname"] == "Lin"
    # Settled: the next sync changes nothing on either side.
    before = synced.log_size()
    google.clear_log()
    synced.sync()
    assert synced.log_size() == before
    assert not [c for c in google.calls() if c.method != "GET"]


def test_a_delete_reads_nothing_first(synced: Synced) -> None:
    # People reads count against the "Critical read requests" quota (GM §2 #7): a read of
    # each person before deleting it halved how many a user could delete in a minute.
    google = synced.google
    for name in ("A", "B", "C"):
        google.add_person(names=[{"givenName": name}])
    synced.sync()
    for contact in synced.contacts():
        synced.svc.contacts.delete(synced.account, str(contact["id"]))
    google.clear_log()
    synced.runner.run(synced.account.id, pull=False)
    assert len(google.calls(":deleteContact", "DELETE")) == 3
    assert [r.path for r in google.calls(method="GET")] == []
    assert synced.people() == []


def test_a_delete_pending_while_google_rekeys_the_person_deletes_it_under_the_new_name(
    synced: Synced,
) -> None:
    # Deleting the old resource name is a 404, which a delete takes for done: the person
    # would stay at Google under its new name and come back here with the next pull.
    google = synced.google
    old = google.add_person(names=[{"givenName": "Gone"}])
    google.add_person(names=[{"givenName": "Stays"}])
    synced.sync()
    gone = synced.by_name("Gone")
    google.rekey(old)
    synced.svc.contacts.delete(synced.account, str(gone["id"]))
    synced.sync()
    assert [p["names"][0]["givenName"] for p in synced.people()] == ["Stays"]  # type: ignore[index]
    synced.sync()
    assert [c["given_name"] for c in synced.contacts()] == ["Stays"]
    assert synced.state().last_error is None


@pytest.mark.parametrize("held", [engine.HELD, 0])
def test_a_person_rekeyed_while_the_sync_token_is_expired_keeps_its_contact(
    synced: Synced, held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full listing names the re-keyed person under its new resource name only
    # (previousResourceNames "is filled only on sync-token calls", GM §3.1); the direct
    # read of the old name that the listing left out answers the person under the new
    # one (PersonResponse.requestedResourceName). That is the same contact, re-keyed: its
    # Rolodex id stays, and v2 clients see no delete and create for it. (``held`` 0: the
    # listing's new people are all beyond those held back, and read again by name.)
    monkeypatch.setattr(engine, "HELD", held)
    google = synced.google
    old = google.add_person(names=[{"givenName": "Linked"}], biographies=[{"value": "note"}])
    google.add_person(names=[{"givenName": "Stays"}])
    synced.sync()
    linked, stays = synced.by_name("Linked"), synced.by_name("Stays")
    cursor = synced.svc.changes.latest_cursor(synced.account)
    new = google.rekey(old)
    google.add_person(names=[{"givenName": "Fresh"}])  # new there: made here as ever
    google.expire_sync_tokens()
    synced.sync()
    assert synced.state().last_error is None
    fresh = synced.by_name("Fresh")
    assert sorted(str(c["id"]) for c in synced.contacts()) == sorted(
        [str(linked["id"]), str(stays["id"]), str(fresh["id"])]
    )
    assert synced.by_name("Linked")["notes"] == "note"
    deltas = synced.svc.changes.since(synced.account, cursor, frozenset({"contact"})).deltas
    assert [(d.object_id, d.event) for d in deltas if d.object_id != fresh["id"]] in (
        [],
        [(linked["id"], "modify")],
    )
    assert [d.event for d in deltas if d.object_id == fresh["id"]] == ["create"]
    # Linked to the new name: a change there reaches the same contact, and the next full
    # listing (the old name no longer read) keeps it too.
    google.edit_person(new, nicknames=[{"value": "Lin"}])
    synced.sync()
    assert synced.by_name("Linked")["id"] == linked["id"]
    assert synced.by_name("Linked")["nickname"] == "Lin"
    google.expire_sync_tokens()
    google.clear_log()
    synced.sync()
    assert sorted(str(c["id"]) for c in synced.contacts()) == sorted(
        [str(linked["id"]), str(stays["id"]), str(fresh["id"])]
    )
    assert not google.calls("people:batchGet")
    assert len(synced.people()) == 3
