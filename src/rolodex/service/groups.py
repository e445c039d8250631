"""Contact groups. For accounts whose groups live in Rolodex they can be written too.

Contacts embed their groups in their stored documents, so every change of a group or of a
membership re-renders the documents it touches; the functions taking a ``Tx`` do that inside
the caller's transaction and are shared with the sync side (``service.mirror``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from rolodex.domain.account import Account
from rolodex.domain.contact import Group
from rolodex.domain.errors import GroupsNotWritable, InvalidGroup, NoSuchContact
from rolodex.domain.ids import new_id
from rolodex.domain.normalize import index_terms
from rolodex.domain.profiles import MAX_SCALAR_LENGTH
from rolodex.domain.wire import contact_document, contact_from_document
from rolodex.service.records import CONTACT, GROUP, record_change
from rolodex.store import Store, Tx


def parse_group_name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidGroup("name must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_SCALAR_LENGTH:
        raise InvalidGroup(f"name may be at most {MAX_SCALAR_LENGTH} characters; got {len(name)}")
    if "/" in name:
        raise InvalidGroup("name may not contain '/' (it separates the levels of a path)")
    if "\x00" in name:
        # PostgreSQL text cannot hold NUL; refuse it here, not as a failed INSERT.
        raise InvalidGroup("name may not contain NUL characters")
    return name


class GroupService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, account: Account) -> list[Group]:
        with self.store.read() as tx:
            return tx.groups.list(account.id)

    def create(self, account: Account, body: dict[str, Any]) -> Group:
        _writable(account)
        name = parse_group_name(body)
        now = time.time()
        with self.store.write(account.id) as tx:
            return create_group(tx, account, name, now)

    def rename(self, account: Account, group_id: str, body: dict[str, Any]) -> Group:
        _writable(account)
        name = parse_group_name(body)
        now = time.time()
        with self.store.write(account.id) as tx:
            return rename_group(tx, account, group_id, name, now)

    def delete(self, account: Account, group_id: str) -> None:
        """Removes the group and its memberships; its contacts stay."""
        _writable(account)
        now = time.time()
        with self.store.write(account.id) as tx:
            delete_group(tx, account, group_id, now)


def _writable(account: Account) -> None:
    if account.is_connected:
        raise GroupsNotWritable(account.provider)


def create_group(
    tx: Tx,
    account: Account,
    name: str,
    now: float,
    remote_id: str | None = None,
    *,
    path: str | None = None,
) -> Group:
    """``path``: where the group sits among nested ones (a folder inside another,
    "Contacts/Friends"); the name by default."""
    group = Group(id=new_id(), account_id=account.id, name=name, path=path or name)
    seq = tx.accounts.allocate(account.id)
    tx.groups.insert(group, now, remote_id=remote_id)
    record_change(tx, account, seq, GROUP, group.id, "create", now)
    return group


def rename_group(
    tx: Tx, account: Account, group_id: str, name: str, now: float, *, path: str | None = None
) -> Group:
    tx.groups.get(account.id, group_id)
    group = Group(id=group_id, account_id=account.id, name=name, path=path or name)
    tx.groups.rename(group)
    _rerender(tx, account, group_id, now)
    seq = tx.accounts.allocate(account.id)
    record_change(tx, account, seq, GROUP, group_id, "modify", now)
    return group


def delete_group(tx: Tx, account: Account, group_id: str, now: float) -> None:
    tx.groups.get(account.id, group_id)
    members = [r.id for r in tx.contacts.rows_in_group(account.id, group_id)]
    for contact_id in members:
        set_membership(tx, account, contact_id, group_id, False, now)
    tx.groups.delete(account.id, group_id)
    seq = tx.accounts.allocate(account.id)
    record_change(tx, account, seq, GROUP, group_id, "delete", now)


def set_membership(
    tx: Tx, account: Account, contact_id: str, group_id: str, member: bool, now: float
) -> None:
    try:
        row = tx.contacts.get(account.id, contact_id, for_update=True)
    except NoSuchContact:
        return
    contact = contact_from_document(orjson.loads(row.doc))
    others = tuple(g for g in contact.group_ids if g != group_id)
    group_ids = (*others, group_id) if member else others
    if group_ids == contact.group_ids:
        return
    contact = dataclasses.replace(contact, group_ids=group_ids)
    doc = contact_document(contact, tx.groups.by_id(account.id, contact.group_ids))
    tx.contacts.update(
        account.id, row.pk, doc, frozenset(index_terms(contact.fields)), group_ids, now
    )
    seq = tx.accounts.allocate(account.id)
    record_change(tx, account, seq, CONTACT, contact_id, "modify", now)


def _rerender(tx: Tx, account: Account, group_id: str, now: float) -> None:
    groups = tx.groups.by_id(account.id)
    members = tx.contacts.rows_in_group(account.id, group_id)
    if not members:
        return
    first = tx.accounts.allocate(account.id, len(members))
    for offset, row in enumerate(members):
        contact = contact_from_document(orjson.loads(row.doc))
        tx.contacts.set_document(account.id, row.pk, contact_document(contact, groups), now)
        record_change(tx, account, first + offset, CONTACT, row.id, "modify", now)
