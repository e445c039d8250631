"""What every mutation writes beside the object itself, in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable

from rolodex.domain.account import SYNC_INVALID_CREDENTIALS, Account
from rolodex.domain.errors import CredentialsOutOfDate
from rolodex.domain.remote import CONTACT_OBJECT, GROUP_OBJECT
from rolodex.logs import REQUEST_ID
from rolodex.store import Tx

CONTACT = CONTACT_OBJECT
GROUP = GROUP_OBJECT


def record_change(
    tx: Tx,
    account: Account,
    seq: int,
    object_type: str,
    object_id: str,
    event: str,
    now: float,
    *,
    push: str | None = None,
    fields: Iterable[str] = (),
) -> None:
    """Append to the change log and, for accounts whose address book lives at a provider,
    queue the write for the provider (``push`` is the outbox operation), with the id of
    the request that made it for the logs of its delivery."""
    tx.changes.append(account.id, seq, object_type, object_id, event, now)
    if push is not None and account.is_connected:
        request_id = REQUEST_ID.get() or None
        tx.outbox.enqueue(
            account.id, seq, object_type, object_id, push, tuple(fields), now, request_id
        )


def refuse_if_disconnected(tx: Tx, account: Account) -> None:
    """An API write of an account whose provider refused its credentials is refused,
    before anything is written: it could not be delivered until the user connects the
    account again, and a 200 would say it had been. The state is the one read with the
    account's lock (``Store.write``), so it is never a cached one."""
    if account.is_connected and tx.accounts.sync_states.get(account.id) == (
        SYNC_INVALID_CREDENTIALS
    ):
        raise CredentialsOutOfDate(account.id)
