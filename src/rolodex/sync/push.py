"""One push of an account's outbox: every write waiting for the provider delivered in
order, exactly once across retries, merged with what changed there meanwhile."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from rolodex.connectors.base import (
    Connector,
    LocalContact,
    PermanentError,
    PreconditionFailed,
    RemoteContact,
    RemoteNotFound,
    TransientError,
    WriteResult,
)
from rolodex.domain.account import Account
from rolodex.domain.contact import WRITABLE_FIELDS
from rolodex.domain.remote import (
    CONTACT_OBJECT,
    UNKNOWN_ETAG,
    LocalState,
    OutboxItem,
    RemoteLink,
)
from rolodex.logs import carrying
from rolodex.metrics import PROVIDER_ERRORS
from rolodex.sync.groups import Held, push_group
from rolodex.sync.local import LocalSide
from rolodex.sync.merge import merge
from rolodex.sync.report import SyncReport

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
# A write the provider refused outright is tried again only this rarely, and stays visible
# in the outbox (and in the account's last_error) meanwhile: nothing is silently dropped.
REFUSED_RETRY = 3600.0


def backoff(attempts: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 1.0), MAX_BACKOFF)
    return float(min(MAX_BACKOFF, 5 * 2**attempts))


class OutboxPush:
    """One push of ``account``'s outbox through ``connector``, counted in ``report``.

    ``guard`` is called before every write (and raises to stop the push there);
    ``pull_now`` pulls one collection in the middle of the push, to learn what became of
    an item that is not where its link says (deleted there, or given a new id)."""

    def __init__(
        self,
        mirror: LocalSide,
        account: Account,
        connector: Connector,
        report: SyncReport,
        *,
        guard: Callable[[], None],
        pull_now: Callable[[str], None],
    ) -> None:
        self.mirror = mirror
        self.account = account
        self.connector = connector
        self.report = report
        self.guard = guard
        self.pull_now = pull_now
        # The writes delivered or tried in this push (some ahead of their turn).
        self.seen: set[int] = set()
        # Objects with a write held back in this push (``Held``): their later writes wait
        # too, or they would overtake it.
        self.held: set[str] = set()
        # Where contacts without a group of their own are made: asked once a push. Listing
        # collections is a round trip or more (Graph lists every folder's childFolders),
        # which per create doubled the requests a push of new contacts made to Graph.
        self._default_collection: str | None = None

    def run(self) -> None:
        """Deliver the outbox in order. A transient failure stops the push (later writes of
        the same contact must not overtake it); a refusal is parked and the rest goes on,
        and so is a held write (``Held``), for seconds, with the later writes of its object."""
        while True:
            items = [i for i in self.mirror.pending(self.account.id) if i.seq not in self.seen]
            if not items:
                return
            for item in items:
                if item.seq in self.seen:  # delivered ahead of its turn (``_groups_first``)
                    continue
                self.seen.add(item.seq)
                if not self._deliver(item):
                    return

    def _deliver(self, item: OutboxItem) -> bool:
        """Deliver one write, its records carrying the id of the request that made it;
        False when the push must stop there (a transient failure)."""
        account, report = self.account, self.report
        what = f"{item.operation} of {item.object_type} {item.object_id}"
        extra = {"account_id": account.id}
        with carrying(item.request_id):
            try:
                if item.object_id in self.held:
                    raise Held(f"an earlier write of {item.object_id} waits")
                self._write(item)
            except Held as held:
                # Soon, not after a refusal's hour: the write it waits for goes out in this
                # push, once the push has gone past this one.
                self.held.add(item.object_id)
                delay = backoff(item.attempts)
                self.mirror.retry_later(account.id, item, time.time() + delay, str(held))
                log.info("%s waits: %s", what, held, extra=extra)
                return True
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

    def _write(self, item: OutboxItem) -> None:
        account, connector = self.account, self.connector
        self.guard()
        if item.object_type != CONTACT_OBJECT:
            push_group(self.mirror, connector, account, item)
            return
        if item.operation == "delete":
            self._delete(item)
            return
        self._write_contact(item)

    def _moves(self) -> bool:
        """Whether the provider's contacts move between collections (``Connector.home``)."""
        return self.connector.capabilities().groups == "folders"

    def _carry_from_copies(
        self,
        item: OutboxItem,
        state: LocalState,
        link: RemoteLink,
        copies: list[tuple[str, WriteResult]],
        to: str,
    ) -> tuple[OutboxItem, LocalState]:
        """Before the copies an earlier attempt left are discarded (``_discard_copies``),
        what was edited in them there since is carried into the local copy, and becomes
        the write's own (``LocalSide.touches``): a move made the contact in a folder and
        could not delete the old item, the contact was moved back here before the retry,
        and meanwhile someone edited the copy, which was where Outlook showed it. A copy
        holds what the attempt wrote, the local copy as it was then; what it holds else,
        in a field no waiting write touches, was changed there. Returns the write and the
        local copy as they are then."""
        for collection, copy in copies:
            if collection == to or copy.remote_id == link.remote_id:
                continue
            stray = RemoteLink(link.contact_id, collection, copy.remote_id, None, copy.etag, None)
            current = self._current(stray)
            if current is None:
                continue
            touched = self.mirror.pending_fields(self.account.id, item.object_id, item.fields)
            theirs = _edited_there(current, state, touched)
            if not theirs:
                continue
            mine = state.picture
            picture = "picture" in theirs
            merged = dataclasses.replace(
                current,
                remote_id=link.remote_id,
                collection=link.collection,
                etag=link.etag,
                raw=link.raw,
                fields=merge(state.contact.fields, current.fields, theirs),
                group_names=state.group_names,
                group_ids=state.group_ids,
                picture=current.picture if picture else mine.data if mine else None,
                picture_type=current.picture_type
                if picture
                else mine.content_type
                if mine
                else None,
            )
            self.mirror.carried(self.account, link, merged)
            fields = self.mirror.touches(self.account.id, item, theirs)
            item = dataclasses.replace(item, fields=fields)
            state = self.mirror.local_state(self.account.id, item.object_id) or state
        return item, state

    def _discard_copies(
        self,
        contact_id: str,
        keep: str | None = None,
        linked: RemoteLink | None = None,
        copies: list[tuple[str, WriteResult]] | None = None,
    ) -> None:
        """Delete what an earlier attempt at this write may have left at the provider: a
        create or a move made the contact in a folder and its reply was lost (or the move
        failed before it deleted the old one), and since then the contact's groups changed
        (the retry writes it elsewhere) or it was deleted here: nothing else would ever
        remove that copy, which a pull passes over while the write waits (or, once nothing
        waits, takes for a contact of its own). Only items carrying the contact's id, and
        not the one it is linked to now, nor one in ``keep``: the collection the write
        goes to, whose create finds the copy there and writes into it.

        Before the write, not after: once the write is recorded nothing would retry a
        clean-up that failed. A provider that is down raises, and the write waits with
        what it has to clean up. ``linked``: the item the write takes for the contact's,
        where it is not linked yet (``_earlier_copy``); ``copies``: the copies, when the
        caller has asked for them already."""
        link = linked or self.mirror.link_of(self.account.id, contact_id)
        if copies is None:
            copies = self.connector.copies(contact_id)
        for collection, copy in copies:
            if collection == keep:
                continue
            if link is None or copy.remote_id != link.remote_id:
                stray = RemoteLink(
                    contact_id, collection, copy.remote_id, contact_id, copy.etag, copy.raw
                )
                self._delete_whatever_changed(stray)

    def _write_contact(self, item: OutboxItem) -> None:
        account, connector = self.account, self.connector
        state = self.mirror.local_state(account.id, item.object_id)
        writes_groups = connector.capabilities().groups in ("labels", "folders")
        if state is not None and writes_groups and state.unlinked_groups:
            self._groups_first(state.unlinked_groups)
            state = self.mirror.local_state(account.id, item.object_id)
        if state is None:
            # Deleted here since; the delete that follows in the outbox says the rest, but
            # not of a copy an earlier attempt may have made somewhere it is not linked.
            if item.attempts and self._moves():
                self._discard_copies(item.object_id)
            self.mirror.dropped(account.id, item)
            return
        link = state.link
        home = connector.home(_local(state, touched=None))
        if item.attempts and self._moves():
            to = home or (link.collection if link is not None else self._default())
            copies = connector.copies(item.object_id)
            if link is None:
                # A create of this contact landed elsewhere (its answer lost) before its
                # groups changed here: that copy is the contact, which may have been
                # edited there since, so it moves (its changes carried), not made anew.
                link = _earlier_copy(item.object_id, copies, to)
            else:
                item, state = self._carry_from_copies(item, state, link, copies, to)
            self._discard_copies(item.object_id, keep=to, linked=link, copies=copies)
            if link is not None and state.link is None:
                self._move(item, dataclasses.replace(state, link=link), to)
                return
        if link is None:
            self._create(item, state, home or self._default())
            return
        if home is not None and home != link.collection:
            self._move(item, state, home)
            return
        local = _local(state, touched=item.fields)
        try:
            result = connector.update(link.remote_id, link.etag, local, link.raw)
        except RemoteNotFound:
            self._not_found(item, state)
            return
        except PreconditionFailed:
            self._merged(item, state)
            return
        self.mirror.pushed(account, item, link.collection, link.uid, result)

    def _groups_first(self, group_ids: tuple[str, ...]) -> None:
        """Deliver the creates of a contact's groups that wait behind it in the outbox.

        A write sends the contact as it is now, in groups it may have joined after the
        write was queued, and those may not be at the provider yet (made here after it).
        Written first, by name, the provider would get a group that its create, later,
        makes a second time if it was renamed meanwhile (or, on Graph, a folder to put
        the contact in that is not there). A group's create depends on nothing before it,
        so it goes now; one that cannot go yet holds the contact's write back with it
        (until the provider is back, or the write the create waits for has gone out: a
        contact written in such a group by its name would be put in the group that still
        has the name there)."""
        for create in self.mirror.group_creates(self.account.id, group_ids):
            if create.seq not in self.seen:
                self.seen.add(create.seq)
                if not self._deliver(create):
                    raise TransientError(f"its group {create.object_id} is not at the provider yet")
            if create.object_id in self.held:
                raise Held(f"its group {create.object_id} is not at the provider yet")
            # Else delivered, or refused (the contact goes without it).

    def _not_found(self, item: OutboxItem, state: LocalState) -> None:
        """The item is not where the link says: deleted there, or given a new id (Google
        re-keys a person linked with a profile, and names the old resource name in its
        changes). The collection's changes say which, so they are pulled now. A new id moves
        the link, and the edit is merged into what the provider holds there (the etag
        changed with the id); a deletion drops the link, and the edit wins: the contact is
        made again. While the changes say neither (a provider's changes may lag its
        writes), the write waits rather than make a second copy of the contact."""
        gone = state.link
        assert gone is not None
        self.pull_now(gone.collection)
        fresh = self.mirror.local_state(self.account.id, item.object_id)
        if fresh is None:
            self.mirror.dropped(self.account.id, item)  # deleted here meanwhile
        elif fresh.link is None:
            self._create(item, fresh, gone.collection)
        elif fresh.link.remote_id != gone.remote_id:
            self._merged(item, fresh)
        else:
            raise TransientError(
                f"{gone.remote_id} is gone at the provider, and its changes do not say yet "
                "whether it was deleted or given a new id"
            )

    def _create(self, item: OutboxItem, state: LocalState, collection: str) -> None:
        """Make the contact in ``collection``. A contact in no group made in a folder is in
        that folder's group then (``Mirror.pushed``): the default folder's, where a contact
        in no group goes, or the folder it is made again in after it was deleted there."""
        in_folder_group = self._moves() and self.connector.home(_local(state, None)) is None
        result = self._create_item(item, state, collection)
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
            self._merged(item, dataclasses.replace(state, link=link), recreate=False)
            return
        # Made with a picture, it is checked like any other: the provider may hold it in
        # another form (Graph converts to JPEG).
        self.mirror.pushed(
            self.account,
            item,
            collection,
            state.contact.id,
            result,
            no_picture_there=not state.contact.has_picture,
            in_folder_group=in_folder_group,
        )

    def _create_item(
        self,
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
        if self.connector.capabilities().assigns_ids:
            self.mirror.attempting(self.account.id, item)
        return self.connector.create(
            collection,
            dataclasses.replace(local or _local(state, touched=None), replaces=replaces),
            state.contact.id,
            maybe_exists=item.attempts > 0,
        )

    def _move(self, item: OutboxItem, state: LocalState, collection: str) -> None:
        """The contact's groups put it in another collection (a Graph folder): made there,
        then the old item deleted, and only then recorded. A retry after either step finds
        the new item by the contact id it carries (and a pull meanwhile leaves it alone:
        ``Mirror.apply``); the Rolodex id never changes.

        The old item is read first: changed there since the last pull, the new one carries
        that change too (as after a failed precondition), or it would go with the old one.
        What it carries is recorded here first (``LocalSide.carried``): a retry that finds
        the new item then knows which of the old item's changes it holds already."""
        old = state.link
        assert old is not None
        current = self._current(old)
        if current is None or current.etag == old.etag:
            changed, replaces, local = None, old.raw, _local(state, touched=None)
        else:
            # In the folder its groups here name: that is what the move was made for.
            changed, replaces = current, current.raw
            local = dataclasses.replace(
                self._merged_local(item, state, current),
                group_names=state.group_names,
                group_ids=state.group_ids,
            )
            seen = WriteResult(current.remote_id, current.etag, current.raw)
            self.mirror.carried(
                self.account,
                dataclasses.replace(old, remote_id=seen.remote_id, etag=seen.etag, raw=seen.raw),
                dataclasses.replace(_as_written(current, local, seen), collection=collection),
            )
        result = self._create_item(item, state, collection, replaces, local=local)
        merged = _as_written(changed, local, result) if changed is not None else None
        if result.existed:
            result, merged = self._into_earlier_copy(item, state, collection, result, changed)
        self._delete_whatever_changed(old)
        self.mirror.pushed(self.account, item, collection, state.contact.id, result, merged=merged)

    def _into_earlier_copy(
        self,
        item: OutboxItem,
        state: LocalState,
        collection: str,
        found: WriteResult,
        changed: RemoteContact | None,
    ) -> tuple[WriteResult, RemoteContact]:
        """A retried move found the item its earlier attempt made in the new collection.
        That item holds the contact as it was then: the local changes made since (every
        field a waiting change touched), and those the old item took there since the last
        pull (``changed``: the old item as it is now), are written into it; the rest of it
        is left as it is, since another client may have edited it meanwhile. The fields
        carried from the old item become the write's own first (``LocalSide.touches``):
        should this write fail, the next attempt, which finds the old item as carried
        (``LocalSide.carried``) and so nothing to carry, still writes them."""
        link = RemoteLink(
            state.contact.id, collection, found.remote_id, state.contact.id, found.etag, found.raw
        )
        copy = self._current(link)
        if copy is None:
            raise TransientError(f"{found.remote_id} vanished while it was being written")
        touched = self.mirror.pending_fields(self.account.id, item.object_id, item.fields)
        fields = merge(copy.fields, state.contact.fields, touched)
        theirs = () if changed is None else _edited_there(changed, state, touched)
        if changed is not None:
            fields = merge(fields, changed.fields, theirs)
        picture, picture_type = copy.picture, copy.picture_type
        mine = state.picture
        if "picture" in touched:
            picture, picture_type = (mine.data, mine.content_type) if mine else (None, None)
        elif changed is not None and "picture" in theirs:
            picture, picture_type = changed.picture, changed.picture_type
        if theirs:
            self.mirror.touches(self.account.id, item, theirs)
        local = LocalContact(
            fields=fields,
            group_names=state.group_names,
            group_ids=state.group_ids,
            picture=picture,
            picture_type=picture_type,
            touched=None,
        )
        result = self.connector.update(copy.remote_id, copy.etag, local, copy.raw)
        return result, _as_written(copy, local, result)

    def _merged(self, item: OutboxItem, state: LocalState, *, recreate: bool = True) -> None:
        """The provider's copy changed since we read it: re-read it, re-apply the fields
        the local change touched, and write that with the fresh etag."""
        link = state.link
        assert link is not None
        current = self._current(link)
        if current is None:
            if not recreate:
                raise TransientError(f"{link.remote_id} vanished while it was being written")
            self._create(item, state, link.collection)
            return
        local = self._merged_local(item, state, current)
        result = self.connector.update(current.remote_id, current.etag, local, current.raw)
        merged = _as_written(current, local, result)
        self.mirror.pushed(self.account, item, link.collection, link.uid, result, merged=merged)

    def _current(self, link: RemoteLink) -> RemoteContact | None:
        """The linked item as the provider holds it now; None when it is gone."""
        return next(
            (
                i
                for i in self.connector.fetch(link.collection, [link.remote_id])
                if isinstance(i, RemoteContact)
            ),
            None,
        )

    def _merged_local(
        self, item: OutboxItem, state: LocalState, current: RemoteContact
    ) -> LocalContact:
        """What to write over ``current``, changed there since it was read: the fields of
        every local change still waiting re-applied to it, not only this one's (the local
        copy becomes what this write leaves there, and must not lose the later changes)."""
        touched = self.mirror.pending_fields(self.account.id, item.object_id, item.fields)
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

    def _delete(self, item: OutboxItem) -> None:
        link = self.mirror.link_of(self.account.id, item.object_id)
        if link is None:
            self.mirror.dropped(self.account.id, item)  # never reached the provider
            return
        # The user deleted it here after seeing it: the delete stands.
        if not self._delete_whatever_changed(link) and self.connector.capabilities().rekeys:
            self._delete_if_rekeyed(link)
        self.mirror.pushed(self.account, item, link.collection, link.uid, None)

    def _delete_if_rekeyed(self, link: RemoteLink) -> None:
        """A delete that found nothing under the item's id: the provider may have given it
        a new one (Google re-keys a person linked to a profile), and the item would stay
        there under it and come back with the next pull. The collection's changes are
        pulled to learn it: they move the link (the contact's delete waits in the outbox,
        so nothing else of it changes), and the item is deleted under its new id. Only
        then: a read before every delete, to see whether it is still there, cost a
        request per delete against the provider's read quota."""
        self.pull_now(link.collection)
        moved = self.mirror.link_of(self.account.id, link.contact_id)
        if moved is not None and moved.remote_id != link.remote_id:
            self._delete_whatever_changed(moved)

    def _delete_whatever_changed(self, link: RemoteLink) -> bool:
        """Delete the item even if it changed there since (then with the etag the provider
        has now); False when it was not there (already gone is fine)."""
        try:
            self.connector.delete(link.remote_id, link.etag)
        except PreconditionFailed:
            fresh = self._remote_etag(link.collection, link.remote_id)
            if fresh is None:
                return False
            self.connector.delete(link.remote_id, fresh)
        except RemoteNotFound:
            return False
        return True

    def _remote_etag(self, collection: str, remote_id: str) -> str | None:
        for found in self.connector.fetch(collection, [remote_id]):
            return found.etag
        return None

    def _default(self) -> str:
        if self._default_collection is None:
            collections = self.connector.collections()
            if not collections:
                raise PermanentError("the account has no address book to create contacts in")
            if self._moves():
                # The folders are the groups, and a contact of no group made in the default
                # folder is in its group (``_create``): before the account's first pull,
                # that group is not here yet.
                self.mirror.provider_groups(self.account, [(c.id, c.name) for c in collections])
            found = next((c for c in collections if c.is_default), collections[0])
            self._default_collection = found.id
        return self._default_collection


def _edited_there(
    current: RemoteContact, state: LocalState, touched: tuple[str, ...]
) -> tuple[str, ...]:
    """The wire fields ("picture" included) in which the provider's ``current`` differs
    from the local copy and that no waiting write touches: changed there."""
    names = [
        name
        for name in WRITABLE_FIELDS
        if name not in touched
        and getattr(current.fields, name) != getattr(state.contact.fields, name)
    ]
    mine = state.picture.data if state.picture else None
    if "picture" not in touched and current.picture != mine:
        names.append("picture")
    return tuple(names)


def _earlier_copy(
    contact_id: str, copies: list[tuple[str, WriteResult]], to: str
) -> RemoteLink | None:
    """Of the copies of a contact not linked yet, one an earlier create made outside
    ``to`` (where the contact is to be written now), as a link of unknown version, so
    that whatever changed there is merged (``OutboxPush._move``)."""
    for collection, copy in copies:
        if collection != to:
            return RemoteLink(
                contact_id, collection, copy.remote_id, contact_id, UNKNOWN_ETAG, copy.raw
            )
    return None


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
