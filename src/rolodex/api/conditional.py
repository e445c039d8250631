"""Conditional requests (RFC 9110 section 13): what ``If-None-Match`` asks of an entity tag."""

from __future__ import annotations


def none_match(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (quoted, as sent in ``ETag``): weak
    comparison, as the RFC asks for this header, so ``W/"x"`` matches ``"x"``; ``*``
    matches any current representation."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))
