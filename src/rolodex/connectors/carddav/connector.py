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

import dataclasses
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from rolodex.connectors.base import (
    Capabilities,
    ChangeSet,
    Collection,
    Connector,
    LocalContact,
    PermanentError,
    PreconditionFailed,
    RemoteContact,
    RemoteGroup,
    RemoteItem,
    RemoteNotFound,
    WriteResult,
)
from rolodex.connectors.carddav.client import AddressBook, CardDAVClient, CardResource
from rolodex.connectors.carddav.hrefs import canonical_href
from rolodex.domain.vcard import KIND_GROUP, InvalidCard, parse_card, render_card

log = logging.getLogger(__name__)

# Version of cards Rolodex creates: every CardDAV server must accept 3.0, and some clients
# (macOS Contacts) reject 4.0. Updates keep the version of the card they rewrite.
NEW_CARD_VERSION = "3.0"
# Names servers and clients give the main address book, to mark one collection as default.
_DEFAULT_NAMES = ("contacts", "addressbook", "default", "card", "personal")
# From this many cards on, fetch reads the whole book with one addressbook-query.
WHOLE_BOOK_FETCH = 1000
# After this many cards of a stream, the rest is parsed on every core (parsing is most of
# the CPU of a first sync), in chunks of this many.
PARALLEL_PARSE = 500
PARSE_CHUNK = 200
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
                self._item(collection, href, result.changed[href], data)
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
            stream=_parsed(collection, self._client.all_cards(collection)),
        )

    def fetch(self, collection: str, remote_ids: Iterable[str]) -> Iterator[RemoteItem]:
        wanted = list(remote_ids)
        if len(wanted) >= WHOLE_BOOK_FETCH:
            # Many cards (a resync): reading the whole book in one query costs one round
            # trip where multiget would cost one per batch.
            keep = set(wanted)
            cards = (c for c in self._client.all_cards(collection) if c.href in keep)
            yield from _parsed(collection, cards)
            return
        for res in self._client.multiget(collection, wanted):
            item = self._item(collection, res.href, res.etag, res.data)
            if item is not None:
                yield item

    @staticmethod
    def _item(collection: str, href: str, etag: str, data: bytes) -> RemoteItem | None:
        try:
            card = parse_card(data)
        except InvalidCard as exc:
            # One unreadable card must not stop the sync of the others; it stays remote.
            log.warning("skipping unreadable card %s: %s", href, exc)
            return None
        if card.kind == KIND_GROUP:
            return RemoteGroup(
                remote_id=href,
                etag=etag,
                collection=collection,
                name=card.name,
                member_uids=card.member_uids,
                raw=data,
            )
        return RemoteContact(
            remote_id=href,
            etag=etag,
            collection=collection,
            fields=card.fields,
            group_names=card.categories,
            picture=card.photo,
            picture_type=card.photo_type,
            raw=data,
            uid=card.uid or None,
        )

    # --- Writing ------------------------------------------------------------------------------

    def create(self, collection: str, contact: LocalContact, uid: str) -> WriteResult:
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


def _parse_chunk(collection: str, chunk: list[tuple[str, str, bytes]]) -> list[RemoteItem]:
    """In a pool worker: the cards parsed, and the contacts' index terms computed there too
    (phone number parsing is the next largest cost of a first sync after vCard parsing)."""
    items: list[RemoteItem] = []
    for href, etag, data in chunk:
        item = CardDAVConnector._item(collection, href, etag, data)
        if isinstance(item, RemoteContact):
            item = dataclasses.replace(item, terms=item.index_terms())
        if item is not None:
            items.append(item)
    return items


def _parsed(collection: str, cards: Iterator[CardResource]) -> Iterator[RemoteItem]:
    """The cards parsed, in their order: here for a small book, and from the
    ``PARALLEL_PARSE``-th card on by a pool of processes, when there are cores for one."""
    workers = min(os.cpu_count() or 1, 4)
    for n, res in enumerate(cards, 1):
        item = CardDAVConnector._item(collection, res.href, res.etag, res.data)
        if item is not None:
            yield item
        if n == PARALLEL_PARSE and workers > 1:
            yield from _parse_in_parallel(collection, cards, workers)
            return


def _parse_in_parallel(
    collection: str, cards: Iterator[CardResource], workers: int
) -> Iterator[RemoteItem]:
    """The cards parsed by a pool of processes, in their order, while the rest streams in.

    At most two chunks per worker are in flight, so memory stays flat in the book's size.
    The workers start from a fork server (never a fork of this process, whose threads may
    hold locks) and import only the vCard code.
    """
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[Future[list[RemoteItem]]] = deque()
        chunk: list[tuple[str, str, bytes]] = []
        for card in cards:
            chunk.append((card.href, card.etag, card.data))
            if len(chunk) >= PARSE_CHUNK:
                pending.append(pool.submit(_parse_chunk, collection, chunk))
                chunk = []
                while len(pending) > 2 * workers or (pending and pending[0].done()):
                    yield from pending.popleft().result()
        if chunk:
            pending.append(pool.submit(_parse_chunk, collection, chunk))
        while pending:
            yield from pending.popleft().result()


def _last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


if TYPE_CHECKING:

    def _conforms(connector: CardDAVConnector) -> Connector:
        return connector  # mypy checks the class against the Protocol here
