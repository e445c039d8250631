"""Accounts and their access tokens."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.sql.dml import Update

from rolodex.domain.account import Account
from rolodex.domain.errors import NoSuchAccount
from rolodex.store.contacts import storable
from rolodex.store.locks import lock_account
from rolodex.store.schema import (
    access_tokens,
    accounts,
    auth_codes,
    contact_terms,
    memberships,
    outbox,
    settings,
)

_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.email_address,
    accounts.c.name,
    accounts.c.provider,
    accounts.c.sandbox,
    accounts.c.linked_at,
    accounts.c.sync_state,
    accounts.c.last_synced_at,
    accounts.c.last_error,
    accounts.c.contact_count,
)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        email_address=row.email_address,
        name=row.name,
        provider=row.provider,
        sandbox=bool(row.sandbox),
        linked_at=row.linked_at,
        sync_state=row.sync_state,
        last_synced_at=row.last_synced_at,
        last_error=row.last_error,
        contact_count=row.contact_count,
    )


# The statements of every sync's start and end, built once (constructing one cost more than
# running it); ``b_`` names, since a column's own name is SQLAlchemy's in SET and VALUES.
_ACQUIRE_LEASE = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("b_account"),
        or_(
            accounts.c.lease_owner.is_(None),
            accounts.c.lease_owner == bindparam("b_owner"),
            accounts.c.lease_until < bindparam("b_now"),
        ),
    )
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
)
_SYNC_START = select(
    *_ACCOUNT_COLUMNS,
    accounts.c.connection,
    accounts.c.sync_request_id,
    select(outbox.c.seq)
    .where(
        outbox.c.account_id == bindparam("b_account"),
        outbox.c.next_attempt_at <= bindparam("b_now"),
    )
    .limit(1)
    .exists()
    .label("pushes_due"),
).where(accounts.c.id == bindparam("b_account"))
_CLEAR_REQUEST = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("b_account"),
        accounts.c.sync_request_id == bindparam("b_request"),
    )
    .values(sync_request_id=None)
)
_ALLOCATE = (
    update(accounts)
    .where(accounts.c.id == bindparam("b_account"))
    .values(generation=accounts.c.generation + bindparam("b_count"))
)
_ALLOCATE_RETURNING = _ALLOCATE.returning(accounts.c.generation)
_ADDING = {"contact_count": accounts.c.contact_count + bindparam("b_new")}
_ALLOCATE_ADDING = _ALLOCATE.values(**_ADDING)
_ALLOCATE_ADDING_RETURNING = _ALLOCATE_ADDING.returning(accounts.c.generation)
_ADD_CONTACTS = update(accounts).where(accounts.c.id == bindparam("b_account")).values(**_ADDING)
_LEASE_OF = select(accounts.c.lease_owner, accounts.c.lease_until).where(
    accounts.c.id == bindparam("b_account")
)


@functools.cache
def _end_sync(columns: tuple[str, ...], when: str) -> Update:
    """``AccountRepository.end_sync``'s statement for the status columns it writes and
    ``when`` the account is next due ("": unchanged; "never"; "at": ``b_next``, or now if
    another sync was asked for meanwhile)."""
    values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in columns}
    if when == "never":
        values["next_sync_at"] = None
    elif when == "at":
        values["next_sync_at"] = case(
            (accounts.c.sync_request_id.is_not(None), bindparam("b_now")),
            else_=bindparam("b_next"),
        )
    return (
        update(accounts)
        .where(
            accounts.c.id == bindparam("b_account"),
            accounts.c.lease_owner == bindparam("b_owner"),
            accounts.c.lease_until >= bindparam("b_now"),
        )
        .values(lease_owner=None, lease_until=None, **values)
    )


class AccountRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # The generation of each account whose row this transaction holds locked
        # (``Store.write`` locks it first; an ``allocate`` locks it too), as the
        # transaction has left it. Nobody else can move it meanwhile, so ``allocate`` knows
        # its numbers without waiting for its statement's answer, and ``Store.write``
        # announces the generation at commit without asking again.
        self.generations: dict[str, int] = {}
        # (owner, until) of the sync lease of each account whose row this transaction
        # locked, as read with the lock (``Store.write``) and not written since.
        self.leases: dict[str, tuple[str | None, float | None]] = {}
        # The sync state of each account whose row ``Store.write`` locked, as read then.
        self.sync_states: dict[str, str] = {}

    def insert(self, account: Account, connection: bytes | None = None) -> None:
        self.conn.execute(
            insert(accounts).values(
                id=account.id,
                email_address=account.email_address,
                name=account.name,
                provider=account.provider,
                sandbox=account.sandbox,
                connection=connection,
                sync_state=account.sync_state,
                linked_at=account.linked_at,
            )
        )

    def get(self, account_id: str) -> Account:
        if not storable(account_id):
            raise NoSuchAccount(account_id)
        row = self.conn.execute(
            select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id)
        ).first()
        if row is None:
            raise NoSuchAccount(account_id)
        return _account(row)

    def all_connected(self, email_address: str, provider: str) -> list[Account]:
        """The connected accounts of this address at this provider, oldest first."""
        rows = self.conn.execute(
            select(*_ACCOUNT_COLUMNS)
            .where(
                func.lower(accounts.c.email_address) == email_address.lower(),
                accounts.c.provider == provider,
                accounts.c.sandbox.is_(False),
            )
            .order_by(accounts.c.linked_at)
        )
        return [_account(r) for r in rows]

    def all(self) -> list[Account]:
        rows = self.conn.execute(select(*_ACCOUNT_COLUMNS).order_by(accounts.c.linked_at))
        return [_account(r) for r in rows]

    def delete(self, account_id: str) -> None:
        # Children go by ON DELETE CASCADE on PostgreSQL; SQLite needs foreign_keys=ON,
        # which every connection sets. The two index tables have no foreign key (they are
        # written on every contact write and keyed for lookups, not for the parent), so
        # they are emptied here or they would outlive the account. The account's row is
        # locked first, as every write of its data does (rolodex.store): deleting its
        # index rows before would deadlock with a contact write holding the row.
        lock_account(self.conn, account_id)
        for table in (contact_terms, memberships):
            self.conn.execute(delete(table).where(table.c.account_id == account_id))
        if self.conn.execute(delete(accounts).where(accounts.c.id == account_id)).rowcount == 0:
            raise NoSuchAccount(account_id)

    def connection(self, account_id: str) -> bytes | None:
        value = self.conn.execute(
            select(accounts.c.connection).where(accounts.c.id == account_id)
        ).scalar_one_or_none()
        return value

    def allocate(self, account_id: str, count: int = 1, *, new_contacts: int = 0) -> int:
        """Take ``count`` numbers from the account's sequence; returns the first.
        ``new_contacts`` adds to the account's contact count in the same statement.

        Under the account's lock (``generations``) the statement's answer is not waited
        for: in a ``Tx.together`` block it goes out with the inserts that follow.
        """
        params: dict[str, Any] = {"b_account": account_id, "b_count": count}
        statement, returning = _ALLOCATE, _ALLOCATE_RETURNING
        if new_contacts:
            params["b_new"] = new_contacts
            statement, returning = _ALLOCATE_ADDING, _ALLOCATE_ADDING_RETURNING
        known = self.generations.get(account_id)
        if known is not None:
            self.conn.execute(statement, params)
            last = known + count
        else:
            found = self.conn.execute(returning, params).scalar_one_or_none()
            if found is None:
                raise NoSuchAccount(account_id)
            last = int(found)
        self.generations[account_id] = last
        return last - count + 1

    def generation(self, account_id: str) -> int:
        value = self.conn.execute(
            select(accounts.c.generation).where(accounts.c.id == account_id)
        ).scalar_one_or_none()
        if value is None:
            raise NoSuchAccount(account_id)
        return int(value)

    def add_contacts(self, account_id: str, delta: int) -> None:
        self.conn.execute(_ADD_CONTACTS, {"b_account": account_id, "b_new": delta})

    def set_sync_status(self, account_id: str, **values: Any) -> None:
        allowed = {"sync_state", "last_synced_at", "last_error", "connection"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not sync status columns: {sorted(unknown)}")
        self.sync_states.pop(account_id, None)
        self.conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))

    def end_sync(
        self,
        account_id: str,
        owner: str,
        now: float,
        *,
        schedule: bool = False,
        next_sync_at: float | None = None,
        **values: Any,
    ) -> bool:
        """The end of ``owner``'s sync, in one statement: its status (the columns of
        ``set_sync_status``), with ``schedule`` when it is next due (now if another sync
        was asked for meanwhile; None: not until it is reconnected), and its lease given
        back. False, with nothing written, unless ``owner`` holds the lease still."""
        unknown = set(values) - {"sync_state", "last_synced_at", "last_error"}
        if unknown:
            raise ValueError(f"not sync status columns: {sorted(unknown)}")
        params = {f"b_{name}": value for name, value in values.items()}
        params.update(b_account=account_id, b_owner=owner, b_now=now, b_next=next_sync_at)
        when = "" if not schedule else "never" if next_sync_at is None else "at"
        self.leases.pop(account_id, None)
        self.sync_states.pop(account_id, None)
        result = self.conn.execute(_end_sync(tuple(sorted(values)), when), params)
        return result.rowcount == 1

    # Sync scheduling ---------------------------------------------------------------------

    def due_for_sync(self, now: float, limit: int = 100) -> list[str]:
        """Connected accounts whose sync is due and whose lease is free or expired."""
        rows = self.conn.execute(
            select(accounts.c.id)
            .where(
                accounts.c.sandbox.is_(False),
                accounts.c.provider != "local",
                accounts.c.next_sync_at.is_not(None),
                accounts.c.next_sync_at <= now,
                or_(accounts.c.lease_until.is_(None), accounts.c.lease_until < now),
            )
            .order_by(accounts.c.next_sync_at)
            .limit(limit)
        )
        return list(rows.scalars())

    def acquire_lease(self, account_id: str, owner: str, now: float, seconds: float) -> bool:
        """Take (or extend) the account's sync lease; False if another worker holds it."""
        self.leases.pop(account_id, None)
        self.sync_states.pop(account_id, None)
        result = self.conn.execute(
            _ACQUIRE_LEASE,
            {"b_account": account_id, "b_owner": owner, "b_now": now, "b_until": now + seconds},
        )
        return result.rowcount == 1

    def holds_lease(self, account_id: str, owner: str, now: float) -> bool:
        """Whether ``owner`` still holds the account's lease: the fence every write of a
        sync passes, in the write's own transaction."""
        if account_id in self.leases:
            held, until = self.leases[account_id]
            return held == owner and (until or 0) >= now
        row = self.conn.execute(_LEASE_OF, {"b_account": account_id}).first()
        return row is not None and row.lease_owner == owner and (row.lease_until or 0) >= now

    def lease_holder(self, account_id: str, now: float) -> str | None:
        """Who holds the account's lease now (None: nobody, or a holder whose lease ran
        out)."""
        row = self.conn.execute(
            select(accounts.c.lease_owner, accounts.c.lease_until).where(
                accounts.c.id == account_id
            )
        ).first()
        if row is None or row.lease_owner is None or (row.lease_until or 0) < now:
            return None
        return str(row.lease_owner)

    def release_lease(self, account_id: str, owner: str) -> None:
        self.leases.pop(account_id, None)
        self.conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )

    def schedule_sync(self, account_id: str, at: float | None) -> None:
        """When the account is next due; ``None`` stops its syncing (bad credentials)."""
        self.conn.execute(
            update(accounts).where(accounts.c.id == account_id).values(next_sync_at=at)
        )

    def request_sync(self, account_id: str, now: float, request_id: str) -> None:
        """Make the account due now, and remember who asked (``""``: no request id)."""
        self.conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(next_sync_at=now, sync_request_id=request_id)
        )

    def sync_start(
        self, account_id: str, now: float, *, take_request: bool
    ) -> tuple[Account, bytes | None, str | None, bool]:
        """What a sync starts from, read in one statement: the account, its sealed
        settings, the request that asked for the sync (with ``take_request``, taken as
        ``take_sync_request`` does; else None), and whether writes of it wait for the
        provider, due by ``now``."""
        row = self.conn.execute(_SYNC_START, {"b_account": account_id, "b_now": now}).first()
        if row is None:
            raise NoSuchAccount(account_id)
        requested = row.sync_request_id if take_request else None
        if requested is not None:
            self._clear_request(account_id, requested)
        return _account(row), row.connection, requested, bool(row.pushes_due)

    def take_sync_request(self, account_id: str) -> str | None:
        """The id of the request that asked for the sync now starting (``""`` without
        one; None: not asked for), which is no longer waiting."""
        requested = self.sync_request(account_id)
        if requested is not None:
            self._clear_request(account_id, requested)
        return requested

    def _clear_request(self, account_id: str, requested: str) -> None:
        self.conn.execute(_CLEAR_REQUEST, {"b_account": account_id, "b_request": requested})

    def sync_request(self, account_id: str) -> str | None:
        """The id of the request waiting for a sync of the account, if one is."""
        value = self.conn.execute(
            select(accounts.c.sync_request_id).where(accounts.c.id == account_id)
        ).scalar_one_or_none()
        return None if value is None else str(value)

    # Access tokens -----------------------------------------------------------------------

    def add_token(self, token_hash: str, account_id: str, created_at: float) -> None:
        self.conn.execute(
            insert(access_tokens).values(
                token_hash=token_hash, account_id=account_id, created_at=created_at
            )
        )

    def account_id_for_token(self, token_hash: str) -> str | None:
        return self.conn.execute(
            select(access_tokens.c.account_id).where(access_tokens.c.token_hash == token_hash)
        ).scalar_one_or_none()

    def token_created_at(self, token_hash: str, account_id: str) -> float | None:
        """When this token of this account was made; None if it is not one."""
        created: float | None = self.conn.execute(
            select(access_tokens.c.created_at).where(
                access_tokens.c.token_hash == token_hash,
                access_tokens.c.account_id == account_id,
            )
        ).scalar_one_or_none()
        return created

    def delete_token(self, token_hash: str) -> bool:
        result = self.conn.execute(
            delete(access_tokens).where(access_tokens.c.token_hash == token_hash)
        )
        return result.rowcount > 0

    def delete_tokens(self, account_id: str, keep: str | None = None) -> int:
        statement = delete(access_tokens).where(access_tokens.c.account_id == account_id)
        if keep is not None:
            statement = statement.where(access_tokens.c.token_hash != keep)
        return self.conn.execute(statement).rowcount


