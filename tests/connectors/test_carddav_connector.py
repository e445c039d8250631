"""Contract tests of the CardDAV connector against real Radicale and Xandikos servers."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from rolodex.connectors.base import (
    CursorExpired,
    InvalidCredentials,
    LocalContact,
    PermanentError,
    PreconditionFailed,
    RemoteContact,
    RemoteGroup,
)
from rolodex.connectors.carddav.client import CardDAVClient
from rolodex.connectors.carddav.connector import CardDAVConnector
from rolodex.domain.contact import ContactFields, Email
from tests.carddav_servers import DavServer, RadicaleServer, vcard

ADA = LocalContact(
    fields=ContactFields(
        given_name="Ada",
        surname="Lovelace",
        job_title="Analyst",
        emails=(Email(type="work", email="ada@example.org"),),
    ),
    group_names=("Friends", "Math"),
)


@pytest.fixture
def connector(dav_server: DavServer) -> Iterator[CardDAVConnector]:
    conn = CardDAVConnector(dav_server.base_url, dav_server.username, dav_server.password)
    yield conn
    conn.close()


def _uid() -> str:
    return str(uuid.uuid4())


class TestCardDAVConnectorContract:
    def test_collections_lists_the_book_and_one_default(
        self, connector: CardDAVConnector, book: str
    ) -> None:
        cols = {c.id: c for c in connector.collections()}
        assert cols[book].name.startswith("Book ")
        assert sum(c.is_default for c in cols.values()) == 1
        caps = connector.capabilities()
        assert caps.incremental and caps.groups == "categories"

    def test_create_then_first_sync_and_fetch_round_trip(
        self, connector: CardDAVConnector, book: str
    ) -> None:
        uid = _uid()
        written = connector.create(book, ADA, uid)
        assert written.remote_id == book + f"{uid}.vcf"
        listing = connector.changes(book, None)
        assert listing.complete and listing.cursor
        assert listing.changed == {written.remote_id: written.etag}
        [item] = connector.fetch(book, listing.changed)
        assert isinstance(item, RemoteContact)
        assert (item.remote_id, item.etag) == (written.remote_id, written.etag)
        assert item.collection == book
        assert item.uid == uid
        assert item.fields.given_name == "Ada" and item.fields.surname == "Lovelace"
        assert item.fields.job_title == "Analyst"
        assert [e.email for e in item.fields.emails] == ["ada@example.org"]
        assert set(item.group_names) == {"Friends", "Math"}
        assert item.raw and f"UID:{uid}".encode() in item.raw

    def test_retried_create_returns_the_first_and_makes_no_duplicate(
        self, connector: CardDAVConnector, dav_client: CardDAVClient, book: str
    ) -> None:
        uid = _uid()
        first = connector.create(book, ADA, uid)
        again = connector.create(book, ADA, uid)
        assert (again.remote_id, again.etag) == (first.remote_id, first.etag)
        assert list(dav_client.list_etags(book)) == [first.remote_id]

    def test_create_over_someone_elses_card_is_permanent(
        self, dav_server: DavServer, connector: CardDAVConnector, book: str
    ) -> None:
        uid = _uid()
        dav_server.put_card(book + f"{uid}.vcf", vcard("someone-else", "Other Person"))
        with pytest.raises(PermanentError):
            connector.create(book, ADA, uid)

    def test_incremental_changes_with_and_without_data(
        self, dav_server: DavServer, connector: CardDAVConnector, book: str
    ) -> None:
        kept = connector.create(book, ADA, _uid())
        gone = connector.create(book, ADA, _uid())
        cursor = connector.changes(book, None).cursor
        uid = _uid()
        new_href = book + f"{uid}.vcf"
        dav_server.put_card(new_href, vcard(uid, "Grace Hopper"))
        dav_server.delete_card(gone.remote_id)

        plain = connector.changes(book, cursor)
        assert not plain.complete and plain.fetched == ()
        assert set(plain.changed) == {new_href} and plain.removed == (gone.remote_id,)

        rich = connector.changes(book, cursor, with_data=True)
        assert (rich.changed, rich.removed) == (plain.changed, plain.removed)
        fetched = {i.remote_id: i for i in rich.fetched}
        missing = [h for h in rich.changed if h not in fetched]
        fetched.update({i.remote_id: i for i in connector.fetch(book, missing)})
        assert set(fetched) == {new_href}
        item = fetched[new_href]
        assert isinstance(item, RemoteContact) and item.fields.given_name == "Grace"
        assert item.etag == rich.changed[new_href]
        if isinstance(dav_server, RadicaleServer):
            assert rich.fetched, "Radicale sends address-data inside sync-collection"
        assert kept.remote_id not in rich.changed

    def test_snapshot_streams_every_card_after_a_cursor_that_misses_nothing(
        self, dav_server: DavServer, connector: CardDAVConnector, book: str
    ) -> None:
        written = [connector.create(book, ADA, _uid()) for _ in range(3)]
        snapshot = connector.snapshot(book)
        assert snapshot.complete and snapshot.cursor and snapshot.changed == {}
        # A card changed after the cursor was taken, before the stream is read: it may or
        # may not be in the stream, and it is reported after the cursor either way.
        uid = _uid()
        late = book + f"{uid}.vcf"
        dav_server.put_card(late, vcard(uid, "Late Comer"))
        assert snapshot.stream is not None
        items = {i.remote_id: i for i in snapshot.stream}
        assert {w.remote_id: w.etag for w in written}.items() <= {
            h: i.etag for h, i in items.items()
        }.items()
        assert all(isinstance(i, RemoteContact) and i.collection == book for i in items.values())
        after = connector.changes(book, snapshot.cursor)
        assert late in after.changed and not after.removed

    def test_refused_cursor_is_cursor_expired(self, connector: CardDAVConnector, book: str) -> None:
        with pytest.raises(CursorExpired):
            connector.changes(book, "http://radicale.org/ns/sync/" + "0" * 64)

    def test_update_keeps_unmapped_properties_and_checks_etag(
        self, dav_server: DavServer, connector: CardDAVConnector, book: str
    ) -> None:
        uid = _uid()
        href = book + f"{uid}.vcf"
        dav_server.put_card(href, vcard(uid, "Alan Turing", extra="X-FAVOURITE-MACHINE:Enigma"))
        [item] = connector.fetch(book, [href])
        assert isinstance(item, RemoteContact)
        changed = LocalContact(fields=dataclasses.replace(item.fields, job_title="Codebreaker"))
        result = connector.update(href, item.etag, changed, item.raw)
        assert result.remote_id == href and result.etag != item.etag
        with pytest.raises(PreconditionFailed):
            connector.update(href, item.etag, changed, item.raw)
        [after] = connector.fetch(book, [href])
        assert isinstance(after, RemoteContact)
        assert after.etag == result.etag
        assert after.fields.job_title == "Codebreaker" and after.fields.given_name == "Alan"
        assert after.raw and b"X-FAVOURITE-MACHINE:Enigma" in after.raw
        assert after.uid == uid

    def test_update_without_raw_reads_the_card_first(
        self, dav_server: DavServer, connector: CardDAVConnector, book: str
    ) -> None:
        uid = _uid()
        href = book + f"{uid}.vcf"
        etag = dav_server.put_card(href, vcard(uid, "Edsger Dijkstra", extra="X-KEEP:yes"))
        contact = LocalContact(fields=ContactFields(given_name="Edsger", surname="Dijkstra"))
        result = connector.update(href, etag, contact, None)
        [after] = connector.fetch(book, [href])
        assert isinstance(after, RemoteContact) and after.etag == result.etag
        assert after.uid == uid and after.raw and b"X-KEEP:yes" in after.raw

    def test_delete_checks_etag_and_tolerates_missing(
        self, dav_server: DavServer, connector: CardDAVConnector, book: str
    ) -> None:
        uid = _uid()
        written = connector.create(book, ADA, uid)
        newer = dav_server.put_card(written.remote_id, vcard(uid, "Changed Elsewhere"))
        with pytest.raises(PreconditionFailed):
            connector.delete(written.remote_id, written.etag)
        connector.delete(written.remote_id, newer)
        assert connector.changes(book, None).changed == {}
        connector.delete(written.remote_id, newer)

    @pytest.mark.parametrize(
        ("version", "kind", "member"),
        [
            ("3.0", "X-ADDRESSBOOKSERVER-KIND:group", "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:"),
            ("4.0", "KIND:group", "MEMBER:urn:uuid:"),
        ],
    )
    def test_group_cards_come_as_groups(
        self,
        dav_server: DavServer,
        connector: CardDAVConnector,
        book: str,
        version: str,
        kind: str,
        member: str,
    ) -> None:
        person = connector.create(book, ADA, _uid())
        [ada] = connector.fetch(book, [person.remote_id])
        assert isinstance(ada, RemoteContact) and ada.uid
        group_uid = _uid()
        card = (
            f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{group_uid}\r\nFN:Inventors\r\n"
            f"N:Inventors;;;;\r\n{kind}\r\n{member}{ada.uid}\r\nEND:VCARD\r\n"
        ).encode()
        href = book + f"{group_uid}.vcf"
        dav_server.put_card(href, card)
        listing = connector.changes(book, None)
        items = {i.remote_id: i for i in connector.fetch(book, listing.changed)}
        group = items[href]
        assert isinstance(group, RemoteGroup)
        assert (group.name, group.member_uids, group.collection) == ("Inventors", (ada.uid,), book)
        assert group.etag == listing.changed[href]
        assert isinstance(items[person.remote_id], RemoteContact)


class TestEtagListingFallback:
    def test_ctag_cursor_skips_listing_until_something_changes(
        self, dav_server: DavServer, book: str
    ) -> None:
        conn = CardDAVConnector(
            dav_server.base_url,
            dav_server.username,
            dav_server.password,
            use_sync_collection=False,
        )
        try:
            assert not conn.capabilities().incremental
            written = conn.create(book, ADA, _uid())
            first = conn.changes(book, None)
            assert first.complete and first.changed == {written.remote_id: written.etag}
            assert first.cursor and first.cursor.startswith("ctag:")

            same = conn.changes(book, first.cursor)
            assert (same.cursor, same.changed, same.complete) == (first.cursor, {}, False)

            uid = _uid()
            etag = dav_server.put_card(book + f"{uid}.vcf", vcard(uid, "Barbara Liskov"))
            later = conn.changes(book, first.cursor)
            assert later.complete and later.cursor != first.cursor
            assert later.changed == {written.remote_id: written.etag, book + f"{uid}.vcf": etag}
        finally:
            conn.close()


def test_verify_with_wrong_password_is_invalid_credentials(
    radicale_htpasswd: RadicaleServer,
) -> None:
    server = radicale_htpasswd
    bad = CardDAVConnector(server.base_url, "test", "wrong")
    with pytest.raises(InvalidCredentials):
        bad.verify()
    bad.close()
    good = CardDAVConnector(server.base_url, "test", "secret")
    good.verify()
    good.close()
