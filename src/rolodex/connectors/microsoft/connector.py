"""The Microsoft Graph connector: Outlook / Microsoft 365 contacts and contact folders.

Collections are contact folders: the default folder (collection id ``contacts``, reached as
``/me/contacts``, which is scoped to it) and every folder under it, found through
``/me/contactFolders`` and each folder's ``childFolders``. A contact is in exactly one
folder, which is its one v2 group, named by the folder's path ("Contacts/Friends/Close").

Each folder has its own delta query (providers.md §5.3): every page is followed through
``@odata.nextLink`` as given and the ``@odata.deltaLink`` is the cursor, kept whole. A 410
or a ``syncStateNotFound`` / ``resyncRequired`` / ``SyncStateInvalid`` answer, in any letter
case, is ``CursorExpired``. Replays and duplicates in delta pages are harmless: the last
state of an id in a round wins, and applying an unchanged item changes nothing.

Rolodex's id of a contact is written in a single-value extended property, which a retried
create looks for with ``$filter`` and reads back with ``$expand`` (delta pages do not carry
extended properties; items the engine fetches do).

Pictures: Graph's delta does not track the photo (a navigation property), so pictures are
read when an item is fetched or changes, through ``/photo/$value``, and apart from the
items (``pictures``, ``Capabilities.picture_backfill``: a first sync reads none, and a photo
changed alone is no change in delta); written with a ``PUT``; Graph cannot delete a contact
photo, so a delete is refused before anything is sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from rolodex.connectors import pictures as picture_formats
from rolodex.connectors.base import (
    Capabilities,
    ChangeSet,
    Collection,
    Connector,
    LocalContact,
    LocalGroup,
    PermanentError,
    PictureReader,
    PreconditionFailed,
    RemoteContact,
    RemoteItem,
    RemoteNotFound,
    RemotePicture,
    TransientError,
    WriteResult,
)
from rolodex.connectors.microsoft import mapping, parsing
from rolodex.connectors.microsoft.client import GraphClient
from rolodex.connectors.microsoft.folders import DEFAULT, Folder, FolderTree, seg
from rolodex.connectors.microsoft.parsing import ROLODEX_ID_PROPERTY

log = logging.getLogger(__name__)

EXPAND = f"singleValueExtendedProperties($filter=id eq '{ROLODEX_ID_PROPERTY}')"
PAGE_SIZE = 500  # Prefer: odata.maxpagesize for delta pages
FETCH_WORKERS = 4  # the mailbox's concurrency limit
PHOTO_LIMIT = 4 * 1024 * 1024  # Graph limits the whole request to 4 MB
# Pictures checked apart per sync round, one request each: at the 30 s default interval,
# 6,000 requests in 10 minutes, within the 10,000 Graph allows an app per mailbox
# (providers.md M8) with room for the syncs themselves and the mailbox's other clients; a
# 50,000-contact mailbox has its pictures in under an hour and a half.
PICTURE_CHECKS = 300
# A photo changed in Outlook without any other edit is seen once its contact's picture is
# checked again, at the latest this long after the last check.
PICTURE_RECHECK = 24 * 3600.0


class MicrosoftConnector:
    def __init__(self, client: GraphClient, *, page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self._page_size = page_size
        self._pool = parsing.Pool()
        self._threads: ThreadPoolExecutor | None = None  # ``_requests``
        self._tree = FolderTree(client, self._requests)
        # Folder -> Rolodex ids of creates whose outcome is unknown (their reply was lost).
        self._uncertain: dict[str, set[str]] = {}

    def close(self) -> None:
        self._pool.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _requests(self) -> ThreadPoolExecutor:
        """The threads that send this mailbox's requests side by side (as many as it takes
        at once), kept with the connector between syncs: a sync after one change started
        a pool for its folder listing and one for each folder's changed items, a thread
        start for nearly every request. Their tasks send requests and submit nothing, so
        callers on other threads (folders read at once) share them without deadlock."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="graph")
        return self._threads

    def idle(self) -> None:
        """Between syncs (``rolodex.connectors.base.KeptOpen``): the parsing processes of a
        snapshot go; the connections stay."""
        self._pool.close()

    def capabilities(self) -> Capabilities:
        return Capabilities(
            incremental=True,
            groups="folders",
            pictures=True,
            assigns_ids=True,
            picture_backfill=PICTURE_CHECKS,
            picture_recheck=PICTURE_RECHECK,
            # The folders' deltas read at once, within the mailbox's 4 requests in flight.
            concurrent_reads=True,
        )

    def verify(self) -> None:
        """A token refresh and one Graph call (the default folder, which every mailbox has)."""
        self._client.verify_grant()
        try:
            self._client.get_json("/me/contacts", params={"$top": "1", "$select": "id"})
        except RemoteNotFound:
            # No item was asked for: what is missing is the mailbox's default folder.
            raise PermanentError(
                "Microsoft Graph found no default contact folder for this account's mailbox"
            ) from None

    # --- Folders (rolodex.connectors.microsoft.folders) --------------------------------------

    def collections(self) -> list[Collection]:
        folders = self._tree.folders(refresh=True)
        return [
            Collection(id=f.id, name=f.path, is_default=f.id == DEFAULT)
            for f in sorted(folders.values(), key=lambda f: (f.id != DEFAULT, f.path))
        ]

    def home(self, contact: LocalContact) -> str | None:
        return self._tree.home(contact.group_names)

    def create_group(self, group: LocalGroup) -> WriteResult:
        return self._tree.create(group)

    def find_group(self, path: str) -> WriteResult | None:
        return self._tree.find(path)

    def rename_group(self, group: LocalGroup) -> WriteResult:
        return self._tree.rename(group)

    def delete_group(self, group: LocalGroup) -> None:
        self._tree.delete(group)

    # --- Reading ------------------------------------------------------------------------------

    def _delta(self, collection: str, cursor: str | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """The pages of one delta round (raw body, parsed body): from ``cursor`` (a
        deltaLink), or from scratch; none for an empty default folder without an id yet
        (the round is then complete, empty and without a deltaLink)."""
        url = cursor or self._tree.delta_start(collection)
        if url is None:
            return
        # DOC contact-delta, "Request headers": Prefer odata.maxpagesize, optional, and
        # "Content-Type: application/json. Required." (on a GET; sent as written).
        headers = {
            "Prefer": f"odata.maxpagesize={self._page_size}",
            "Content-Type": "application/json",
        }
        first = cursor is None and collection == DEFAULT
        while True:
            try:
                response = self._client.request("GET", url, headers=headers, delta=True)
            except RemoteNotFound:
                if not first:
                    raise
                # The default folder not served under its id: /me/contacts/delta, which
                # works though the reference does not list it (Microsoft Q&A 1634378).
                first, url = False, "/me/contacts/delta"
                continue
            first = False
            page = orjson.loads(response.content)
            yield response.content, page
            nxt = page.get("@odata.nextLink")
            if nxt:
                url = nxt  # followed as given
                continue
            if not page.get("@odata.deltaLink"):
                raise PermanentError(f"a delta page of {collection} had neither link")
            return

    def changes(self, collection: str, cursor: str | None, *, with_data: bool = False) -> ChangeSet:
        """One delta round: the changed items' ids and etags, and the removed ids; from
        scratch (a resync after an expired cursor), complete. The engine fetches (``fetch``)
        only the items whose etags differ from those it holds: delta pages carry neither
        the photo nor the extended property with Rolodex's id (which tells a create of ours
        whose reply was lost from a contact made in Outlook), and an update may name only
        its changed properties, so a changed item is read again whole; but Rolodex's own
        writes, which come back in the next round with the etags their replies gave, are
        not read again (two requests each, against the mailbox's throttling limits)."""
        begun = time.monotonic()
        self._tree.folder(collection)
        changed: dict[str, str] = {}
        removed: dict[str, None] = {}
        link: str | None = None
        for _content, page in self._delta(collection, cursor):
            for entry in page.get("value") or []:
                rid = entry.get("id")
                if not isinstance(rid, str):
                    continue
                # Replays and duplicates: the last state of an id in the round wins.
                if "@removed" in entry:
                    changed.pop(rid, None)
                    removed[rid] = None
                    continue
                removed.pop(rid, None)
                changed[rid] = parsing.etag_of(entry)
            link = page.get("@odata.deltaLink") or link
        return ChangeSet(
            collection=collection,
            cursor=link,
            changed=changed,
            removed=self._gone(list(removed), begun) if cursor is not None else tuple(removed),
            complete=cursor is None,
        )

    def _gone(self, removed: list[str], begun: float) -> tuple[str, ...]:
        """Of the ids a folder's round names removed, those no folder of ours holds now. A
        contact moved out of a folder is removed from its delta, and with an id that stays
        across folders (immutable ids, DOC outlook-immutable-id: it "will NOT change if the
        item is moved to a different folder") the folder it went to reports the same id:
        the engine removes by id, so whichever folder's round it applies last would decide
        whether the contact is kept. A contact deleted in Outlook may still be read, in
        Deleted Items, a folder that is not ours: still removed. A folder not known may be
        one made since the tree was listed, the contact moved into it: known by a listing
        begun after this round's delta (``begun``), which the sync makes meanwhile."""
        if not removed:
            return ()
        parents = list(self._requests().map(self._parent_of, removed))
        if any(p is not None and self._tree.collection_of(p) is None for p in parents):
            self._tree.folders(since=begun)
        return tuple(
            rid
            for rid, parent in zip(removed, parents, strict=True)
            if self._tree.collection_of(parent) is None
        )

    def _parent_of(self, remote_id: str) -> str | None:
        """The parentFolderId of a contact read through the mailbox; None when it is gone."""
        try:
            found = self._client.get_json(
                f"/me/contacts/{seg(remote_id)}", params={"$select": "parentFolderId"}
            )
        except RemoteNotFound:
            return None
        parent = found.get("parentFolderId") if isinstance(found, dict) else None
        return parent if isinstance(parent, str) and parent else None

    def snapshot(self, collection: str) -> ChangeSet:
        """A delta round from scratch, streamed page by page: pages are read one ahead on a
        thread, and parsed on every core from the first thousand contacts on, while the
        engine applies what came before. Graph gives the deltaLink only on the last page,
        so the ChangeSet's cursor is set when the stream ends (the engine reads it after
        the stream)."""
        parsing.warm_up()
        folder = self._tree.folder(collection)
        result = ChangeSet(collection=collection, cursor=None, complete=True)
        last: list[str] = []

        def pages() -> Iterator[tuple[bytes, dict[str, Any]]]:
            for content, page in _read_ahead(self._delta(collection, None)):
                if page.get("@odata.deltaLink"):
                    last.append(page["@odata.deltaLink"])
                yield content, page

        claimed = self._claimed(folder)

        def stream() -> Iterator[RemoteItem]:
            for item in parsing.parsed(folder.id, folder.path, pages(), self._pool):
                rolodex_id = claimed.get(item.remote_id)
                yield dataclasses.replace(item, rolodex_id=rolodex_id) if rolodex_id else item
            object.__setattr__(result, "cursor", last[-1] if last else None)

        object.__setattr__(result, "stream", stream())
        return result

    def _claimed(self, folder: Folder) -> dict[str, str]:
        """Remote id -> Rolodex id of the contacts that creates of this sync whose reply was
        lost did make. Delta pages do not carry the extended property that says so, and the
        engine would otherwise take such a contact for a new one made in Outlook: looked up
        by the property instead (a failure stops the snapshot rather than risk that)."""
        found: dict[str, str] = {}
        for uid in sorted(self._uncertain.get(folder.id, ())):
            hit = self._find(folder, uid)
            if hit is not None:
                found[hit.remote_id] = uid
        return found

    def fetch(self, collection: str, remote_ids: Iterable[str]) -> Iterator[RemoteItem]:
        """The items read one by one (with Rolodex's id expanded) and their photos, up to 4
        requests at a time, in chunks so that memory stays flat."""
        folder = self._tree.folder(collection)
        ids = list(dict.fromkeys(remote_ids))
        if not ids:
            return
        pool = self._requests()
        for start in range(0, len(ids), 64):
            chunk = ids[start : start + 64]
            items = [pool.submit(self._get, folder, rid) for rid in chunk]
            photos = [pool.submit(self._photo, rid) for rid in chunk]
            with _cancelled_on_exit([*items, *photos]):
                for got, photo in zip(items, photos, strict=True):
                    item = got.result()
                    data, content_type = photo.result()
                    if item is not None:
                        yield dataclasses.replace(
                            item, picture=data, picture_type=content_type, picture_checked=True
                        )

    def pictures(self, remote_ids: Sequence[str]) -> Iterator[RemotePicture]:
        """Each contact's ``/photo/$value`` (404: none), 4 at a time (the client holds
        the mailbox to its limit), in order, in chunks so that memory stays flat."""
        pool = self._requests()
        for start in range(0, len(remote_ids), 64):
            chunk = remote_ids[start : start + 64]
            photos = [pool.submit(self._photo, rid) for rid in chunk]
            with _cancelled_on_exit(photos):
                for rid, photo in zip(chunk, photos, strict=True):
                    try:
                        data, content_type = photo.result()
                    except PermanentError as error:
                        # One contact's refusal must not hold up the others' checks.
                        yield RemotePicture(rid, None, refused=error.message)
                        continue
                    yield RemotePicture(rid, data, content_type)

    def _get(self, folder: Folder, remote_id: str) -> RemoteContact | None:
        try:
            response = self._client.request(
                "GET", f"/me/contacts/{seg(remote_id)}", params={"$expand": EXPAND}
            )
        except RemoteNotFound:
            return None
        return self._item(folder, orjson.loads(response.content), raw=response.content)

    def _photo(self, remote_id: str) -> tuple[bytes | None, str | None]:
        # 404 when the contact has no photo (DOC profilephoto-get: "If no photo exists,
        # the operation returns 404 Not Found"), as when the contact itself is gone.
        # The client asks for JSON by default; the photo's $value is an image (and a 404
        # for a contact without one is Graph's JSON error body).
        try:
            response = self._client.request(
                "GET", f"/me/contacts/{seg(remote_id)}/photo/$value", headers=_IMAGE
            )
        except RemoteNotFound:
            return None, None
        content_type = response.headers.get("Content-Type", "image/jpeg").split(";")[0].strip()
        return response.content, content_type

    @staticmethod
    def _item(folder: Folder, entry: dict[str, Any], raw: bytes | None = None) -> RemoteContact:
        return parsing.item(folder.id, folder.path, entry, raw)

    # --- Writing ------------------------------------------------------------------------------

    def create(
        self, collection: str, contact: LocalContact, uid: str, *, maybe_exists: bool = False
    ) -> WriteResult:
        self._check_picture(contact)
        folder = self._tree.folder(collection)
        path = self._tree.contacts_path(folder.id)
        if maybe_exists:
            try:
                found = self._find(folder, uid)
            except TransientError:
                self._uncertain.setdefault(folder.id, set()).add(uid)  # an earlier attempt
                raise
            if found is not None:
                return found
        body = mapping.to_graph(contact.fields, None)
        body = {k: v for k, v in body.items() if not mapping.is_empty(v)}
        if contact.replaces:
            body = {**mapping.unmapped(orjson.loads(contact.replaces)), **body}
        body["singleValueExtendedProperties"] = [{"id": ROLODEX_ID_PROPERTY, "value": uid}]
        try:
            response = self._client.request("POST", path, json=body)
        except TransientError:
            # The reply may be lost with the contact made: a snapshot of this folder in the
            # same sync must tell it from a contact made in Outlook (``_claimed``).
            self._uncertain.setdefault(folder.id, set()).add(uid)
            raise
        created = orjson.loads(response.content)
        if folder.id == DEFAULT:
            self._tree.learn_default(created)
        remote_id = str(created["id"])
        etag = parsing.etag_of(created)
        raw = response.content
        if contact.picture:
            etag, raw = self._put_photo(remote_id, contact)
        return WriteResult(remote_id=remote_id, etag=etag, raw=raw)

    def copies(self, uid: str) -> list[tuple[str, WriteResult]]:
        # One look-up per folder: asked only after a write of the contact's groups failed
        # once (``OutboxPush``), which is rare.
        found = []
        for folder in list(self._tree.folders().values()):
            copy = self._find(folder, uid)
            if copy is not None:
                found.append((folder.id, copy))
        return found

    def _find(self, folder: Folder, uid: str) -> WriteResult | None:
        """The contact of ``folder`` that holds Rolodex's id ``uid``, if any."""
        value = uid.replace("'", "''")
        flt = (
            f"singleValueExtendedProperties/Any(ep: ep/id eq '{ROLODEX_ID_PROPERTY}' "
            f"and ep/value eq '{value}')"
        )
        path = self._tree.contacts_path(folder.id)
        # No $expand: the reference documents it on one item, not with this filter on a
        # list (DOC singlevaluelegacyextendedproperty-get: "The response body does not
        # include the extended property"), and the id is what is looked for anyway.
        page = self._client.get_json(path, params={"$filter": flt})
        for entry in page.get("value") or []:
            if not self._tree.holds(folder.id, entry):
                continue  # the one a move left elsewhere
            return WriteResult(
                remote_id=str(entry["id"]),
                etag=parsing.etag_of(entry),
                raw=orjson.dumps(entry),
                existed=True,
            )
        return None

    def update(
        self, remote_id: str, etag: str, contact: LocalContact, raw: bytes | None
    ) -> WriteResult:
        self._check_picture(contact)
        touched = contact.touched
        current = orjson.loads(raw) if raw else None
        body = mapping.to_graph(contact.fields, touched, current)
        url = f"/me/contacts/{seg(remote_id)}"
        picture = (touched is None or "picture" in touched) and contact.picture is not None
        result = WriteResult(remote_id=remote_id, etag=etag, raw=raw)
        if body:
            # Only the touched properties, so what Rolodex does not map (categories...)
            # stays as it is; If-Match makes a newer version there a 412. Through the
            # folder the contact was in when last read; moved since, it is found
            # through the mailbox.
            where = self._tree.contact_path(remote_id, (current or {}).get("parentFolderId"))
            try:
                response = self._client.request("PATCH", where, json=body, headers=_if_match(etag))
            except RemoteNotFound:
                if where == url:
                    raise
                response = self._client.request("PATCH", url, json=body, headers=_if_match(etag))
            entry = orjson.loads(response.content)
            result = WriteResult(remote_id, parsing.etag_of(entry), response.content)
        elif picture or raw is None:
            # Nothing to PATCH (a picture alone; PUT /photo/$value takes no If-Match):
            # check the etag by reading the item.
            response = self._client.request("GET", url)
            entry = orjson.loads(response.content)
            if parsing.etag_of(entry) != etag:
                raise PreconditionFailed(remote_id)
            result = WriteResult(remote_id, etag, response.content)
        if picture:
            new_etag, new_raw = self._put_photo(remote_id, contact)
            result = WriteResult(remote_id, new_etag, new_raw)
        return result

    def _put_photo(self, remote_id: str, contact: LocalContact) -> tuple[str, bytes]:
        assert contact.picture is not None
        # DOC profilephoto-update, "Request headers": "Content-Type image/jpeg. Required.":
        # a PNG, GIF or WebP picture goes as a JPEG.
        picture, content_type = picture_formats.in_format(
            contact.picture,
            contact.picture_type,
            frozenset({picture_formats.JPEG}),
            picture_formats.JPEG,
        )
        if len(picture) >= PHOTO_LIMIT:
            raise PermanentError("Graph takes contact photos under 4 MB")
        url = f"/me/contacts/{seg(remote_id)}"
        self._client.request(
            "PUT",
            url + "/photo/$value",
            content=picture,
            headers={"Content-Type": content_type},
        )
        # The photo changes the item's changeKey: read the etag it has now.
        response = self._client.request("GET", url)
        return parsing.etag_of(orjson.loads(response.content)), response.content

    @staticmethod
    def _check_picture(contact: LocalContact) -> None:
        touched = contact.touched
        if contact.picture is None and touched is not None and "picture" in touched:
            raise PermanentError(
                "Microsoft Graph cannot delete a contact's photo; replace it with another "
                "picture instead",
                400,
            )

    def delete(self, remote_id: str, etag: str) -> None:
        """Through the folder the contact is in (``FolderTree.contact_path``), read first
        through the mailbox; deleting an item already gone is not an error. The contact
        was just read, so a 404 through its folder is the path not served (the reference
        gives it for a top-level folder and a childFolders chain below one), not the
        contact gone: sent again through the mailbox, where a 404 is."""
        url = f"/me/contacts/{seg(remote_id)}"
        with contextlib.suppress(RemoteNotFound):
            found = self._client.get_json(url, params={"$select": "parentFolderId"})
            where = self._tree.contact_path(remote_id, found.get("parentFolderId"))
            try:
                self._client.request("DELETE", where, headers=_if_match(etag))
            except RemoteNotFound:
                if where == url:
                    raise
                self._client.request("DELETE", url, headers=_if_match(etag))


@contextlib.contextmanager
def _cancelled_on_exit(futures: list[Future[Any]]) -> Iterator[None]:
    """Requests not sent yet are not sent once their reader stops (a sync stopped between
    two items, a failure): the kept threads go on to other work instead."""
    try:
        yield
    finally:
        for future in futures:
            future.cancel()


_IMAGE = {"Accept": "image/*, application/json;q=0.5"}


def _if_match(etag: str) -> dict[str, str]:
    """If-Match for a known version; none for an unknown one (an empty If-Match holds no
    entity tag, RFC 9110 §13.1.1)."""
    return {"If-Match": etag} if etag else {}


_DONE = object()
T = TypeVar("T")


def _read_ahead(pages: Iterator[T]) -> Iterator[T]:
    """``pages``, read one page ahead on a thread (the next request is in flight while the
    caller handles the current page); errors come out where the page would have."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def reader() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        slots.put(page, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as error:  # handed to the consumer
            slots.put(error)

    thread = threading.Thread(target=reader, name="graph-delta", daemon=True)
    thread.start()
    try:
        while True:
            got = slots.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()


if TYPE_CHECKING:

    def _conforms(connector: MicrosoftConnector) -> Connector:
        return connector  # mypy checks the class against the Protocol here

    def _reads_pictures(connector: MicrosoftConnector) -> PictureReader:
        return connector
