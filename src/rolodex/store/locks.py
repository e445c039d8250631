"""Row locks of the one lock order (``rolodex.store``, the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from rolodex.domain.errors import NoSuchAccount
from rolodex.store.contacts import storable
from rolodex.store.schema import accounts

# Built once: the statements every write transaction begins with (constructing a statement
# cost more than running it).
_LOCK = (
    select(accounts.c.generation)
    .where(accounts.c.id == bindparam("b_account"))
    .with_for_update(key_share=True)
)
_LOCK_LEASED = (
    select(
        accounts.c.generation, accounts.c.lease_owner, accounts.c.lease_until, accounts.c.sync_state
    )
    .where(accounts.c.id == bindparam("b_account"))
    .with_for_update(key_share=True)
)


def lock_account(conn: Connection, account_id: str) -> int:
    """Lock the account row until the transaction ends: the first lock of every write of
    the account's data. Returns the account's generation.

    ``FOR NO KEY UPDATE`` (what an UPDATE of non-key columns takes): it queues the
    account's writers, yet lets rows that refer to the account (foreign keys take ``KEY
    SHARE``) be inserted by transactions that do not take it. SQLite renders no lock
    clause: its write transaction holds the database's one write lock already. An id no
    database can hold (``storable``) is no such account, as on SQLite.
    """
    if not storable(account_id):
        raise NoSuchAccount(account_id)
    found = conn.execute(_LOCK, {"b_account": account_id}).scalar_one_or_none()
    if found is None:
        raise NoSuchAccount(account_id)
    return int(found)


@dataclass(frozen=True, slots=True)
class LockedAccount:
    """What ``lock_account_leased`` reads with the lock."""

    generation: int
    lease_owner: str | None
    lease_until: float | None
    sync_state: str


def lock_account_leased(conn: Connection, account_id: str) -> LockedAccount:
    """``lock_account``, also reading who holds the account's sync lease and until when,
    and its sync state: locked, the row's lease cannot change under the transaction but
    by its own writes, so a sync's fence (``AccountRepository.holds_lease``) needs no
    statement of its own, nor does an API write's check that the account may be written
    (``AccountRepository.sync_states``)."""
    if not storable(account_id):
        raise NoSuchAccount(account_id)
    found = conn.execute(_LOCK_LEASED, {"b_account": account_id}).first()
    if found is None:
        raise NoSuchAccount(account_id)
    return LockedAccount(
        int(found.generation), found.lease_owner, found.lease_until, found.sync_state
    )
