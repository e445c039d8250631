"""WebDAV / CardDAV request bodies and multistatus parsing.

Pure functions over bytes: no HTTP here, so every quirk of a server's XML can be unit-tested.
The stdlib parser is safe enough for server responses: ElementTree never resolves external
entities and the bundled expat (>= 2.4) refuses entity-expansion bombs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast
from xml.sax.saxutils import escape

DAV = "DAV:"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"

_NS = f'xmlns:d="{DAV}" xmlns:card="{CARDDAV}" xmlns:cs="{CS}"'
_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'


def q(ns: str, name: str) -> str:
    """Clark notation, the form ElementTree uses for qualified names."""
    return f"{{{ns}}}{name}"


class XMLError(ValueError):
    """The body is not the multistatus (or error) document the request calls for."""


# --- Request bodies ----------------------------------------------------------------------------

COLLECTION_PROPS = (
    "<d:resourcetype/><d:displayname/><d:current-user-principal/>"
    "<card:addressbook-home-set/><d:sync-token/><cs:getctag/><d:supported-report-set/>"
)


def propfind(props: str) -> bytes:
    """``props`` is a fragment of empty elements using the prefixes d, card and cs."""
    return f"{_HEAD}<d:propfind {_NS}><d:prop>{props}</d:prop></d:propfind>".encode()


def sync_collection(token: str | None, *, with_data: bool = False) -> bytes:
    # DAV:limit is never sent: Xandikos (and older Nextcloud, sabre) truncate under a limit
    # while returning the final token, which silently loses changes.
    tok = escape(token) if token else ""
    data = "<card:address-data/>" if with_data else ""
    return (
        f"{_HEAD}<d:sync-collection {_NS}><d:sync-token>{tok}</d:sync-token>"
        f"<d:sync-level>1</d:sync-level><d:prop><d:getetag/>{data}</d:prop>"
        "</d:sync-collection>"
    ).encode()


def addressbook_multiget(hrefs: list[str]) -> bytes:
    body = "".join(f"<d:href>{escape(h)}</d:href>" for h in hrefs)
    return (
        f"{_HEAD}<card:addressbook-multiget {_NS}>"
        f"<d:prop><d:getetag/><card:address-data/></d:prop>{body}</card:addressbook-multiget>"
    ).encode()


def addressbook_query() -> bytes:
    """Every card of the book with its etag and data: one round trip for a whole book (an
    empty filter matches every card, RFC 6352 §10.5)."""
    return (
        f"{_HEAD}<card:addressbook-query {_NS}>"
        f"<d:prop><d:getetag/><card:address-data/></d:prop><card:filter/>"
        f"</card:addressbook-query>"
    ).encode()


def mkcol_addressbook(displayname: str | None) -> bytes:
    name = f"<d:displayname>{escape(displayname)}</d:displayname>" if displayname else ""
    return (
        f"{_HEAD}<d:mkcol {_NS}><d:set><d:prop>"
        f"<d:resourcetype><d:collection/><card:addressbook/></d:resourcetype>{name}"
        "</d:prop></d:set></d:mkcol>"
    ).encode()


# --- Multistatus parsing -----------------------------------------------------------------------


@dataclass
class Response:
    """One ``DAV:response``: its href, its own status (removed members, 507 truncation...),
    and the properties found with a 2xx propstat, keyed by Clark name."""

    href: str
    status: int | None = None
    props: dict[str, ET.Element] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        el = self.props.get(name)
        if el is None:
            return None
        return "".join(el.itertext()).strip()

    def hrefs(self, name: str) -> list[str]:
        """The ``DAV:href`` children of a property such as current-user-principal."""
        el = self.props.get(name)
        if el is None:
            return []
        return [(h.text or "").strip() for h in el.iter(q(DAV, "href")) if h.text]

    def resourcetypes(self) -> set[str]:
        el = self.props.get(q(DAV, "resourcetype"))
        return {child.tag for child in el} if el is not None else set()

    def supported_reports(self) -> set[str]:
        el = self.props.get(q(DAV, "supported-report-set"))
        if el is None:
            return set()
        return {r.tag for report in el.iter(q(DAV, "report")) for r in report}


@dataclass
class Multistatus:
    responses: list[Response]
    sync_token: str | None


def parse_status(line: str | None) -> int | None:
    """``HTTP/1.1 404 Not Found`` -> 404."""
    if not line:
        return None
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def _parse(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise XMLError(f"malformed XML: {exc}") from exc


def parse_multistatus(body: bytes) -> Multistatus:
    root = _parse(body)
    if root.tag != q(DAV, "multistatus"):
        raise XMLError(f"expected DAV:multistatus, got {root.tag}")
    responses = [r for r in map(_response, root.findall(q(DAV, "response"))) if r is not None]
    token = root.findtext(q(DAV, "sync-token"))
    return Multistatus(responses, token.strip() if token is not None else None)


def iter_multistatus(chunks: Iterable[bytes], end: Multistatus | None = None) -> Iterator[Response]:
    """The responses of a multistatus body as they arrive, each dropped once yielded, so a
    REPORT over a whole address book is read in memory flat in the number of cards.

    ``end``, when given, receives the body's sync-token once the body is read."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    response_tag = q(DAV, "response")

    def drain() -> Iterator[Response]:
        nonlocal root
        # With only start/end events requested, every event is (name, element).
        events = cast(Iterator[tuple[str, Any]], parser.read_events())
        for event, element in events:
            if not isinstance(element, ET.Element):
                continue
            if event == "start" and root is None:
                root = element
                if root.tag != q(DAV, "multistatus"):
                    raise XMLError(f"expected DAV:multistatus, got {root.tag}")
            elif event == "end" and element.tag == response_tag:
                item = _response(element)
                if root is not None:
                    root.remove(element)
                if item is not None:
                    yield item

    try:
        for chunk in chunks:
            parser.feed(chunk)
            yield from drain()
        parser.close()
        yield from drain()
    except ET.ParseError as exc:
        raise XMLError(f"malformed XML: {exc}") from exc
    if root is None:
        raise XMLError("empty body")
    if end is not None:
        token = root.findtext(q(DAV, "sync-token"))
        end.sync_token = token.strip() if token is not None else None


def slices(body: bytes, size: int = 1 << 16) -> Iterator[bytes]:
    """A body read whole, fed to ``iter_multistatus`` in pieces (fed at once, the parser
    would build the whole tree before any of it could be dropped)."""
    view = memoryview(body)
    for start in range(0, len(body), size):
        yield bytes(view[start : start + size])


def _response(resp: ET.Element) -> Response | None:
    href_el = resp.find(q(DAV, "href"))
    if href_el is None or not (href_el.text or "").strip():
        return None
    item = Response(href=(href_el.text or "").strip())
    item.status = parse_status(resp.findtext(q(DAV, "status")))
    for propstat in resp.findall(q(DAV, "propstat")):
        code = parse_status(propstat.findtext(q(DAV, "status")))
        prop = propstat.find(q(DAV, "prop"))
        # Properties under a 404/403 propstat are the ones the server does not have;
        # treating them as present would make every server look fully featured.
        if prop is None or code is None or not 200 <= code < 300:
            continue
        for child in prop:
            item.props[child.tag] = child
    return item


def error_conditions(body: bytes) -> set[str]:
    """Precondition names of a ``DAV:error`` body (e.g. valid-sync-token); empty when the
    body is anything else, since error bodies are optional and often HTML."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return set()
    if root.tag != q(DAV, "error"):
        return set()
    return {child.tag for child in root}
