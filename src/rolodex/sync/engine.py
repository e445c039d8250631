"""One sync of one account: push what is waiting in the outbox, then pull changes."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

from rolodex.connectors.base import (
    ChangeSet,
    Collection,
    Connector,
    CursorExpired,
    LocalContact,
    PermanentError,
    PictureReader,
    PreconditionFailed,
    RemoteContact,
    RemoteGroup,
    RemoteItem,
    RemoteNotFound,
    TransientError,
    WriteResult,
)
from rolodex.domain.account import Account
from rolodex.domain.remote import CONTACT_OBJECT, LocalState, OutboxItem, RemoteLink
from rolodex.logs import carrying
from rolodex.metrics import PROVIDER_ERRORS
from rolodex.sync.groups import push_group
from rolodex.sync.local import LocalSide
from rolodex.sync.merge import merge
from rolodex.sync.pictures import check_pictures

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
MAX_BACKOFF = 3600.0
# A write the provider refused outright is tried again only this rarely, and stays visible
# in the outbox (and in the account's last_error) meanwhile: nothing is silently dropped.
REFUSED_RETRY = 3600.0

Progress = Callable[[str, int, int | None], None]


def no_progress(_phase: str, _done: int, _total: int | None) -> None:
    pass


@dataclass
class SyncReport:
    pushed: int = 0
    push_failures: int = 0
    created_or_updated: int = 0
    deleted: int = 0
    full_resyncs: int = 0
    last_push_error: str | None = None
    # Collections read whole (a first sync, a new folder).
    snapshots: int = 0
    # Where a provider's listings carry no pictures (rolodex.sync.pictures): how many this
    # sync checked, and how many contacts are left whose picture was never checked (None:
    # no checks ran).
    pictures_checked: int = 0
    pictures_unchecked: int | None = None


def backoff(attempts: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 1.0), MAX_BACKOFF)
    return float(min(MAX_BACKOFF, 5 * 2**attempts))


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
            collections = connector.collections()
            ahead = self._read_ahead(account, connector, collections)
            try:
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

    def _read_ahead(
        self, account: Account, connector: Connector, collections: list[Collection]
    ) -> dict[str, Future[ChangeSet]]:
        """Where the connector allows it, the changes of every collection with a cursor but
        the first, read on threads while the first is read and applied: the collections'
        round trips overlap instead of adding up. What a collection's read raises comes
        out when it is pulled, in order, as if it had been read then."""
        if not connector.capabilities().concurrent_reads:
            return {}
        due = [
            (c.id, cursor)
            for c in collections
            if (cursor := self.mirror.cursor(account.id, c.id)) is not None
        ]
        return {
            cid: _readers().submit(connector.changes, cid, cursor, with_data=True)
            for cid, cursor in due[1:]
        }

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
        if changes.stream is not None:
            stream = self._guarded(changes.stream)
            removed = self._apply_snapshot(account, collection, stream, report, progress)
        else:
            removed = self._apply_listing(account, connector, collection, changes, report, progress)
        if removed and changes.complete and connector.capabilities().lagging_lists:
            removed = self._still_there(account, connector, collection, removed, report, progress)
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
    ) -> list[str]:
        """Apply what a listing names (fetching what did not come with it); returns the
        remote ids deleted there."""
        inline = {item.remote_id for item in changes.fetched}
        if changes.complete:
            known = self.mirror.known_etags(account.id, collection.id)
            removed = [rid for rid in known if rid not in changes.changed]
        else:
            # Only what did not come with the changes is compared with what is stored: an
            # incremental sync whose changes carry their data (Google, Graph) reads no etags.
            missing = [rid for rid in changes.changed if rid not in inline]
            known = self.mirror.etags_of(account.id, missing) if missing else {}
            removed = list(changes.removed)
        wanted = [
            rid
            for rid, etag in changes.changed.items()
            if rid not in inline and known.get(rid) != etag
        ]
        total = len(wanted) + len(changes.fetched)
        progress(f"pull {collection.name}", 0, total)
        items = self._guarded(iter(changes.fetched))
        done = self._apply_stream(account, items, report, progress, collection.name, 0, total)
        if wanted:
            stream = self._guarded(connector.fetch(collection.id, wanted))
            self._apply_stream(account, stream, report, progress, collection.name, done, total)
        return removed

    def _still_there(
        self,
        account: Account,
        connector: Connector,
        collection: Collection,
        removed: list[str],
        report: SyncReport,
        progress: Progress,
    ) -> list[str]:
        """Of the items a complete listing left out, those a direct read does not find
        either (``Capabilities.lagging_lists``); those it finds are applied as read."""
        found: set[str] = set()

        def seen(items: Iterator[RemoteItem]) -> Iterator[RemoteItem]:
            for item in items:
                found.add(item.remote_id)
                yield item

        stream = self._guarded(seen(connector.fetch(collection.id, removed)))
        self._apply_stream(account, stream, report, progress, collection.name, 0, None)
        return [rid for rid in removed if rid not in found]

    def _guarded(self, items: Iterator[RemoteItem]) -> Iterator[RemoteItem]:
        """The items, the guard called before each: a shutdown stops a pull between two
        items read (those read before are applied in their batches or not at all)."""
        for item in items:
            self.guard()
            yield item

    def _apply_snapshot(
        self,
        account: Account,
        collection: Collection,
        stream: Iterator[RemoteItem],
        report: SyncReport,
        progress: Progress,
    ) -> list[str]:
        """Apply every item of a snapshot as it streams; returns the remote ids known here
        but no longer there."""
        known = self.mirror.known_etags(account.id, collection.id)
        seen: set[str] = set()

        def tracked(items: Iterator[RemoteItem]) -> Iterator[RemoteItem]:
            for item in items:
                seen.add(item.remote_id)
                yield item

        name = collection.name
        progress(f"pull {name}", 0, None)  # how many is known at the end of the stream
        done = self._apply_stream(account, tracked(stream), report, progress, name, 0, None)
        progress(f"pull {name}", done, done)
        return [rid for rid in known if rid not in seen]

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
        """Deliver the outbox in order. A transient failure stops the push (later writes of
        the same contact must not overtake it); a refusal is parked and the rest goes on."""
        run = _Push(account, connector, report)
        while True:
            items = [i for i in self.mirror.pending(account.id) if i.seq not in run.seen]
            if not items:
                return
            for item in items:
                if item.seq in run.seen:  # delivered ahead of its turn (``_groups_first``)
                    continue
                run.seen.add(item.seq)
                if not self._deliver(run, item):
                    return

    def _deliver(self, run: _Push, item: OutboxItem) -> bool:
        """Deliver one write, its records carrying the id of the request that made it;
        False when the push must stop there (a transient failure)."""
        account, report = run.account, run.report
        what = f"{item.operation} of {item.object_type} {item.object_id}"
        extra = {"account_id": account.id}
        with carrying(item.request_id):
            try:
                self._push_one(run, item)
            except TransientError as error:
                delay = backoff(item.attempts, error.retry_after)
                self.mirror.retry_later(account.id, item, time.time() + delay, error.message)
                report.push_failures += 1
                report.last_push_error = error.message
                PROVIDER_ERRORS.labels(account.provider, "transient").inc()
                log.info("%s not delivered yet: %s", what, error.message, extra=extra)
                return False
            except PermanentError as error:
                message = f"the provider refused {item.operation} of {item.object_id}: "
                message += error.message
                self.mirror.retry_later(account.id, item, time.time() + REFUSED_RETRY, message)
                report.push_failures += 1
                report.last_push_error = message
                PROVIDER_ERRORS.labels(account.provider, "refused").inc()
                log.warning("%s refused: %s", what, error.message, extra=extra)
                return True
            report.pushed += 1
            log.info("%s delivered", what, extra=extra)
            return True

    def _push_one(self, run: _Push, item: OutboxItem) -> None:
        account, connector = run.account, run.connector
        self.guard()
        if item.object_type != CONTACT_OBJECT:
            push_group(self.mirror, connector, account, item)
            return
        if item.operation == "delete":
            self._push_delete(account, connector, item)
            return
        state = self.mirror.local_state(account.id, item.object_id)
        writes_groups = connector.capabilities().groups in ("labels", "folders")
        if state is not None and writes_groups and state.unlinked_groups:
            self._groups_first(run, state.unlinked_groups)
            state = self.mirror.local_state(account.id, item.object_id)
        if state is None:
            # Deleted here since; the delete that follows in the outbox says the rest.
            self.mirror.dropped(account.id, item)
            return
        link = state.link
        home = connector.home(_local(state, touched=None))
        if link is None:
            self._push_create(account, connector, item, state, home or self._default(connector))
            return
        if home is not None and home != link.collection:
            self._push_move(account, connector, item, state, home)
            return
        local = _local(state, touched=item.fields)
        try:
            result = connector.update(link.remote_id, link.etag, local, link.raw)
        except RemoteNotFound:
            self._push_not_found(account, connector, item, state)
            return
        except PreconditionFailed:
            self._push_merged(account, connector, item, state)
            return
        self.mirror.pushed(account, item, link.collection, link.uid, result)

    def _groups_first(self, run: _Push, group_ids: tuple[str, ...]) -> None:
        """Deliver the creates of a contact's groups that wait behind it in the outbox.

        A write sends the contact as it is now, in groups it may have joined after the
        write was queued, and those may not be at the provider yet (made here after it).
        Written first, by name, the provider would get a group that its create, later,
        makes a second time if it was renamed meanwhile (or, on Graph, a folder to put
        the contact in that is not there). A group's create depends on nothing before it,
        so it goes now; one that cannot go yet holds the contact's write back with it."""
        for create in self.mirror.group_creates(run.account.id, group_ids):
            if create.seq in run.seen:
                continue  # tried in this push and refused: the contact goes without it
            run.seen.add(create.seq)
            if not self._deliver(run, create):
                raise TransientError(f"its group {create.object_id} is not at the provider yet")

    def _push_not_found(
        self, account: Account, connector: Connector, item: OutboxItem, state: LocalState
    ) -> None:
        """The item is not where the link says: deleted there, or given a new id (Google
        re-keys a person linked with a profile, and names the old resource name in its
        changes). The collection's changes say which, so they are pulled now. A new id moves
        the link, and the edit is merged into what the provider holds there (the etag
        changed with the id); a deletion drops the link, and the edit wins: the contact is
        made again. While the changes say neither (a provider's changes may lag its
        writes), the write waits rather than make a second copy of the contact."""
        gone = state.link
        assert gone is not None
        self._pull_now(account, connector, gone.collection)
        fresh = self.mirror.local_state(account.id, item.object_id)
        if fresh is None:
            self.mirror.dropped(account.id, item)  # deleted here meanwhile
        elif fresh.link is None:
            self._push_create(account, connector, item, fresh, gone.collection)
        elif fresh.link.remote_id != gone.remote_id:
            self._push_merged(account, connector, item, fresh)
        else:
            raise TransientError(
                f"{gone.remote_id} is gone at the provider, and its changes do not say yet "
                "whether it was deleted or given a new id"
            )

    def _push_create(
        self,
        account: Account,
        connector: Connector,
        item: OutboxItem,
        state: LocalState,
        collection: str,
    ) -> None:
        result = self._create_item(account, connector, item, state, collection)
        if result.existed:
            # An earlier attempt made it and its reply was lost; another client may have
            # edited it since, so merge as after any precondition failure.
            link = RemoteLink(
                state.contact.id,
                collection,
                result.remote_id,
                state.contact.id,
                result.etag,
                result.raw,
            )
            self._push_merged(
                account, connector, item, dataclasses.replace(state, link=link), recreate=False
            )
            return
        self.mirror.pushed(account, item, collection, state.contact.id, result)

    def _create_item(
        self,
        account: Account,
        connector: Connector,
        item: OutboxItem,
        state: LocalState,
        collection: str,
        replaces: bytes | None = None,
        *,
        local: LocalContact | None = None,
    ) -> WriteResult:
        """Make the contact's item in ``collection``, exactly once across retries.

        The item carries the contact id: a retried create finds the item it already made
        instead of making a second one. Where the provider names the item, nothing but the
        item itself says a create landed, so the attempt is counted before it is made."""
        if connector.capabilities().assigns_ids:
            self.mirror.attempting(account.id, item)
        return connector.create(
            collection,
            dataclasses.replace(local or _local(state, touched=None), replaces=replaces),
            state.contact.id,
            maybe_exists=item.attempts > 0,
        )

    def _push_move(
        self,
        account: Account,
        connector: Connector,
        item: OutboxItem,
        state: LocalState,
        collection: str,
    ) -> None:
        """The contact's groups put it in another collection (a Graph folder): made there,
        then the old item deleted, and only then recorded. A retry after either step finds
        the new item by the contact id it carries (and a pull meanwhile leaves it alone:
        ``Mirror.apply``); the Rolodex id never changes.

        The old item is read first: changed there since the last pull, the new one carries
        that change too (as after a failed precondition), or it would go with the old one."""
        old = state.link
        assert old is not None
        current = self._current(connector, old)
        if current is None or current.etag == old.etag:
            result = self._create_item(account, connector, item, state, collection, old.raw)
            self._delete_whatever_changed(connector, old)
            self.mirror.pushed(account, item, collection, state.contact.id, result)
            return
        # In the folder its groups here name: that is what the move was made for.
        local = dataclasses.replace(
            self._merged_local(account, item, state, current),
            group_names=state.group_names,
            group_ids=state.group_ids,
        )
        result = self._create_item(
            account, connector, item, state, collection, current.raw, local=local
        )
        self._delete_whatever_changed(connector, old)
        merged = _as_written(current, local, result)
        self.mirror.pushed(account, item, collection, state.contact.id, result, merged=merged)

    def _push_merged(
        self,
        account: Account,
        connector: Connector,
        item: OutboxItem,
        state: LocalState,
        *,
        recreate: bool = True,
    ) -> None:
        """The provider's copy changed since we read it: re-read it, re-apply the fields
        the local change touched, and write that with the fresh etag."""
        link = state.link
        assert link is not None
        current = self._current(connector, link)
        if current is None:
            if not recreate:
                raise TransientError(f"{link.remote_id} vanished while it was being written")
            self._push_create(account, connector, item, state, link.collection)
            return
        local = self._merged_local(account, item, state, current)
        result = connector.update(current.remote_id, current.etag, local, current.raw)
        merged = _as_written(current, local, result)
        self.mirror.pushed(account, item, link.collection, link.uid, result, merged=merged)

    @staticmethod
    def _current(connector: Connector, link: RemoteLink) -> RemoteContact | None:
        """The linked item as the provider holds it now; None when it is gone."""
        return next(
            (
                i
                for i in connector.fetch(link.collection, [link.remote_id])
                if isinstance(i, RemoteContact)
            ),
            None,
        )

    def _merged_local(
        self, account: Account, item: OutboxItem, state: LocalState, current: RemoteContact
    ) -> LocalContact:
        """What to write over ``current``, changed there since it was read: the fields of
        every local change still waiting re-applied to it, not only this one's (the local
        copy becomes what this write leaves there, and must not lose the later changes)."""
        touched = self.mirror.pending_fields(account.id, item.object_id, item.fields)
        return LocalContact(
            fields=merge(current.fields, state.contact.fields, touched),
            group_names=state.group_names if "groups" in touched else current.group_names,
            group_ids=state.group_ids if "groups" in touched else current.group_ids,
            picture=(state.picture.data if state.picture else None)
            if "picture" in touched
            else current.picture,
            picture_type=(state.picture.content_type if state.picture else None)
            if "picture" in touched
            else current.picture_type,
            touched=touched,
        )

    def _push_delete(self, account: Account, connector: Connector, item: OutboxItem) -> None:
        link = self.mirror.link_of(account.id, item.object_id)
        if link is None:
            self.mirror.dropped(account.id, item)  # never reached the provider
            return
        # The user deleted it here after seeing it: the delete stands.
        if connector.capabilities().rekeys:
            link = self._after_any_rekey(account, connector, link)
        self._delete_whatever_changed(connector, link)
        self.mirror.pushed(account, item, link.collection, link.uid, None)

    def _after_any_rekey(
        self, account: Account, connector: Connector, link: RemoteLink
    ) -> RemoteLink:
        """The link of a contact about to be deleted, moved to the item's new id if the
        provider gave it one: deleting the old id is a 404, which a delete takes for done,
        and the item would stay there under its new id and come back with the next pull.
        Not where the link says, the collection's changes are pulled first: they move the
        link (the contact's delete waits in the outbox, so nothing else of it changes)."""
        if self._remote_etag(connector, link.collection, link.remote_id) is not None:
            return link
        self._pull_now(account, connector, link.collection)
        return self.mirror.link_of(account.id, link.contact_id) or link

    def _pull_now(self, account: Account, connector: Connector, collection_id: str) -> None:
        """Pull one collection in the middle of a push, to learn what became of an item
        (deleted there, or given a new id); what it applies is counted nowhere."""
        collection = next((c for c in connector.collections() if c.id == collection_id), None)
        if collection is not None:
            self.pull(account, connector, collection, SyncReport())

    def _delete_whatever_changed(self, connector: Connector, link: RemoteLink) -> None:
        """Delete the item even if it changed there since (then with the etag the provider
        has now); one already gone is fine."""
        try:
            connector.delete(link.remote_id, link.etag)
        except PreconditionFailed:
            fresh = self._remote_etag(connector, link.collection, link.remote_id)
            if fresh is not None:
                connector.delete(link.remote_id, fresh)
        except RemoteNotFound:
            pass

    @staticmethod
    def _remote_etag(connector: Connector, collection: str, remote_id: str) -> str | None:
        for found in connector.fetch(collection, [remote_id]):
            return found.etag
        return None

    @staticmethod
    def _default(connector: Connector) -> str:
        collections = connector.collections()
        if not collections:
            raise PermanentError("the account has no address book to create contacts in")
        return next((c.id for c in collections if c.is_default), collections[0].id)


@dataclass
class _Push:
    """One push of an account's outbox: where it goes, what it reports, and the writes
    delivered or tried in it (some ahead of their turn)."""

    account: Account
    connector: Connector
    report: SyncReport
    seen: set[int] = dataclasses.field(default_factory=set)


@functools.cache
def _readers() -> ThreadPoolExecutor:
    """The threads that read collections' changes ahead (``SyncEngine._read_ahead``), for
    the whole process: a thread started per sync cost more than a round trip."""
    return ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="sync-read")


def _as_written(current: RemoteContact, local: LocalContact, result: WriteResult) -> RemoteContact:
    """The provider's item once ``local`` was written over ``current``."""
    return dataclasses.replace(
        current,
        etag=result.etag,
        raw=result.raw,
        fields=local.fields,
        group_names=local.group_names,
        group_ids=local.group_ids,
        picture=local.picture,
        picture_type=local.picture_type,
    )


def _local(state: LocalState, touched: tuple[str, ...] | None) -> LocalContact:
    return LocalContact(
        fields=state.contact.fields,
        group_names=state.group_names,
        group_ids=state.group_ids,
        picture=state.picture.data if state.picture else None,
        picture_type=state.picture.content_type if state.picture else None,
        touched=touched,
    )
