"""The statements of the hot reads (rolodex.store.hot), built once with SQLAlchemy Core from
the schema and compiled once per engine (``Statement``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.sql.elements import BindParameter, ClauseElement

from rolodex.store.schema import accounts, contacts, page_ends

ACCOUNT: BindParameter[str] = bindparam("account_id")

GENERATION = select(accounts.c.generation).where(accounts.c.id == ACCOUNT)
GET = select(contacts.c.pk, contacts.c.id, contacts.c.doc).where(
    contacts.c.account_id == ACCOUNT, contacts.c.id == bindparam("contact_id")
)
# After a remembered page end: a seek on the primary key.
PAGE_AFTER = (
    select(contacts.c.pk, contacts.c.id, contacts.c.doc)
    .where(contacts.c.account_id == ACCOUNT, contacts.c.pk > bindparam("after_pk"))
    .order_by(contacts.c.pk)
    .limit(bindparam("limit"))
)
# By offset: skip over the narrow key index, then join the documents (as ContactRepository).
PAGE_KEYS = (
    select(contacts.c.pk)
    .where(contacts.c.account_id == ACCOUNT)
    .order_by(contacts.c.pk)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
PAGE_OFFSET = (
    select(contacts.c.pk, contacts.c.id, contacts.c.doc)
    .where(contacts.c.account_id == ACCOUNT, contacts.c.pk.in_(PAGE_KEYS.scalar_subquery()))
    .order_by(contacts.c.pk)
)
# After a key, skipping some (rolodex.service.positions): the narrow index again, then the
# documents.
KEYS_AFTER_SKIP = (
    select(contacts.c.pk)
    .where(contacts.c.account_id == ACCOUNT, contacts.c.pk > bindparam("after_pk"))
    .order_by(contacts.c.pk)
    .limit(bindparam("limit"))
    .offset(bindparam("skip"))
)
DOCS_AFTER_SKIP = (
    select(contacts.c.pk, contacts.c.doc)
    .where(
        contacts.c.account_id == ACCOUNT,
        contacts.c.pk.in_(KEYS_AFTER_SKIP.scalar_subquery()),
    )
    .order_by(contacts.c.pk)
)
# The same pages with the account's generation on every row: one statement is one snapshot,
# so a page read so is known to be of that generation without a transaction around it.
GENERATION_NOW = GENERATION.scalar_subquery()
IDS_AFTER = PAGE_AFTER.with_only_columns(contacts.c.pk, contacts.c.id)
IDS_OFFSET = PAGE_OFFSET.with_only_columns(contacts.c.pk, contacts.c.id)
DOCS_AFTER = PAGE_AFTER.with_only_columns(contacts.c.pk, contacts.c.doc)
DOCS_OFFSET = PAGE_OFFSET.with_only_columns(contacts.c.pk, contacts.c.doc)


def _end_decided(column: Any) -> Any:
    return (
        select(column)
        .where(
            page_ends.c.account_id == ACCOUNT,
            page_ends.c.scope == bindparam("end_scope"),
            page_ends.c.end_offset == bindparam("end_offset"),
            page_ends.c.generation == GENERATION_NOW,
        )
        .scalar_subquery()
    )


# With them, the decision already made (rolodex.store.paging) for the offset where a full
# page ends, in that generation (created_at is never null: null there means none yet):
# a cold page of an account another process or an earlier run has paged costs this one
# statement, not a decision written and read back as well (three round trips).
END_DECIDED = tuple(
    _end_decided(c) for c in (page_ends.c.created_at, page_ends.c.after_pk, page_ends.c.expires_at)
)
DOCS_AFTER_SKIP_AT = DOCS_AFTER_SKIP.add_columns(GENERATION_NOW, *END_DECIDED)
DOCS_AFTER_AT = DOCS_AFTER.add_columns(GENERATION_NOW, *END_DECIDED)
DOCS_OFFSET_AT = DOCS_OFFSET.add_columns(GENERATION_NOW, *END_DECIDED)

# Page ends (rolodex.store.paging), read and decided beside the pages they serve.
PAGE_END = select(
    page_ends.c.generation, page_ends.c.after_pk, page_ends.c.expires_at, page_ends.c.created_at
).where(
    page_ends.c.account_id == ACCOUNT,
    page_ends.c.scope == bindparam("scope"),
    page_ends.c.end_offset == bindparam("end_offset"),
)
PAGE_END_LATEST = (
    PAGE_END.where(page_ends.c.generation <= bindparam("generation"))
    .order_by(page_ends.c.generation.desc())
    .limit(1)
)
PAGE_END_VALUES = {
    "account_id": ACCOUNT,
    "scope": bindparam("scope"),
    "end_offset": bindparam("end_offset"),
    "generation": bindparam("generation"),
    "after_pk": bindparam("after_pk"),
    "expires_at": bindparam("expires_at"),
    "created_at": bindparam("created_at"),
}


class Statement:
    """A Core statement compiled once for a dialect, with its parameter order."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        compiled = statement.compile(
            dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        self.sql = str(compiled)
        self.positional = bool(getattr(compiled, "positional", False))
        self.order: Sequence[str] = list(getattr(compiled, "positiontup", None) or ())
        # Parameters the dialect adds itself (SQLite's OFFSET 0 after a LIMIT).
        self.defaults: dict[str, Any] = {k: v for k, v in compiled.params.items() if v is not None}

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self.defaults, **values}
        if self.positional:
            return tuple(merged[name] for name in self.order)
        return merged
