"""One sync of one account: push what is waiting in the outbox, then pull changes."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

from rolodex.connectors.base import (
    ChangeSet,
    Collection,
    Connector,
    CursorExpired,
    PictureReader,
    RemoteContact,
    RemoteGroup,
    RemoteItem,
)
from rolodex.domain.account import Account
from rolodex.sync.local import LocalSide
from rolodex.sync.pictures import check_pictures
from rolodex.sync.push import OutboxPush
from rolodex.sync.report import Progress, SyncReport, no_progress

log = logging.getLogger(__name__)

BATCH = 500
# Collections whose changes are read at once, at most (``SyncEngine._read_ahead``); a
# connector holds its own requests to the provider's limits (Graph's 4 per mailbox).
READ_AHEAD = 4
# A long stream (a first sync) is applied in batches that double from ``batch`` up to
# this size. Each batch's commit writes every index page it touched, and a batch of a big
# book touches most of the index: at 500 a first sync rewrites its indexes every 500
# contacts. Measured side by side on first syncs of 40,000 Google people, 2,000 took a
# tenth less CPU than 500; each contact of a batch holds about 17 KB until it is written,
# and 2,000 kept the peak RSS at 240 MB (4,000: 270 MB, no faster). The first batches stay
# small, so the first contacts show soon and an incremental sync is one small transaction.
MAX_BATCH = 2000
# The items a full resync's listing shows that nothing here links to (new there, or known
# here under an id the provider has since changed: ``Capabilities.rekeys``) are held back
# until what the listing left out has been read directly, at most this many; those beyond
# are read again by id then (``SyncEngine._apply_snapshot``). A first sync holds none.
HELD = BATCH
# What a collection's changes read ahead name but do not carry (Graph: each changed contact,
# read by id) is read ahead with them while it is this many items at most; more is read as
# it is applied, so that memory stays flat.
PREFETCH = 64


class SyncEngine:
    """The sync algorithm: knows the connector interface and the local side's, nothing
    else. ``sync`` takes the local side to write to, so that the caller can hand it one
    fenced by a lease (``rolodex.service.mirror.Mirror.fenced``)."""

    def __init__(
        self, mirror: LocalSide, batch: int = BATCH, *, guard: Callable[[], None] = lambda: None
    ) -> None:
        """``guard`` is called before every write to the provider and every item read
        from it, and raises to stop the sync there (a lost lease, a shutdown:
        ``rolodex.sync.runner.SyncRunner``)."""
        self.mirror = mirror
        self.batch = batch
        self.guard = guard

    def sync(
        self,
        account: Account,
        connector: Connector,
        progress: Progress = no_progress,
        *,
        pull: bool = True,
    ) -> SyncReport:
        report = SyncReport()
        # Push first: a pull must not overwrite local edits the provider has not seen yet.
        self.push(account, connector, report)
        if pull:
            ahead = self._read_ahead(account, connector)
            try:
                collections = connector.collections()
                if connector.capabilities().groups == "folders":
                    # The collections are the groups (Graph folders; a collection's name is
                    # its folder path): empty ones too, renamed ones keep their members.
                    self.mirror.provider_groups(account, [(c.id, c.name) for c in collections])
                for collection in collections:
                    read = ahead.pop(collection.id, None)
                    self.pull(account, connector, collection, report, progress, read)
            finally:
                for left in ahead.values():
                    left.cancel()
            # A collection gone at the provider (a deleted folder) takes its contacts along.
            report.deleted += self.mirror.forget_collections(account, {c.id for c in collections})
            caps = connector.capabilities()
            if caps.picture_backfill and not report.snapshots:
                report.pictures_checked, report.pictures_unchecked = check_pictures(
                    self.mirror, cast(PictureReader, connector), caps, account, progress, self.guard
                )
        return report

    # Pull --------------------------------------------------------------------------------

    def _read_ahead(self, account: Account, connector: Connector) -> dict[str, Future[ChangeSet]]:
        """Where the connector allows it, the changes of every collection with a cursor,
        read on threads while the collections are listed and the first are applied: the
        round trips overlap instead of adding up (Graph: a mailbox's folder listing and
        each folder's delta). What a collection's read raises comes out when it is pulled,
        in order, as if it had been read then; the read of a collection the listing no
        longer names is dropped with what it raised."""
        if not connector.capabilities().concurrent_reads:
            return {}
        return {
            cid: _readers().submit(self._read_changes, account, connector, cid, cursor)
            for cid, cursor in self.mirror.cursors(account.id).items()
            if cursor is not None
        }

    def _read_changes(
        self, account: Account, connector: Connector, collection: str, cursor: str
    ) -> ChangeSet:
        """A collection's changes since ``cursor``, with the few items they name but do not
        carry read too (``PREFETCH``): what ``_apply_listing`` would read first."""
        changes = connector.changes(collection, cursor, with_data=True)
        if changes.stream is not None or changes.complete:
            return changes
        wanted = self._wanted(account, changes)
        if not wanted or len(wanted) > PREFETCH:
            return changes
        read = tuple(connector.fetch(collection, wanted))
        return dataclasses.replace(changes, fetched=(*changes.fetched, *read))

    def _wanted(self, account: Account, changes: ChangeSet) -> list[str]:
        """The items an incremental listing names changed that did not come with it and
        differ from what is known here: those to read (Rolodex's own writes, which come
        back with the etags their replies gave, are not read again). An incremental sync
        whose changes carry their data (Google, CardDAV with address-data) reads no etags."""
        inline = {item.remote_id for item in changes.fetched}
        missing = [rid for rid in changes.changed if rid not in inline]
        if not missing:
            return []
        known = self.mirror.etags_of(account.id, missing)
        return [rid for rid in missing if known.get(rid) != changes.changed[rid]]

    def pull(
        self,
        account: Account,
        connector: Connector,
        collection: Collection,
        report: SyncReport,
        progress: Progress = no_progress,
        read: Future[ChangeSet] | None = None,
    ) -> None:
        """``read``: the collection's changes since its cursor, read already
        (``_read_ahead``)."""
        cursor = self.mirror.cursor(account.id, collection.id)
        if cursor is None:
            report.snapshots += 1
            changes = connector.snapshot(collection.id)
        else:
            try:
                if read is not None:
                    changes = read.result()
                else:
                    changes = connector.changes(collection.id, cursor, with_data=True)
            except CursorExpired:
                # A listing, not a snapshot: most of what is known is likely unchanged, and
                # only items whose etags differ are downloaded again.
                report.full_resyncs += 1
                changes = connector.changes(collection.id, None)
        if changes.groups is not None:
            # Before the items, which name their groups by the provider's ids: a group
            # renamed there is renamed here, members and all, not made again.
            self.mirror.provider_groups(account, changes.groups)
        caps = connector.capabilities()
        # What a complete listing leaves out of what is known here is read directly before
        # it counts as deleted there: a lagging listing may have left it out, and an item
        # the provider re-keyed is listed under its new id only (Google fills
        # previousResourceNames only on sync-token calls, GM §3.1), while the direct read
        # of its old id answers it under the new one (``Connector.fetch``).
        recheck = changes.complete and (caps.lagging_lists or caps.rekeys)
        if changes.stream is not None:
            stream = self._guarded(changes.stream)
            removed = self._apply_snapshot(
                account, connector, collection, stream, report, progress, recheck
            )
        else:
            removed = self._apply_listing(
                account, connector, collection, changes, report, progress, recheck
            )
        # An id read directly under a new one is no longer linked: its contact moved to the
        # new id, and nothing of it is deleted here.
        report.deleted += self.mirror.remove(account, removed)
        # Only now: a crash before this line repeats the pull, and applying is idempotent.
        self.mirror.set_cursor(account.id, collection.id, changes.cursor)

    def _apply_listing(
        self,
        account: Account,
        connector: Connector,
        collection: Collection,
        changes: ChangeSet,
        report: SyncReport,
        progress: Progress,
        recheck: bool = False,
    ) -> list[str]:
        """Apply what a listing names (fetching what did not come with it); returns the
        remote ids deleted there. ``recheck``: what a complete listing leaves out is read
        directly first (``pull``), before the listing's items: one read under a new id
        moves its contact's link there, and the item the listing shows under that id is
        then that contact's, not a new one."""
        if changes.complete:
            inline = {item.remote_id for item in changes.fetched}
            found: set[str] = set()
            known = self.mirror.known_etags(account.id, collection.id)
            removed = [rid for rid in known if rid not in changes.changed]
            if recheck and removed:
                read = self._read_directly(connector, collection, removed, found)
                self._apply_stream(account, read, report, progress, collection.name, 0, None)
                removed = [rid for rid in removed if rid not in found]
            wanted = [
                rid
                for rid, etag in changes.changed.items()
                if rid not in inline and rid not in found and known.get(rid) != etag
            ]
        else:
            wanted = self._wanted(account, changes)
            removed = list(changes.removed)
        total = len(wanted) + len(changes.fetched)
        progress(f"pull {collection.name}", 0, total)
        items = self._guarded(iter(changes.fetched))
        done = self._apply_stream(account, items, report, progress, collection.name, 0, total)
        if wanted:
            stream = self._guarded(connector.fetch(collection.id, wanted))
            self._apply_stream(account, stream, report, progress, collection.name, done, total)
        return removed

    def _read_directly(
        self, connector: Connector, collection: Collection, remote_ids: list[str], found: set[str]
    ) -> Iterator[RemoteItem]:
        """The items a complete listing left out, read directly (``Connector.fetch``), each
        one's id added to ``found``: those not found are gone there. One found under another
        id is the item re-keyed there, the id asked for in its ``previous_ids``, which moves
        the link of its contact here (``LocalSide.apply``); the old id, then linked to
        nothing, deletes nothing."""
        for item in self._guarded(connector.fetch(collection.id, remote_ids)):
            found.add(item.remote_id)
            yield item

    def _guarded(self, items: Iterator[RemoteItem]) -> Iterator[RemoteItem]:
        """The items, the guard called before each: a shutdown stops a pull between two
        items read (those read before are applied in their batches or not at all)."""
        for item in items:
            self.guard()
            yield item

    def _apply_snapshot(
        self,
        account: Account,
        connector: Connector,
        collection: Collection,
        stream: Iterator[RemoteItem],
        report: SyncReport,
        progress: Progress,
        recheck: bool = False,
    ) -> list[str]:
        """Apply every item of a snapshot as it streams; returns the remote ids known here
        but no longer there.

        ``recheck`` (``pull``): what the snapshot left out of what is known here is read
        directly, once the stream is over, and before the contacts it showed that nothing
        here links to: those are held back until then (up to ``HELD``; those beyond are
        read again by id after), since one may be a contact known here under the id the
        direct read answers it from. Applied first, they would make it again, under a new
        Rolodex id, and the contact known here would then be deleted as a duplicate. A first
        sync knows nothing, and holds nothing back."""
        known = self.mirror.known_etags(account.id, collection.id)
        hold = recheck and bool(known)
        seen: set[str] = set()
        found: set[str] = set()
        left_out: list[str] = []

        def tracked(items: Iterator[RemoteItem]) -> Iterator[RemoteItem]:
            held: list[RemoteItem] = []
            unheld: list[str] = []
            for item in items:
                seen.add(item.remote_id)
                if hold and item.remote_id not in known and isinstance(item, RemoteContact):
                    if len(held) < HELD:
                        held.append(item)
                    else:
                        unheld.append(item.remote_id)
                    continue
                yield item
            left_out.extend(rid for rid in known if rid not in seen)
            if recheck and left_out:
                yield from self._read_directly(connector, collection, left_out, found)
            # What the direct reads found is applied as they read it, later than the listing.
            yield from (item for item in held if item.remote_id not in found)
            del held[:]
            unheld = [rid for rid in unheld if rid not in found]
            if unheld:
                yield from self._guarded(connector.fetch(collection.id, unheld))

        name = collection.name
        progress(f"pull {name}", 0, None)  # how many is known at the end of the stream
        done = self._apply_stream(account, tracked(stream), report, progress, name, 0, None)
        progress(f"pull {name}", done, done)
        return [rid for rid in left_out if rid not in found]

    def _apply_stream(
        self,
        account: Account,
        items: Iterator[RemoteItem],
        report: SyncReport,
        progress: Progress,
        name: str,
        done: int,
        total: int | None,
    ) -> int:
        contacts: list[RemoteContact] = []
        groups: list[RemoteGroup] = []
        size = self.batch
        for item in items:
            if isinstance(item, RemoteGroup):
                groups.append(item)
                continue
            contacts.append(item)
            if len(contacts) >= size:
                report.created_or_updated += self.mirror.apply(account, contacts)
                done += len(contacts)
                progress(f"pull {name}", done, total)
                contacts = []
                size = min(2 * size, max(self.batch, MAX_BATCH))
        report.created_or_updated += self.mirror.apply(account, contacts)
        done += len(contacts)
        # Group cards last: their members are named by UID and must exist locally first.
        self.mirror.apply_groups(account, groups)
        done += len(groups)
        progress(f"pull {name}", done, total)
        return done

    # Push --------------------------------------------------------------------------------

    def push(self, account: Account, connector: Connector, report: SyncReport) -> None:
        """Deliver the outbox in order (``rolodex.sync.push``)."""

        def pull_now(collection_id: str) -> None:
            # What became of an item (deleted there, or given a new id); what this pull
            # applies is counted nowhere.
            collection = next((c for c in connector.collections() if c.id == collection_id), None)
            if collection is not None:
                self.pull(account, connector, collection, SyncReport())

        OutboxPush(
            self.mirror, account, connector, report, guard=self.guard, pull_now=pull_now
        ).run()


@functools.cache
def _readers() -> ThreadPoolExecutor:
    """The threads that read collections' changes ahead (``SyncEngine._read_ahead``), for
    the whole process: a thread started per sync cost more than a round trip."""
    return ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="sync-read")