class SettingsRepository:
    """Server-wide settings kept in the database (the application's client id and secret)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, key: str) -> str | None:
        return self.conn.execute(
            select(settings.c.value).where(settings.c.key == key)
        ).scalar_one_or_none()

    def put(self, key: str, value: str) -> None:
        if self.get(key) is None:
            self.conn.execute(insert(settings).values(key=key, value=value))
        else:
            self.conn.execute(update(settings).where(settings.c.key == key).values(value=value))


class AuthCodeRepository:
    """One-time codes of native authentication."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def put(self, code_hash: str, client_id: str, payload: bytes, expires_at: float) -> None:
        self.conn.execute(
            insert(auth_codes).values(
                code_hash=code_hash, client_id=client_id, payload=payload, expires_at=expires_at
            )
        )

    def take(self, code_hash: str, client_id: str, now: float) -> bytes | None:
        """The code's payload, deleting it: a code works once, and only before it expires.

        Deleted and read in one statement: read first, a code could be read by a second
        transaction before the first's delete committed (PostgreSQL's READ COMMITTED), and
        work twice. A code asked for by another client is used up all the same."""
        taken = self.conn.execute(
            delete(auth_codes)
            .where(auth_codes.c.code_hash == code_hash)
            .returning(auth_codes.c.payload, auth_codes.c.client_id, auth_codes.c.expires_at)
        ).first()
        self.conn.execute(delete(auth_codes).where(auth_codes.c.expires_at <= now))
        if taken is None or taken.client_id != client_id or taken.expires_at <= now:
            return None
        payload: bytes = taken.payload
        return payload
