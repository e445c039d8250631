"""Contract tests of the CardDAV client against real Radicale and Xandikos servers."""

from __future__ import annotations

import time
import uuid

import pytest

from rolodex.connectors.base import (
    CursorExpired,
    InvalidCredentials,
    PreconditionFailed,
    TransientError,
)
from rolodex.connectors.carddav.client import CardDAVClient
from rolodex.connectors.carddav.hrefs import canonical_href
from tests.carddav_servers import DavServer, RadicaleServer, vcard


def _uid() -> str:
    return uuid.uuid4().hex


class TestCardDAVClientContract:
    def test_discovery_from_base_url_lists_the_address_book(
        self, dav_server: DavServer, dav_client: CardDAVClient, book: str
    ) -> None:
        default = dav_server.default_addressbook
        books = {b.url: b for b in dav_client.discover()}
        assert {book, default} <= set(books)
        found = books[book]
        assert found.supports_sync
        assert found.displayname and found.displayname.startswith("Book ")
        assert found.sync_token and found.ctag
        # Address books only: Xandikos' principal also owns a calendar.
        assert not [url for url in books if "calendar" in url]

    def test_discovery_from_direct_url_returns_only_that_book(
        self, dav_server: DavServer, book: str
    ) -> None:
        with CardDAVClient(book, dav_server.username, dav_server.password) as client:
            books = client.discover()
        assert [b.url for b in books] == [book]
        assert books[0].supports_sync

    def test_first_sync_lists_every_member(
        self, dav_server: DavServer, dav_client: CardDAVClient, book: str
    ) -> None:
        etags = {}
        for i in range(3):
            uid = _uid()
            etags[book + f"{uid}.vcf"] = dav_server.put_card(
                book + f"{uid}.vcf", vcard(uid, f"Person {i}")
            )
        result = dav_client.sync_collection(book, None)
        assert result.changed == etags
        assert result.removed == ()
        assert result.token
        assert dav_client.list_etags(book) == etags

    def test_incremental_sync_sees_create_update_delete(
        self, dav_server: DavServer, dav_client: CardDAVClient, book: str
    ) -> None:
        keep, change, drop = (book + f"{_uid()}.vcf" for _ in range(3))
        for href, name in ((keep, "Keep Me"), (change, "Change Me"), (drop, "Drop Me")):
            dav_server.put_card(href, vcard(href.rsplit("/", 1)[1][:-4], name))
        first = dav_client.sync_collection(book, None)
        assert set(first.changed) == {keep, change, drop}

        new = book + f"{_uid()}.vcf"
        new_etag = dav_server.put_card(new, vcard(new.rsplit("/", 1)[1][:-4], "New Person"))
        uid = change.rsplit("/", 1)[1][:-4]
        changed_etag = dav_server.put_card(
            change, vcard(uid, "Changed Person"), etag=first.changed[change]
        )
        dav_server.delete_card(drop)

        second = dav_client.sync_collection(book, first.token)
        assert second.changed == {new: new_etag, change: changed_etag}
        assert second.removed == (drop,)
        assert second.token != first.token

        third = dav_client.sync_collection(book, second.token)
        assert (third.changed, third.removed) == ({}, ())

    def test_unknown_token_raises_cursor_expired(
        self, dav_client: CardDAVClient, book: str
    ) -> None:
        real = dav_client.sync_collection(book, None).token
        # Same shape as the server's own tokens, so it fails as unknown, not malformed.
        bogus = real[: -len(real.rsplit("/", 1)[-1])] + "0" * len(real.rsplit("/", 1)[-1])
        with pytest.raises(CursorExpired) as err:
            dav_client.sync_collection(book, bogus)
        assert err.value.collection == book
        with pytest.raises(CursorExpired):
            dav_client.sync_collection(book, "not-a-token")

    def test_multiget_returns_bodies_and_skips_missing(
        self, dav_server: DavServer, dav_client: CardDAVClient, book: str
    ) -> None:
        cards = {}
        for i in range(5):
            uid = _uid()
            href = book + f"{uid}.vcf"
            cards[href] = (dav_server.put_card(href, vcard(uid, f"Multi Get{i}")), uid)
        missing = book + "missing.vcf"
        got = list(dav_client.multiget(book, [*cards, missing], batch_size=2))
        assert {c.href for c in got} == set(cards)
        for card in got:
            etag, uid = cards[card.href]
            assert card.etag == etag
            assert f"UID:{uid}\r\n".encode() in card.data
            assert card.data.startswith(b"BEGIN:VCARD\r\n")
            assert card.data.endswith(b"END:VCARD\r\n")
            assert card.data == dav_client.get(card.href).data.replace(b"\r\n", b"\n").replace(
                b"\n", b"\r\n"
            )

    def test_create_with_if_none_match_refuses_second_create(
        self, dav_client: CardDAVClient, book: str
    ) -> None:
        uid = _uid()
        href = book + f"{uid}.vcf"
        etag = dav_client.put(href, vcard(uid, "Create Once"), if_none_match=True)
        assert etag
        assert dav_client.sync_collection(book, None).changed == {href: etag}
        with pytest.raises(PreconditionFailed) as err:
            dav_client.put(href, vcard(uid, "Create Twice"), if_none_match=True)
        assert err.value.remote_id == href
        assert b"Create Once" in dav_client.get(href).data

    def test_update_with_stale_etag_fails_and_current_etag_succeeds(
        self, dav_server: DavServer, dav_client: CardDAVClient, book: str
    ) -> None:
        uid = _uid()
        href = book + f"{uid}.vcf"
        stale = dav_client.put(href, vcard(uid, "First Name"), if_none_match=True)
        current = dav_server.put_card(href, vcard(uid, "Second Name"))
        with pytest.raises(PreconditionFailed):
            dav_client.put(href, vcard(uid, "Lost Update"), etag=stale)
        newer = dav_client.put(href, vcard(uid, "Third Name"), etag=current)
        assert newer not in (stale, current)
        assert dav_client.list_etags(book) == {href: newer}
        assert b"Third Name" in dav_client.get(href).data

    def test_delete_with_stale_etag_fails_and_missing_is_ok(
        self, dav_server: DavServer, dav_client: CardDAVClient, book: str
    ) -> None:
        uid = _uid()
        href = book + f"{uid}.vcf"
        stale = dav_client.put(href, vcard(uid, "Delete Me"), if_none_match=True)
        current = dav_server.put_card(href, vcard(uid, "Delete Me Later"))
        with pytest.raises(PreconditionFailed):
            dav_client.delete(href, stale)
        assert href in dav_client.list_etags(book)
        dav_client.delete(href, current)
        assert dav_client.list_etags(book) == {}
        dav_client.delete(href, current)  # already gone: success

    def test_server_down_is_transient_and_sync_resumes_after_restart(
        self, dav_server: DavServer, dav_client: CardDAVClient, book: str
    ) -> None:
        uid = _uid()
        href = book + f"{uid}.vcf"
        token = dav_client.sync_collection(book, None).token
        dav_server.stop()
        try:
            with pytest.raises(TransientError):
                dav_client.sync_collection(book, token)
            with pytest.raises(TransientError):
                dav_client.put(href, vcard(uid, "Offline"), if_none_match=True)
        finally:
            dav_server.start()
        etag = dav_server.put_card(href, vcard(uid, "Back Online"))
        assert dav_client.sync_collection(book, token).changed == {href: etag}


