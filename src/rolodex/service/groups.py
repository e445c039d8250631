"""Contact groups, and their writes: in Rolodex for local and sandbox accounts, at the
provider too for connected accounts whose provider's groups can be written.

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
from rolodex.domain.errors import FixedGroup, GroupsNotWritable, InvalidGroup, NoSuchContact
from rolodex.domain.ids import new_id
from rolodex.domain.normalize import index_terms
from rolodex.domain.profiles import MAX_SCALAR_LENGTH, GroupModel, profile_for
from rolodex.domain.wire import contact_document, contact_from_document
from rolodex.service.records import CONTACT, GROUP, record_change, refuse_if_disconnected
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
    """The API's group writes. For a connected account whose provider's groups can be
    written (``Profile.groups_writable``) they go to the provider through the outbox, like
    contact writes; groups the provider keeps itself (``GroupModel.fixed``) are refused."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, account: Account) -> list[Group]:
        with self.store.read() as tx:
            return tx.groups.list(account.id)

    def create(self, account: Account, body: dict[str, Any]) -> Group:
        model = _writable(account)
        name = parse_group_name(body)
        # Where groups nest (folders), a new one is made inside the default folder, as
        # Outlook does (POST /me/contactFolders); a folder inside another is made there.
        path = f"{model.default}/{name}" if model.nested and model.default else name
        now = time.time()
        with self.store.write(account.id) as tx:
            refuse_if_disconnected(tx, account)
            return create_group(tx, account, name, now, path=path, push=True)

    def rename(self, account: Account, group_id: str, body: dict[str, Any]) -> Group:
        model = _writable(account)
        name = parse_group_name(body)
        now = time.time()
        with self.store.write(account.id) as tx:
            group = _changeable(tx, account, model, group_id)
            refuse_if_disconnected(tx, account)
            parent, _, _leaf = group.path.rpartition("/")
            path = f"{parent}/{name}" if model.nested and parent else name
            renamed = rename_group(tx, account, group_id, name, now, path=path, push=True)
            for inner in _inside(tx, account, group) if model.nested else ():
                # The folders inside move with it at the provider by themselves.
                inner_path = path + inner.path[len(group.path) :]
                rename_group(tx, account, inner.id, inner.name, now, path=inner_path)
            return renamed

    def delete(self, account: Account, group_id: str) -> None:
        """Removes the group and its memberships; its contacts stay (where every contact
        must be in a group, they move to the default one first)."""
        model = _writable(account)
        now = time.time()
        with self.store.write(account.id) as tx:
            group = _changeable(tx, account, model, group_id)
            refuse_if_disconnected(tx, account)
            if model.nested and _inside(tx, account, group):
                raise InvalidGroup(f"{group.path} holds other groups; delete or move them first")
            if account.is_connected and model.default is not None:
                home = tx.groups.find_by_path(account.id, model.default)
                if home is not None:
                    _move_members(tx, account, group_id, home.id, now)
            delete_group(tx, account, group_id, now, push=True)


def _writable(account: Account) -> GroupModel:
    profile = profile_for(account.provider)
    if account.is_connected and not profile.groups_writable:
        raise GroupsNotWritable(account.provider)
    return profile.groups


def _inside(tx: Tx, account: Account, group: Group) -> list[Group]:
    """The groups nested inside ``group`` (folders in a folder), at any depth."""
    return [g for g in tx.groups.list(account.id) if g.path.startswith(group.path + "/")]


def _changeable(tx: Tx, account: Account, model: GroupModel, group_id: str) -> Group:
    group = tx.groups.get(account.id, group_id)
    why = model.why_fixed(group.path) if account.is_connected else None
    if why is not None:
        raise FixedGroup(group.name, why)
    return group


def create_group(
    tx: Tx,
    account: Account,
    name: str,
    now: float,
    remote_id: str | None = None,
    *,
    path: str | None = None,
    push: bool = False,
) -> Group:
    """``path``: where the group sits among nested ones (a folder inside another,
    "Contacts/Friends"); the name by default. ``push``: a write of the API's, for the
    provider too (the sync side's writes came from the provider)."""
    group = Group(id=new_id(), account_id=account.id, name=name, path=path or name)
    seq = tx.accounts.allocate(account.id)
    tx.groups.insert(group, now, remote_id=remote_id)
    record_change(tx, account, seq, GROUP, group.id, "create", now, push=_push(push, "create"))
    return group


def rename_group(
    tx: Tx,
    account: Account,
    group_id: str,
    name: str,
    now: float,
    *,
    path: str | None = None,
    push: bool = False,
) -> Group:
    tx.groups.get(account.id, group_id)
    group = Group(id=group_id, account_id=account.id, name=name, path=path or name)
    tx.groups.rename(group)
    _rerender(tx, account, group_id, now)
    seq = tx.accounts.allocate(account.id)
    record_change(tx, account, seq, GROUP, group_id, "modify", now, push=_push(push, "update"))
    return group


def delete_group(
    tx: Tx, account: Account, group_id: str, now: float, *, push: bool = False
) -> None:
    group = tx.groups.get(account.id, group_id)
    # The provider's id of the group (and its path, for messages) go with its delete: the
    # row is gone when it is delivered (rolodex.service.grouplinks).
    remote_id, _etag = tx.groups.remote_ids(account.id).get(group_id, (None, None))
    members = [r.id for r in tx.contacts.rows_in_group(account.id, group_id)]
    for contact_id in members:
        set_membership(tx, account, contact_id, group_id, False, now)
    tx.groups.delete(account.id, group_id)
    seq = tx.accounts.allocate(account.id)
    record_change(
        tx,
        account,
        seq,
        GROUP,
        group_id,
        "delete",
        now,
        push=_push(push, "delete"),
        fields=(remote_id, group.path) if remote_id else (),
    )


def _push(push: bool, operation: str) -> str | None:
    return operation if push else None


def _move_members(tx: Tx, account: Account, group_id: str, to_group_id: str, now: float) -> None:
    """Move the group's contacts into another group, at the provider too: a contact of a
    folder is moved to the other folder before the folder is deleted, which would delete
    the contacts in it (DOC contactfolder-delete)."""
    for row in tx.contacts.rows_in_group(account.id, group_id):
        contact = contact_from_document(orjson.loads(row.doc))
        group_ids = tuple(
            dict.fromkeys(to_group_id if g == group_id else g for g in contact.group_ids)
        )
        contact = dataclasses.replace(contact, group_ids=group_ids)
        doc = contact_document(contact, tx.groups.by_id(account.id, group_ids))
        tx.contacts.update(
            account.id, row.pk, doc, frozenset(index_terms(contact.fields)), group_ids, now
        )
        seq = tx.accounts.allocate(account.id)
        record_change(
            tx, account, seq, CONTACT, row.id, "modify", now, push="update", fields=("groups",)
        )


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
