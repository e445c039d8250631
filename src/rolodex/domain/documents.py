"""Stored documents on their way out: ``picture_url`` is stored as a path (documents do
not know the address clients reach the server at) and made absolute for each response.

Finding the paths in a page of a hundred documents costs about as much as everything else
a cached page needs, so a page kept for many requests is split at them once (``Parts``)
and joined with the request's base URL (``join``): one copy, no search.
"""

from __future__ import annotations

# A JSON string value cannot contain an unescaped quote, so this can only match the
# picture_url key with a relative value.
RELATIVE_PICTURE = b'"picture_url":"/contacts/'

# A JSON text split at each RELATIVE_PICTURE; one part when it has none.
Parts = tuple[bytes, ...]


def split(text: bytes) -> Parts:
    return tuple(text.split(RELATIVE_PICTURE))


def join(parts: Parts, base: bytes) -> bytes:
    """The text with every relative picture_url made absolute under ``base``."""
    if len(parts) == 1:
        return parts[0]
    return (b'"picture_url":"' + base + b"/contacts/").join(parts)


def absolute(text: bytes, base: bytes) -> bytes:
    """As ``join(split(text), base)``, for a text served once."""
    if RELATIVE_PICTURE not in text:
        return text
    return text.replace(RELATIVE_PICTURE, b'"picture_url":"' + base + b"/contacts/")
