"""The provider side of synced accounts: where each contact lives remotely, cursors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update

from rolodex.domain.remote import RemoteLink
from rolodex.store.bulk import insert_rows
from rolodex.store.contacts import ContactRow
from rolodex.store.schema import contact_remotes, contacts, sync_cursors


def _link(row: Any) -> RemoteLink:
    return RemoteLink(row.contact_id, row.collection, row.remote_id, row.uid, row.etag, row.raw)


_COLUMNS = (
    contact_remotes.c.contact_id,
    contact_remotes.c.collection,
    contact_remotes.c.remote_id,
    contact_remotes.c.uid,
    contact_remotes.c.etag,
    contact_remotes.c.raw,
)

# The statements of every sync, built once (constructing one cost more than running it).
_LINKS_OF_ACCOUNT = contact_remotes.c.account_id == bindparam("b_account")
_FOR_REMOTE_IDS = select(*_COLUMNS).where(
    _LINKS_OF_ACCOUNT, contact_remotes.c.remote_id.in_(bindparam("b_ids", expanding=True))
)
_LINKED_ROWS = (
    select(*_COLUMNS, contacts.c.pk, contacts.c.doc)
    .select_from(
        contact_remotes.outerjoin(
            contacts,
            and_(
                contacts.c.account_id == contact_remotes.c.account_id,
                contacts.c.id == contact_remotes.c.contact_id,
            ),
        )
    )
    .where(_LINKS_OF_ACCOUNT, contact_remotes.c.remote_id.in_(bindparam("b_ids", expanding=True)))
)
_UPDATE_LINKS = (
    update(contact_remotes)
    .where(_LINKS_OF_ACCOUNT, contact_remotes.c.contact_id == bindparam("b_contact_id"))
    .values(
        collection=bindparam("b_collection"),
        remote_id=bindparam("b_remote_id"),
        uid=bindparam("b_uid"),
        etag=bindparam("b_etag"),
        raw=bindparam("b_raw"),
    )
)
_CURSORS_OF_ACCOUNT = sync_cursors.c.account_id == bindparam("b_account")
_CURSORS = select(sync_cursors.c.collection, sync_cursors.c.cursor).where(_CURSORS_OF_ACCOUNT)
_SET_CURSORS = (
    update(sync_cursors)
    .where(_CURSORS_OF_ACCOUNT, sync_cursors.c.collection == bindparam("b_collection"))
    .values(cursor=bindparam("b_cursor"))
)


class RemoteRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def for_contact(self, account_id: str, contact_id: str) -> RemoteLink | None:
        row = self.conn.execute(
            select(*_COLUMNS).where(
                contact_remotes.c.account_id == account_id,
                contact_remotes.c.contact_id == contact_id,
            )
        ).first()
        return None if row is None else _link(row)

    def for_remote_ids(self, account_id: str, remote_ids: Iterable[str]) -> dict[str, RemoteLink]:
        found: dict[str, RemoteLink] = {}
        ids = list(remote_ids)
        # Chunked: SQLite caps bound parameters, and PostgreSQL plans long IN lists poorly.
        for start in range(0, len(ids), 500):
            rows = self.conn.execute(
                _FOR_REMOTE_IDS, {"b_account": account_id, "b_ids": ids[start : start + 500]}
            )
            for row in rows:
                found[row.remote_id] = _link(row)
        return found

    def linked_rows(
        self, account_id: str, remote_ids: Iterable[str]
    ) -> tuple[dict[str, RemoteLink], dict[str, ContactRow]]:
        """``for_remote_ids``, and the rows of the contacts linked (those that exist), in
        one statement per 500 (what applying a batch of the provider's items reads)."""
        links: dict[str, RemoteLink] = {}
        rows: dict[str, ContactRow] = {}
        ids = list(remote_ids)
        for start in range(0, len(ids), 500):
            found = self.conn.execute(
                _LINKED_ROWS, {"b_account": account_id, "b_ids": ids[start : start + 500]}
            )
            for row in found:
                links[row.remote_id] = _link(row)
                if row.pk is not None:
                    rows[row.contact_id] = ContactRow(row.pk, row.contact_id, row.doc)
        return links, rows

    def etags(self, account_id: str, collection: str) -> dict[str, str]:
        """remote_id -> etag of every contact known in a collection (for full listings)."""
        rows = self.conn.execute(
            select(contact_remotes.c.remote_id, contact_remotes.c.etag).where(
                contact_remotes.c.account_id == account_id,
                contact_remotes.c.collection == collection,
            )
        )
        return {r.remote_id: r.etag for r in rows}

    def contact_ids_for_uids(self, account_id: str, uids: Iterable[str]) -> list[str]:
        wanted = list(uids)
        found: list[str] = []
        for start in range(0, len(wanted), 500):
            found.extend(
                self.conn.execute(
                    select(contact_remotes.c.contact_id).where(
                        contact_remotes.c.account_id == account_id,
                        contact_remotes.c.uid.in_(wanted[start : start + 500]),
                    )
                ).scalars()
            )
        return found

    def put(self, account_id: str, link: RemoteLink) -> None:
        values = {
            "collection": link.collection,
            "remote_id": link.remote_id,
            "uid": link.uid,
            "etag": link.etag,
            "raw": link.raw,
        }
        changed = self.conn.execute(
            update(contact_remotes)
            .where(
                contact_remotes.c.account_id == account_id,
                contact_remotes.c.contact_id == link.contact_id,
            )
            .values(**values)
        ).rowcount
        if not changed:
            self.conn.execute(
                insert(contact_remotes).values(
                    account_id=account_id, contact_id=link.contact_id, **values
                )
            )

    def insert_many(self, account_id: str, links: Iterable[RemoteLink]) -> None:
        """Links of contacts that have none yet, in one statement."""
        insert_rows(
            self.conn,
            contact_remotes,
            ("account_id", "contact_id", "collection", "remote_id", "uid", "etag", "raw"),
            (
                (account_id, x.contact_id, x.collection, x.remote_id, x.uid, x.etag, x.raw)
                for x in links
            ),
        )

    def update_many(self, account_id: str, links: Iterable[RemoteLink]) -> None:
        """Replace the links of contacts that have one, in one statement."""
        values = [
            {
                "b_contact_id": link.contact_id,
                "b_collection": link.collection,
                "b_remote_id": link.remote_id,
                "b_uid": link.uid,
                "b_etag": link.etag,
                "b_raw": link.raw,
            }
            for link in links
        ]
        if not values:
            return
        for value in values:
            value["b_account"] = account_id
        self.conn.execute(_UPDATE_LINKS, values)

    def delete(self, account_id: str, contact_id: str) -> None:
        self.conn.execute(
            delete(contact_remotes).where(
                contact_remotes.c.account_id == account_id,
                contact_remotes.c.contact_id == contact_id,
            )
        )

    def collections(self, account_id: str) -> set[str]:
        """Every collection with a cursor: every one a sync has pulled (a handful of rows;
        the links would be a scan of every contact of the account)."""
        cursors = select(sync_cursors.c.collection).where(
            sync_cursors.c.account_id == account_id, sync_cursors.c.cursor.is_not(None)
        )
        return set(self.conn.execute(cursors).scalars())

    # Picture checks (rolodex.service.picturechecks) -----------------------------------------

    def pictures_never_checked(self, account_id: str, limit: int) -> list[tuple[str, str]]:
        """(contact id, remote id) of up to ``limit`` contacts whose picture was never
        checked (the (account, checked at) index)."""
        rows = self.conn.execute(
            select(contact_remotes.c.contact_id, contact_remotes.c.remote_id)
            .where(
                contact_remotes.c.account_id == account_id,
                contact_remotes.c.picture_checked_at.is_(None),
            )
            .limit(limit)
        )
        return [(row.contact_id, row.remote_id) for row in rows]

    def pictures_checked_before(
        self, account_id: str, before: float, limit: int
    ) -> list[tuple[str, str]]:
        """(contact id, remote id) of up to ``limit`` contacts whose picture was last
        checked before ``before``, those checked longest ago first."""
        checked = contact_remotes.c.picture_checked_at
        rows = self.conn.execute(
            select(contact_remotes.c.contact_id, contact_remotes.c.remote_id)
            .where(contact_remotes.c.account_id == account_id, checked < before)
            .order_by(checked)
            .limit(limit)
        )
        return [(row.contact_id, row.remote_id) for row in rows]

    def count_pictures_never_checked(self, account_id: str) -> int:
        return int(
            self.conn.execute(
                select(func.count()).where(
                    contact_remotes.c.account_id == account_id,
                    contact_remotes.c.picture_checked_at.is_(None),
                )
            ).scalar_one()
        )

    def pictures_checked(self, account_id: str, contact_ids: Iterable[str], at: float) -> None:
        ids = list(contact_ids)
        for start in range(0, len(ids), 500):
            self.conn.execute(
                update(contact_remotes)
                .where(
                    contact_remotes.c.account_id == account_id,
                    contact_remotes.c.contact_id.in_(ids[start : start + 500]),
                )
                .values(picture_checked_at=at)
            )

    # Cursors -------------------------------------------------------------------------------

    def cursors(self, account_id: str) -> dict[str, str | None]:
        """Every collection's cursor (a handful of rows)."""
        rows = self.conn.execute(_CURSORS, {"b_account": account_id})
        return {row.collection: row.cursor for row in rows}

    def cursor(self, account_id: str, collection: str) -> str | None:
        return self.conn.execute(
            select(sync_cursors.c.cursor).where(
                sync_cursors.c.account_id == account_id, sync_cursors.c.collection == collection
            )
        ).scalar_one_or_none()

    def set_cursors(self, account_id: str, cursors: dict[str, str | None]) -> None:
        """``set_cursor`` of each, the rows there already updated by one statement (a
        sync ends by writing the cursors of all its collections)."""
        if len(cursors) < 2 or not self.conn.dialect.supports_sane_multi_rowcount:
            for collection, cursor in cursors.items():
                self.set_cursor(account_id, collection, cursor)
            return
        changed = self.conn.execute(
            _SET_CURSORS,
            [
                {"b_account": account_id, "b_collection": c, "b_cursor": v}
                for c, v in cursors.items()
            ],
        ).rowcount
        if changed != len(cursors):
            # Some have no row yet (a new collection): each on its own, as set_cursor does.
            for collection, cursor in cursors.items():
                self.set_cursor(account_id, collection, cursor)

    def set_cursor(self, account_id: str, collection: str, cursor: str | None) -> None:
        changed = self.conn.execute(
            _SET_CURSORS, {"b_account": account_id, "b_collection": collection, "b_cursor": cursor}
        ).rowcount
        if not changed:
            self.conn.execute(
                insert(sync_cursors).values(
                    account_id=account_id, collection=collection, cursor=cursor
                )
            )
