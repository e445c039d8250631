"""Contacts: one row with the rendered document each, plus the filter index tables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    Connection,
    LargeBinary,
    Select,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
    update,
)

from rolodex.domain.errors import NoSuchContact
from rolodex.domain.query import ContactFilter
from rolodex.store.bulk import insert_rows
from rolodex.store.schema import contact_groups, contact_terms, contacts, memberships


def storable(value: str) -> bool:
    """Whether a string can be a stored key at all: PostgreSQL text cannot hold NUL, and
    binding one there is an error rather than a miss, so lookups of such ids answer "no
    such object" before reaching SQL, as they do on SQLite."""
    return "\x00" not in value


class ContactRow(NamedTuple):
    # A tuple: the hot reads (rolodex.store.hot) build a hundred per page, straight from
    # the driver's rows.
    pk: int
    id: str
    doc: bytes


@dataclass(frozen=True, slots=True)
class NewContact:
    pk: int
    id: str
    doc: bytes
    terms: frozenset[tuple[str, str]]
    group_ids: tuple[str, ...]
    source: str = "address_book"
    # An update whose groups are those the row has already: its membership rows stay.
    same_groups: bool = False


# The statements of a contact's read, update and delete (every API write, every update a
# sync applies), built once: constructing one cost more than running it.
_UPDATE_DOCS = (
    update(contacts)
    .where(contacts.c.account_id == bindparam("b_account"), contacts.c.pk == bindparam("b_pk"))
    .values(doc=bindparam("b_doc"), updated_at=bindparam("b_now"))
)
_GET = select(contacts.c.pk, contacts.c.id, contacts.c.doc).where(
    contacts.c.account_id == bindparam("b_account"), contacts.c.id == bindparam("b_id")
)
_GET_FOR_UPDATE = _GET.with_for_update(key_share=True)
_DELETE = delete(contacts).where(
    contacts.c.account_id == bindparam("b_account"), contacts.c.pk == bindparam("b_pk")
)
_DELETE_TERMS = delete(contact_terms).where(
    contact_terms.c.account_id == bindparam("b_account"),
    contact_terms.c.contact_pk.in_(bindparam("b_pks", expanding=True)),
)
_DELETE_MEMBERSHIPS = delete(memberships).where(
    memberships.c.account_id == bindparam("b_account"),
    memberships.c.contact_pk.in_(bindparam("b_pks", expanding=True)),
)


class ContactRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # Reads ---------------------------------------------------------------------------------

    def get(self, account_id: str, contact_id: str, *, for_update: bool = False) -> ContactRow:
        """The contact's row; ``for_update`` locks it until the transaction ends (second in
        the lock order, after the account row: ``rolodex.store``)."""
        if not storable(contact_id):
            raise NoSuchContact(contact_id)
        statement = _GET_FOR_UPDATE if for_update else _GET
        row = self.conn.execute(statement, {"b_account": account_id, "b_id": contact_id}).first()
        if row is None:
            raise NoSuchContact(contact_id)
        return ContactRow(row.pk, row.id, row.doc)

    def get_many(self, account_id: str, contact_ids: Iterable[str]) -> dict[str, ContactRow]:
        """id -> row of those of ``contact_ids`` that exist (one query per 500 ids)."""
        ids = [i for i in dict.fromkeys(contact_ids) if storable(i)]
        found: dict[str, ContactRow] = {}
        for start in range(0, len(ids), 500):
            rows = self.conn.execute(
                select(contacts.c.pk, contacts.c.id, contacts.c.doc).where(
                    contacts.c.account_id == account_id,
                    contacts.c.id.in_(ids[start : start + 500]),
                )
            )
            for r in rows:
                found[r.id] = ContactRow(r.pk, r.id, r.doc)
        return found

    def page(
        self,
        account_id: str,
        where: ContactFilter,
        limit: int,
        offset: int = 0,
        after_pk: int | None = None,
        *,
        documents: bool = True,
    ) -> list[ContactRow]:
        """One page in creation order; ``after_pk`` replaces the offset when known.

        Without ``documents`` the rows carry an empty ``doc`` (``view=ids`` needs only ids
        and keys, and documents are most of the bytes).
        """
        keys, pk = self._matching_pks(account_id, where)
        if after_pk is not None:
            keys = keys.where(pk > after_pk)
        else:
            keys = keys.offset(offset)
        keys = keys.order_by(pk).limit(limit)
        # Paging the narrow key index first and joining the documents after keeps a deep
        # OFFSET from dragging every skipped document through memory.
        doc = contacts.c.doc if documents else literal(b"", LargeBinary).label("doc")
        rows = self.conn.execute(
            select(contacts.c.pk, contacts.c.id, doc)
            .where(contacts.c.account_id == account_id, contacts.c.pk.in_(keys.scalar_subquery()))
            .order_by(contacts.c.pk)
        )
        return [ContactRow(r.pk, r.id, r.doc) for r in rows]

    def count(self, account_id: str, where: ContactFilter) -> int:
        keys = self._matching_pks(account_id, where)[0].subquery()
        return int(self.conn.execute(select(func.count()).select_from(keys)).scalar_one())

    def _matching_pks(
        self, account_id: str, where: ContactFilter
    ) -> tuple[Select[Any], Column[int]]:
        """The keys of the matching contacts, and the column to order and page them by."""
        group_ids = (
            None
            if where.group_id is None
            else self._group_and_descendants(account_id, where.group_id, where.recurse)
        )
        if group_ids is not None and len(group_ids) == 1 and where.source is None:
            # One group's members come out of the membership key already in creation
            # order, so a page stops after its last row; going through the contacts instead
            # would gather every member of a large group before taking the page.
            pk: Column[int] = memberships.c.contact_pk
            statement = select(pk).where(
                memberships.c.account_id == account_id, memberships.c.group_id == group_ids[0]
            )
            member_of = None  # the statement itself is the membership
        else:
            member_of = group_ids
            pk = contacts.c.pk
            statement = select(pk).where(contacts.c.account_id == account_id)
        for kind, term in where.terms:
            statement = statement.where(
                pk.in_(
                    select(contact_terms.c.contact_pk).where(
                        contact_terms.c.account_id == account_id,
                        contact_terms.c.kind == kind,
                        contact_terms.c.term == term,
                    )
                )
            )
        if where.source is not None:
            statement = statement.where(contacts.c.source == where.source)
        if member_of is not None:
            statement = statement.where(
                contacts.c.pk.in_(
                    select(memberships.c.contact_pk).where(
                        memberships.c.account_id == account_id,
                        memberships.c.group_id.in_(member_of),
                    )
                )
            )
        return statement, pk

    def _group_and_descendants(self, account_id: str, group_id: str, recurse: bool) -> list[str]:
        if not recurse:
            return [group_id]
        path = self.conn.execute(
            select(contact_groups.c.path).where(
                contact_groups.c.account_id == account_id, contact_groups.c.id == group_id
            )
        ).scalar_one_or_none()
        if path is None:
            return [group_id]
        prefix = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        below = self.conn.execute(
            select(contact_groups.c.id).where(
                contact_groups.c.account_id == account_id,
                contact_groups.c.path.like(prefix, escape="\\"),
            )
        ).scalars()
        return [group_id, *below]

    def group_ids_of(self, account_id: str, pk: int) -> list[str]:
        return list(
            self.conn.execute(
                select(memberships.c.group_id).where(
                    memberships.c.account_id == account_id, memberships.c.contact_pk == pk
                )
            ).scalars()
        )

    # Writes --------------------------------------------------------------------------------

    def insert(self, account_id: str, new: NewContact, now: float) -> None:
        self.insert_many(account_id, [new], now)

    def insert_many(self, account_id: str, batch: Iterable[NewContact], now: float) -> None:
        batch = list(batch)
        insert_rows(
            self.conn,
            contacts,
            ("account_id", "pk", "id", "source", "doc", "created_at", "updated_at"),
            ((account_id, c.pk, c.id, c.source, c.doc, now, now) for c in batch),
        )
        self._insert_index(account_id, batch)

    def update(
        self,
        account_id: str,
        pk: int,
        doc: bytes,
        terms: frozenset[tuple[str, str]],
        group_ids: tuple[str, ...],
        now: float,
    ) -> None:
        self.conn.execute(
            _UPDATE_DOCS, {"b_account": account_id, "b_pk": pk, "b_doc": doc, "b_now": now}
        )
        self._delete_index(account_id, [pk])
        self._insert_index(
            account_id, [NewContact(pk=pk, id="", doc=doc, terms=terms, group_ids=group_ids)]
        )

    def update_many(self, account_id: str, batch: list[NewContact], now: float) -> None:
        """``update`` of many contacts (by ``pk``) in a few statements; ``id`` is unused."""
        if not batch:
            return
        self.conn.execute(
            _UPDATE_DOCS,
            [{"b_account": account_id, "b_pk": c.pk, "b_doc": c.doc, "b_now": now} for c in batch],
        )
        pks = [c.pk for c in batch]
        moved = [c.pk for c in batch if not c.same_groups]
        for start in range(0, len(pks), 500):
            self._delete_terms(account_id, pks[start : start + 500])
        for start in range(0, len(moved), 500):
            self._delete_memberships(account_id, moved[start : start + 500])
        self._insert_index(account_id, batch, with_memberships=False)
        self._insert_memberships(account_id, [c for c in batch if not c.same_groups])

    def set_document(self, account_id: str, pk: int, doc: bytes, now: float) -> None:
        """Replace only the rendered document (a group was renamed, a picture changed)."""
        self.conn.execute(
            update(contacts)
            .where(contacts.c.account_id == account_id, contacts.c.pk == pk)
            .values(doc=doc, updated_at=now)
        )

    def delete(self, account_id: str, contact_id: str) -> int:
        row = self.get(account_id, contact_id, for_update=True)
        self._delete_index(account_id, [row.pk])
        self.conn.execute(_DELETE, {"b_account": account_id, "b_pk": row.pk})
        return row.pk

    def rows_in_group(self, account_id: str, group_id: str) -> list[ContactRow]:
        rows = self.conn.execute(
            select(contacts.c.pk, contacts.c.id, contacts.c.doc)
            .join(
                memberships,
                and_(
                    memberships.c.account_id == contacts.c.account_id,
                    memberships.c.contact_pk == contacts.c.pk,
                ),
            )
            .where(contacts.c.account_id == account_id, memberships.c.group_id == group_id)
            .order_by(contacts.c.pk)
        )
        return [ContactRow(r.pk, r.id, r.doc) for r in rows]

    def _insert_index(
        self, account_id: str, batch: list[NewContact], *, with_memberships: bool = True
    ) -> None:
        # In key order: a batch's terms land all over the index, and inserted in order they
        # visit its pages in turn rather than at random (a first sync writes most of them).
        insert_rows(
            self.conn,
            contact_terms,
            ("account_id", "kind", "term", "contact_pk"),
            sorted((account_id, kind, term, c.pk) for c in batch for kind, term in c.terms),
        )
        if with_memberships:
            self._insert_memberships(account_id, batch)

    def _insert_memberships(self, account_id: str, batch: list[NewContact]) -> None:
        insert_rows(
            self.conn,
            memberships,
            ("account_id", "group_id", "contact_pk"),
            ((account_id, g, c.pk) for c in batch for g in dict.fromkeys(c.group_ids)),
        )

    def _delete_index(self, account_id: str, pks: list[int]) -> None:
        self._delete_terms(account_id, pks)
        self._delete_memberships(account_id, pks)

    def _delete_terms(self, account_id: str, pks: list[int]) -> None:
        self.conn.execute(_DELETE_TERMS, {"b_account": account_id, "b_pks": pks})

    def _delete_memberships(self, account_id: str, pks: list[int]) -> None:
        self.conn.execute(_DELETE_MEMBERSHIPS, {"b_account": account_id, "b_pks": pks})
