"""Contact pictures: served as stored; set and removed beyond v2."""

from __future__ import annotations

import dataclasses
import io
import time
from concurrent.futures import ThreadPoolExecutor

import filetype
import orjson
from PIL import Image

from rolodex.domain.account import Account
from rolodex.domain.contact import Picture
from rolodex.domain.errors import InvalidContact, InvalidPicture, NoSuchPicture, PictureTooLarge
from rolodex.domain.profiles import profile_for
from rolodex.domain.wire import contact_document, contact_from_document
from rolodex.service.contacts import refuse_read_only
from rolodex.service.records import CONTACT, record_change, refuse_if_disconnected
from rolodex.store import Store

MAX_PICTURE_BYTES = 5 * 1024 * 1024
ACCEPTED_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Far more than a contact picture needs, far less than what a small compressed file can
# claim to decode to (a decompression bomb).
MAX_PICTURE_PIXELS = 40_000_000
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


# A picture is decoded to be checked, and a small file may decode to whatever the pixel
# limit allows (40 megapixels of RGBA are 160 MB, from 150 KB of PNG). Decoded in every
# request's thread, each of those threads' malloc arenas kept what it once held: 32 such
# uploads at once left the process at 1.8 GB. These threads alone decode, so a process
# holds at most that many decoded pictures, ever.
DECODERS = 2
_decoders = ThreadPoolExecutor(max_workers=DECODERS, thread_name_prefix="picture-check")


def check_picture(data: bytes) -> str:
    """The image's content type, judged by decoding it, never by what the client claims
    (nor by its first bytes only: a JPEG header in front of anything else is not a JPEG)."""
    if len(data) > MAX_PICTURE_BYTES:
        raise PictureTooLarge(len(data), MAX_PICTURE_BYTES)
    if not data:
        raise InvalidPicture("the picture is empty")
    kind = filetype.guess(data)
    if kind is None or kind.mime not in ACCEPTED_TYPES:
        found = kind.mime if kind else "unrecognised data"
        raise InvalidPicture(f"a picture must be JPEG, PNG, GIF or WebP; got {found}")
    content_type = _decoders.submit(_decoded_type, data, kind.mime).result()
    if content_type != kind.mime:
        raise InvalidPicture(f"the {kind.mime} data could not be decoded")
    return content_type


def _decoded_type(data: bytes, mime: str) -> str:
    try:
        with Image.open(io.BytesIO(data), formats=list(_FORMATS)) as image:
            if image.width * image.height > MAX_PICTURE_PIXELS:
                raise InvalidPicture(
                    f"a picture may have at most {MAX_PICTURE_PIXELS} pixels; "
                    f"this one has {image.width}x{image.height}"
                )
            image.draft(image.mode, (1, 1))  # JPEG: decode at 1/8 scale, still every block
            image.load()
            return _FORMATS[str(image.format)]
    except InvalidPicture:
        raise
    except Image.DecompressionBombError:
        # Pillow's own check, before the size can be read: far past the limit.
        raise InvalidPicture(
            f"a picture may have at most {MAX_PICTURE_PIXELS} pixels; this one has far more"
        ) from None
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError... for broken data
        raise InvalidPicture(f"the {mime} data could not be decoded") from None


class PictureService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, account: Account, contact_id: str) -> Picture:
        with self.store.read() as tx:
            tx.contacts.get(account.id, contact_id)
            return tx.pictures.get(account.id, contact_id)

    def put(self, account: Account, contact_id: str, data: bytes) -> bytes:
        content_type = check_picture(data)
        picture = Picture.of(data, content_type)
        return self._write(account, contact_id, picture)

    def delete(self, account: Account, contact_id: str) -> bytes:
        refused = profile_for(account.provider).picture_delete_violations()
        if refused:
            # Refused here, before anything is queued: the provider could not carry it out
            # (Microsoft Graph cannot delete a contact photo). 404 first, as ever.
            with self.store.read() as tx:
                tx.contacts.get(account.id, contact_id)
            raise InvalidContact(refused)
        return self._write(account, contact_id, None)

    def _write(self, account: Account, contact_id: str, picture: Picture | None) -> bytes:
        now = time.time()
        with self.store.write(account.id) as tx:
            row = tx.contacts.get(account.id, contact_id, for_update=True)
            refuse_read_only(contact_from_document(orjson.loads(row.doc)).source)
            refuse_if_disconnected(tx, account)
            seq = tx.accounts.allocate(account.id)
            if picture is None:
                if not tx.pictures.delete(account.id, contact_id):
                    raise NoSuchPicture(contact_id)
            else:
                tx.pictures.put(account.id, contact_id, picture)
            contact = contact_from_document(orjson.loads(row.doc))
            contact = dataclasses.replace(contact, has_picture=picture is not None)
            doc = contact_document(contact, tx.groups.by_id(account.id, contact.group_ids))
            tx.contacts.set_document(account.id, row.pk, doc, now)
            record_change(
                tx,
                account,
                seq,
                CONTACT,
                contact_id,
                "modify",
                now,
                push="update",
                fields=("picture",),
            )
        return doc
