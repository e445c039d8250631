"""Entity tags of contacts, and the ``If-Match`` precondition (beyond v2).

A contact's tag names its stored document (the canonical JSON every read serves, before
picture links are made absolute per request): it changes exactly when what
``GET /contacts/{id}`` shows changes, whichever writer changed it (an API write, a group
renamed, a sync pulling a remote edit), and is the same from every process. No column
holds it: a hash of 1 KB costs about a microsecond, and writes compare it under the
contact's lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rolodex.domain.errors import RolodexError


@dataclass
class ContactChanged(RolodexError):
    """``If-Match`` named a version of the contact that is no longer its current one."""

    contact_id: str


def contact_etag(stored_doc: bytes) -> bytes:
    """The strong entity tag, quoted as sent in ``ETag``."""
    return b'"' + hashlib.blake2b(stored_doc, digest_size=12).hexdigest().encode() + b'"'


def if_match(header: str | None, etag: bytes) -> bool:
    """Whether an ``If-Match`` header lets a write of the current version ``etag`` go on
    (RFC 9110, 13.1.1): ``*`` or a list naming it; strong comparison, so a weak tag
    (``W/"..."``) never matches. No header: no precondition."""
    if header is None:
        return True
    header = header.strip()
    if header == "*":
        return True
    wanted = etag.decode("ascii")
    return any(tag.strip() == wanted for tag in header.split(","))
