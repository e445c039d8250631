"""Contacts: list, read, create, update, delete."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from threading import Lock
from typing import Any, NamedTuple

import orjson

from rolodex.domain.account import Account
from rolodex.domain.contact import SOURCE_INBOX, Contact, ContactFields
from rolodex.domain.documents import absolute
from rolodex.domain.errors import InvalidContact, NoSuchGroup, Violation
from rolodex.domain.etags import ContactChanged, contact_etag, if_match
from rolodex.domain.ids import new_id
from rolodex.domain.normalize import index_terms
from rolodex.domain.profiles import profile_for
from rolodex.domain.query import MAX_OFFSET, ContactFilter, ListQuery
from rolodex.domain.wire import (
    ContactPatch,
    contact_document,
    contact_from_document,
    parse_contact_patch,
)
from rolodex.service.positions import Positions
from rolodex.service.readcache import ReadCache
from rolodex.service.records import CONTACT, record_change, refuse_if_disconnected
from rolodex.store import Store, Tx, paging
from rolodex.store.contacts import ContactRow, NewContact, storable
from rolodex.store.database import Busy
from rolodex.store.hot import HotReads, PageBody
from rolodex.store.paging import PageEnd

# Default bound of the in-process read cache (Settings.read_cache_mb).
DEFAULT_READ_CACHE_BYTES = 128 * 1024 * 1024

# How long a remembered page end may continue a list that has changed since: a client
# paging through a list asks for the next page within moments, while an offset asked for
# much later is more likely a fresh jump that means plain OFFSET.
CURSOR_TTL_SECONDS = 300.0


class PageCursors:
    """Where each page of a list ended, so the next page continues from there.

    The SDKs page with ``offset``. Served as a plain OFFSET, a contact deleted (or changed
    out of a filter) before a page the client already has shifts every later position, and
    the next page skips one; a deep OFFSET also costs a walk over every skipped key. A page
    that starts where an earlier page ended (same account and filter) instead seeks
    straight past that page's last key: the client gets what follows what it has seen,
    whatever was created (new contacts come last), deleted or changed in between. In the
    generation the page was read in, this is exactly OFFSET; across later changes it is
    honoured for ``CURSOR_TTL_SECONDS``.

    The decisions live in the database (``rolodex.store.paging``), made once per offset
    and account generation by whichever process asks first and never changed, so every
    API process behind a load balancer answers an offset alike. Being final, they are
    remembered here without asking again: a walk of an unchanged account costs no query.
    """

    def __init__(
        self,
        store: Store,
        hot: HotReads,
        capacity: int = 65536,
        ttl: float = CURSOR_TTL_SECONDS,
    ) -> None:
        self.store = store
        self.hot = hot
        self._known: OrderedDict[tuple[Any, ...], PageEnd] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl
        self._lock = Lock()
        self._decisions = 0

    def get(self, key: tuple[str, ContactFilter, int], generation: int) -> int | None:
        """The key offset ``key[2]`` continues after at ``generation`` (None: plain)."""
        now = time.time()
        known = self._remembered(key, generation)
        if known is not None:
            return known.after(now)
        account_id, where, offset = key
        found = self.hot.page_end(account_id, _scope(where), offset, generation)
        if found is not None and found.generation == generation:
            return self._remember(key, found).after(now)
        # The first request for this offset in this generation: it continues an earlier
        # generation's page while that is fresh (until it expires), else plain OFFSET.
        if found is not None and now - found.created_at <= self._ttl:
            expires = found.created_at + self._ttl
            decision = PageEnd(generation, found.after_pk, expires, now)
        else:
            decision = PageEnd(generation, None, None, now)
        return self._decide(key, decision).after(now)

    def put(self, key: tuple[str, ContactFilter, int], pk: int, generation: int) -> None:
        """A page read at ``generation`` ended at ``pk``: where offset ``key[2]`` continues
        in it, unless that is decided already."""
        if self._remembered(key, generation) is None:
            self._decide(key, PageEnd(generation, pk, None, time.time()))

    def heard(self, key: tuple[str, ContactFilter, int], decision: PageEnd) -> None:
        """The decision for offset ``key[2]`` at its generation, as read from the
        database with a page: final, so remembered as ``get`` would."""
        self._remember(key, decision)

    def _decide(self, key: tuple[str, ContactFilter, int], decision: PageEnd) -> PageEnd:
        account_id, where, offset = key
        held = self.hot.decide_page_end(account_id, _scope(where), offset, decision)
        if held is None:
            # Other writers hold the database: answer this request with the decision
            # unrecorded (and so unremembered) rather than make it wait for them.
            return decision
        self._decisions += 1
        if self._decisions % PRUNE_EVERY == 0:
            with contextlib.suppress(Busy), self.store.brief_write() as tx:
                before = decision.created_at - self._ttl
                paging.prune(tx.conn, account_id, decision.generation, before)
        return self._remember(key, held)

    def _remembered(self, key: tuple[Any, ...], generation: int) -> PageEnd | None:
        with self._lock:
            entry = (*key, generation)
            found = self._known.get(entry)
            if found is not None:
                self._known.move_to_end(entry)
            return found

    def _remember(self, key: tuple[Any, ...], decision: PageEnd) -> PageEnd:
        with self._lock:
            self._known[(*key, decision.generation)] = decision
            while len(self._known) > self._capacity:
                self._known.popitem(last=False)
        return decision


# Every so many decisions, a process removes its account's stale ones.
PRUNE_EVERY = 256


def _scope(where: ContactFilter) -> str:
    """A list's name in the page ends: the same filter gives the same digest everywhere."""
    return hashlib.blake2b(repr(where).encode(), digest_size=16).hexdigest()


