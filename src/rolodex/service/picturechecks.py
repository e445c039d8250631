"""Pictures checked apart from their contacts, for providers whose listings and change feed
carry none (Graph: ``Capabilities.picture_backfill``).

A first sync of such an account reads no pictures (one request per contact would multiply
its cost), and a picture changed there alone is no change in the feed. So each link records
when its contact's picture was last checked (``contact_remotes.picture_checked_at``, null:
never), and every sync round checks a few more (``rolodex.sync.engine``): the never checked
first, then the oldest checks again. The record is written with what the check found, in
one transaction, so a round stopped part way (a crash, a lost lease, a throttled provider)
resumes where it stopped. Called through ``Mirror``, in its transactions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import orjson

from rolodex.domain.account import Account
from rolodex.domain.contact import Picture
from rolodex.domain.remote import RemotePicture
from rolodex.domain.wire import contact_document, contact_from_document
from rolodex.service.records import CONTACT
from rolodex.store import Tx


def due(
    tx: Tx, account_id: str, limit: int, checked_before: float
) -> tuple[list[tuple[str, str]], int]:
    """Up to ``limit`` (contact id, remote id) whose picture is due a check (the never
    checked first, then those checked before ``checked_before``, oldest first), and how
    many contacts have never had theirs checked."""
    never = tx.remotes.pictures_never_checked(account_id, limit)
    if len(never) == limit:
        return never, tx.remotes.count_pictures_never_checked(account_id)
    again = tx.remotes.pictures_checked_before(account_id, checked_before, limit - len(never))
    return never + again, len(never)


def apply(tx: Tx, account: Account, found: Sequence[tuple[str, RemotePicture]], now: float) -> int:
    """Make the local copies' pictures what the checks found, and record the checks;
    returns how many copies changed (each a "modify" in the change log). A contact with
    local writes still waiting is left alone and unrecorded: the push may be writing its
    picture, and a later round checks it again."""
    aid = account.id
    ids = [contact_id for contact_id, _ in found]
    waiting = tx.outbox.with_pending(aid, ids)
    rows = tx.contacts.get_many(aid, ids)
    groups = None
    checked: list[str] = []
    changed = 0
    for contact_id, picture in found:
        if contact_id in waiting:
            continue
        checked.append(contact_id)
        row = rows.get(contact_id)
        if row is None or picture.refused is not None or not _store(tx, aid, contact_id, picture):
            continue  # (refused: the picture held stays, and is checked again later)
        contact = contact_from_document(orjson.loads(row.doc))
        doc = row.doc
        has_picture = picture.data is not None
        if contact.has_picture != has_picture:
            groups = tx.groups.by_id(aid) if groups is None else groups
            doc = contact_document(dataclasses.replace(contact, has_picture=has_picture), groups)
        tx.contacts.set_document(aid, row.pk, doc, now)
        tx.changes.append(aid, tx.accounts.allocate(aid), CONTACT, contact_id, "modify", now)
        changed += 1
    tx.remotes.pictures_checked(aid, checked, now)
    return changed


def _store(tx: Tx, account_id: str, contact_id: str, found: RemotePicture) -> bool:
    """Store the picture found (or remove the one held); False when it is the one held."""
    picture = None
    if found.data is not None:
        picture = Picture.of(found.data, found.content_type or "image/jpeg")
    return tx.pictures.replace(account_id, contact_id, picture)
