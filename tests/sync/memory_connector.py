"""An in-memory ``Connector`` that keeps the interface's promises, with fault injection.

It behaves like a well-behaved provider (see ``rolodex.connectors.base``):

- every write gives the item a new etag; writes carry the etag they expect
  (``PreconditionFailed`` when it is stale) and ``update`` of a missing item raises
  ``RemoteNotFound``; deleting an item already gone is not an error;
- each collection has a change log; cursors name a position in it, and ``expire_cursors``
  makes every cursor handed out so far unknown (``CursorExpired``), like a server that
  dropped its sync-token history;
- ``create`` is idempotent by uid: a second create with the same uid in the same
  collection returns the existing item instead of making another (CardDAV's semantics: the
  href comes from the uid). With ``assigns_ids=True`` it has Google's and Graph's instead:
  the provider names each item, and only a create told ``maybe_exists`` looks for an item
  carrying its uid first; any other create makes a new item;
- with ``folders=True`` collections are the contacts' groups (Graph's folders): a
  contact's ``home`` is the collection named like one of its groups;
- with ``labels=True`` groups are items of their own, by id (Google's contact groups): every
  listing names them all (``ChangeSet.groups``), an item is in any number of them, and
  ``create_group`` / ``rename_group`` / ``delete_group`` write them (names are unique: a
  create of a name that exists answers that group, as a retry after a lost reply finds it;
  a delete takes the group off its members, which changes them);
- ``changes(..., with_data=True)`` returns the changed items inline;
- an update rewrites only the fields the ``LocalContact`` says it touched.

Faults: ``plan.fail(op, ...)`` makes the next matching call raise ``TransientError`` either
``before`` the call does anything or ``after`` its side effect happened (the write landed,
the reply was lost). ``plan.down = True`` fails every call, like a server that is gone.

Tests act as "another client" with ``remote_create`` / ``remote_update`` / ``remote_delete``,
which never fail.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rolodex.connectors.base import (
    Capabilities,
    ChangeSet,
    Collection,
    Connector,
    CursorExpired,
    LocalContact,
    LocalGroup,
    PermanentError,
    PreconditionFailed,
    RemoteContact,
    RemoteItem,
    RemoteNotFound,
    TransientError,
    WriteResult,
)
from rolodex.domain.contact import WRITABLE_FIELDS, ContactFields
from rolodex.domain.ids import looks_like_id

OPERATIONS = ("collections", "changes", "snapshot", "fetch", "create", "update", "delete")
GROUP_OPERATIONS = ("create_group", "find_group", "rename_group", "delete_group")


@dataclass
class Fault:
    operation: str
    when: str = "before"  # "before": nothing happened; "after": the side effect landed
    times: int = 1


@dataclass
class FailurePlan:
    faults: list[Fault] = field(default_factory=list)
    down: bool = False
    injected: int = 0

    def fail(self, operation: str, when: str = "before", times: int = 1) -> None:
        assert operation in (*OPERATIONS, *GROUP_OPERATIONS), operation
        assert when in ("before", "after"), when
        self.faults.append(Fault(operation, when, times))

    def clear(self) -> None:
        self.faults.clear()
        self.down = False

    def check(self, operation: str, when: str) -> None:
        if self.down:
            self.injected += 1
            raise TransientError(f"{operation}: connection refused (server down)")
        for fault in self.faults:
            if fault.operation == operation and fault.when == when:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                self.injected += 1
                raise TransientError(f"{operation}: injected failure {when} the call")


@dataclass
class Item:
    remote_id: str
    uid: str
    etag: str
    collection: str
    fields: ContactFields
    group_names: tuple[str, ...] = ()
    picture: bytes | None = None
    picture_type: str | None = None
    born: int = 0  # creation order, for tests that pick items reproducibly
    label_ids: tuple[str, ...] = ()  # with ``labels=True``: the groups it is in, by id

    def remote(self, folder: str | None = None) -> RemoteContact:
        """As read from the provider; ``folder``: the collection's name, where collections
        are the groups (the contact is in exactly that one)."""
        return RemoteContact(
            remote_id=self.remote_id,
            etag=self.etag,
            collection=self.collection,
            fields=self.fields,
            group_names=(folder,) if folder is not None else self.group_names,
            picture=self.picture,
            picture_type=self.picture_type,
            raw=f"{self.uid}@{self.etag}".encode(),
            uid=self.uid,
            rolodex_id=self.uid if looks_like_id(self.uid) else None,
        )


class MemoryConnector:
    def __init__(
        self,
        collections: Iterable[str] = ("contacts",),
        *,
        assigns_ids: bool = False,
        folders: bool = False,
        late_cursor: bool = False,
        labels: bool = False,
    ) -> None:
        self.assigns_ids = assigns_ids
        self.folders = folders
        self.labels = labels
        self.label_names: dict[str, str] = {}  # group id -> name, with ``labels=True``
        self._label_ids = itertools.count(1)
        # Google's way: a snapshot's cursor is handed out with the end of its stream (the
        # sync token comes with the last page), still covering what changed during the read.
        self.late_cursor = late_cursor
        names = list(collections)
        self.books = [
            Collection(id=n, name=n.title(), is_default=i == 0) for i, n in enumerate(names)
        ]
        self.items: dict[str, Item] = {}  # remote_id -> item, every collection
        # Per collection: the change log as (position, remote_id); positions are global.
        self.log: dict[str, list[tuple[int, str]]] = {n: [] for n in names}
        self.epoch = 0  # part of every cursor; expire_cursors moves it on
        self.plan = FailurePlan()
        # False: changes() leaves the data out even when asked (Xandikos does).
        self.inline_data = True
        # True: the engine reads collections' changes ahead (``SyncEngine._read_ahead``).
        self.concurrent_reads = False
        self.calls: list[str] = []
        self._position = itertools.count(1)
        self._last_position = 0
        self._etags = itertools.count(1)
        self._ids = itertools.count(1)
        self._others = itertools.count(1)
        self.closed = 0

    # --- Helpers for tests ---------------------------------------------------------------------

    def _new_etag(self) -> str:
        return f'"e{next(self._etags)}"'

    def _touch(self, collection: str, remote_id: str) -> None:
        self._last_position = next(self._position)
        self.log[collection].append((self._last_position, remote_id))

    def _put(self, item: Item) -> Item:
        if item.remote_id not in self.items:
            item.born = next(self._ids)
        self.items[item.remote_id] = item
        self._touch(item.collection, item.remote_id)
        return item

    def ordered(self) -> list[str]:
        """The remote ids, oldest item first."""
        return sorted(self.items, key=lambda rid: self.items[rid].born)

    def copies(self, uid: str) -> list[tuple[str, WriteResult]]:
        self._enter("copies")
        if not self.folders:
            return []
        return [
            (i.collection, WriteResult(i.remote_id, i.etag, i.remote().raw, existed=True))
            for i in list(self.items.values())
            if i.uid == uid
        ]

    def by_uid(self, uid: str, collection: str | None = None) -> Item | None:
        for item in self.items.values():
            if item.uid == uid and (collection is None or item.collection == collection):
                return item
        return None

    def expire_cursors(self) -> None:
        """Forget the change history: every cursor handed out so far is refused."""
        self.epoch += 1

    # "Another client": never fails, bypasses the plan.

    def remote_create(
        self,
        fields: ContactFields,
        *,
        uid: str | None = None,
        picture: bytes | None = None,
        collection: str | None = None,
    ) -> Item:
        collection = collection or self.books[0].id
        uid = uid or f"other-{next(self._others)}"
        remote_id = f"{collection}/{uid}.vcf"
        assert remote_id not in self.items
        return self._put(
            Item(
                remote_id,
                uid,
                self._new_etag(),
                collection,
                fields,
                picture=picture,
                picture_type="image/png" if picture else None,
            )
        )

    def remote_update(
        self, remote_id: str, *, picture: bytes | bool | None = False, **values: object
    ) -> Item:
        item = self.items[remote_id]
        fields = dataclasses.replace(item.fields, **values)  # type: ignore[arg-type]
        changed = dataclasses.replace(item, fields=fields, etag=self._new_etag())
        if picture is not False:
            assert picture is None or isinstance(picture, bytes)
            changed.picture = picture
            changed.picture_type = "image/png" if picture else None
        return self._put(changed)

    def remote_delete(self, remote_id: str) -> None:
        item = self.items.pop(remote_id)
        self._touch(item.collection, remote_id)

    # --- The Connector interface ------------------------------------------------------------

    def _enter(self, operation: str) -> None:
        self.calls.append(operation)
        self.plan.check(operation, "before")

    def capabilities(self) -> Capabilities:
        groups = "folders" if self.folders else "labels" if self.labels else "categories"
        return Capabilities(
            incremental=True,
            groups=groups,
            pictures=True,
            assigns_ids=self.assigns_ids,
            concurrent_reads=self.concurrent_reads,
        )

    def _read(self, item: Item) -> RemoteContact:
        if self.labels:
            ids = tuple(g for g in item.label_ids if g in self.label_names)
            names = tuple(self.label_names[g] for g in ids)
            return dataclasses.replace(item.remote(), group_names=names, group_ids=ids)
        if not self.folders:
            return item.remote()
        return item.remote(next(b.name for b in self.books if b.id == item.collection))

    def home(self, contact: LocalContact) -> str | None:
        if not self.folders:
            return None
        names = {b.name: b.id for b in self.books}
        return next((names[g] for g in contact.group_names if g in names), None)

    def verify(self) -> None:
        self._enter("collections")

    def collections(self) -> list[Collection]:
        self._enter("collections")
        return list(self.books)

    def changes(self, collection: str, cursor: str | None, *, with_data: bool = False) -> ChangeSet:
        self._enter("changes")
        if collection not in self.log:
            raise RemoteNotFound(collection)
        new_cursor = f"{collection}@{self.epoch}:{self._last_position}"
        members = [i for i in self.items.values() if i.collection == collection]
        if cursor is None:
            result = ChangeSet(
                collection=collection,
                cursor=new_cursor,
                changed={i.remote_id: i.etag for i in members},
                complete=True,
                # Graph's delta from scratch is pages of the contacts themselves.
                fetched=tuple(self._read(i) for i in members)
                if self.folders and self.inline_data
                else (),
            )
        else:
            name, _, mark = cursor.rpartition("@")
            epoch, _, position_text = mark.partition(":")
            if name != collection or epoch != str(self.epoch) or not position_text.isdigit():
                raise CursorExpired(collection)
            position = int(position_text)
            touched = dict.fromkeys(rid for pos, rid in self.log[collection] if pos > position)
            changed = {rid: self.items[rid].etag for rid in touched if rid in self.items}
            result = ChangeSet(
                collection=collection,
                cursor=new_cursor,
                changed=changed,
                removed=tuple(rid for rid in touched if rid not in self.items),
                fetched=tuple(self._read(self.items[rid]) for rid in changed)
                if with_data and self.inline_data
                else (),
            )
        self.plan.check("changes", "after")
        return dataclasses.replace(result, groups=self._groups())

    def _groups(self) -> tuple[tuple[str, str], ...] | None:
        return tuple(self.label_names.items()) if self.labels else None

    def snapshot(self, collection: str) -> ChangeSet:
        self._enter("snapshot")
        if collection not in self.log:
            raise RemoteNotFound(collection)
        cursor = f"{collection}@{self.epoch}:{self._last_position}"

        def stream() -> Iterator[RemoteItem]:
            # Read while it streams, as a server's response: what changes meanwhile may be
            # in it or not, and comes again after the cursor either way.
            for remote_id in list(self.items):
                item = self.items.get(remote_id)
                if item is not None and item.collection == collection:
                    yield self._read(item)
            self.plan.check("snapshot", "after")
            if self.late_cursor:
                object.__setattr__(changes, "cursor", cursor)

        changes = ChangeSet(
            collection=collection,
            cursor=None if self.late_cursor else cursor,
            complete=True,
            stream=stream(),
            groups=self._groups(),
        )
        return changes

    def fetch(self, collection: str, remote_ids: Iterable[str]) -> Iterator[RemoteItem]:
        self._enter("fetch")
        wanted = list(remote_ids)
        found = [
            self._read(self.items[rid])
            for rid in wanted
            if rid in self.items and self.items[rid].collection == collection
        ]
        self.plan.check("fetch", "after")
        yield from found

    def create(
        self, collection: str, contact: LocalContact, uid: str, *, maybe_exists: bool = False
    ) -> WriteResult:
        self._enter("create")
        if collection not in self.log:
            raise RemoteNotFound(collection)
        existing = self.by_uid(uid, collection)
        if self.assigns_ids and not maybe_exists:
            existing = None  # the provider makes another item, whatever it holds
        if existing is not None:
            # Our own earlier create whose reply was lost: the same item, not a second one.
            result = WriteResult(
                existing.remote_id, existing.etag, existing.remote().raw, existed=True
            )
        else:
            name = f"{collection}/{uid}.vcf"
            if self.assigns_ids:
                name = f"{collection}/people/c{next(self._ids)}"
            item = self._put(
                Item(
                    name,
                    uid,
                    self._new_etag(),
                    collection,
                    contact.fields,
                    contact.group_names,
                    contact.picture,
                    contact.picture_type if contact.picture is not None else None,
                    label_ids=self._labels_of(contact),
                )
            )
            partial = self._labels_gone(contact)
            result = WriteResult(item.remote_id, item.etag, item.remote().raw, partial=partial)
        self.plan.check("create", "after")
        return result

    def update(
        self, remote_id: str, etag: str, contact: LocalContact, raw: bytes | None
    ) -> WriteResult:
        self._enter("update")
        item = self.items.get(remote_id)
        if item is None:
            raise RemoteNotFound(remote_id)
        if item.etag != etag:
            raise PreconditionFailed(remote_id)
        touched = {*WRITABLE_FIELDS, "groups", "picture"}
        if contact.touched is not None:
            touched = set(contact.touched)
        values = {n: getattr(contact.fields, n) for n in WRITABLE_FIELDS if n in touched}
        changed = dataclasses.replace(
            item, fields=dataclasses.replace(item.fields, **values), etag=self._new_etag()
        )
        if "groups" in touched:
            changed.group_names = contact.group_names
            changed.label_ids = self._labels_of(contact)
        if "picture" in touched:
            changed.picture = contact.picture
            changed.picture_type = contact.picture_type if contact.picture is not None else None
        self._put(changed)
        self.plan.check("update", "after")
        partial = "groups" in touched and self._labels_gone(contact)
        return WriteResult(changed.remote_id, changed.etag, changed.remote().raw, partial=partial)

    def delete(self, remote_id: str, etag: str) -> None:
        self._enter("delete")
        item = self.items.get(remote_id)
        if item is not None:
            if item.etag != etag:
                raise PreconditionFailed(remote_id)
            self.remote_delete(remote_id)
        self.plan.check("delete", "after")

    def _labels_of(self, contact: LocalContact) -> tuple[str, ...]:
        """The groups a written contact names, by id; one of an id no longer here (deleted
        meanwhile) is left out, and one named by its name only is found by its name or
        made, as the Google connector does (``GoogleConnector._group_resource_names``)."""
        if not self.labels:
            return ()
        found: list[str] = []
        ids = contact.group_ids or (None,) * len(contact.group_names)
        for name, group_id in zip(contact.group_names, ids, strict=True):
            if group_id is not None and group_id not in self.label_names:
                continue
            if group_id is None:
                group_id = self._label_named(name) or self.remote_create_label(name)
            if group_id not in found:
                found.append(group_id)
        return tuple(found)

    def _labels_gone(self, contact: LocalContact) -> bool:
        """Whether a written contact names a group deleted here meanwhile, left out of it:
        what it holds is then not what was sent (``WriteResult.partial``)."""
        return self.labels and any(
            g is not None and g not in self.label_names for g in contact.group_ids
        )

    def _label_named(self, name: str) -> str | None:
        return next((g for g, n in self.label_names.items() if n == name), None)

    def create_group(self, group: LocalGroup) -> WriteResult:
        self._enter("create_group")
        group_id = self._label_named(group.name) or self.remote_create_label(group.name)
        self.plan.check("create_group", "after")
        return WriteResult(group_id, f'"{group_id}"')

    def find_group(self, path: str) -> WriteResult | None:
        self._enter("find_group")
        group_id = self._label_named(path)
        self.plan.check("find_group", "after")
        return None if group_id is None else WriteResult(group_id, f'"{group_id}"', existed=True)

    def rename_group(self, group: LocalGroup) -> WriteResult:
        self._enter("rename_group")
        assert group.remote_id is not None
        if group.remote_id not in self.label_names:
            raise RemoteNotFound(group.remote_id)
        other = self._label_named(group.name)
        if other is not None and other != group.remote_id:
            raise PermanentError(f"a group named {group.name!r} exists (409 ALREADY_EXISTS)")
        self.remote_rename_label(group.remote_id, group.name)
        self.plan.check("rename_group", "after")
        return WriteResult(group.remote_id, f'"{group.remote_id}"')

    def delete_group(self, group: LocalGroup) -> None:
        self._enter("delete_group")
        if group.remote_id is not None and group.remote_id in self.label_names:
            self.remote_delete_label(group.remote_id)
        self.plan.check("delete_group", "after")

    # "Another client"'s group edits (``labels=True``).

    def remote_create_label(self, name: str) -> str:
        assert self._label_named(name) is None, name
        group_id = f"contactGroups/g{next(self._label_ids)}"
        self.label_names[group_id] = name
        return group_id

    def remote_rename_label(self, group_id: str, name: str) -> None:
        self.label_names[group_id] = name

    def remote_delete_label(self, group_id: str) -> None:
        """The group goes; its members stay, changed (they are no longer in it)."""
        del self.label_names[group_id]
        for item in list(self.items.values()):
            if group_id in item.label_ids:
                self.remote_label_member(item.remote_id, group_id, add=False)

    def remote_label_member(self, remote_id: str, group_id: str, *, add: bool) -> None:
        item = self.items[remote_id]
        ids = tuple(g for g in item.label_ids if g != group_id)
        if add:
            ids = (*ids, group_id)
        self._put(dataclasses.replace(item, label_ids=ids, etag=self._new_etag()))

    def close(self) -> None:
        self.closed += 1


def _conforms(connector: MemoryConnector) -> Connector:
    return connector  # mypy checks the class against the Protocol here
