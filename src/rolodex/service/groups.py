"""Contact groups. For accounts whose groups live in Rolodex they can be written too."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from rolodex.domain.account import Account
from rolodex.domain.contact import Contact, Group
from rolodex.domain.errors import GroupsNotWritable, InvalidGroup
from rolodex.domain.ids import new_id
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
        group = Group(id=new_id(), account_id=account.id, name=name, path=name)
        with self.store.write() as tx:
            seq = tx.accounts.allocate(account.id)
            tx.groups.insert(group, now)
            record_change(tx, account, seq, GROUP, group.id, "create", now)
        return group

    def rename(self, account: Account, group_id: str, body: dict[str, Any]) -> Group:
        _writable(account)
        name = parse_group_name(body)
        now = time.time()
        with self.store.write() as tx:
            tx.groups.get(account.id, group_id)
            group = Group(id=group_id, account_id=account.id, name=name, path=name)
            tx.groups.rename(group)
            self._rerender_members(tx, account, group_id, now)
            seq = tx.accounts.allocate(account.id)
            record_change(tx, account, seq, GROUP, group_id, "modify", now)
        return group

    def delete(self, account: Account, group_id: str) -> None:
        """Removes the group and its memberships; its contacts stay."""
        _writable(account)
        now = time.time()
        with self.store.write() as tx:
            tx.groups.get(account.id, group_id)
            members = tx.contacts.rows_in_group(account.id, group_id)
            tx.groups.delete(account.id, group_id)
            groups = tx.groups.by_id(account.id)
            first = tx.accounts.allocate(account.id, len(members) + 1)
            for offset, row in enumerate(members, start=1):
                contact = contact_from_document(orjson.loads(row.doc))
                remaining = tuple(g for g in contact.group_ids if g != group_id)
                contact = _with_groups(contact, remaining)
                tx.contacts.set_document(account.id, row.pk, contact_document(contact, groups), now)
                record_change(tx, account, first + offset, CONTACT, row.id, "modify", now)
            record_change(tx, account, first, GROUP, group_id, "delete", now)

    def _rerender_members(self, tx: Tx, account: Account, group_id: str, now: float) -> None:
        groups = tx.groups.by_id(account.id)
        members = tx.contacts.rows_in_group(account.id, group_id)
        if not members:
            return
        first = tx.accounts.allocate(account.id, len(members))
        for offset, row in enumerate(members):
            contact = contact_from_document(orjson.loads(row.doc))
            tx.contacts.set_document(account.id, row.pk, contact_document(contact, groups), now)
            record_change(tx, account, first + offset, CONTACT, row.id, "modify", now)


def _with_groups(contact: Contact, group_ids: tuple[str, ...]) -> Contact:
    return dataclasses.replace(contact, group_ids=group_ids)


def _writable(account: Account) -> None:
    if account.is_connected:
        raise GroupsNotWritable(account.provider)
