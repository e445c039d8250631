"""Contact groups of an account."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from rolodex.domain.contact import Group
from rolodex.domain.errors import DuplicateGroupName, NoSuchGroup
from rolodex.store.contacts import storable
from rolodex.store.schema import contact_groups, memberships

# Read by the group routes, and by every sync for every batch it applies: built once.
_LIST = (
    select(contact_groups.c.id, contact_groups.c.name, contact_groups.c.path)
    .where(contact_groups.c.account_id == bindparam("b_account"))
    .order_by(contact_groups.c.path)
)
_WITH_REMOTES = _LIST.add_columns(contact_groups.c.remote_id, contact_groups.c.remote_etag)


class GroupRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def list(self, account_id: str) -> list[Group]:
        rows = self.conn.execute(_LIST, {"b_account": account_id})
        return [Group(r.id, account_id, r.name, r.path) for r in rows]

    def by_id(self, account_id: str, only: Iterable[str] | None = None) -> dict[str, Group]:
        """The account's groups by id; with ``only``, just those (a contact's own groups,
        which are all its document needs: most contacts have none, and then no query)."""
        if only is None:
            return {g.id: g for g in self.list(account_id)}
        wanted = [g for g in dict.fromkeys(only) if storable(g)]
        if not wanted:
            return {}
        rows = self.conn.execute(
            select(contact_groups.c.id, contact_groups.c.name, contact_groups.c.path).where(
                contact_groups.c.account_id == account_id, contact_groups.c.id.in_(wanted)
            )
        )
        return {r.id: Group(r.id, account_id, r.name, r.path) for r in rows}

    def get(self, account_id: str, group_id: str) -> Group:
        if not storable(group_id):
            raise NoSuchGroup(group_id)
        row = self.conn.execute(
            select(contact_groups.c.name, contact_groups.c.path).where(
                contact_groups.c.account_id == account_id, contact_groups.c.id == group_id
            )
        ).first()
        if row is None:
            raise NoSuchGroup(group_id)
        return Group(group_id, account_id, row.name, row.path)

    def insert(self, group: Group, now: float, remote_id: str | None = None) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(contact_groups).values(
                        account_id=group.account_id,
                        id=group.id,
                        name=group.name,
                        path=group.path,
                        remote_id=remote_id,
                        created_at=now,
                    )
                )
        except IntegrityError:
            raise DuplicateGroupName(group.name) from None

    def rename(self, group: Group) -> None:
        try:
            with self.conn.begin_nested():
                result = self.conn.execute(
                    update(contact_groups)
                    .where(
                        contact_groups.c.account_id == group.account_id,
                        contact_groups.c.id == group.id,
                    )
                    .values(name=group.name, path=group.path)
                )
        except IntegrityError:
            raise DuplicateGroupName(group.name) from None
        if result.rowcount == 0:
            raise NoSuchGroup(group.id)

    def delete(self, account_id: str, group_id: str) -> None:
        self.conn.execute(
            delete(memberships).where(
                memberships.c.account_id == account_id, memberships.c.group_id == group_id
            )
        )
        result = self.conn.execute(
            delete(contact_groups).where(
                contact_groups.c.account_id == account_id, contact_groups.c.id == group_id
            )
        )
        if result.rowcount == 0:
            raise NoSuchGroup(group_id)

    def find_by_path(self, account_id: str, path: str) -> Group | None:
        row = self.conn.execute(
            select(contact_groups.c.id, contact_groups.c.name).where(
                contact_groups.c.account_id == account_id, contact_groups.c.path == path
            )
        ).first()
        return None if row is None else Group(row.id, account_id, row.name, path)

    def with_remotes(
        self, account_id: str
    ) -> tuple[dict[str, Group], dict[str, tuple[str | None, str | None]]]:
        """``by_id`` and ``remote_ids`` of the account's groups, in one statement (a sync
        reads both for every batch it applies)."""
        rows = self.conn.execute(_WITH_REMOTES, {"b_account": account_id}).all()
        groups = {r.id: Group(r.id, account_id, r.name, r.path) for r in rows}
        return groups, {r.id: (r.remote_id, r.remote_etag) for r in rows}

    def remote_ids(self, account_id: str) -> dict[str, tuple[str | None, str | None]]:
        """group id -> (remote_id, remote_etag) of every group of the account."""
        rows = self.conn.execute(
            select(
                contact_groups.c.id, contact_groups.c.remote_id, contact_groups.c.remote_etag
            ).where(contact_groups.c.account_id == account_id)
        )
        return {r.id: (r.remote_id, r.remote_etag) for r in rows}

    def set_remote(
        self, account_id: str, group_id: str, remote_id: str | None, etag: str | None
    ) -> None:
        self.conn.execute(
            update(contact_groups)
            .where(contact_groups.c.account_id == account_id, contact_groups.c.id == group_id)
            .values(remote_id=remote_id, remote_etag=etag)
        )

    def find_by_remote_id(self, account_id: str, remote_id: str) -> Group | None:
        row = self.conn.execute(
            select(contact_groups.c.id, contact_groups.c.name, contact_groups.c.path).where(
                contact_groups.c.account_id == account_id,
                contact_groups.c.remote_id == remote_id,
            )
        ).first()
        return None if row is None else Group(row.id, account_id, row.name, row.path)
