"""The Google Contacts connector: the ``Connector`` interface over the People API.

Identity: one collection, ``people/me`` (the user's contacts, Google's "My Contacts"); a
remote id is the person's resource name (``people/c123``), an etag the person's. Contacts
Rolodex creates carry the Rolodex id in ``clientData`` (key ``rolodex.id``), so that a create
whose reply was lost is found instead of made twice (``create(maybe_exists=True)``).

Sync (``providers.md`` §5.2): a first sync pages through ``people/me/connections`` with
``pageSize=1000`` and ``requestSyncToken=true``; the sync token comes with the last page, so
the snapshot's cursor is known once its stream is exhausted. Later syncs send that token;
deleted people come with ``metadata.deleted``. An expired token (400 or 410 with reason
``EXPIRED_SYNC_TOKEN``, or any 400 or 410 to a call that sent a token) is ``CursorExpired``.
Contact groups sync beside people with their own sync token; the cursor holds both (a
groups token refused alone is replaced by a listing of the groups, not a full resync). A person
listed with 100 emails or phone numbers, as many as a listing sends, is read whole.

Groups: Google's contact groups are labels, named on contacts (``group_names``) by their
name (system groups by Google's display name: "Starred"), and user groups by their resource
name too (``group_ids``), which stays when a group is renamed. Every user group comes with
the changes (``ChangeSet.groups``), so that a group renamed at Google (which changes no
member's etag) is renamed here, members and all, and one deleted there is deleted here.
``myContacts`` is not a label but the address book itself (a contact must stay in it to be
one of the user's contacts), so it is never shown as a group and every contact Rolodex
writes stays in it. A group name written that Google does not know is created there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson

from rolodex.connectors import pictures
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
    WriteResult,
)
from rolodex.connectors.google import mapping, parsing
from rolodex.connectors.google.client import (
    PeopleClient,
    PhotoUnreachable,
    ScopeMissing,
    SyncTokenExpired,
)
from rolodex.connectors.google.labels import Labels
from rolodex.domain.contact import SOURCE_INBOX, WRITABLE_FIELDS

log = logging.getLogger(__name__)

PEOPLE = "people/me"
OTHER = "otherContacts"
OTHER_FIELDS = "emailAddresses,metadata,names,phoneNumbers,photos"  # its readMask's paths
_OTHER_PREFIX = "o1:"
PAGE_SIZE = 1000
GOOGLE_PHOTO_TYPES = frozenset({pictures.JPEG, pictures.PNG})
BATCH_GET = 200  # people:batchGet's limit (providers.md §2a)
# connections.list sends at most 100 email addresses and 100 phone numbers a person: "If a
# Person has more email addresses the entire set can be obtained by calling GetPeople"
# (Person.emailAddresses, phoneNumbers).
LISTED_CAP = 100
_CURSOR_PREFIX = "g1:"
_ALL_TOUCHED = (*WRITABLE_FIELDS, "groups", "picture")


def encode_cursor(
    people: str | None, groups: str | None, known: dict[str, dict[str, Any]] | None = None
) -> str | None:
    """The cursor of the collection: both sync tokens, and the groups known then (name and
    type), so that a later sync needs only the groups' changes, not a listing of them."""
    if people is None:
        return None
    names = {
        rn: [g.get("name"), g.get("formattedName"), g.get("groupType")]
        for rn, g in (known or {}).items()
    }
    return _CURSOR_PREFIX + orjson.dumps({"p": people, "g": groups, "n": names}).decode()


def decode_cursor(cursor: str) -> tuple[str, str | None, dict[str, dict[str, Any]] | None]:
    if not cursor.startswith(_CURSOR_PREFIX):
        raise ValueError(cursor)
    data = orjson.loads(cursor[len(_CURSOR_PREFIX) :])
    known = None
    if isinstance(data.get("n"), dict):
        known = {
            rn: {"resourceName": rn, "name": v[0], "formattedName": v[1], "groupType": v[2]}
            for rn, v in data["n"].items()
        }
    return str(data["p"]), data.get("g"), known


