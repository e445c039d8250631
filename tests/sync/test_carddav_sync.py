"""Two-way sync with real CardDAV servers (Radicale and Xandikos), through the engine.

Each test connects its own account to a fresh address book on a shared server, plays the
other client with plain HTTP, and checks both sides after ``rolodex``'s sync runs.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from rolodex.api.app import build_services
from rolodex.api.deps import Services
from rolodex.cli.sync import make_runner
from rolodex.config import Settings
from rolodex.connectors.carddav.client import CardDAVClient
from rolodex.domain.account import Account
from rolodex.domain.query import ContactFilter, ListQuery
from rolodex.domain.vcard import parse_card
from rolodex.store import Store
from rolodex.sync.runner import SyncRunner
from tests.carddav_servers import SERVERS, DavServer, vcard
from tests.conftest import settings_for_tests

FIXTURES = Path(__file__).parent.parent / "fixtures" / "vcards"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[DavServer]:
    with SERVERS[request.param]() as running:
        yield running


@dataclasses.dataclass
class Synced:
    """An account connected to one address book, with both sides at hand."""

    server: DavServer
    book: str
    svc: Services
    account: Account
    runner: SyncRunner

    def sync(self) -> None:
        self.runner.run(self.account.id)

    def contacts(self) -> list[dict[str, object]]:
        docs = self.svc.contacts.page(self.account, ListQuery(limit=1000))
        return [orjson.loads(d) for d in docs]

    def by_name(self, given_name: str) -> dict[str, object]:
        found = [c for c in self.contacts() if c["given_name"] == given_name]
        assert len(found) == 1, [c["given_name"] for c in self.contacts()]
        return found[0]

    def cards(self) -> dict[str, bytes]:
        """href -> card data of everything in the address book, read as another client."""
        with CardDAVClient(self.book, self.server.username, self.server.password) as client:
            return {href: client.get(href).data for href in client.list_etags(self.book)}

    def card_of(self, uid_or_name: str) -> bytes:
        for data in self.cards().values():
            card = parse_card(data)
            if uid_or_name in (card.uid, card.fields.given_name):
                return data
        raise AssertionError(f"no card for {uid_or_name}")


@pytest.fixture
def synced(server: DavServer, tmp_path: Path) -> Iterator[Synced]:
    url = f"sqlite:///{tmp_path / 'rolodex.db'}"
    settings: Settings = settings_for_tests(url)
    store = Store(url)
    store.migrate()
    svc = build_services(settings, store)
    book = server.new_addressbook()
    created = svc.accounts.connect(
        "me@example.com",
        name="Me",
        provider="carddav",
        settings={"url": book, "username": server.username, "password": server.password},
    )
    yield Synced(server, book, svc, created.account, make_runner(settings, store))
    store.close()


def put(synced: Synced, name: str, extra: str = "") -> str:
    uid = f"{name.lower()}-{uuid.uuid4().hex[:6]}"
    synced.server.put_card(synced.book + f"{uid}.vcf", vcard(uid, f"{name} Example", extra=extra))
    return uid


def test_first_sync_brings_every_card_with_groups_and_pictures(synced: Synced) -> None:
    photo = base64.b64encode(PNG).decode()
    put(synced, "Ann", "EMAIL;TYPE=work:ann@example.com\r\nCATEGORIES:Friends,Work")
    put(synced, "Bob", f"TEL;TYPE=cell:+1 415 888 9990\r\nPHOTO;ENCODING=b;TYPE=PNG:{photo}")
    synced.sync()
    ann, bob = synced.by_name("Ann"), synced.by_name("Bob")
    assert ann["emails"] == [{"type": "work", "email": "ann@example.com"}]
    assert sorted(g["name"] for g in ann["groups"]) == ["Friends", "Work"]  # type: ignore[attr-defined]
    assert bob["phone_numbers"] == [{"type": "mobile", "number": "+1 415 888 9990"}]
    picture = synced.svc.pictures.get(synced.account, str(bob["id"]))
    assert picture.data == PNG and picture.content_type == "image/png"
    found = synced.svc.contacts.count(
        synced.account, ContactFilter(terms=(("phone", "14158889990"),))
    )
    assert found == 1
    account = synced.svc.accounts.get(synced.account.id)
    assert account.sync_state == "running" and account.last_synced_at is not None


def test_changes_on_the_server_reach_the_api(synced: Synced) -> None:
    keep, gone = put(synced, "Keep"), put(synced, "Gone")
    synced.sync()
    synced.server.put_card(
        synced.book + f"{keep}.vcf", vcard(keep, "Keep Example", extra="TITLE:Chief")
    )
    synced.server.delete_card(synced.book + f"{gone}.vcf")
    put(synced, "New")
    synced.sync()
    names = sorted(str(c["given_name"]) for c in synced.contacts())
    assert names == ["Keep", "New"]
    assert synced.by_name("Keep")["job_title"] == "Chief"


def test_api_writes_reach_the_server_exactly_once(synced: Synced) -> None:
    created = orjson.loads(
        synced.svc.contacts.create(
            synced.account,
            {"given_name": "Local", "surname": "Person", "emails": [{"email": "l@x.org"}]},
        )
    )
    synced.sync()
    synced.sync()  # a second run must not create it again
    cards = [parse_card(d) for d in synced.cards().values()]
    assert [c.uid for c in cards] == [created["id"]]
    synced.svc.contacts.update(synced.account, created["id"], {"job_title": "Mayor"})
    synced.svc.pictures.put(synced.account, created["id"], PNG)
    synced.sync()
    card = parse_card(synced.card_of(created["id"]))
    assert card.fields.job_title == "Mayor" and card.photo == PNG
    synced.svc.contacts.delete(synced.account, created["id"])
    synced.sync()
    assert synced.cards() == {}
    assert synced.contacts() == []


def test_update_keeps_what_v2_cannot_show(synced: Synced) -> None:
    uid = put(
        synced, "Rich", "X-CUSTOM-THING:keep me\r\nANNIVERSARY:20040615\r\nGEO:geo:37.3,-122.0"
    )
    synced.sync()
    rich = synced.by_name("Rich")
    synced.svc.contacts.update(synced.account, str(rich["id"]), {"job_title": "Baron"})
    synced.sync()
    text = synced.card_of(uid).decode()
    assert "TITLE:Baron" in text
    for kept in ("X-CUSTOM-THING:keep me", "ANNIVERSARY", "GEO"):
        assert kept in text


def test_conflicting_edits_keep_both_sides(synced: Synced) -> None:
    uid = put(synced, "Both", "NOTE:old note")
    synced.sync()
    both = synced.by_name("Both")
    # Here: a new job title. There, meanwhile: a new note.
    synced.svc.contacts.update(synced.account, str(both["id"]), {"job_title": "Here"})
    synced.server.put_card(
        synced.book + f"{uid}.vcf", vcard(uid, "Both Example", extra="NOTE:changed there")
    )
    synced.sync()
    card = parse_card(synced.card_of(uid))
    assert card.fields.job_title == "Here"
    assert card.fields.notes == "changed there"
    merged = synced.by_name("Both")
    assert merged["job_title"] == "Here" and merged["notes"] == "changed there"


def test_deleted_there_while_edited_here_is_recreated(synced: Synced) -> None:
    uid = put(synced, "Phoenix")
    synced.sync()
    phoenix = synced.by_name("Phoenix")
    synced.svc.contacts.update(synced.account, str(phoenix["id"]), {"nickname": "Risen"})
    synced.server.delete_card(synced.book + f"{uid}.vcf")
    synced.sync()
    synced.sync()
    assert synced.by_name("Phoenix")["nickname"] == "Risen"
    cards = [parse_card(d) for d in synced.cards().values()]
    assert [c.fields.nickname for c in cards] == ["Risen"]


def test_refused_sync_token_resyncs_without_duplicates(synced: Synced) -> None:
    put(synced, "One")
    put(synced, "Two")
    synced.sync()
    for coll in make_collections(synced):
        synced.runner.mirror.set_cursor(synced.account.id, coll, "http://bogus/sync/token")
    gone = next(h for h in synced.cards() if "two-" in h)
    synced.server.delete_card(gone)
    put(synced, "Three")
    synced.sync()
    assert sorted(str(c["given_name"]) for c in synced.contacts()) == ["One", "Three"]


def make_collections(synced: Synced) -> list[str]:
    from rolodex.connectors.registry import open_connector

    settings = synced.svc.accounts.connection(synced.account.id)
    assert settings is not None
    connector = open_connector("carddav", settings)
    try:
        return [c.id for c in connector.collections()]
    finally:
        connector.close()


def test_apple_group_cards_become_groups(synced: Synced) -> None:
    group = (FIXTURES / "apple-group.vcf").read_bytes()
    card = parse_card(group)
    for index, member in enumerate(card.member_uids):
        synced.server.put_card(
            synced.book + f"m{index}.vcf", vcard(member, f"Member{index} Example")
        )
    synced.server.put_card(synced.book + "group.vcf", group)
    put(synced, "Outsider")
    synced.sync()
    groups = synced.svc.groups.list(synced.account)
    assert [g.name for g in groups] == ["Orchard Friends"]
    for index in range(len(card.member_uids)):
        member = synced.by_name(f"Member{index}")
        assert [g["name"] for g in member["groups"]] == ["Orchard Friends"]  # type: ignore[index]
    assert synced.by_name("Outsider")["groups"] == []
    synced.server.delete_card(synced.book + "group.vcf")
    synced.sync()
    assert synced.svc.groups.list(synced.account) == []
    assert synced.by_name("Member0")["groups"] == []


# Outlook's export is vCard 2.1, which CardDAV servers do not store (RFC 6352 requires 3.0);
# its mapping is covered in tests/domain/test_vcard.py.
@pytest.mark.parametrize("fixture", ["apple-contacts.vcf", "google-contacts.vcf", "rfc6350.vcf"])
def test_real_world_cards_sync(synced: Synced, fixture: str) -> None:
    data = (FIXTURES / fixture).read_bytes()
    if b"\nUID:" not in data:
        # Google's export file has no UID; its CardDAV server gives every card one.
        data = data.replace(b"BEGIN:VCARD\r\n", b"BEGIN:VCARD\r\nUID:google-export-1\r\n", 1)
        data = data.replace(b"BEGIN:VCARD\n", b"BEGIN:VCARD\nUID:google-export-1\n", 1)
    expected = parse_card(data)
    synced.server.put_card(synced.book + "card.vcf", data)
    synced.sync()
    [contact] = synced.contacts()
    fields = expected.fields
    assert contact["given_name"] == fields.given_name
    assert contact["surname"] == fields.surname
    assert contact["company_name"] == fields.company_name
    assert contact["emails"] == [{"type": e.type, "email": e.email} for e in fields.emails]
    assert contact["phone_numbers"] == [
        {"type": p.type, "number": p.number} for p in fields.phone_numbers
    ]
    assert contact["birthday"] == (fields.birthday.isoformat() if fields.birthday else None)
    # Updating one field through the API rewrites that field only: compared with the card as
    # the server serves it (servers re-serialise what they store).
    before = parse_card(next(iter(synced.cards().values())))
    synced.svc.contacts.update(synced.account, str(contact["id"]), {"nickname": "Updated"})
    synced.sync()
    after = parse_card(next(iter(synced.cards().values())))
    assert after.fields == dataclasses.replace(before.fields, nickname="Updated")
