"""Contact pictures: blobs with their own content type and etag, never inlined in lists."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, insert, select

from rolodex.domain.contact import Picture
from rolodex.domain.errors import NoSuchPicture
from rolodex.store.schema import pictures

# Part of every contact's delete: built once.
_DELETE = delete(pictures).where(
    pictures.c.account_id == bindparam("b_account"),
    pictures.c.contact_id == bindparam("b_contact"),
)


class PictureRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, account_id: str, contact_id: str) -> Picture:
        row = self.conn.execute(
            select(pictures.c.content_type, pictures.c.etag, pictures.c.data).where(
                pictures.c.account_id == account_id, pictures.c.contact_id == contact_id
            )
        ).first()
        if row is None:
            raise NoSuchPicture(contact_id)
        return Picture(row.content_type, row.etag, row.data)

    def put(self, account_id: str, contact_id: str, picture: Picture) -> None:
        self.delete(account_id, contact_id)
        self.conn.execute(
            insert(pictures).values(
                account_id=account_id,
                contact_id=contact_id,
                content_type=picture.content_type,
                etag=picture.etag,
                data=picture.data,
            )
        )

    def replace(self, account_id: str, contact_id: str, picture: Picture | None) -> bool:
        """Make the held picture this one (None: none); False when it already was. Syncs
        read the same photo again and again: comparing etags spares rewriting the blob and
        a change for nothing."""
        if picture is None:
            return self.delete(account_id, contact_id)
        held = self.conn.execute(
            select(pictures.c.etag).where(
                pictures.c.account_id == account_id, pictures.c.contact_id == contact_id
            )
        ).scalar()
        if held == picture.etag:
            return False
        self.put(account_id, contact_id, picture)
        return True

    def delete(self, account_id: str, contact_id: str) -> bool:
        result = self.conn.execute(_DELETE, {"b_account": account_id, "b_contact": contact_id})
        return result.rowcount > 0