class GoogleConnector:
    def __init__(self, client: PeopleClient) -> None:
        self._client = client
        self._labels = Labels(client)
        self._thread: ThreadPoolExecutor | None = None  # ``_beside``

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False)
        self._client.close()

    def _beside(self) -> ThreadPoolExecutor:
        """A thread of the connector's own, for a read beside the caller's (kept with the
        connector between syncs)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="google-beside")
        return self._thread

    def capabilities(self) -> Capabilities:
        return Capabilities(
            incremental=True,
            groups="labels",
            pictures=True,
            assigns_ids=True,
            rekeys=True,
            # "Writes may have a propagation delay of several minutes for sync requests"
            # (people.connections.list): what a full listing leaves out is read directly
            # (people:batchGet) before it counts as deleted.
            lagging_lists=True,
            # People and other contacts read at once (the client refreshes one at a time).
            concurrent_reads=True,
        )

    def verify(self) -> None:
        # A refresh (is the grant alive?) and one People call (does it reach contacts?).
        self._client.refresh()
        self._client.get("people/me/connections", {"personFields": "names", "pageSize": 1})

    def collections(self) -> list[Collection]:
        return [
            Collection(id=PEOPLE, name="Google Contacts", is_default=True),
            # People Gmail saved from mail: read-only, v2's source "inbox".
            Collection(id=OTHER, name="Other contacts"),
        ]

    def home(self, contact: LocalContact) -> str | None:
        return None

    def copies(self, uid: str) -> list[tuple[str, WriteResult]]:
        return []  # one collection: a person never moves

    # --- Groups (rolodex.connectors.google.labels) ---------------------------------------
    # A user group's provider id is its resource name, as for the groups read
    # (``ChangeSet.groups``): it stays when the group is renamed, here or at Google.

    def create_group(self, group: LocalGroup) -> WriteResult:
        return self._labels.create(group)

    def find_group(self, path: str) -> WriteResult | None:
        return self._labels.named(path)

    def rename_group(self, group: LocalGroup) -> WriteResult:
        return self._labels.rename(group)

    def delete_group(self, group: LocalGroup) -> None:
        self._labels.delete(group)

    # --- Reading ------------------------------------------------------------------------------

    def _item(self, person: dict[str, Any]) -> RemoteContact:
        return self._with_photo(*parsing.contact(PEOPLE, person, self._labels.group_map()))

    def _listed(self, item: RemoteContact, url: str | None) -> RemoteContact:
        """A person as a listing had it, or read whole when the listing may have cut its
        emails or phone numbers (written back as read, the rest would be lost)."""
        fields = item.fields
        if len(fields.emails) < LISTED_CAP and len(fields.phone_numbers) < LISTED_CAP:
            return self._with_photo(item, url)
        whole = next(iter(self.fetch(PEOPLE, [item.remote_id])), None)
        if not isinstance(whole, RemoteContact):
            return self._with_photo(item, url)
        previous = tuple(dict.fromkeys((*item.previous_ids, *whole.previous_ids)))
        return dataclasses.replace(whole, previous_ids=previous)

    def _with_photo(self, item: RemoteContact, url: str | None) -> RemoteContact:
        if url is None:
            return item
        try:
            got = self._client.photo(url)
        except PhotoUnreachable as exc:
            # Photos are on a host of their own (lh3.googleusercontent.com): one that cannot
            # be reached must not hold back the sync of every contact. Unknown, the picture
            # held stays; the person's next change reads it again.
            log.warning("%s: %s; its picture is left as it is", item.remote_id, exc)
            return dataclasses.replace(item, picture_checked=False)
        if got is None:
            return item
        return dataclasses.replace(item, picture=got[0], picture_type=got[1])

    def _listing(self, sync_token: str | None) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        params: dict[str, Any] = {
            "personFields": mapping.READ_FIELDS,
            "pageSize": PAGE_SIZE,
            "requestSyncToken": "true",
        }
        if sync_token:
            params["syncToken"] = sync_token
        try:
            yield from self._client.pages("people/me/connections", params, "connections")
        except SyncTokenExpired:
            raise CursorExpired(PEOPLE) from None

    # --- Other contacts ---------------------------------------------------------------------

    def _other_listing(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None] | None:
        """Every other contact (or those changed since ``cursor``) and the next cursor; None
        when the grant does not cover other contacts (scope ``contacts.other.readonly``)."""
        params: dict[str, Any] = {
            "readMask": OTHER_FIELDS,
            "pageSize": PAGE_SIZE,
            "requestSyncToken": "true",
        }
        if cursor is not None:
            if not cursor.startswith(_OTHER_PREFIX):
                raise CursorExpired(OTHER)
            params["syncToken"] = cursor[len(_OTHER_PREFIX) :]
        people: list[dict[str, Any]] = []
        token = None
        try:
            for page, page_token in self._client.pages("otherContacts", params, "otherContacts"):
                people.extend(page)
                token = page_token
        except SyncTokenExpired:
            raise CursorExpired(OTHER) from None
        except ScopeMissing:
            log.info("the Google grant does not cover other contacts; they are not synced")
            return None
        except (PermanentError, RemoteNotFound) as exc:
            # A read-only extra behind a scope of its own: refused otherwise worded (403),
            # or not served (404), it is left out, not the account's own contacts with it.
            if isinstance(exc, PermanentError) and exc.status != 403:
                raise
            log.warning("Google refused the other contacts (%s); they are not synced", exc)
            return None
        return people, (_OTHER_PREFIX + token if token else None)

    def _other_item(self, person: dict[str, Any]) -> RemoteContact:
        return self._with_photo(*parsing.contact(OTHER, person, {}, source=SOURCE_INBOX))

    def _other_changes(self, cursor: str | None) -> ChangeSet:
        listed = self._other_listing(cursor)
        if listed is None:
            return ChangeSet(collection=OTHER, cursor=None)
        people, new_cursor = listed
        live: list[dict[str, Any]] = []
        removed: list[str] = []
        for p in people:  # one pass: a list's ``in`` compared every person with the others
            if (p.get("metadata") or {}).get("deleted"):
                removed.append(p["resourceName"])
            else:
                live.append(p)
        items = tuple(self._other_item(p) for p in live)
        return ChangeSet(
            collection=OTHER,
            cursor=new_cursor,
            changed={i.remote_id: i.etag for i in items},
            removed=tuple(removed),
            complete=cursor is None,
            fetched=items,
        )

    def snapshot(self, collection: str) -> ChangeSet:
        if collection == OTHER:
            return self._other_changes(None)
        parsing.warm_up()  # while the groups and the first page are read
        groups_token = self._labels.load()
        holder: list[ChangeSet] = []

        def stream() -> Iterator[RemoteItem]:
            found: dict[str, str | None] = {}
            params = {
                "personFields": mapping.READ_FIELDS,
                "pageSize": PAGE_SIZE,
                "requestSyncToken": "true",
            }
            pages = self._client.raw_pages("people/me/connections", params, found)
            for item, url in parsing.mapped_pages(collection, pages, self._labels.group_map):
                yield self._listed(item, url)
            # The sync token comes with the last page only (GM §3.1): the cursor is known
            # now, and the engine reads it once the stream is exhausted.
            cursor = encode_cursor(found.get("nextSyncToken"), groups_token, self._labels.known)
            object.__setattr__(holder[0], "cursor", cursor)

        changes = ChangeSet(
            collection=collection,
            cursor=None,
            complete=True,
            stream=stream(),
            groups=self._labels.user_groups(),
        )
        holder.append(changes)
        return changes

    def changes(self, collection: str, cursor: str | None, *, with_data: bool = False) -> ChangeSet:
        if collection == OTHER:
            return self._other_changes(cursor)
        if cursor is None:
            # A full resync: a listing of Google costs what reading everything costs.
            return self.snapshot(collection)
        try:
            people_token, groups_token, known = decode_cursor(cursor)
        except (ValueError, KeyError, IndexError, TypeError, orjson.JSONDecodeError):
            raise CursorExpired(collection) from None
        # The groups as they were at the cursor, whatever this connector saw since: kept
        # open between syncs, it may have missed those another process's syncs applied
        # (and those of this one's pushes come again with the groups' changes). Without
        # them, a full listing.
        self._labels.known = known
        # The groups' changes are read beside the people's (one round trip, not two); the
        # people are mapped once both are in, since they name their groups.
        groups_read = self._beside().submit(self._labels.changes, groups_token)
        try:
            listed = list(self._listing(people_token))
        finally:
            futures.wait([groups_read])
        try:
            new_groups_token = groups_read.result()
        except SyncTokenExpired:
            raise CursorExpired(PEOPLE) from None  # the groups' token is in the cursor
        fetched: list[RemoteContact] = []
        changed: dict[str, str] = {}
        removed: list[str] = []
        new_people_token = None
        for people, token in listed:
            new_people_token = token
            for person in people:
                rn = person["resourceName"]
                metadata = person.get("metadata") or {}
                # A re-keyed person (P §5.2) names its old resource names here.
                removed.extend(str(p) for p in metadata.get("previousResourceNames") or ())
                if metadata.get("deleted"):
                    removed.append(rn)
                    changed.pop(rn, None)
                    continue
                item = self._listed(*parsing.contact(PEOPLE, person, self._labels.group_map()))
                changed[rn] = item.etag
                fetched.append(item)
        return ChangeSet(
            collection=collection,
            cursor=encode_cursor(
                new_people_token or people_token, new_groups_token, self._labels.known
            ),
            changed=changed,
            removed=tuple(r for r in dict.fromkeys(removed) if r not in changed),
            fetched=tuple(fetched),
            groups=self._labels.user_groups(),
        )

    def fetch(self, collection: str, remote_ids: Iterable[str]) -> Iterator[RemoteItem]:
        if collection == OTHER:
            others = set(remote_ids)
            listed = self._other_listing(None)
            for person in listed[0] if listed else ():
                if person["resourceName"] in others:
                    yield self._other_item(person)
            return
        if self._labels.known is None:
            self._labels.load()
        wanted = list(dict.fromkeys(remote_ids))
        for start in range(0, len(wanted), BATCH_GET):
            for response in self._batch_get(wanted[start : start + BATCH_GET]):
                read = response.get("person")
                if read and not (read.get("metadata") or {}).get("deleted"):
                    item = self._item(read)
                    # A re-keyed person comes under its new name, asked for by its old one
                    # (PersonResponse.requestedResourceName), which only sync-token
                    # listings would name in previousResourceNames.
                    asked = response.get("requestedResourceName")
                    if asked and asked != item.remote_id and asked not in item.previous_ids:
                        item = dataclasses.replace(item, previous_ids=(*item.previous_ids, asked))
                    yield item

    def _batch_get(self, names: list[str]) -> list[dict[str, Any]]:
        """people:batchGet's PersonResponses for ``names``. Google answers a name it does
        not know in its own response (PersonResponse.status); where the whole request is
        answered 404 instead, the names are read again in halves, so that the one gone does
        not hide the rest."""
        params = [("personFields", mapping.READ_FIELDS)]
        params += [("resourceNames", rn) for rn in names]
        try:
            answer = self._client.get("people:batchGet", params)
        except RemoteNotFound:
            if len(names) == 1:
                return []
            half = len(names) // 2
            return self._batch_get(names[:half]) + self._batch_get(names[half:])
        return list(answer.get("responses") or ())

    def _get(self, remote_id: str) -> dict[str, Any]:
        person: dict[str, Any] = self._client.get(remote_id, {"personFields": mapping.READ_FIELDS})
        return person

    # --- Writing ------------------------------------------------------------------------------

    def create(
        self, collection: str, contact: LocalContact, uid: str, *, maybe_exists: bool = False
    ) -> WriteResult:
        _writable(collection)
        if maybe_exists:
            found = self._find_own(uid)
            if found is not None:
                return WriteResult(found["resourceName"], found["etag"], orjson.dumps(found), True)
        body = mapping.person_patch(contact.fields, WRITABLE_FIELDS, {})
        body = {k: v for k, v in body.items() if v}
        body["clientData"] = [{"key": mapping.CLIENT_DATA_KEY, "value": uid}]

        def made(memberships: list[Any]) -> dict[str, Any]:
            person: dict[str, Any] = self._client.call(
                "POST",
                "people:createContact",
                params={"personFields": mapping.READ_FIELDS},
                body={**body, "memberships": memberships},
            )
            return person

        try:
            person, partial = self._labels.memberships_written(contact, made)
        except RemoteNotFound as exc:
            # Nothing a create names but its groups can be missing: a refusal, not a gone
            # contact (which the engine would make again).
            raise PermanentError(
                f"Google refused the contact: what it names is not there ({exc.remote_id})", 404
            ) from None
        if contact.picture:
            person = self._set_photo(person["resourceName"], contact)
        return WriteResult(
            person["resourceName"], person["etag"], orjson.dumps(person), partial=partial
        )

    def _find_own(self, uid: str) -> dict[str, Any] | None:
        """The person an earlier create of ``uid`` made, if it landed: the most recently
        changed people first, where it is."""
        params = {
            "personFields": "clientData",
            "pageSize": PAGE_SIZE,
            "sortOrder": "LAST_MODIFIED_DESCENDING",
        }
        for people, _token in self._client.pages("people/me/connections", params, "connections"):
            for person in people:
                if mapping.rolodex_id_of(person) == uid:
                    return self._get(person["resourceName"])
        return None

    def update(
        self, remote_id: str, etag: str, contact: LocalContact, raw: bytes | None
    ) -> WriteResult:
        _writable(remote_id)
        touched = contact.touched if contact.touched is not None else _ALL_TOUCHED
        base: dict[str, Any] | None = orjson.loads(raw) if raw else None
        if base is None or not mapping.contact_sources(base):
            # updateContact names the contact source and the etag it was read with
            # (person.metadata.sources, required): the person read now stands for the
            # version ``etag`` names only if it is still that version.
            base = self._get(remote_id)
            if base.get("etag") != etag:
                raise PreconditionFailed(remote_id)
        if "groups" in touched and self._groups_as_read(contact, base):
            # Saved back as read (a client saving the whole contact): no change to write,
            # and written, memberships Google takes no additions to would be lost.
            touched = tuple(t for t in touched if t != "groups")
        patch = mapping.person_patch(contact.fields, touched, base)

        def updated(memberships: list[Any] | None) -> dict[str, Any]:
            fields = patch if memberships is None else {**patch, "memberships": memberships}
            # Google's doc checks person.metadata.sources.etag; the service also takes the
            # person's etag (GM §3.1): both, from the version the change was made over.
            body = {
                "resourceName": remote_id,
                "etag": etag,
                "metadata": {"sources": mapping.contact_sources(base)},
                **fields,
            }
            try:
                person: dict[str, Any] = self._client.call(
                    "PATCH",
                    f"{remote_id}:updateContact",
                    params={
                        "updatePersonFields": ",".join(sorted(fields)),
                        "personFields": mapping.READ_FIELDS,
                    },
                    body=body,
                )
            except PreconditionFailed:
                raise PreconditionFailed(remote_id) from None
            except RemoteNotFound:
                raise RemoteNotFound(remote_id) from None
            return person

        person, partial = base, False
        if "groups" in touched:
            held = frozenset(mapping.group_names_of(base))
            person, partial = self._labels.memberships_written(contact, updated, held)
        elif patch:
            person = updated(None)
        if "picture" in touched:
            if contact.picture:
                person = self._set_photo(remote_id, contact)
            elif mapping.photo_url_of(base) is not None:
                try:
                    answer = self._client.call(
                        "DELETE",
                        f"{remote_id}:deleteContactPhoto",
                        params={"personFields": mapping.READ_FIELDS},
                    )
                except RemoteNotFound:
                    # The photo removed there since it was read, or the contact gone: only
                    # the second is a contact not found, which the engine makes again.
                    answer = {}
                try:
                    person = answer.get("person") or self._get(remote_id)
                except RemoteNotFound:
                    raise RemoteNotFound(remote_id) from None
        etag = str(person.get("etag") or etag)
        return WriteResult(remote_id, etag, orjson.dumps(person), partial=partial)

    def _groups_as_read(self, contact: LocalContact, base: dict[str, Any]) -> bool:
        """Whether the contact's groups are those the person as read shows, by name."""
        if self._labels.known is None:
            self._labels.load()
        shown = self._labels.group_map()
        read = {shown[rn][0].casefold() for rn in mapping.group_names_of(base) if rn in shown}
        return read == {name.casefold() for name in contact.group_names}

    def _set_photo(self, remote_id: str, contact: LocalContact) -> dict[str, Any]:
        import base64

        assert contact.picture is not None
        # UpdateContactPhotoRequest: "All requests must have a valid photo format: JPEG or
        # PNG"; a GIF or WebP picture goes as a PNG.
        picture, _type = pictures.in_format(
            contact.picture, contact.picture_type, GOOGLE_PHOTO_TYPES, pictures.PNG
        )
        answer = self._client.call(
            "PATCH",
            f"{remote_id}:updateContactPhoto",
            body={
                "photoBytes": base64.b64encode(picture).decode(),
                "personFields": mapping.READ_FIELDS,
            },
        )
        person: dict[str, Any] = answer.get("person") or self._get(remote_id)
        return person

    def delete(self, remote_id: str, etag: str) -> None:
        _writable(remote_id)
        # deleteContact takes no etag; the engine deletes over a newer version anyway.
        try:
            self._client.call("DELETE", f"{remote_id}:deleteContact")
        except RemoteNotFound:
            # Gone, or re-keyed: an old resource name is no person to delete, but
            # people:batchGet answers it with the person under its new name
            # (PersonResponse.requestedResourceName), which would otherwise stay there.
            renamed = next(iter(self.fetch(PEOPLE, [remote_id])), None)
            if renamed is not None and renamed.remote_id != remote_id:
                with contextlib.suppress(RemoteNotFound):
                    self._client.call("DELETE", f"{renamed.remote_id}:deleteContact")


def _writable(name: str) -> None:
    if name == OTHER or name.startswith(OTHER + "/"):
        raise PermanentError("Google's other contacts are read-only", 400)


if TYPE_CHECKING:

    def _conforms(connector: GoogleConnector) -> Connector:
        return connector
