"""Hrefs in one canonical form, and vCard bytes as they came off the wire."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote

import httpx

from rolodex.connectors.base import PermanentError

# RFC 3986 pchar minus "%": what a path may carry unescaped.
_PATH_SAFE = "/:@!$&'()*+,;="
# An absolute path that resolving and re-escaping leave as it is: no escapes, no dot
# segments (checked apart), no query or fragment, nothing quote() would escape.
_PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9\-._~/:@!$&'()*+,;=]*\Z")


@lru_cache(maxsize=64)
def _origin(base: str) -> str:
    url = httpx.URL(base)
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def canonical_href(base: httpx.URL | str, href: str) -> str:
    """``href`` resolved against ``base``, without query or fragment, its path re-escaped
    one way (servers differ on escaping "@" and friends)."""
    href = href.strip()
    if _PLAIN_PATH.match(href) and "/." not in href:
        # The common case (every card of a REPORT): joining is only prefixing the origin.
        return _origin(str(base)) + href
    try:
        url = httpx.URL(str(base)).join(href)
    except httpx.InvalidURL as error:
        # Not an HTTPError: unclassified, it was an unexpected failure (a 500 to whoever
        # typed "http://0177.0.0.1/", or a sync stopped by a server's odd href).
        raise PermanentError(f"bad CardDAV URL {href!r}: {error}") from None
    path = quote(unquote(url.path or "/"), safe=_PATH_SAFE)
    return f"{url.scheme}://{url.netloc.decode('ascii')}{path}"


def crlf(text: str) -> bytes:
    # XML parsing turns CRLF into LF, so cards read through REPORT lose the line endings
    # vCard requires; restore them so the bytes match what a GET returns.
    lines = text.strip().replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def wire_href(base: str, href: str) -> str:
    """The form of ``href`` to put in a request body: a path on the same origin (some servers
    accept nothing else), the full URL otherwise."""
    b, h = httpx.URL(base), httpx.URL(href)
    if (b.scheme, b.netloc) == (h.scheme, h.netloc):
        return href[len(f"{h.scheme}://{h.netloc.decode('ascii')}") :]
    return href
