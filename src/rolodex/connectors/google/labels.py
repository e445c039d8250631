"""A Google account's contact groups (labels), as the connector reads and writes them.

The groups are listed once and then kept up to date with their own sync token
(``changes``); the connector's cursor remembers them (``known``), so that a connector kept
between syncs, or a new one, starts from what the cursor saw. User groups are linked by
their resource name, which stays when a group is renamed; system groups are shown by
Google's display name ("Starred"). ``myContacts`` is the address book itself: every
contact Rolodex writes stays in it, and it is never shown as a group.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from rolodex.connectors.base import (
    LocalContact,
    LocalGroup,
    PermanentError,
    PreconditionFailed,
    RemoteNotFound,
    TransientError,
    WriteResult,
)
from rolodex.connectors.google import mapping
from rolodex.connectors.google.client import PeopleClient, SyncTokenExpired

GROUP_PREFIX = "contactGroups/"
MY_CONTACTS = GROUP_PREFIX + "myContacts"
WRITABLE_SYSTEM_GROUPS = ("contactGroups/starred",)
T = TypeVar("T")  # what a write of memberships returns (``memberships_written``)


class Labels:
    def __init__(self, client: PeopleClient) -> None:
        self._client = client
        self.known: dict[str, dict[str, Any]] | None = None  # resource name -> group

    def _pages(self, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"groupFields": "name,groupType,metadata", "pageSize": 1000}
        if token:
            params["syncToken"] = token
        found: list[dict[str, Any]] = []
        next_token = None
        # An expired token is SyncTokenExpired, for the connector: its cursor holds it.
        for groups, token in self._client.pages("contactGroups", params, "contactGroups"):
            found.extend(groups)
            next_token = token
        return found, next_token

    def load(self) -> str | None:
        groups, token = self._pages(None)
        self.known = {g["resourceName"]: g for g in groups}
        return token

    def changes(self, token: str | None) -> str | None:
        """Apply the groups changed since ``token``; the groups' next sync token."""
        if token is None or self.known is None:
            # Names are needed for every contact read: a full listing (a few groups).
            new_token = self.load()
            assert self.known is not None
            if token is None:
                return new_token
            # The token still says what was deleted since it.
            try:
                changed, newer = self._pages(token)
            except SyncTokenExpired:
                return new_token  # the listing alone, as below
            for group in changed:
                if (group.get("metadata") or {}).get("deleted"):
                    self.known.pop(group["resourceName"], None)
            return newer or new_token
        try:
            changed, new_token = self._pages(token)
        except SyncTokenExpired:
            # The groups' token alone refused: a listing of them (a few) stands in for it,
            # deleted ones left out; the people's changes are still read with theirs.
            return self.load()
        for group in changed:
            rn = group["resourceName"]
            if (group.get("metadata") or {}).get("deleted"):
                self.known.pop(rn, None)
            else:
                self.known[rn] = group
        return new_token

    def user_groups(self) -> tuple[tuple[str, str], ...]:
        """Every user group, (resource name, name), for ``ChangeSet.groups``. System groups
        are not among them: they are Google's, never renamed, and shown once a contact is
        in one (by name, as ``RemoteContact.group_names`` has them)."""
        return tuple(
            (rn, _name(g))
            for rn, g in (self.known or {}).items()
            if g.get("groupType") != "SYSTEM_CONTACT_GROUP"
        )

    def _resource_names(
        self, contact: LocalContact, *, fresh: bool = False, held: frozenset[str] = frozenset()
    ) -> tuple[list[str], bool]:
        """Resource names of the contact's groups, and whether one was left out (gone, or
        its name refused).
        By the id Rolodex knows a group by (``LocalContact.group_ids``), which a rename on
        either side keeps; by name, made at Google when it has none of that name, for a
        group not there yet (no id).

        A group whose resource name Google no longer lists was deleted there since the last
        pull, and the delete wins, as for the group itself: the contact goes without it,
        and the pull deletes the group here. (Made again by its name, the group would be a
        new label that the pull does not link to the group here, and the contact's
        membership of it would stay there only.) The groups are listed again before one
        counts as deleted: those listed may be older than the last pull, which another
        process may have run.

        ``held``: the groups the person is in as read; a system group among them is named
        by its name (Friends...), which is then that group, not a label to make."""
        if fresh or self.known is None:
            self.load()
            fresh = True
        assert self.known is not None
        found, gone = [MY_CONTACTS], False
        for name, gid in itertools.zip_longest(contact.group_names, contact.group_ids):
            if gid is not None and gid.startswith(GROUP_PREFIX):
                if gid not in self.known and not fresh:
                    return self._resource_names(contact, fresh=True, held=held)
                if gid in self.known:
                    found.append(gid)
                else:
                    gone = True
                continue
            rn = self._find(name, held)
            if rn is None:
                try:
                    rn = self._make(name)[0]["resourceName"]
                except PermanentError as exc:
                    if exc.status != 409:
                        raise
                    # The name taken, though no label has it: a system group's (Friends...),
                    # which takes no additions (P §3). The contact goes without it rather
                    # than not at all.
                    gone = True
                    continue
            found.append(rn)
        return found, gone

    def memberships_written(
        self,
        contact: LocalContact,
        write: Callable[[list[Any]], T],
        held: frozenset[str] = frozenset(),
    ) -> tuple[T, bool]:
        """``write(memberships)`` with the contact's groups (``held``: those the person is in
        as read); once more with the groups listed again when Google refuses them because
        one is gone (a 400 naming no reason Rolodex can rely on, inferred: a group deleted
        there since they were listed; or a 404, google.rpc.Code NOT_FOUND for an entity the
        request names), or because one is a deprecated system group: "only user group or
        "myContacts" or "starred" system groups memberships can be added"
        (ContactGroupMembership), and a membership kept may count as one added, so it is
        left out then (Google allows it removed). And whether a group was left out: the
        person there is then not what was asked (``WriteResult.partial``)."""
        sent, gone = self._resource_names(contact, held=held)
        try:
            return write(mapping.memberships(sent)), gone
        except (PermanentError, RemoteNotFound) as exc:
            if isinstance(exc, PermanentError) and exc.status != 400:
                raise
            now, gone = self._resource_names(contact, fresh=True, held=held)
            addable = [rn for rn in now if not self._deprecated(rn)]
            if addable != now:
                now, gone = addable, True
            if now == sent:
                raise
            return write(mapping.memberships(now)), gone

    def _deprecated(self, rn: str) -> bool:
        """Whether ``rn`` is a system group that takes no additions (P §3)."""
        group = (self.known or {}).get(rn) or {}
        return group.get("groupType") == "SYSTEM_CONTACT_GROUP" and rn not in (
            MY_CONTACTS,
            *WRITABLE_SYSTEM_GROUPS,
        )

    def _make(self, name: str) -> tuple[dict[str, Any], bool]:
        """The user group ``name``, made now (``contactGroups.create``); and whether it was
        there already: a duplicate name is a 409 (GM §3.1), for a group made meanwhile, or
        by an earlier attempt whose reply was lost."""
        if self.known is None:
            self.load()
        assert self.known is not None
        try:
            group: dict[str, Any] = self._client.call(
                "POST", "contactGroups", body={"contactGroup": {"name": name}}
            )
        except PermanentError as exc:
            if exc.status != 409:
                raise
            self.load()
            rn = self._user_group(name)
            if rn is None:
                raise
            return self.known[rn], True
        self.known[group["resourceName"]] = group
        return group, False

    def _user_group(self, name: str) -> str | None:
        """The user group a name means, as Rolodex names groups: a "/" in a name at Google
        shows as "-" (it separates the levels of a group's path)."""
        key = name.casefold()
        for rn, group in (self.known or {}).items():
            if group.get("groupType") == "SYSTEM_CONTACT_GROUP":
                continue
            if _name(group).casefold() == key or _shown(group).casefold() == key:
                return rn
        return None

    def _find(self, name: str, held: frozenset[str] = frozenset()) -> str | None:
        """The group a name written means: a user group of that name, else Starred, or a
        system group the person is in (``held``); the deprecated system groups (Friends,
        Family...) accept no additions (P §3), so otherwise a name like theirs is a user
        group's."""
        found = self._user_group(name)
        if found is not None:
            return found
        key = name.casefold()
        groups = self.known or {}
        for rn in (*WRITABLE_SYSTEM_GROUPS, *sorted(held - {MY_CONTACTS})):
            system = groups.get(rn)
            names = (_name(system).casefold(), rn.split("/")[1].casefold()) if system else ()
            if key in names:
                return rn
        return None

    # --- Writes -----------------------------------------------------------------------------
    # A user group's provider id is its resource name, as for the groups read
    # (``ChangeSet.groups``): it stays when the group is renamed, here or at Google.

    def create(self, group: LocalGroup) -> WriteResult:
        made, existed = self._make(group.name)
        return _group_written(made, existed=existed)

    def named(self, path: str) -> WriteResult | None:
        """The user group of that name, as listed now (a group's path is its name)."""
        self.load()
        assert self.known is not None
        rn = self._user_group(path)
        return None if rn is None else _group_written(self.known[rn], existed=True)

    def _existing(self, remote_id: str) -> str:
        """The resource name of the user group ``remote_id`` (its resource name; or its
        name, for a group Rolodex linked by name before it linked them by resource name);
        ``RemoteNotFound`` when there is none, and a refusal for a system group (P §3:
        Google's own, only it changes them)."""
        for fresh in (False, True):
            if fresh or self.known is None:
                self.load()
            groups = self.known or {}
            rn = remote_id if remote_id in groups else self._user_group(remote_id)
            if rn is not None and groups[rn].get("groupType") != "SYSTEM_CONTACT_GROUP":
                return rn
            system = [
                g
                for g in groups.values()
                if g.get("groupType") == "SYSTEM_CONTACT_GROUP"
                and (g["resourceName"] == rn or _name(g).casefold() == remote_id.casefold())
            ]
            if system:
                raise PermanentError(
                    f"{_name(system[0])} is one of Google's system groups, which only Google "
                    "changes",
                    400,
                )
        raise RemoteNotFound(remote_id)

    def rename(self, group: LocalGroup) -> WriteResult:
        assert group.remote_id is not None
        rn = self._existing(group.remote_id)
        assert self.known is not None
        current = self.known[rn]
        if not (group.etag or current.get("etag")):
            # Known by name only (the groups a cursor remembers carry no etags): the group
            # as it is now, whose etag the update sends back (ContactGroup.etag).
            current = self._client.get(rn, {"groupFields": "name,groupType,metadata"})
            self.known[rn] = current
        if _name(current) == group.name:
            return _group_written(current)
        etag = group.etag or current.get("etag")
        for _attempt in range(3):
            body = {
                "contactGroup": {"resourceName": rn, "etag": etag, "name": group.name},
                "updateGroupFields": "name",
                "readGroupFields": "name,groupType,metadata",
            }
            try:
                renamed: dict[str, Any] = self._client.call("PUT", rn, body=body)
            except PreconditionFailed:
                # Changed there since (a stale etag is 400 FAILED_PRECONDITION): the name is
                # all a rename writes, so read the group's etag again and rename that.
                fresh = self._client.get(rn, {"groupFields": "name,groupType,metadata"})
                self.known[rn] = fresh
                etag = fresh.get("etag")
                continue
            except RemoteNotFound:
                self.known.pop(rn, None)
                raise RemoteNotFound(group.remote_id) from None
            self.known[rn] = renamed
            return _group_written(renamed)
        raise TransientError(f"the contact group {group.remote_id} kept changing while renamed")

    def delete(self, group: LocalGroup) -> None:
        assert group.remote_id is not None
        try:
            rn = self._existing(group.remote_id)
        except RemoteNotFound:
            return
        # deleteContacts=false: v2 keeps a deleted group's contacts; Google removes the
        # memberships (GM §3.1 "DELETE …?deleteContacts=").
        with contextlib.suppress(RemoteNotFound):
            self._client.call("DELETE", rn, params={"deleteContacts": "false"})
        if self.known is not None:
            self.known.pop(rn, None)

    def group_map(self) -> dict[str, tuple[str, str | None]]:
        """Resource name -> (the name contacts show, the id the group is linked by: the
        resource name of a user group, None for a system group), of every group but My
        Contacts."""
        return {
            rn: (_name(g), None if g.get("groupType") == "SYSTEM_CONTACT_GROUP" else rn)
            for rn, g in (self.known or {}).items()
            if rn != MY_CONTACTS
        }


def _group_written(group: dict[str, Any], *, existed: bool = False) -> WriteResult:
    return WriteResult(group["resourceName"], str(group.get("etag") or ""), existed=existed)


def _shown(group: dict[str, Any]) -> str:
    """The group's name as Rolodex shows it (``rolodex.service.mirror``)."""
    return _name(group).replace("/", "-").strip()


def _name(group: dict[str, Any]) -> str:
    if group.get("groupType") == "SYSTEM_CONTACT_GROUP":
        return str(group.get("formattedName") or group.get("name") or "")
    return str(group.get("name") or "")
