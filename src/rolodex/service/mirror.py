"""The local side of sync: applies what a provider holds, and records what was pushed.

The sync engine calls these; each call is one transaction that writes the contact rows,
their index rows, the change log and the remote links together. Changes applied here came
from the provider, so they are never queued for the provider again. Provider rules are not
checked: what a provider holds is shown as it is. What each transaction does is in the
modules it calls: ``pulledcontacts`` (contacts), ``pulledgroups`` (groups and
memberships), ``grouplinks`` (pushed groups), ``picturechecks`` (pictures read apart).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable, Iterator, Sequence

import orjson

from rolodex.domain.account import Account
from rolodex.domain.contact import Group
from rolodex.domain.errors import LeaseLost, NoSuchContact, NoSuchPicture
from rolodex.domain.profiles import profile_for
from rolodex.domain.remote import (
    GROUP_OBJECT,
    UNKNOWN_ETAG,
    LocalGroup,
    LocalState,
    OutboxItem,
    RemoteContact,
    RemoteGroup,
    RemoteLink,
    RemotePicture,
    WriteResult,
)
from rolodex.domain.wire import contact_from_document
from rolodex.logs import REQUEST_ID
from rolodex.service import grouplinks, picturechecks, pulledcontacts, pulledgroups
from rolodex.service.grouplinks import CARD_GROUP
from rolodex.service.groups import delete_group, rename_group, set_membership
from rolodex.service.records import CONTACT
from rolodex.store import Store, Tx

GroupsRead = tuple[dict[str, Group], dict[str, tuple[str | None, str | None]]]


@dataclasses.dataclass(frozen=True)
class SyncStart:
    """What a sync starts from, read with its lease (``Mirror.start_sync``)."""

    account: Account
    connection: bytes | None  # the account's settings, sealed
    request_id: str | None  # the request that asked for this sync, if one did
    cursors: dict[str, str | None]
    # Whether writes waited for the provider then: a sync whose outbox was empty reads it no
    # more (a write queued since is due for the next sync, which its request makes now).
    pushes_due: bool = True
    # Where the provider's groups are items of their own (labels, folders): the account's
    # groups then (``GroupRepository.with_remotes``), which its first ``provider_groups``
    # compares with the provider's unless the sync wrote something before.
    groups: GroupsRead | None = None


def _status_values(state: str, error: str | None, succeeded: bool) -> dict[str, object]:
    """The account's sync status columns after a sync that ended in ``state``."""
    values: dict[str, object] = {"sync_state": state, "last_error": error}
    if succeeded:
        values["last_synced_at"] = time.time()
    return values


