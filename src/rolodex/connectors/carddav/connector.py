"""The CardDAV connector: the ``Connector`` interface over ``CardDAVClient`` and the vCard
mapping of ``rolodex.domain.vcard``.

Identity: a collection id is the address book's canonical URL, a remote id the card's
canonical URL (both as ``CardDAVClient`` returns them). Cards Rolodex creates are named
``<uid>.vcf`` so that a retried create lands on the same href and is recognised.

Groups: ``CATEGORIES`` on a card come as ``RemoteContact.group_names``; group vCards
(``KIND:group`` or Apple's ``X-ADDRESSBOOKSERVER-KIND:group``) come as ``RemoteGroup`` items
whose members are vCard UIDs (``RemoteContact.uid``). Rolodex writes CATEGORIES.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from rolodex.connectors.base import (
    Capabilities,
    ChangeSet,
    Collection,
    Connector,
    LocalContact,
    LocalGroup,
    PermanentError,
    PreconditionFailed,
    RemoteItem,
    RemoteNotFound,
    WriteResult,
)
from rolodex.connectors.carddav import parsing
from rolodex.connectors.carddav.client import AddressBook, CardDAVClient
from rolodex.connectors.carddav.hrefs import canonical_href
from rolodex.domain.vcard import InvalidCard, parse_card, render_card

log = logging.getLogger(__name__)

# Version of cards Rolodex creates: every CardDAV server must accept 3.0, and some clients
# (macOS Contacts) reject 4.0. Updates keep the version of the card they rewrite.
NEW_CARD_VERSION = "3.0"
# Names servers and clients give the main address book, to mark one collection as default.
_DEFAULT_NAMES = ("contacts", "addressbook", "default", "card", "personal")
# From this many cards on, fetch reads the whole book with one addressbook-query.
WHOLE_BOOK_FETCH = 1000
# Prefix of cursors for servers without sync-collection: the ctag seen at the last listing.
_CTAG_CURSOR = "ctag:"


class CardDAVConnector:
    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        use_sync_collection: bool = True,
        client: CardDAVClient | None = None,
    ) -> None:
        """``use_sync_collection=False`` forces etag listings, for servers whose
        sync-collection is advertised but broken."""
        self._client = client or CardDAVClient(url, username, password, transport=transport)
        self._use_sync = use_sync_collection
        self._books: dict[str, AddressBook] | None = None

    def close(self) -> None:
        self._client.close()

    # --- Discovery ----------------------------------------------------------------------------

    def _address_books(self, refresh: bool = False) -> dict[str, AddressBook]:
        if self._books is None or refresh:
            # Light: the books' sync-tokens and ctags are not used from here (``changes``
            # asks for what it needs), and computing them costs Radicale a read of each book.
            self._books = {b.url: b for b in self._client.discover(light=True)}
        return self._books

    def _book(self, collection: str) -> AddressBook:
        book = self._address_books().get(collection)
        if book is None:  # created since discovery, or a URL configured directly
            book = self._client.addressbook(collection)
            self._address_books()[collection] = book
        return book

    def capabilities(self) -> Capabilities:
        books = self._address_books().values()
        incremental = self._use_sync and all(b.supports_sync for b in books)
        return Capabilities(incremental=incremental, groups="categories", pictures=True)

    def verify(self) -> None:
        self._address_books(refresh=True)

    def collections(self) -> list[Collection]:
        books = sorted(self._address_books(refresh=True).values(), key=lambda b: b.url)
        default = next(
            (b.url for b in books if _last_segment(b.url).lower() in _DEFAULT_NAMES),
            books[0].url if books else None,
        )
        return [
            Collection(
                id=b.url, name=b.displayname or _last_segment(b.url), is_default=b.url == default
            )
            for b in books
        ]

    # --- Reading ------------------------------------------------------------------------------

    def changes(self, collection: str, cursor: str | None, *, with_data: bool = False) -> ChangeSet:
        book = self._book(collection)
        if self._use_sync and book.supports_sync and not (cursor or "").startswith(_CTAG_CURSOR):
            result = self._client.sync_collection(collection, cursor, with_data=with_data)
            # Servers may leave address-data out of sync-collection (Xandikos does); those
            # items are not in ``fetched`` and the engine fetches them.
            fetched = (
                parsing.item(collection, href, result.changed[href], data)
                for href, data in result.data.items()
            )
            return ChangeSet(
                collection=collection,
                cursor=result.token,
                changed=result.changed,
                removed=result.removed,
                # A first sync lists every member and never reports removals (RFC 6578 §3.4).
                complete=cursor is None,
                fetched=tuple(item for item in fetched if item is not None),
            )
        # No sync-collection: the ctag says whether anything changed at all, and a full etag
        # listing what. The engine downloads only hrefs whose etag differs from what it holds.
        ctag = self._client.addressbook(collection).ctag
        new_cursor = _CTAG_CURSOR + ctag if ctag else None
        if cursor is not None and new_cursor == cursor:
            return ChangeSet(collection=collection, cursor=cursor)
        etags = self._client.list_etags(collection)
        return ChangeSet(collection=collection, cursor=new_cursor, changed=etags, complete=True)

    def snapshot(self, collection: str) -> ChangeSet:
        parsing.warm_up()  # while the server answers the next two requests
        book = self._book(collection)
        token = (
            self._client.sync_token(collection) if self._use_sync and book.supports_sync else None
        )
        if token is None:
            return self.changes(collection, None)
        # The token alone, then the whole book in one addressbook-query: on Radicale the two
        # cost about half of a sync-collection listing followed by the same query.
        return ChangeSet(
            collection=collection,
            cursor=token,
            complete=True,
            stream=parsing.parsed(collection, self._client.all_cards(collection)),
        )

    def fetch(self, collection: str, remote_ids: Iterable[str]) -> Iterator[RemoteItem]:
        wanted = list(remote_ids)
        if len(wanted) >= WHOLE_BOOK_FETCH:
            # Many cards (a resync): reading the whole book in one query costs one round
            # trip where multiget would cost one per batch.
            keep = set(wanted)
            cards = (c for c in self._client.all_cards(collection) if c.href in keep)
            yield from parsing.parsed(collection, cards)
            return
        for res in self._client.multiget(collection, wanted):
            item = parsing.item(collection, res.href, res.etag, res.data)
            if item is not None:
                yield item

    # --- Writing ------------------------------------------------------------------------------

    def home(self, contact: LocalContact) -> str | None:
        return None  # groups are categories on the card, wherever it lives

    def copies(self, uid: str) -> list[tuple[str, WriteResult]]:
        return []  # cards never move between address books

    def create(
        self, collection: str, contact: LocalContact, uid: str, *, maybe_exists: bool = False
    ) -> WriteResult:
        # Idempotent by itself: the href comes from the uid and is written with
        # If-None-Match, so ``maybe_exists`` needs no look-up first.
        href = canonical_href(collection.rstrip("/") + "/", quote(uid, safe="") + ".vcf")
        data = self._render(contact, uid=uid, base=None)
        try:
            etag = self._client.put(href, data, if_none_match=True)
        except PreconditionFailed:
            return self._existing_create(href, uid)
        return WriteResult(remote_id=href, etag=etag, raw=data)

    def _existing_create(self, href: str, uid: str) -> WriteResult:
        """After a refused create: our own earlier create (a retry after a lost response)
        counts as success; anything else is an error a retry will not fix."""
        try:
            current = self._client.get(href)
        except RemoteNotFound:
            # 412 with nothing there: Radicale's answer to a card over max-resource-size.
            raise PermanentError(f"server refused to create {href} (412)", 412) from None
        try:
            existing_uid = parse_card(current.data).uid
        except InvalidCard:
            existing_uid = ""
        if existing_uid != uid:
            raise PermanentError(f"{href} already holds another card (UID {existing_uid!r})", 412)
        return WriteResult(remote_id=href, etag=current.etag, raw=current.data, existed=True)

    def update(
        self, remote_id: str, etag: str, contact: LocalContact, raw: bytes | None
    ) -> WriteResult:
        if raw is None:
            # The card's UID and the properties Rolodex does not map live only remotely; the
            # If-Match below still guards against writing over a newer version.
            raw = self._client.get(remote_id).data
        try:
            # The base keeps its UID and version; only the mapped properties are rewritten.
            data = self._render(contact, uid="", base=raw)
        except InvalidCard as exc:
            raise PermanentError(f"cannot rewrite unreadable card {remote_id}: {exc}") from exc
        new_etag = self._client.put(remote_id, data, etag=etag)
        return WriteResult(remote_id=remote_id, etag=new_etag, raw=data)

    def delete(self, remote_id: str, etag: str) -> None:
        self._client.delete(remote_id, etag)

    # A CardDAV group is a name on cards, or a group card Rolodex only reads: nothing to
    # write by itself (the carddav profile says groups_writable=False, so the API refuses
    # before anything is queued; these answer an outbox item from before that).

    def create_group(self, group: LocalGroup) -> WriteResult:
        raise _groups_not_writable()

    def find_group(self, path: str) -> WriteResult | None:
        return None  # its groups are names on the cards; none is made here

    def rename_group(self, group: LocalGroup) -> WriteResult:
        raise _groups_not_writable()

    def delete_group(self, group: LocalGroup) -> None:
        raise _groups_not_writable()

    @staticmethod
    def _render(contact: LocalContact, *, uid: str, base: bytes | None) -> bytes:
        return render_card(
            contact.fields,
            uid=uid,
            categories=contact.group_names,
            photo=contact.picture,
            photo_type=contact.picture_type,
            base=base,
            touched=contact.touched,
            version=NEW_CARD_VERSION,
        )


def _groups_not_writable() -> PermanentError:
    return PermanentError(
        "CardDAV groups are names on the contacts; set a contact's groups instead", 400
    )


def _last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


if TYPE_CHECKING:

    def _conforms(connector: CardDAVConnector) -> Connector:
        return connector  # mypy checks the class against the Protocol here
