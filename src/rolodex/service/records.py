"""What every mutation writes beside the object itself, in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable

from rolodex.domain.account import Account
from rolodex.domain.remote import CONTACT_OBJECT, GROUP_OBJECT
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
    queue the write for the provider (``push`` is the outbox operation)."""
    tx.changes.append(account.id, seq, object_type, object_id, event, now)
    if push is not None and account.is_connected:
        tx.outbox.enqueue(account.id, seq, object_type, object_id, push, tuple(fields), now)
