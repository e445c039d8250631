"""Hrefs in one canonical form, and vCard bytes as they came off the wire."""

from __future__ import annotations

from urllib.parse import quote, unquote

import httpx

# RFC 3986 pchar minus "%": what a path may carry unescaped.
_PATH_SAFE = "/:@!$&'()*+,;="


def canonical_href(base: httpx.URL | str, href: str) -> str:
    """``href`` resolved against ``base``, without query or fragment, its path re-escaped
    one way (servers differ on escaping "@" and friends)."""
    url = httpx.URL(str(base)).join(href.strip())
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
