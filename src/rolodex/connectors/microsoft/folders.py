"""A mailbox's contact folders: the tree as Graph lists it, where each folder's contacts
and delta query are, and the folder writes (the API's group writes).

The default folder has the collection id ``contacts`` (reached as ``/me/contacts``, which
is scoped to it); every other folder is known by its Graph id, and named by its path from
the default folder ("Contacts/Friends/Close")."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from rolodex.connectors.base import (
    LocalGroup,
    PermanentError,
    RemoteNotFound,
    TransientError,
    WriteResult,
)
from rolodex.connectors.microsoft.client import GraphClient

DEFAULT = "contacts"  # collection id of the default folder
DEFAULT_NAME = "Contacts"


@dataclass(frozen=True)
class Folder:
    id: str
    name: str
    path: str


class FolderTree:
    """The folders of one mailbox, listed again when asked to (``folders(refresh=True)``,
    once a sync) and after a write that changes paths. ``requests`` gives the threads
    that send the mailbox's requests side by side (the connector's)."""

    def __init__(self, client: GraphClient, requests: Callable[[], ThreadPoolExecutor]) -> None:
        self._client = client
        self._requests = requests
        self._folders: dict[str, Folder] | None = None
        self._begun = -math.inf  # when the listing of ``_folders`` began (monotonic)
        self._listing = threading.Lock()  # one listing at a time
        self._default_id: str | None = None  # the default folder's Graph id, once known
        # Its id in the form Graph gives it as a folder, where that differs (``_aliases``).
        self._default_aliases: frozenset[str] | None = None

    def folders(self, refresh: bool = False, *, since: float | None = None) -> dict[str, Folder]:
        """The folders as last listed; ``refresh``: as a listing begun now or later lists
        them, ``since``: one begun at that time (``time.monotonic``) or later. The sync
        lists them while its delta reads run (``SyncEngine._read_ahead``), and a read that
        needs the tree waits for that listing instead of making one of its own."""
        wanted = time.monotonic() if refresh else since
        if self._folders is not None and (wanted is None or self._begun >= wanted):
            return self._folders
        with self._listing:
            if self._folders is None or (wanted is not None and self._begun < wanted):
                begun = time.monotonic()
                self._folders = self._load()
                self._begun = begun
            return self._folders

    def folder(self, collection: str) -> Folder:
        folder = self.folders().get(collection)
        if folder is None:
            folder = self.folders(refresh=True).get(collection)
        if folder is None:
            raise RemoteNotFound(collection)
        return folder

    def _load(self) -> dict[str, Folder]:
        """Every folder, or an error: never part of them. The engine takes a folder that
        ``collections`` does not list for one deleted in Outlook, and deletes its contacts
        here, so a listing with a page or a level missing must fail as a whole.

        ``/me/contactFolders`` is "the contact folder collection in the default Contacts
        folder" (DOC user-list-contactfolders), which v1.0 answers with the folders in it
        (microsoft-graph-docs-contrib#6327), but the reference's example answers with the
        default folder itself: that folder is known by its id (``_learn_default``) and
        never listed as a folder of its own, and what is in it is found through its
        childFolders either way."""
        listed = self._client.pages("/me/contactFolders", {"$top": "100"})
        default_id = self._learn_default(listed)
        default_ids = self._aliases(listed) if default_id is not None else frozenset()
        # Breadth first: the listing, then each level's childFolders, the folders of a level
        # listed side by side (4 at a time, the mailbox's limit). A folder's parent is the
        # folder whose childFolders named it; one only in the listing is in the default
        # folder, unless its parentFolderId names another folder found.
        entries: dict[str, dict[str, Any]] = {}
        parents: dict[str, str | None] = {}
        expanded: set[str] = set()
        level: list[tuple[dict[str, Any], str | None]] = [(item, None) for item in listed]
        pool = self._requests()
        while level:
            todo: list[str] = []
            for item, parent in level:
                folder_id = str(item.get("id") or "")
                if not folder_id:
                    continue
                if folder_id not in default_ids:
                    entries.setdefault(folder_id, item)
                    if parent is not None or folder_id not in parents:
                        parents[folder_id] = parent
                if folder_id not in expanded:
                    expanded.add(folder_id)
                    todo.append(folder_id)
            children = pool.map(self._children, todo)
            level = [
                (child, None if folder_id in default_ids else folder_id)
                for folder_id, items in zip(todo, children, strict=True)
                for child in items
            ]
        folders = {DEFAULT: Folder(DEFAULT, DEFAULT_NAME, DEFAULT_NAME)}
        paths: dict[str, str] = {}

        def path(folder_id: str, seen: frozenset[str]) -> str:
            if folder_id in paths:
                return paths[folder_id]
            item = entries[folder_id]
            parent = parents.get(folder_id)
            if parent is None:
                named = item.get("parentFolderId")
                if isinstance(named, str) and named in entries and named not in seen:
                    parent = named
            name = str(item.get("displayName") or "").replace("/", "-").strip() or "Unnamed"
            if parent in seen:  # a loop in what Graph answered: cut where it closes
                parent = None
            above = DEFAULT_NAME if parent is None else path(parent, seen | {folder_id})
            paths[folder_id] = f"{above}/{name}"
            return paths[folder_id]

        for folder_id in entries:
            full = path(folder_id, frozenset({folder_id}))
            folders[folder_id] = Folder(folder_id, full.rsplit("/", 1)[1], full)
        return folders

    def _children(self, folder_id: str) -> list[dict[str, Any]]:
        """The folders right under a folder, every page of them. A folder gone by now
        (deleted between the listing of its parent and its own) leaves this listing
        without whatever was under it, which must not read as their deletion: transient,
        and the next sync lists again."""
        try:
            return self._client.pages(
                f"/me/contactFolders/{seg(folder_id)}/childFolders", {"$top": "100"}
            )
        except RemoteNotFound:
            raise TransientError(
                "a contact folder went away while the folders were listed"
            ) from None

    def _learn_default(self, listed: list[dict[str, Any]]) -> str | None:
        """The default folder's Graph id, known once and kept: a contact of ``/me/contacts``
        (scoped to the default folder) names it as its parentFolderId. With none there, the
        listing tells: the folder all it lists are in, unless the one folder it lists is in
        a parent that is not a contact folder (the mailbox root): then that folder is the
        default one, listed itself."""
        if self._default_id is not None or self._ask_contacts() is not None or not listed:
            return self._default_id
        ids = {str(item.get("id") or "") for item in listed}
        outer = {
            p
            for item in listed
            if isinstance(p := item.get("parentFolderId"), str) and p and p not in ids
        }
        if not outer:
            # Every parent named is listed: a folder listed with none is in no folder of
            # the listing, which holds the default folder and what is in it, so it is the
            # default folder itself when it is the only one and holds the others, or bears
            # the default folder's name (a listing of it alone). Its parent, the mailbox
            # root, is no contact folder, and an answer may leave it out (DOC
            # resources/contactfolder), which read as a folder in the default one made
            # "Contacts/Contacts" of it while the default folder held no contact.
            orphans = [item for item in listed if not item.get("parentFolderId")]
            if len(orphans) == 1 and orphans[0].get("id"):
                (orphan,) = orphans
                others = [item for item in listed if item is not orphan]
                holds = bool(others) and all(
                    item.get("parentFolderId") == orphan["id"] for item in others
                )
                if holds or orphan.get("displayName") == DEFAULT_NAME:
                    self._default_id = str(orphan["id"])
            return self._default_id
        if len(outer) != 1:
            return None  # no telling; the next load asks again
        (parent,) = outer
        in_it = [item for item in listed if item.get("parentFolderId") == parent]
        if len(in_it) == 1:
            try:
                self._client.get_json(f"/me/contactFolders/{seg(parent)}", params={"$select": "id"})
            except (RemoteNotFound, PermanentError):  # not a contact folder
                parent = str(in_it[0]["id"])
        self._default_id = parent
        return parent

    def _aliases(self, listed: list[dict[str, Any]]) -> frozenset[str]:
        """The default folder's ids: the one its contacts name and, asked once where the
        listing names neither it nor anything in it by that id, the one Graph gives the
        folder itself. Exchange ids of one folder come in several forms (DOC
        user-translateexchangeids), and the references' examples name the Contacts folder
        "AQMkAD..." as a folder (user-list-contactfolders) where a contact's parentFolderId
        is "AAMkAG..." (contact-get): compared by one form, the listed default folder
        would be a folder of its own, "Contacts/Contacts"."""
        assert self._default_id is not None
        own = self._default_id
        named = any(own in (item.get("id"), item.get("parentFolderId")) for item in listed)
        if self._default_aliases is None and listed and not named:
            try:
                found = self._client.get_json(
                    f"/me/contactFolders/{seg(own)}", params={"$select": "id"}
                )
            except (RemoteNotFound, PermanentError):
                found = {}
            other = found.get("id") if isinstance(found, dict) else None
            self._default_aliases = frozenset({other} if isinstance(other, str) else ())
        return frozenset({own, *(self._default_aliases or ())})

    def home(self, group_names: tuple[str, ...]) -> str | None:
        """The folder named by a contact's group (a path, or a folder's name when only one
        folder has it); None when it names none, so it stays where it is."""
        if not group_names:
            return None
        folders = self.folders()
        wanted = group_names[0]
        for folder in folders.values():
            if folder.path == wanted:
                return folder.id
        named = [f.id for f in folders.values() if f.name == wanted]
        if len(named) == 1:
            return named[0]
        return None

    def learn_default(self, entry: dict[str, Any]) -> None:
        """A contact of ``/me/contacts`` is in the default folder (DOC user-list-contacts):
        its parentFolderId is that folder's id. Not a listed folder's: the listing may name
        the default folder itself (``_load``)."""
        parent = entry.get("parentFolderId")
        if self._default_id is None and isinstance(parent, str) and parent:
            self._default_id = parent

    def _default_folder_id(self) -> str | None:
        """The default folder's Graph id, which its delta query needs: the documented
        request is ``/me/contactFolders/{id}/contacts/delta`` (DOC contact-delta), and
        ``/me/contacts/delta`` is not documented (Microsoft Q&A 1634378). None while the
        folder holds neither contacts nor folders, so that nothing names it."""
        # The folders were listed at the start of the sync (``collections``); a contact
        # made since names it.
        return self._default_id or self._ask_contacts()

    def _ask_contacts(self) -> str | None:
        page = self._client.get_json(
            "/me/contacts", params={"$top": "1", "$select": "parentFolderId"}
        )
        for entry in page.get("value") or []:
            self.learn_default(entry)
        return self._default_id

    def delta_start(self, collection: str) -> str | None:
        """Where a delta round of ``collection`` from scratch starts; None for a default
        folder that holds nothing (and has no id to name it by yet)."""
        if collection != DEFAULT:
            return f"/me/contactFolders/{seg(collection)}/contacts/delta"
        default_id = self._default_folder_id()
        if default_id is None:
            return None
        return f"/me/contactFolders/{seg(default_id)}/contacts/delta"

    def contact_path(self, remote_id: str, parent: Any) -> str:
        """Where a contact whose parentFolderId is ``parent`` is written. The update and
        delete references give ``/me/contacts/{id}`` for "a contact from a user's default
        contactFolder" and ``/me/contactFolders/{id}/contacts/{id}`` for one in another
        folder (DOC contact-update, contact-delete), so a contact in a folder of ours is
        written through it; the default folder's, or one in a folder not listed (unknown
        ``parent``), through ``/me/contacts``, which the get reference scopes to the whole
        mailbox (DOC contact-get: "A contact in the user's mailbox")."""
        folder_id = parent if isinstance(parent, str) else ""
        if folder_id and folder_id != DEFAULT and folder_id in self.folders():
            return f"/me/contactFolders/{seg(folder_id)}/contacts/{seg(remote_id)}"
        return f"/me/contacts/{seg(remote_id)}"

    def holds(self, collection: str, entry: dict[str, Any]) -> bool:
        """Whether a contact Graph answered is in ``collection``, by its parentFolderId
        when it has one: an extended-property filter "is applied to all instances of the
        resource in the signed-in user's mailbox" (DOC singlevaluelegacyextendedproperty-
        get), so a folder's list filtered by Rolodex's id may name the contact a move left
        in another folder."""
        parent = entry.get("parentFolderId")
        if not isinstance(parent, str) or not parent:
            return True
        if collection != DEFAULT:
            return parent == collection
        return parent in self._default_ids() or parent not in self.folders()

    def _default_ids(self) -> set[str | None]:
        """The ids the default folder answers to (its own, and those it is known by)."""
        return {self._default_id, *(self._default_aliases or ())}

    def collection_of(self, parent: str | None) -> str | None:
        """The collection of a contact whose parentFolderId is ``parent``; None for a folder
        that is not one of ours (Deleted Items...)."""
        if parent is None:
            return None
        if parent in self._default_ids():
            return DEFAULT
        return parent if parent != DEFAULT and parent in self.folders() else None

    @staticmethod
    def contacts_path(collection: str) -> str:
        if collection == DEFAULT:
            return "/me/contacts"
        return f"/me/contactFolders/{seg(collection)}/contacts"

    # --- Writes -------------------------------------------------------------------------
    # A folder's provider id is its id (the default folder's is ``contacts``). New folders
    # go inside the folder their path names (the default one for "Contacts/Friends").

    def create(self, group: LocalGroup) -> WriteResult:
        parent_path, _, name = group.path.rpartition("/")
        folders = self.folders()
        parent = next((f for f in folders.values() if f.path == parent_path), folders[DEFAULT])
        # DOC contactfolder-post-childfolders; POST /me/contactFolders makes one in the
        # default folder (GM §3.2: the list is of the folders under the default one).
        url = (
            "/me/contactFolders"
            if parent.id == DEFAULT
            else f"/me/contactFolders/{seg(parent.id)}/childFolders"
        )
        try:
            response = self._client.request("POST", url, json={"displayName": name})
        except PermanentError as error:
            if error.status != 409:
                raise
            # A folder of that name is there already (ErrorFolderExists): an earlier
            # attempt made it and its reply was lost, or it was made there meanwhile.
            found = next(
                (
                    f
                    for f in self.folders(refresh=True).values()
                    if f.path == f"{parent.path}/{name}"
                ),
                None,
            )
            if found is None:
                raise
            return WriteResult(found.id, "", existed=True)
        made = orjson.loads(response.content)
        folder = Folder(str(made["id"]), name, f"{parent.path}/{name}")
        folders[folder.id] = folder  # contacts moved into it in this push find it
        return WriteResult(folder.id, "")

    def find(self, path: str) -> WriteResult | None:
        """The folder at ``path``, as listed now (never the default one: it is no group's
        to make)."""
        folders = self.folders(refresh=True).values()
        found = next((f for f in folders if f.path == path and f.id != DEFAULT), None)
        return None if found is None else WriteResult(found.id, "", existed=True)

    def rename(self, group: LocalGroup) -> WriteResult:
        folder_id = _writable(group)
        # DOC contactfolder-update: PATCH displayName. Folders carry no changeKey to send
        # (DOC resources/contactfolder), so there is no stale version to re-read.
        self._client.request(
            "PATCH", f"/me/contactFolders/{seg(folder_id)}", json={"displayName": group.name}
        )
        self._folders = None  # its path and those of the folders inside it changed
        return WriteResult(folder_id, "")

    def delete(self, group: LocalGroup) -> None:
        """Deleting a folder deletes the contacts and folders in it (DOC contactfolder-
        delete), but a deleted v2 group keeps its contacts: the API moved them out first,
        and a folder that still holds any (a move refused, contacts added in Outlook
        since) is refused, never deleted."""
        folder_id = _writable(group)
        base = f"/me/contactFolders/{seg(folder_id)}"
        try:
            held = self._client.get_json(base + "/contacts", params={"$top": "1", "$select": "id"})
            inside = self._client.get_json(base + "/childFolders", params={"$top": "1"})
        except RemoteNotFound:
            return  # gone already
        if held.get("value") or inside.get("value"):
            raise PermanentError(
                f"the folder {group.path} still holds contacts or folders, which deleting "
                "it would delete in the mailbox; it is deleted once they have moved out",
                409,
            )
        with contextlib.suppress(RemoteNotFound):
            self._client.request("DELETE", base)
        self._folders = None


def _writable(group: LocalGroup) -> str:
    assert group.remote_id is not None
    if group.remote_id == DEFAULT:
        raise PermanentError("the mailbox's default contact folder cannot be changed", 400)
    return group.remote_id


def seg(value: str) -> str:
    """A path segment: an id as Graph gave it, quoted whole."""
    return quote(value, safe="")
