"""The groups a pull names, found here or made here (``rolodex.service.mirror`` applies
the pull): a contact's categories and labels, a folder's group, a group card's group, and the
provider's own groups by their ids, so that a group renamed on either side keeps its v2 id
and members.
"""

from __future__ import annotations

import itertools

from rolodex.domain.account import Account
from rolodex.domain.contact import Group
from rolodex.domain.profiles import profile_for
from rolodex.domain.remote import RemoteContact, RemoteGroup
from rolodex.service import grouplinks
from rolodex.service.grouplinks import CARD_GROUP, CATEGORY_GROUP
from rolodex.service.groups import create_group, rename_group
from rolodex.store import Tx


def group_links(tx: Tx, account_id: str) -> tuple[dict[str, Group], dict[str, str], set[str]]:
    """The account's groups by id; remote_id -> group id of those linked to the
    provider's; and the ids of the group cards' groups: read once (one statement) for a
    batch of contacts, whose groups are looked up in them."""
    groups, remotes = tx.groups.with_remotes(account_id)
    linked = {remote_id: gid for gid, (remote_id, _etag) in remotes.items() if remote_id}
    cards = {gid for remote_id, gid in linked.items() if remote_id.startswith(CARD_GROUP)}
    return groups, linked, cards


def contact_groups(
    tx: Tx,
    account: Account,
    item: RemoteContact,
    groups: dict[str, Group],
    linked: dict[str, str],
    now: float,
) -> tuple[str, ...]:
    """The ids of the groups named on a contact, creating those not seen before.

    Groups are matched by name: a category and a group card of the same name are one group.
    A group the provider names by an id (a Google label's resource name:
    ``RemoteContact.group_ids``) is the group of that id, whatever its name here (a rename
    made through the API may still wait for the provider). Where the provider's groups are
    nested folders (Graph), a contact is in the one group of the folder
    (``item.collection``) that holds it, named by the folder's path
    ("Contacts/Friends/Close"): ``_folder_group``.
    """
    if profile_for(account.provider).groups.nested:
        first = next(iter(item.group_names), None)
        if first is None:
            return ()
        return (_folder_group(tx, account, item.collection, first, groups, now).id,)
    by_path = {g.path: g.id for g in groups.values()}
    own = grouplinks.prefix(account)
    ids: list[str] = []
    for raw_name, gid in itertools.zip_longest(item.group_names, item.group_ids):
        if gid is not None and own + gid in linked:
            ids.append(linked[own + gid])
            continue
        name = shown_path(account, raw_name or "")
        if not name:
            continue
        if name not in by_path:
            # A group known by its name only, or one made at the provider since its groups
            # were read (linked by its id now; ``provider_groups`` renames it with it).
            remote_id = own + gid if gid is not None else CATEGORY_GROUP + name
            group = create_group(tx, account, name, now, remote_id=remote_id)
            groups[group.id] = group
            by_path[name] = group.id
            linked[remote_id] = group.id
        ids.append(by_path[name])
    return tuple(dict.fromkeys(ids))


def shown_path(account: Account, raw: str) -> str:
    """How a provider's group name is shown: a folder's path by its levels; a flat group's
    name with its "/" as "-" ("/" separates the levels of a path)."""
    if profile_for(account.provider).groups.nested:
        return _folder_path(raw)
    return raw.replace("/", "-").strip()[:1000]


def _folder_path(raw_path: str) -> str:
    return "/".join(p.strip() for p in raw_path.split("/") if p.strip())[:1000] or "Unnamed"


def _folder_group(
    tx: Tx, account: Account, collection: str, raw_path: str, groups: dict[str, Group], now: float
) -> Group:
    """The group of a provider's folder, by its path (``Mirror.provider_groups`` keeps one
    group per folder, renamed with it, before every pull); made here if missing."""
    path = _folder_path(raw_path)
    for group in groups.values():
        if group.path == path:
            return group
    found = provider_group(tx, account, collection, path, now)
    if found is None:  # that path is another folder's group's until its rename comes
        found = tx.groups.find_by_path(account.id, path)
        assert found is not None
    groups[found.id] = found
    return found


def provider_group(
    tx: Tx, account: Account, provider_id: str, path: str, now: float, *, unmade: bool = False
) -> Group | None:
    """The group of the provider's group ``provider_id`` (a folder's id, a label's resource
    name), found by that id, so that a group renamed or moved there keeps its v2 id and
    members; named by the path's last segment. A group of that path not linked to another
    of the provider's groups is this one (made before it was linked). None: the path is
    another provider group's here (a rename there or here not reached the other side yet);
    this one waits for it. Else a group renamed here whose waiting create tried that
    path is this one (``grouplinks.attempted_at``: that attempt made it, its reply lost), not
    a new group here that its retry would find there as another's. ``unmade``: nor is a
    group of a path that an attempt of a group deleted here since recorded (None: the write
    of that group deletes it, ``grouplinks.lost_at``)."""
    name = path.rsplit("/", 1)[-1]
    own = grouplinks.prefix(account)
    remote_id = own + provider_id
    found = tx.groups.find_by_remote_id(account.id, remote_id)
    if found is None:
        found = tx.groups.find_by_path(account.id, path) or grouplinks.attempted_at(
            tx, account, path
        )
        if found is None:
            if unmade and grouplinks.lost_at(tx, account, path):
                return None
            return create_group(tx, account, name, now, remote_id=remote_id, path=path)
        linked, _etag = tx.groups.remote_ids(account.id).get(found.id, (None, None))
        if linked is not None and linked.startswith(own):
            return None
        tx.groups.set_remote(account.id, found.id, remote_id, None)
    if (found.path != path or found.name != name) and not tx.outbox.has_pending(
        account.id, found.id
    ):
        # (A rename made through the API and still waiting for the provider wins: its
        # push gives the group that name.)
        other = tx.groups.find_by_path(account.id, path)
        if other is not None and other.id != found.id:
            return found  # another group has that path until its own rename comes
        found = rename_group(tx, account, found.id, name, now, path=path)
    return found


def card_group(tx: Tx, account: Account, item: RemoteGroup, now: float) -> Group:
    remote_id = CARD_GROUP + item.remote_id
    name = item.name.replace("/", "-").strip()[:1000] or "Unnamed group"
    group = tx.groups.find_by_remote_id(account.id, remote_id)
    if group is None:
        group = tx.groups.find_by_path(account.id, name) or create_group(tx, account, name, now)
    elif group.name != name and tx.groups.find_by_path(account.id, name) is None:
        group = rename_group(tx, account, group.id, name, now)
    tx.groups.set_remote(account.id, group.id, remote_id, item.etag)
    return group