def test_radicale_expired_token_raises_cursor_expired() -> None:
    with RadicaleServer(max_sync_token_age=1) as server:
        book = server.new_addressbook()
        with CardDAVClient(book, server.username, server.password, read_retries=0) as client:
            server.put_card(book + "a.vcf", vcard("a", "Token Ager"))
            old = client.sync_collection(book, None).token
            time.sleep(1.2)
            server.put_card(book + "b.vcf", vcard("b", "Token Cleaner"))
            # Radicale drops expired token state when it mints a new token.
            fresh = client.sync_collection(book, None)
            assert set(fresh.changed) == {book + "a.vcf", book + "b.vcf"}
            with pytest.raises(CursorExpired):
                client.sync_collection(book, old)


def test_wrong_password_is_invalid_credentials(radicale_htpasswd: RadicaleServer) -> None:
    server = radicale_htpasswd
    with CardDAVClient(server.base_url, "test", "wrong", read_retries=0) as client:
        with pytest.raises(InvalidCredentials):
            client.discover()
        with pytest.raises(InvalidCredentials):
            client.sync_collection(server.url("/test/"), None)
    with CardDAVClient(server.base_url, "test", "secret") as client:
        assert client.discover() == []  # a principal without address books
        book = client.mkcol_addressbook(server.url("/test/contacts/"), "Contacts")
        assert [b.url for b in client.discover()] == [book]


def test_canonical_href_unifies_escaping() -> None:
    base = "http://h:1/user/book/"
    assert canonical_href(base, "/user/book/a%40b.vcf") == canonical_href(base, "a@b.vcf")
    assert canonical_href(base, "x y.vcf") == "http://h:1/user/book/x%20y.vcf"
    assert canonical_href(base, "http://other/p/?q#f") == "http://other/p/"