class _CachedPage(NamedTuple):
    body: bytes
    length: int
    last_pk: int | None


def _page_key(query: ListQuery, after: int | None, base: bytes) -> tuple[Any, ...]:
    # A page is fixed by where it starts (a remembered page end, else the offset) and its
    # length, within one generation.
    return ("page", query.limit, query.offset if after is None else None, after, base)


class ContactService:
    def __init__(self, store: Store, *, cache_bytes: int = DEFAULT_READ_CACHE_BYTES) -> None:
        self.store = store
        self.hot = HotReads(store.engine, store.versions())
        self.cursors = PageCursors(store, self.hot)
        self.positions = Positions()
        # Pages of the unfiltered list and single documents, as read in a snapshot of the
        # account's generation (rolodex.service.readcache); 0 bytes turns it off.
        self.cache = ReadCache(cache_bytes)

    # Reads -------------------------------------------------------------------------------

    def page_body(self, account: Account, query: ListQuery, base: bytes) -> bytes:
        """One page as the JSON array of its stored documents, picture URLs made absolute
        under ``base`` (``rolodex.domain.documents``).

        The unfiltered list, the hot read, is answered from the read cache when the account
        has not changed since the page was read. Paging is exactly as uncached: the page
        cursor (``PageCursors``) decides which page is meant, the generation whether the
        cached copy of it still holds. Pages are cached as sent, so under each base URL
        clients use (one, nearly always).
        """
        if not query.filter.is_empty:
            return absolute(b"[" + b",".join(self.page(account, query)) + b"]", base)
        if query.offset > MAX_OFFSET - query.limit:
            # No account holds that many contacts, and where such a page would end
            # (offset + limit, bound in the page's statement) fits no 64-bit integer.
            return b"[]"
        page: _CachedPage | None = None
        read: PageBody | None = None
        if self.cache.enabled:
            generation = self.hot.generation(account.id)
            after = self._after(account.id, query, generation)
            page = self.cache.get(account.id, generation, _page_key(query, after, base))
            if page is None:
                # One statement, one snapshot: the page if it is still of that generation.
                seek, skip = self._seek(account.id, query, generation, after)
                read = self.hot.page_body_at(
                    generation,
                    account.id,
                    query.limit,
                    query.offset,
                    seek,
                    skip,
                    _scope(query.filter),
                )
                if read is not None and read.end is not None:
                    # Decided already (by another process, or before a restart): known
                    # here without writing it again (``PageCursors.put`` below).
                    end = (account.id, query.filter, query.offset + read.length)
                    self.cursors.heard(end, read.end)
        if page is None and read is None:
            # One snapshot for the generation, the cursor it selects and the page, so the
            # page is cached (and its end remembered) under the generation it was read in.
            with self.hot.read() as tx:
                generation = tx.generation(account.id)
                after = self._after(account.id, query, generation)
                seek, skip = self._seek(account.id, query, generation, after)
                read = tx.page_body(account.id, query.limit, query.offset, seek, skip)
        if page is None:
            assert read is not None  # read in one statement, or in the transaction
            self.positions.record(
                account.id, generation, query.offset, after, read.length, read.last_pk
            )
            page = _CachedPage(absolute(read.body, base), read.length, read.last_pk)
            if self.cache.enabled:
                key = _page_key(query, after, base)
                self.cache.put(account.id, generation, key, page, len(page.body))
        if page.last_pk is not None:
            end = (account.id, query.filter, query.offset + page.length)
            self.cursors.put(end, page.last_pk, generation)
        return page.body

    def _seek(
        self, account_id: str, query: ListQuery, generation: int, after: int | None
    ) -> tuple[int | None, int]:
        """Where to read the page from: after ``after``; for plain OFFSET, after the nearest
        end known at its exact position, skipping the rest (the same rows, cheaper)."""
        if after is None and query.offset:
            nearest = self.positions.nearest(account_id, generation, query.offset)
            if nearest is not None:
                return nearest
        return after, 0

    def _after(self, account_id: str, query: ListQuery, generation: int) -> int | None:
        """Where a remembered page ended, if this page continues it."""
        if not query.offset:
            return None
        return self.cursors.get((account_id, query.filter, query.offset), generation)

    def page(self, account: Account, query: ListQuery) -> list[bytes]:
        """The stored documents of one page, in creation order."""
        rows = self._page(account, query, ids_only=False)
        return [row.doc for row in rows]

    def ids(self, account: Account, query: ListQuery) -> list[str]:
        """The ids of one page, paged exactly like ``page`` (Node pages ``view=ids``)."""
        return [row.id for row in self._page(account, query, ids_only=True)]

    def _page(self, account: Account, query: ListQuery, *, ids_only: bool) -> list[ContactRow]:
        # The unfiltered list is the hot read: raw DBAPI (rolodex.store.hot), same queries.
        reads = self.hot.read() if query.filter.is_empty else self.store.read()
        with reads as tx:
            generation = tx.accounts.generation(account.id)
            after = self._after(account.id, query, generation)
            rows = tx.contacts.page(
                account.id,
                query.filter,
                query.limit,
                query.offset,
                after_pk=after,
                documents=not ids_only,
            )
        if rows:
            end = (account.id, query.filter, query.offset + len(rows))
            self.cursors.put(end, rows[-1].pk, generation)
        return rows

    def count(self, account: Account, where: ContactFilter) -> int:
        with self.store.read() as tx:
            if where.is_empty:
                return tx.accounts.get(account.id).contact_count
            return tx.contacts.count(account.id, where)

    def document(self, account: Account, contact_id: str, base: bytes) -> bytes:
        """One contact's stored document, its picture URL made absolute under ``base``;
        cached as sent, like pages."""
        return self.tagged_document(account, contact_id, base)[0]

    def tagged_document(
        self, account: Account, contact_id: str, base: bytes
    ) -> tuple[bytes, bytes]:
        """``document`` and its entity tag (``rolodex.domain.etags``), cached together."""
        if not self.cache.enabled or not storable(contact_id):
            with self.hot.read() as tx:
                stored = tx.get(account.id, contact_id).doc
            return absolute(stored, base), contact_etag(stored)
        generation = self.hot.generation(account.id)
        key = ("doc", contact_id, base)
        found: tuple[bytes, bytes] | None = self.cache.get(account.id, generation, key)
        if found is None:
            # Read after the generation, so at least as new as it: a write committed in
            # between has moved the generation on, and requests that start after it never
            # look under this one again.
            stored = self.hot.document(account.id, contact_id)
            found = (absolute(stored, base), contact_etag(stored))
            self.cache.put(account.id, generation, key, found, len(found[0]) + len(found[1]))
        return found

    # Writes ------------------------------------------------------------------------------

    def create(self, account: Account, body: dict[str, Any]) -> bytes:
        patch = parse_contact_patch(body)
        fields = patch.apply(ContactFields())
        now = time.time()
        with self.store.write(account.id) as tx:
            refuse_if_disconnected(tx, account)
            group_ids = self._groups_after(tx, account, (), patch)
            _check(account, fields, group_ids)
            contact = Contact(
                id=new_id(), account_id=account.id, fields=fields, group_ids=group_ids
            )
            doc = contact_document(contact, tx.groups.by_id(account.id, group_ids))
            terms = frozenset(index_terms(fields))
            # Writes only, from here: one round trip while every other writer of the
            # account waits for this one's lock.
            with tx.together():
                seq = tx.accounts.allocate(account.id, new_contacts=1)
                new = NewContact(pk=seq, id=contact.id, doc=doc, terms=terms, group_ids=group_ids)
                tx.contacts.insert(account.id, new, now)
                record_change(
                    tx,
                    account,
                    seq,
                    CONTACT,
                    contact.id,
                    "create",
                    now,
                    push="create",
                    fields=_touched(patch),
                )
        return doc

    def update(
        self,
        account: Account,
        contact_id: str,
        body: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> bytes:
        """The contact with ``body`` applied; with ``if_match`` (an ``If-Match`` header),
        only if that names its current version (else ``ContactChanged``)."""
        patch = parse_contact_patch(body)
        now = time.time()
        with self.store.write(account.id) as tx:
            # Read under the account's lock, never before it: a row read unlocked may be
            # changed by another writer before this one writes it back (rolodex.store).
            row = tx.contacts.get(account.id, contact_id, for_update=True)
            _precondition(row.id, row.doc, if_match)
            refuse_if_disconnected(tx, account)
            current = contact_from_document(orjson.loads(row.doc))
            refuse_read_only(current.source)
            fields = patch.apply(current.fields)
            group_ids = self._groups_after(tx, account, current.group_ids, patch)
            _check(account, fields, group_ids, before=(current.fields, len(current.group_ids)))
            updated = Contact(
                id=current.id,
                account_id=account.id,
                fields=fields,
                group_ids=group_ids,
                has_picture=current.has_picture,
                source=current.source,
            )
            doc = contact_document(updated, tx.groups.by_id(account.id, updated.group_ids))
            if doc == row.doc:
                return doc  # an SDK re-saving what it read: nothing to log or push
            terms = frozenset(index_terms(fields))
            with tx.together():  # as in create
                seq = tx.accounts.allocate(account.id)
                tx.contacts.update(account.id, row.pk, doc, terms, group_ids, now)
                record_change(
                    tx,
                    account,
                    seq,
                    CONTACT,
                    contact_id,
                    "modify",
                    now,
                    push="update",
                    fields=_touched(patch),
                )
        return doc

    def delete(self, account: Account, contact_id: str, *, if_match: str | None = None) -> None:
        now = time.time()
        with self.store.write(account.id) as tx:
            row = tx.contacts.get(account.id, contact_id, for_update=True)
            _precondition(row.id, row.doc, if_match)
            refuse_read_only(contact_from_document(orjson.loads(row.doc)).source)
            refuse_if_disconnected(tx, account)
            seq = tx.accounts.allocate(account.id)
            tx.contacts.delete(account.id, contact_id)
            tx.pictures.delete(account.id, contact_id)
            tx.accounts.add_contacts(account.id, -1)
            record_change(tx, account, seq, CONTACT, contact_id, "delete", now, push="delete")

    def _groups_after(
        self, tx: Tx, account: Account, current: tuple[str, ...], patch: ContactPatch
    ) -> tuple[str, ...]:
        """Memberships after the write: ``group`` adds one (or moves the contact, where a
        contact lives in exactly one folder). Groups echoed back without ids change nothing."""
        if patch.group_id is None:
            return current
        try:
            tx.groups.get(account.id, patch.group_id)
        except NoSuchGroup:
            raise InvalidContact(
                [Violation("group", "exists", f"group {patch.group_id!r} does not exist")]
            ) from None
        if profile_for(account.provider).max_groups_per_contact == 1:
            return (patch.group_id,)
        return tuple(dict.fromkeys((*current, patch.group_id)))


def _check(
    account: Account,
    fields: ContactFields,
    group_ids: tuple[str, ...],
    before: tuple[ContactFields, int] | None = None,
) -> None:
    """Refuse a write that breaks the provider's rules.

    On an update, what the stored contact already broke is let through: a provider may hold
    what it cannot accept through its API, and the SDKs save whole objects, so otherwise such
    a contact could never be saved again, not even to change an unrelated field.
    """
    profile = profile_for(account.provider)
    violations = profile.violations(fields, len(group_ids))
    if violations and before is not None:
        already = set(profile.violations(*before))
        violations = [v for v in violations if v not in already]
    if violations:
        raise InvalidContact(violations)


def _precondition(contact_id: str, stored_doc: bytes, header: str | None) -> None:
    if not if_match(header, contact_etag(stored_doc)):
        raise ContactChanged(contact_id)


def _touched(patch: ContactPatch) -> tuple[str, ...]:
    names = tuple(patch.values)
    return (*names, "groups") if patch.group_id is not None else names


def refuse_read_only(source: str) -> None:
    """People a provider saved from mail (v2's ``source: "inbox"``, Google's "Other
    contacts") are the provider's, read-only: a write to one is refused, saying why."""
    if source == SOURCE_INBOX:
        raise InvalidContact(
            [
                Violation(
                    "source",
                    "read_only",
                    'contacts with source "inbox" (people the provider saved from mail, '
                    "Google's Other contacts) are read-only; add the person to the address "
                    "book at the provider to edit them",
                )
            ]
        )
