"""Response bodies from stored documents, without re-encoding them."""

from __future__ import annotations

from collections.abc import Sequence

_RELATIVE_PICTURE = b'"picture_url":"/contacts/'


def absolute(doc: bytes, base: bytes) -> bytes:
    """Stored documents carry picture_url as a path; clients get an absolute URL.

    A JSON string value cannot contain an unescaped quote, so the marker can only match the
    picture_url key itself.
    """
    if _RELATIVE_PICTURE not in doc:
        return doc
    return doc.replace(_RELATIVE_PICTURE, b'"picture_url":"' + base + b"/contacts/")


def array(docs: Sequence[bytes], base: bytes) -> bytes:
    return absolute(b"[" + b",".join(docs) + b"]", base)
