"""Contact pictures: blobs with their own content type and etag, never inlined in lists."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from rolodex.domain.contact import Picture
from rolodex.domain.errors import NoSuchPicture
from rolodex.store.schema import pictures


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

    def delete(self, account_id: str, contact_id: str) -> bool:
        result = self.conn.execute(
            delete(pictures).where(
                pictures.c.account_id == account_id, pictures.c.contact_id == contact_id
            )
        )
        return result.rowcount > 0