class Mirror:
    """The local side of sync (``rolodex.sync.local.LocalSide``).

    A mirror ``fenced`` by a lease checks, inside every write's own transaction, that the
    lease is still held: a process that lost it (it stalled past its expiry and another took
    over) stops at that write, with nothing of it committed, instead of racing the new
    holder.

    A fenced mirror is one sync's: given the account's cursors as they were when its lease
    was taken (``start_sync``), it keeps them, and a new cursor is written with the sync's
    next write (a cursor written late only repeats a pull, and applying is idempotent), at
    the latest by ``finish_sync``, so that a sync with little to apply commits once or twice
    rather than once per collection. A cursor that did not change is not written.
    """

    def __init__(
        self,
        store: Store,
        lease: tuple[str, str] | None = None,
        cursors: dict[str, str | None] | None = None,
    ) -> None:
        self.store = store
        self._lease = lease  # (account_id, owner)
        self._cursors = cursors  # a sync's: the account's cursors, as they are to be
        self._unwritten: dict[str, str | None] = {}  # collection -> cursor, not written yet
        self._outbox_empty = False  # known empty when the sync started (``SyncStart``)
        self._groups_read: GroupsRead | None = None  # ``SyncStart.groups``, until a write

    def fenced(self, account_id: str, owner: str, start: SyncStart | None = None) -> Mirror:
        """The local side of one sync of the account, under ``owner``'s lease; ``start``:
        what the sync read when it took the lease (its cursors, whether writes wait)."""
        if start is None:
            return Mirror(self.store, (account_id, owner))
        fenced = Mirror(self.store, (account_id, owner), dict(start.cursors))
        fenced._outbox_empty = not start.pushes_due
        fenced._groups_read = start.groups
        return fenced

    @contextlib.contextmanager
    def _write(self, account_id: str | None = None) -> Iterator[Tx]:
        # With ``account_id``: its row is locked first, before anything is read (the lock
        # order of every write path, rolodex.store).
        self._groups_read = None  # what this sync writes may change them
        with self.store.write(account_id) as tx:
            unwritten = self._fence(tx)
            yield tx
        for collection in unwritten:
            if self._unwritten.get(collection, self) == unwritten[collection]:
                del self._unwritten[collection]

    def _fence(self, tx: Tx) -> dict[str, str | None]:
        """Check the lease, and write the cursors waiting to be written; returns those."""
        if self._lease is None:
            return {}
        account_id, owner = self._lease
        if not tx.accounts.holds_lease(account_id, owner, time.time()):
            raise LeaseLost(account_id, owner)
        return self._write_cursors(tx, account_id)

    def _write_cursors(self, tx: Tx, account_id: str) -> dict[str, str | None]:
        """Write the cursors waiting to be written (a sync's); returns those."""
        unwritten = dict(self._unwritten)
        tx.remotes.set_cursors(account_id, unwritten)
        return unwritten

    # Scheduling and status -------------------------------------------------------------

    def due(self, now: float) -> tuple[list[str], list[str]]:
        """Accounts due for a whole sync, and accounts with writes due for the provider."""
        with self.store.read() as tx:
            return tx.accounts.due_for_sync(now), tx.outbox.accounts_due(now)

    def start_sync(
        self, account_id: str, owner: str, seconds: float, *, take_request: bool
    ) -> SyncStart | None:
        """Take the account's lease for a sync, and read in the same transaction what the
        sync starts from; None while another process holds it. ``take_request``: also
        take the id of the request that asked for it (``AccountRepository.sync_start``)."""
        with self.store.write() as tx:
            now = time.time()
            if not tx.accounts.acquire_lease(account_id, owner, now, seconds):
                return None
            account, sealed, request, due = tx.accounts.sync_start(
                account_id, now, take_request=take_request
            )
            groups = None
            if profile_for(account.provider).groups.model != "categories":
                groups = tx.groups.with_remotes(account_id)
            cursors = tx.remotes.cursors(account_id)
            return SyncStart(account, sealed, request, cursors, due, groups)

    def finish_sync(
        self,
        *,
        state: str | None = None,
        error: str | None = None,
        next_sync_at: float | None = None,
        succeeded: bool = False,
    ) -> None:
        """A fenced mirror's sync is over: its cursors not written yet, the account's
        status (unless ``state`` is None: a push alone records none) and the lease given
        back, in one transaction. ``LeaseLost``, with nothing written, if the lease is
        gone."""
        assert self._lease is not None
        account_id, owner = self._lease
        with self.store.write() as tx:
            self._write_cursors(tx, account_id)
            values = {} if state is None else _status_values(state, error, succeeded)
            ended = tx.accounts.end_sync(
                account_id,
                owner,
                time.time(),
                schedule=state is not None,
                next_sync_at=next_sync_at,
                **values,
            )
            if not ended:
                raise LeaseLost(account_id, owner)  # and nothing of it is written
        self._unwritten.clear()

    def flush(self) -> None:
        """Write the cursors not written yet (a sync that stops part way keeps what it
        pulled)."""
        if self._unwritten:
            with self._write():
                pass

    def lease(self, account_id: str, owner: str, seconds: float) -> bool:
        """Take the account's lease, or extend it; False while another process holds it."""
        with self.store.write() as tx:
            return tx.accounts.acquire_lease(account_id, owner, time.time(), seconds)

    def lease_holder(self, account_id: str) -> str | None:
        with self.store.read() as tx:
            return tx.accounts.lease_holder(account_id, time.time())

    def release(self, account_id: str, owner: str) -> None:
        with self.store.write() as tx:
            tx.accounts.release_lease(account_id, owner)

    def request_sync(self, account_id: str) -> bool:
        """Make the account due now; True when a sync of it is running already (it will
        run again after that one). The sync that answers carries the request's id."""
        now = time.time()
        with self.store.write() as tx:
            tx.accounts.request_sync(account_id, now, REQUEST_ID.get())
            return tx.accounts.lease_holder(account_id, now) is not None

    def record_status(
        self,
        account_id: str,
        *,
        state: str,
        error: str | None,
        next_sync_at: float | None,
        succeeded: bool,
    ) -> None:
        with self.store.write() as tx:
            tx.accounts.set_sync_status(account_id, **_status_values(state, error, succeeded))
            if next_sync_at is not None and tx.accounts.sync_request(account_id) is not None:
                next_sync_at = time.time()  # asked for while this one ran: another follows
            tx.accounts.schedule_sync(account_id, next_sync_at)

    # Pull ----------------------------------------------------------------------------------

    def cursor(self, account_id: str, collection: str) -> str | None:
        if self._cursors is not None:
            return self._cursors.get(collection)
        with self.store.read() as tx:
            return tx.remotes.cursor(account_id, collection)

    def cursors(self, account_id: str) -> dict[str, str | None]:
        if self._cursors is not None:
            return dict(self._cursors)
        with self.store.read() as tx:
            return tx.remotes.cursors(account_id)

    def set_cursor(self, account_id: str, collection: str, cursor: str | None) -> None:
        if self._cursors is not None:
            # One sync's: written with its next write (see the class).
            if collection in self._cursors and self._cursors[collection] == cursor:
                return
            self._cursors[collection] = cursor
            self._unwritten[collection] = cursor
            return
        with self._write() as tx:
            tx.remotes.set_cursor(account_id, collection, cursor)

    def known_etags(self, account_id: str, collection: str) -> dict[str, str]:
        with self.store.read() as tx:
            etags = tx.remotes.etags(account_id, collection)
            for remote_id, etag in tx.groups.remote_ids(account_id).values():
                if remote_id and remote_id.startswith(CARD_GROUP):
                    etags[remote_id[len(CARD_GROUP) :]] = etag or ""
            return etags

    def etags_of(self, account_id: str, remote_ids: Iterable[str]) -> dict[str, str]:
        with self.store.read() as tx:
            links = tx.remotes.for_remote_ids(account_id, remote_ids)
            return {rid: link.etag for rid, link in links.items()}

    def apply(self, account: Account, items: Sequence[RemoteContact]) -> int:
        """Create or update the local copies of remote contacts, in one transaction;
        returns how many changed (``rolodex.service.pulledcontacts.apply``)."""
        if not items:
            return 0
        with self._write(account.id) as tx:
            return pulledcontacts.apply(tx, account, items, time.time())

    def apply_groups(self, account: Account, items: Sequence[RemoteGroup]) -> None:
        """Group cards: the group (by name), with exactly the members the card lists."""
        if not items:
            return
        now = time.time()
        with self._write(account.id) as tx:
            for item in items:
                group = pulledgroups.card_group(tx, account, item, now)
                wanted = set(tx.remotes.contact_ids_for_uids(account.id, item.member_uids))
                present = {r.id for r in tx.contacts.rows_in_group(account.id, group.id)}
                for contact_id in wanted ^ present:
                    set_membership(tx, account, contact_id, group.id, contact_id in wanted, now)

    def provider_groups(self, account: Account, groups: Sequence[tuple[str, str]]) -> None:
        """For providers whose groups are items of their own, known whole: Graph's folders
        (collection id, path), Google's labels (resource name, name). One group per
        provider id, renamed with it, so that its v2 id and members stay; the groups of
        those no longer there are deleted (their contacts stay)."""
        own = grouplinks.prefix(account)
        # (Google refuses an empty label name; "Unnamed group" as for group cards.)
        paths = [
            (gid, pulledgroups.shown_path(account, name) or "Unnamed group") for gid, name in groups
        ]
        wanted = {own + gid: path for gid, path in paths}
        by_id, remotes = self._groups_read or self._read_groups(account.id)
        # Once: a later call (another collection's groups) reads them as they are then.
        self._groups_read = None
        current = {
            remote_id: by_id[group_id].path
            for group_id, (remote_id, _etag) in remotes.items()
            if remote_id and remote_id.startswith(own)
        }
        if current == wanted:
            return  # the usual case: no write, no commit
        now = time.time()
        with self._write(account.id) as tx:
            keep: set[str] = set()
            waiting = paths
            for _round in range(2 * len(paths) + 1):
                # A rename to a path another of these groups still has waits for that
                # group to move first; a group whose own rename waits here stays.
                blocked: list[tuple[str, str, Group]] = []
                for gid, path in waiting:
                    found = pulledgroups.provider_group(tx, account, gid, path, now, unmade=True)
                    if found is None:
                        continue
                    keep.add(found.id)
                    if found.path != path and not tx.outbox.has_pending(account.id, found.id):
                        blocked.append((gid, path, found))
                if len(blocked) == len(waiting):
                    # Each waits for another (groups that swapped names there): one steps
                    # aside, under a path no other has, for the others to move.
                    targets = {path for _gid, path, _found in blocked}
                    aside = next((b[2] for b in blocked if b[2].path in targets), None)
                    if aside is None:
                        break  # they wait for groups that are not moving
                    spare = f"{aside.path} ({aside.id})"
                    rename_group(tx, account, aside.id, spare.rsplit("/", 1)[-1], now, path=spare)
                waiting = [(gid, path) for gid, path, _found in blocked]
                if not waiting:
                    break
            for group_id, (remote_id, _etag) in tx.groups.remote_ids(account.id).items():
                if (
                    remote_id
                    and remote_id.startswith(own)
                    and group_id not in keep
                    and not tx.outbox.has_pending(account.id, group_id)  # its rename wins
                ):
                    delete_group(tx, account, group_id, now)

    def _read_groups(self, account_id: str) -> GroupsRead:
        with self.store.read() as tx:
            return tx.groups.with_remotes(account_id)

    def forget_collections(self, account: Account, keep: set[str]) -> int:
        """Collections gone at the provider (a deleted folder or address book): their
        contacts' local copies are deleted and their cursors dropped. Returns how many."""
        if self._cursors is not None:
            gone = {c for c, cursor in self._cursors.items() if cursor is not None} - keep
        else:
            with self.store.read() as tx:
                gone = tx.remotes.collections(account.id) - keep
        removed = 0
        for collection in sorted(gone):
            removed += self.remove(account, list(self.known_etags(account.id, collection)))
            self.set_cursor(account.id, collection, None)
        return removed

    def remove(self, account: Account, remote_ids: Iterable[str]) -> int:
        """Delete the local copies of items deleted at the provider; returns how many."""
        ids = list(remote_ids)
        if not ids:
            return 0
        now = time.time()
        removed = 0
        with self._write(account.id) as tx:
            links = tx.remotes.for_remote_ids(account.id, ids)
            for remote_id in ids:
                group = tx.groups.find_by_remote_id(account.id, CARD_GROUP + remote_id)
                if group is not None:
                    delete_group(tx, account, group.id, now)
                link = links.get(remote_id)
                if link is None:
                    continue
                tx.remotes.delete(account.id, link.contact_id)
                if tx.outbox.has_pending(account.id, link.contact_id):
                    # Edited here, deleted there: the pending push re-creates it rather than
                    # losing the edit.
                    continue
                try:
                    tx.contacts.delete(account.id, link.contact_id)
                except NoSuchContact:
                    continue
                tx.pictures.delete(account.id, link.contact_id)
                tx.accounts.add_contacts(account.id, -1)
                seq = tx.accounts.allocate(account.id)
                tx.changes.append(account.id, seq, CONTACT, link.contact_id, "delete", now)
                removed += 1
        return removed

    # Pictures checked apart (rolodex.service.picturechecks) ------------------------------

    def pictures_due(
        self, account_id: str, limit: int, checked_before: float
    ) -> tuple[list[tuple[str, str]], int]:
        with self.store.read() as tx:
            return picturechecks.due(tx, account_id, limit, checked_before)

    def apply_pictures(self, account: Account, found: Sequence[tuple[str, RemotePicture]]) -> int:
        if not found:
            return 0
        with self._write(account.id) as tx:
            return picturechecks.apply(tx, account, found, time.time())

    # Push ----------------------------------------------------------------------------------

    def pending(self, account_id: str, limit: int = 100) -> list[OutboxItem]:
        if self._outbox_empty:
            self._outbox_empty = False  # once: the push's first look, at the sync's start
            return []
        with self.store.read() as tx:
            return tx.outbox.pending(account_id, time.time(), limit)

    def local_state(self, account_id: str, contact_id: str) -> LocalState | None:
        with self.store.read() as tx:
            try:
                row = tx.contacts.get(account_id, contact_id)
            except NoSuchContact:
                return None
            contact = contact_from_document(orjson.loads(row.doc))
            groups, links = tx.groups.with_remotes(account_id)
            card_groups = {
                g for g, (rid, _etag) in links.items() if rid and rid.startswith(CARD_GROUP)
            }
            # By path: a category's path is its name; a folder's says where it sits.
            own = [g for g in contact.group_ids if g in groups and g not in card_groups]
            names = tuple(groups[g].path for g in own)
            ids = tuple(grouplinks.linked_id(links.get(g, (None, None))[0]) for g in own)
            unlinked = tuple(g for g in own if not links.get(g, (None, None))[0])
            picture = None
            if contact.has_picture:
                try:
                    picture = tx.pictures.get(account_id, contact_id)
                except NoSuchPicture:
                    picture = None
            return LocalState(
                contact,
                names,
                picture,
                tx.remotes.for_contact(account_id, contact_id),
                ids,
                unlinked,
            )

    def group_creates(self, account_id: str, group_ids: Iterable[str]) -> list[OutboxItem]:
        with self.store.read() as tx:
            return tx.outbox.waiting(account_id, GROUP_OBJECT, "create", group_ids)

    def pending_fields(
        self, account_id: str, contact_id: str, fields: tuple[str, ...]
    ) -> tuple[str, ...]:
        """``fields`` and those of every other local change of the contact still waiting."""
        with self.store.read() as tx:
            waiting = tx.outbox.fields_of(account_id, contact_id)
        return tuple(dict.fromkeys((*fields, *waiting)))

    def link_of(self, account_id: str, contact_id: str) -> RemoteLink | None:
        with self.store.read() as tx:
            return tx.remotes.for_contact(account_id, contact_id)

    def group_state(self, account: Account, item: OutboxItem) -> LocalGroup | None:
        with self.store.read() as tx:
            return grouplinks.state(tx, account, item)

    def group_lost(self, account: Account, item: OutboxItem) -> tuple[str, ...]:
        with self.store.read() as tx:
            return grouplinks.lost(tx, account, item)

    def group_linked(self, account: Account, remote_id: str) -> str | None:
        with self.store.read() as tx:
            found = grouplinks.linked_group(tx, account, remote_id)
        return None if found is None else found.id

    def group_pushed(self, account: Account, item: OutboxItem, result: WriteResult | None) -> None:
        with self._write(account.id) as tx:
            grouplinks.pushed(tx, account, item, result, time.time())

    def pushed(
        self,
        account: Account,
        item: OutboxItem,
        collection: str,
        uid: str | None,
        result: WriteResult | None,
        merged: RemoteContact | None = None,
        *,
        no_picture_there: bool = False,
        in_folder_group: bool = False,
    ) -> None:
        """Record a delivered write and drop it from the outbox, in one transaction.

        ``merged`` is what the provider now holds when the write had to be merged with a
        change made there meanwhile; the local copy becomes that too (fields, categories
        and picture). ``no_picture_there``: the write made the item without a picture, so
        no check of its picture is due (``picturechecks``: a request per contact).
        ``in_folder_group``: the write put a contact of no group in a folder (Graph's
        default one), whose group it is in now, as a pull would show it.
        """
        now = time.time()
        with self._write(account.id) as tx:
            if result is None:
                tx.remotes.delete(account.id, item.object_id)
            else:
                # A partial write's item is to come back as a change made there: no pull
                # takes it for this write returning.
                etag = UNKNOWN_ETAG if result.partial else result.etag
                tx.remotes.put(
                    account.id,
                    RemoteLink(item.object_id, collection, result.remote_id, uid, etag, result.raw),
                )
                if no_picture_there and not result.partial:
                    tx.remotes.pictures_checked(account.id, [item.object_id], now)
                if in_folder_group:
                    group = grouplinks.linked_group(tx, account, collection)
                    if group is not None:
                        set_membership(tx, account, item.object_id, group.id, True, now)
            if merged is not None:
                _become(tx, account, item.object_id, merged, now)
            tx.outbox.done(account.id, item.seq)

    def carried(self, account: Account, link: RemoteLink, merged: RemoteContact) -> None:
        """A waiting write read its contact's item, changed at the provider since the last
        pull, and is about to carry that change along to where it writes (a move's
        create): first the local copy becomes ``merged`` and the link takes the version
        read (``link``), as a pull would have recorded them. A retry of the write then
        tells what changed there after this read from what the write already carried
        (``rolodex.sync.push``). The write stays in the outbox."""
        with self._write(account.id) as tx:
            tx.remotes.put(account.id, link)
            _become(tx, account, link.contact_id, merged, time.time())

    def dropped(self, account_id: str, item: OutboxItem) -> None:
        """A write with nothing left to deliver (its contact is gone)."""
        with self._write() as tx:
            tx.outbox.done(account_id, item.seq)

    def touches(
        self, account_id: str, item: OutboxItem, fields: tuple[str, ...]
    ) -> tuple[str, ...]:
        with self._write() as tx:
            waiting = tx.outbox.fields_of_write(account_id, item.seq)
            touched = tuple(dict.fromkeys((*waiting, *fields)))
            tx.outbox.set_fields(account_id, item.seq, touched)
            return touched

    def attempting(self, account_id: str, item: OutboxItem) -> None:
        with self._write() as tx:
            tx.outbox.mark_attempt(account_id, item.seq)

    def group_attempting(self, account_id: str, item: OutboxItem, paths: tuple[str, ...]) -> None:
        with self._write() as tx:
            tx.outbox.set_fields(account_id, item.seq, paths)

    def defer_pending(self, account_id: str, at: float, error: str) -> None:
        with self.store.write() as tx:
            tx.outbox.defer(account_id, at, error)

    def retry_later(self, account_id: str, item: OutboxItem, at: float, error: str) -> None:
        with self._write() as tx:
            tx.outbox.retry_later(account_id, item.seq, at, error)


def _become(tx: Tx, account: Account, contact_id: str, merged: RemoteContact, now: float) -> None:
    """The local copy becomes what the provider holds, a write merged with a change made
    there (fields, groups and picture)."""
    groups, linked, card_groups = pulledgroups.group_links(tx, account.id)
    group_ids = pulledgroups.contact_groups(tx, account, merged, groups, linked, now)
    seq = tx.accounts.allocate(account.id)
    pulledcontacts.update(tx, account, merged, contact_id, group_ids, card_groups, groups, seq, now)
