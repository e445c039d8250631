"""Which provider group a local group is, and the push side of group writes.

A group's ``remote_id`` column says where the group comes from, by a prefix: a group card
(CardDAV), a name on contacts (vCard CATEGORIES, Google's system groups), a label (Google's
contact groups) or a folder (Graph). For providers whose groups are items of their own that
Rolodex writes (Google contact groups, Graph contact folders), the rest of it is the
provider's id of the group as the connector answered it (``LocalGroup.remote_id``): a
Google label's resource name, a Graph folder's id. Both outlive a rename at the provider,
so the group keeps its v2 id and members when renamed on either side
(``Mirror.provider_groups``).

A group's write waits in the outbox like a contact's (``service.groups``). A deleted group's
row is gone by the time the write is delivered, so its delete carries the ``remote_id`` it
had (and its path) in the outbox item's ``fields``.
"""

from __future__ import annotations

from collections.abc import Iterator

from rolodex.domain.account import Account
from rolodex.domain.contact import Group
from rolodex.domain.errors import NoSuchGroup
from rolodex.domain.profiles import profile_for
from rolodex.domain.remote import GROUP_OBJECT, LocalGroup, OutboxItem, WriteResult
from rolodex.store import Tx

# Groups that are items of their own at the provider (group cards) carry this prefix in
# their remote_id; groups that exist as names on contacts (CATEGORIES, Google's system
# groups) carry "category:".
CARD_GROUP = "card:"
CATEGORY_GROUP = "category:"
# The group of a folder (Graph): a contact is in the one group of the folder that holds it.
FOLDER_GROUP = "folder:"
# A Google contact group (a label), by its resource name: a contact may be in many.
LABEL_GROUP = "label:"


def prefix(account: Account) -> str:
    """The prefix of the groups the account's connector writes, by the provider's id."""
    model = profile_for(account.provider).groups.model
    return {"folders": FOLDER_GROUP, "labels": LABEL_GROUP}.get(model, CATEGORY_GROUP)


def linked_group(tx: Tx, account: Account, provider_group_id: str) -> Group | None:
    """The group linked to the provider's group of this id (a label's resource name, a
    folder's id), if there is one."""
    return tx.groups.find_by_remote_id(account.id, prefix(account) + provider_group_id)


def linked_id(remote_id: str | None) -> str | None:
    """The provider's id of a group the connector writes (a label, a folder) from its
    ``remote_id`` column, whatever the provider; None for the others."""
    for own in (LABEL_GROUP, FOLDER_GROUP):
        if remote_id is not None and remote_id.startswith(own):
            return remote_id[len(own) :]
    return None


def provider_id(account: Account, remote_id: str | None) -> str | None:
    """The provider's id of a group from its ``remote_id`` column; None when the group is
    not one the connector writes (or not at the provider yet)."""
    if remote_id is None:
        return None
    own = prefix(account)
    if remote_id.startswith(own):
        return remote_id[len(own) :]
    if own == LABEL_GROUP and remote_id.startswith(CATEGORY_GROUP):
        # A label linked by its name, before labels were linked by resource name: the
        # connector finds it by that name (until the next pull links it by its id).
        return remote_id[len(CATEGORY_GROUP) :]
    return None


def state(tx: Tx, account: Account, item: OutboxItem) -> LocalGroup | None:
    """What ``item`` asks the provider to do to its group; None when nothing is left to
    deliver (a group deleted here since it was made or renamed, or one deleted here before
    it ever reached the provider)."""
    if item.operation == "delete":
        remote = provider_id(account, item.fields[0] if item.fields else None)
        if remote is None:
            return None
        path = item.fields[1] if len(item.fields) > 1 else remote
        return LocalGroup(name=path.rsplit("/", 1)[-1], path=path, remote_id=remote)
    try:
        group = tx.groups.get(account.id, item.object_id)
    except NoSuchGroup:
        return None
    remote_id, etag = tx.groups.remote_ids(account.id).get(group.id, (None, None))
    return LocalGroup(group.name, group.path, provider_id(account, remote_id), etag)


def lost(tx: Tx, account: Account, item: OutboxItem) -> tuple[str, ...]:
    """The paths at which attempts at ``item`` may have left its group at the provider, as
    they recorded them, when the group was deleted here since (none while it is here, or
    when no attempt was recorded): their replies were lost, and its delete knew no provider
    id."""
    if item.operation == "delete" or not item.fields:
        return ()
    try:
        tx.groups.get(account.id, item.object_id)
    except NoSuchGroup:
        return item.fields
    return ()


def lost_at(tx: Tx, account: Account, path: str) -> bool:
    """Whether a write waiting in the outbox of a group deleted here since recorded an
    attempt at ``path``: a group of that path at the provider that no group here is linked
    to may be what it left there, its reply lost, and that write deletes it (``lost``)."""
    here = tx.groups.remote_ids(account.id)
    return any(write.object_id not in here for write in _attempts_at(tx, account, path))


def attempted_at(tx: Tx, account: Account, path: str) -> Group | None:
    """The group here not at the provider yet whose write waiting in the outbox tried to
    make or rename it at ``path`` (``LocalSide.group_attempting``), renamed here since: a
    group of that path at the provider that no group here is linked to is the one that
    attempt left there, its reply lost."""
    own = prefix(account)
    unlinked = [
        group_id
        for group_id, (remote_id, _etag) in tx.groups.remote_ids(account.id).items()
        if not (remote_id and remote_id.startswith(own))
    ]
    for write in _attempts_at(tx, account, path, unlinked):
        return tx.groups.get(account.id, write.object_id)
    return None


def _attempts_at(
    tx: Tx, account: Account, path: str, group_ids: list[str] | None = None
) -> Iterator[OutboxItem]:
    """The group writes waiting (of ``group_ids``, or of any group) that recorded an
    attempt at ``path`` (``LocalSide.group_attempting``), in order."""
    for operation in ("create", "update"):
        for write in tx.outbox.waiting(account.id, GROUP_OBJECT, operation, group_ids):
            if path in write.fields:
                yield write


def pushed(
    tx: Tx, account: Account, item: OutboxItem, result: WriteResult | None, now: float
) -> None:
    """Record where the provider holds the group now (so that the next pull knows it for
    Rolodex's own, not a new group), and drop the write from the outbox."""
    if result is not None:
        remote_id = prefix(account) + result.remote_id
        try:
            tx.groups.get(account.id, item.object_id)
        except NoSuchGroup:
            # Deleted here while it was being made there: its delete went out knowing no
            # provider id, so this one deletes what was made.
            seq = tx.accounts.allocate(account.id)
            tx.outbox.enqueue(
                account.id, seq, GROUP_OBJECT, item.object_id, "delete", (remote_id,), now
            )  # (its path is not known any more: the message names the provider's id)
        else:
            tx.groups.set_remote(account.id, item.object_id, remote_id, result.etag or None)
    tx.outbox.done(account.id, item.seq)
