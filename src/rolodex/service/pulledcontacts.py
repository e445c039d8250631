"""Contacts pulled from a provider, applied to their local copies.

One sync's batch at a time, in the caller's transaction (``rolodex.service.mirror.Mirror``
takes the account's row lock first, as every write path does): the contact rows, their
index rows, the change log and the remote links are written together. What a provider
holds is shown as it is (no provider rules are checked), and is never queued for the
provider again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import orjson

from rolodex.domain.account import Account
from rolodex.domain.contact import Contact, Group, Picture
from rolodex.domain.errors import NoSuchContact
from rolodex.domain.ids import new_id
from rolodex.domain.remote import UNKNOWN_ETAG, RemoteContact, RemoteLink
from rolodex.domain.wire import contact_document, contact_from_document
from rolodex.service import pulledgroups
from rolodex.service.records import CONTACT
from rolodex.store import Tx
from rolodex.store.contacts import ContactRow, NewContact


def apply(tx: Tx, account: Account, items: Sequence[RemoteContact], now: float) -> int:
    """Create or update the local copies of remote contacts; returns how many changed.

    A contact with local writes still waiting for the provider is left alone: the push
    merges the two, and the next pull brings the result.

    Batch-oriented: the links, the waiting writes and the current rows of the batch are
    read with a few queries, and the new rows are written with one statement per table
    (an initial sync of thousands of cards spent most of its time in per-contact SQL).
    The outcome is that of applying the items one after the other, in order.
    """
    changed = 0
    aid = account.id
    links, rows = tx.remotes.linked_rows(aid, (i.remote_id for i in items))
    waiting = tx.outbox.with_pending(aid, (link.contact_id for link in links.values()))
    groups, linked, card_groups = pulledgroups.group_links(tx, aid)
    first = tx.accounts.allocate(aid, len(items))
    inserts: list[NewContact] = []
    updates: dict[int, NewContact] = {}
    log: list[tuple[int, str, str, str]] = []
    new_links: dict[str, RemoteLink] = {}
    old_links: dict[str, RemoteLink] = {}
    for offset, item in enumerate(items):
        seq = first + offset
        link = links.get(item.remote_id)
        if link is None and item.previous_ids:
            link = _previous_link(tx, aid, item)
            if link is not None and tx.outbox.has_pending(aid, link.contact_id):
                # Left to the push, but under its new remote id (the old etag
                # makes the push re-read it and merge).
                waiting.add(link.contact_id)
                moved = dataclasses.replace(
                    link, collection=item.collection, remote_id=item.remote_id
                )
                old_links[link.contact_id] = moved
                # A later item of the batch under the new id (a listing's, read after the
                # direct read that learnt the new id) is this contact's too.
                links[item.remote_id] = moved
            if link is not None:
                rows.update(tx.contacts.get_many(aid, [link.contact_id]))
        if link is None and _is_moving(tx, aid, item):
            continue
        if link is None and _is_own_create(tx, aid, item):
            link = _claim(tx, account, item, seq, now)
            if link is None:
                continue
            if tx.outbox.has_pending(aid, link.contact_id):
                waiting.add(link.contact_id)
            rows.update(tx.contacts.get_many(aid, [link.contact_id]))
        if link is not None and link.contact_id in waiting:
            continue
        group_ids = pulledgroups.contact_groups(tx, account, item, groups, linked, now)
        if link is None:
            new = _new(tx, account, item, group_ids, groups, seq)
            inserts.append(new)
            log.append((seq, CONTACT, new.id, "create"))
            rows[new.id] = ContactRow(new.pk, new.id, new.doc)
            contact_id = new.id
            changed += 1
        else:
            contact_id = link.contact_id
            row = rows.get(contact_id)
            if row is not None:
                update = _updated(tx, account, item, row, group_ids, card_groups, groups)
                if update is not None:
                    updates[row.pk] = update
                    rows[contact_id] = ContactRow(row.pk, contact_id, update.doc)
                    log.append((seq, CONTACT, contact_id, "modify"))
                    changed += 1
        put = RemoteLink(contact_id, item.collection, item.remote_id, item.uid, item.etag, item.raw)
        links[item.remote_id] = put
        if link is None:
            new_links[contact_id] = put
        else:
            old_links[contact_id] = put
    if inserts:
        tx.contacts.insert_many(aid, inserts, now)
        tx.accounts.add_contacts(aid, len(inserts))
    tx.contacts.update_many(aid, list(updates.values()), now)
    tx.changes.append_many(aid, log, now)
    tx.remotes.insert_many(aid, new_links.values())
    tx.remotes.update_many(aid, old_links.values())
    return changed


def _claim(
    tx: Tx, account: Account, item: RemoteContact, seq: int, now: float
) -> RemoteLink | None:
    """Link an item made by a create of our own whose reply was lost to its contact.

    The link is recorded even while writes wait: a later local delete must reach the
    item. Its etag is left unknown, so the next push re-reads the item and re-applies
    the local change (the item may have been edited there since). When the contact was
    deleted here meanwhile, the item is queued for deletion (None: nothing to apply).
    """
    contact_id = item.rolodex_id
    assert contact_id is not None
    link = RemoteLink(contact_id, item.collection, item.remote_id, item.uid, UNKNOWN_ETAG, item.raw)
    if _exists(tx, account.id, contact_id):
        tx.remotes.put(account.id, link)
        return link
    tx.remotes.put(account.id, dataclasses.replace(link, etag=item.etag))
    tx.outbox.enqueue(account.id, seq, CONTACT, contact_id, "delete", (), now)
    return None


def _new(
    tx: Tx,
    account: Account,
    item: RemoteContact,
    group_ids: tuple[str, ...],
    groups: dict[str, Group],
    seq: int,
) -> NewContact:
    """The row of a new local copy (its picture is stored now, the row by the caller)."""
    contact = Contact(
        id=new_id(),
        account_id=account.id,
        fields=item.fields,
        group_ids=group_ids,
        has_picture=item.picture is not None,
        source=item.source,
    )
    if item.picture is not None:
        tx.pictures.put(account.id, contact.id, _picture(item))
    return NewContact(
        pk=seq,
        id=contact.id,
        doc=contact_document(contact, groups),
        terms=item.index_terms(),
        group_ids=group_ids,
        source=item.source,
    )


def update(
    tx: Tx,
    account: Account,
    item: RemoteContact,
    contact_id: str,
    group_ids: tuple[str, ...],
    card_groups: set[str],
    groups: dict[str, Group],
    seq: int,
    now: float,
) -> bool:
    """Make one contact's local copy what the provider holds (a write merged with a change
    made there, ``Mirror.pushed``); False when the contact is gone or nothing changed."""
    try:
        row = tx.contacts.get(account.id, contact_id)
    except NoSuchContact:
        return False
    new = _updated(tx, account, item, row, group_ids, card_groups, groups)
    if new is None:
        return False
    tx.contacts.update(account.id, row.pk, new.doc, new.terms, new.group_ids, now)
    tx.changes.append(account.id, seq, CONTACT, contact_id, "modify", now)
    return True


def _updated(
    tx: Tx,
    account: Account,
    item: RemoteContact,
    row: ContactRow,
    group_ids: tuple[str, ...],
    card_groups: set[str],
    groups: dict[str, Group],
) -> NewContact | None:
    """The contact's row as ``item`` makes it (its picture is stored now), or None when
    nothing changed."""
    current = contact_from_document(orjson.loads(row.doc))
    # Memberships in group cards are the group cards' business (``Mirror.apply_groups``).
    kept = tuple(g for g in current.group_ids if g in card_groups)
    if item.picture_checked:
        # None held and none there: no row to delete (has_picture follows the row).
        picture_changed = (item.picture is not None or current.has_picture) and (
            _sync_picture(tx, account.id, row.id, item)
        )
        has_picture = item.picture is not None
    else:
        # It came without its picture (Graph's delta): the one held stays, until a
        # picture check says otherwise (rolodex.service.picturechecks).
        picture_changed, has_picture = False, current.has_picture
    updated = dataclasses.replace(
        current,
        fields=item.fields,
        group_ids=tuple(dict.fromkeys((*group_ids, *kept))),
        has_picture=has_picture,
    )
    doc = contact_document(updated, groups)
    if doc == row.doc and not picture_changed:
        return None
    return NewContact(
        pk=row.pk,
        id=row.id,
        doc=doc,
        terms=item.index_terms(),
        group_ids=updated.group_ids,
        # (The row's membership rows are those of its document's groups.)
        same_groups=set(updated.group_ids) == set(current.group_ids),
    )


def _sync_picture(tx: Tx, account_id: str, contact_id: str, item: RemoteContact) -> bool:
    picture = None if item.picture is None else _picture(item)
    return tx.pictures.replace(account_id, contact_id, picture)


def _picture(item: RemoteContact) -> Picture:
    assert item.picture is not None
    return Picture.of(item.picture, item.picture_type or "image/jpeg")


def _is_own_create(tx: Tx, account_id: str, item: RemoteContact) -> bool:
    """Whether an item no contact links to was made by a create of Rolodex's own.

    Rolodex creates items carrying the contact's id (``RemoteContact.rolodex_id``). When a
    create landed but its reply was lost (or the process died before recording it), the
    item comes back in a pull before the push has linked it: it is that contact, not a new
    one.
    """
    contact_id = item.rolodex_id
    if not contact_id:
        return False
    if tx.remotes.for_contact(account_id, contact_id) is not None:
        return False  # linked to another item: this one is not its copy
    return _exists(tx, account_id, contact_id) or tx.changes.was_deleted(account_id, contact_id)


def _previous_link(tx: Tx, account_id: str, item: RemoteContact) -> RemoteLink | None:
    """The link of a contact the provider re-keyed (``RemoteContact.previous_ids``): it
    moves to the new remote id (the contact's id stays), unless the new one is linked."""
    found = tx.remotes.for_remote_ids(account_id, item.previous_ids)
    return next(iter(found.values()), None)


def _is_moving(tx: Tx, account_id: str, item: RemoteContact) -> bool:
    """Whether an unlinked item is the new copy of a contact being moved to another
    collection (made there, the old one not yet deleted): the push that moves it links it."""
    contact_id = item.rolodex_id
    if not contact_id:
        return False
    link = tx.remotes.for_contact(account_id, contact_id)
    return (
        link is not None
        and link.remote_id != item.remote_id
        and tx.outbox.has_pending(account_id, contact_id)
    )


def _exists(tx: Tx, account_id: str, contact_id: str) -> bool:
    try:
        tx.contacts.get(account_id, contact_id)
    except NoSuchContact:
        return False
    return True
