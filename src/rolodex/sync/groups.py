"""Delivering the API's group writes to the provider (the push side of group writes).

A group write waits in the outbox like a contact's and is delivered in order with them, so
that a group made through the API exists at the provider before a contact's membership in
it is written (Google), or before contacts move into it (a Graph folder), and the contacts
of a deleted folder have moved out before the folder goes.
"""

from __future__ import annotations

import dataclasses

from rolodex.connectors.base import Connector, RemoteNotFound
from rolodex.domain.account import Account
from rolodex.domain.remote import LocalGroup, OutboxItem, WriteResult
from rolodex.sync.local import LocalSide


class Held(Exception):
    """A write that must wait for another write here to reach the provider first: a
    group's create whose name another group here still holds there (its rename not
    delivered yet), or a write of a contact in such a group. Not the provider's refusal:
    the push delivers the other write and tries this one again soon."""


def push_group(local: LocalSide, connector: Connector, account: Account, item: OutboxItem) -> None:
    """Create, rename or delete the group at the provider; errors are left to the caller,
    classified as for contacts."""
    group = local.group_state(account, item)
    if group is None:
        _unmake(local, connector, account, item, local.group_lost(account, item))
        local.dropped(account.id, item)
        return
    if item.operation == "delete":
        connector.delete_group(group)
        local.group_pushed(account, item, None)
        return
    if group.remote_id is None:
        # Made here and not there yet (a rename before the create was delivered makes it
        # with the new name at once).
        result = _make(local, connector, account, item, group)
    else:
        try:
            result = connector.rename_group(group)
        except RemoteNotFound:
            # Deleted there, renamed here: the rename wins and the group is made again.
            fresh = dataclasses.replace(group, remote_id=None, etag=None)
            result = _make(local, connector, account, item, fresh)
    local.group_pushed(account, item, result)


def _make(
    local: LocalSide, connector: Connector, account: Account, item: OutboxItem, group: LocalGroup
) -> WriteResult:
    """Make the group at the provider, once across retries.

    A retry after a lost reply is answered with the group the first attempt made (group
    names are unique at the provider), as long as the name is the same. Every path an
    attempt makes or renames the group at is recorded before it is sent
    (``LocalSide.group_attempting``): when a rename here changed the path before the retry,
    the group an earlier attempt left at one of those paths (looked up there, the latest
    first) is the one kept and renamed, else it would stay there as a second group that
    comes back here in the next pull. (Across parents, a Graph folder that would have to
    move, it is not looked for.)

    A group there that another group here is linked to is never taken: the pull linked it
    to that one meanwhile (the group of its name here), or it is that one's and still has
    the name there because that one's rename has not reached the provider yet. Taken, it
    would be two groups here, and one of their names lost there. An earlier attempt's group
    is then simply not this one's any more; a group of its own name that another has
    holds this one back (``Held``) until the other's rename frees the name."""
    tried = _with(item.fields, group.path)
    for path in reversed(item.fields):
        if path == group.path or _parent(path) != _parent(group.path):
            continue
        found = connector.find_group(path)
        if found is None or _holder(local, account, item, found) is not None:
            continue
        local.group_attempting(account.id, item, tried)
        return connector.rename_group(
            dataclasses.replace(group, remote_id=found.remote_id, etag=found.etag or None)
        )
    local.group_attempting(account.id, item, tried)
    made = connector.create_group(group)
    holder = _holder(local, account, item, made)
    if holder is not None:
        raise Held(
            f"a group named {group.name!r} exists at the provider: the group {holder} here, "
            "whose rename has not reached it yet"
        )
    return made


def _unmake(
    local: LocalSide,
    connector: Connector,
    account: Account,
    item: OutboxItem,
    paths: tuple[str, ...],
) -> None:
    """Delete the group earlier attempts at ``item`` may have left at ``paths`` (their
    replies lost) of a group deleted here since: its delete went out knowing no provider
    id. One that another group here is linked to is that one's (``_make``), and stays."""
    for path in paths:
        found = connector.find_group(path)
        if found is not None and _holder(local, account, item, found) is None:
            connector.delete_group(
                LocalGroup(
                    name=path.rsplit("/", 1)[-1],
                    path=path,
                    remote_id=found.remote_id,
                    etag=found.etag or None,
                )
            )


def _with(paths: tuple[str, ...], path: str) -> tuple[str, ...]:
    """``paths`` with ``path`` last (once)."""
    return (*(p for p in paths if p != path), path)


def _holder(local: LocalSide, account: Account, item: OutboxItem, made: WriteResult) -> str | None:
    """The other group here linked to the provider's group ``made`` answers, if any."""
    holder = local.group_linked(account, made.remote_id)
    return holder if holder not in (None, item.object_id) else None


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""
