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
from rolodex.domain.remote import OutboxItem
from rolodex.sync.local import LocalSide


def push_group(local: LocalSide, connector: Connector, account: Account, item: OutboxItem) -> None:
    """Create, rename or delete the group at the provider; errors are left to the caller,
    classified as for contacts."""
    group = local.group_state(account, item)
    if group is None:
        local.dropped(account.id, item)
        return
    if item.operation == "delete":
        connector.delete_group(group)
        local.group_pushed(account, item, None)
        return
    if group.remote_id is None:
        # Made here and not there yet (a rename before the create was delivered makes it
        # with the new name at once). A retry after a lost reply is answered with the group
        # the first attempt made: group names are unique at the provider.
        result = connector.create_group(group)
    else:
        try:
            result = connector.rename_group(group)
        except RemoteNotFound:
            # Deleted there, renamed here: the rename wins and the group is made again.
            result = connector.create_group(dataclasses.replace(group, remote_id=None, etag=None))
    local.group_pushed(account, item, result)
