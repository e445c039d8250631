"""Stored documents on their way out: ``picture_url`` is stored as a path (documents do
not know the address clients reach the server at) and made absolute for each response.
Cached pages are kept as sent, per base URL (rolodex.service.contacts), so this runs once
per page read rather than per request.
"""

from __future__ import annotations

# A JSON string value cannot contain an unescaped quote, so this can only match the
# picture_url key with a relative value.
RELATIVE_PICTURE = b'"picture_url":"/contacts/'


def absolute(text: bytes, base: bytes) -> bytes:
    """The text with every relative picture_url made absolute under ``base``."""
    if RELATIVE_PICTURE not in text:
        return text
    return text.replace(RELATIVE_PICTURE, b'"picture_url":"' + base + b"/contacts/")
