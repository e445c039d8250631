"""Contacts: list, read, create, update, delete."""

from __future__ import annotations

import time
from collections import OrderedDict
from threading import Lock
from typing import Any

import orjson

from rolodex.domain.account import Account
from rolodex.domain.contact import Contact, ContactFields
from rolodex.domain.errors import InvalidContact, NoSuchGroup, Violation
from rolodex.domain.ids import new_id
from rolodex.domain.normalize import index_terms
from rolodex.domain.profiles import profile_for
from rolodex.domain.query import ContactFilter, ListQuery
from rolodex.domain.wire import (
    ContactPatch,
    contact_document,
    contact_from_document,
    parse_contact_patch,
)
from rolodex.service.records import CONTACT, record_change
from rolodex.store import Store, Tx
from rolodex.store.contacts import NewContact


class PageCursors:
    """Remembers where each page of a list ended, so the next page is a keyset seek.

    The SDKs page with ``offset``; a deep OFFSET costs a walk over every skipped key. A page
    that starts where a remembered page ended (same account, filter and generation) seeks
    straight to the last key instead. Creations only append after every existing key, but
    any other change may shift positions, so entries are valid only for the generation they
    were made in.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._entries: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._capacity = capacity
        self._lock = Lock()

    def get(self, key: tuple[Any, ...]) -> int | None:
        with self._lock:
            pk = self._entries.get(key)
            if pk is not None:
                self._entries.move_to_end(key)
            return pk

    def put(self, key: tuple[Any, ...], pk: int) -> None:
        with self._lock:
            self._entries[key] = pk
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


class ContactService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.cursors = PageCursors()

    # Reads -------------------------------------------------------------------------------

    def page(self, account: Account, query: ListQuery) -> list[bytes]:
        """The stored documents of one page, in creation order."""
        with self.store.read() as tx:
            generation = tx.accounts.generation(account.id)
            key = (account.id, query.filter, generation)
            after = self.cursors.get((*key, query.offset)) if query.offset else None
            rows = tx.contacts.page(
                account.id, query.filter, query.limit, query.offset, after_pk=after
            )
        if rows:
            self.cursors.put((*key, query.offset + len(rows)), rows[-1].pk)
        return [row.doc for row in rows]

    def ids(self, account: Account, query: ListQuery) -> list[str]:
        with self.store.read() as tx:
            return tx.contacts.page_ids(account.id, query.filter, query.limit, query.offset)

    def count(self, account: Account, where: ContactFilter) -> int:
        with self.store.read() as tx:
            if where.is_empty:
                return tx.accounts.get(account.id).contact_count
            return tx.contacts.count(account.id, where)

    def document(self, account: Account, contact_id: str) -> bytes:
        with self.store.read() as tx:
            return tx.contacts.get(account.id, contact_id).doc

    def get(self, account: Account, contact_id: str) -> Contact:
        return contact_from_document(orjson.loads(self.document(account, contact_id)))

    # Writes ------------------------------------------------------------------------------

    def create(self, account: Account, body: dict[str, Any]) -> bytes:
        patch = parse_contact_patch(body)
        fields = patch.apply(ContactFields())
        now = time.time()
        with self.store.write() as tx:
            group_ids = self._groups_after(tx, account, (), patch)
            _check(account, fields, group_ids)
            seq = tx.accounts.allocate(account.id)
            contact = Contact(
                id=new_id(), account_id=account.id, fields=fields, group_ids=group_ids
            )
            doc = contact_document(contact, tx.groups.by_id(account.id))
            tx.contacts.insert(
                account.id,
                NewContact(
                    pk=seq,
                    id=contact.id,
                    doc=doc,
                    terms=frozenset(index_terms(fields)),
                    group_ids=group_ids,
                ),
                now,
            )
            tx.accounts.add_contacts(account.id, 1)
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

    def update(self, account: Account, contact_id: str, body: dict[str, Any]) -> bytes:
        patch = parse_contact_patch(body)
        now = time.time()
        with self.store.write() as tx:
            row = tx.contacts.get(account.id, contact_id)
            current = contact_from_document(orjson.loads(row.doc))
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
            doc = contact_document(updated, tx.groups.by_id(account.id))
            if doc == row.doc:
                return doc  # an SDK re-saving what it read: nothing to log or push
            seq = tx.accounts.allocate(account.id)
            tx.contacts.update(
                account.id, row.pk, doc, frozenset(index_terms(fields)), group_ids, now
            )
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

    def delete(self, account: Account, contact_id: str) -> None:
        now = time.time()
        with self.store.write() as tx:
            tx.contacts.get(account.id, contact_id)
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


def _touched(patch: ContactPatch) -> tuple[str, ...]:
    names = tuple(patch.values)
    return (*names, "groups") if patch.group_id is not None else names
