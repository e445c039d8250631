"""A CardDAV protocol client (RFC 6352, RFC 6578, RFC 6764) over httpx.

It moves raw vCard bytes and knows nothing of the contact model. Every href it returns or
accepts is an absolute URL in one canonical form, so hrefs from different responses (sync,
PROPFIND, multiget) compare equal and stay valid when the address books live on another host
than the one configured (iCloud's home set does).

Failures are raised as the classified errors of ``rolodex.connectors.base`` (see
``errors.classify``). Idempotent reads are retried a few times here; writes never are, because
only the sync engine knows whether repeating a write is safe.
"""

from __future__ import annotations

import dataclasses
import functools
import ssl
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self

import httpx
import tenacity

from rolodex.connectors.base import ConnectorError, PermanentError, RemoteNotFound, TransientError
from rolodex.connectors.carddav import xml
from rolodex.connectors.carddav.errors import Phase, classify
from rolodex.connectors.carddav.hrefs import canonical_href, crlf, wire_href
from rolodex.connectors.carddav.parsing import CardResource
from rolodex.connectors.carddav.xml import CARDDAV, CS, DAV, q
from rolodex.connectors.outbound import guarded_transport

_READS = frozenset({"GET", "PROPFIND", "REPORT"})
# Hrefs per addressbook-multiget: few round trips, and a request body of a few hundred KB.
MULTIGET_BATCH = 5000
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_LIST_PROPS = (
    "<d:resourcetype/><d:displayname/><d:sync-token/><cs:getctag/><d:supported-report-set/>"
)
# Discovery without the change markers: a server such as Radicale reads every card of a
# book to compute its sync-token and ctag, which a sync asks for again in its own REPORT.
_STATE_PROPS = ("<d:sync-token/>", "<cs:getctag/>")


def _light(props: str) -> str:
    for prop in _STATE_PROPS:
        props = props.replace(prop, "")
    return props


# A server that keeps truncating without moving its token would loop forever otherwise.
_MAX_SYNC_ROUNDS = 1000


@dataclasses.dataclass(frozen=True)
class AddressBook:
    url: str
    displayname: str | None
    supports_sync: bool  # sync-collection is in supported-report-set
    sync_token: str | None
    ctag: str | None


@dataclasses.dataclass(frozen=True)
class SyncResult:
    changed: dict[str, str]  # href -> etag (the etag may be "" if the server omitted it)
    removed: tuple[str, ...]
    token: str
    # href -> card, for the changed members whose body came along (``with_data``)
    data: dict[str, bytes] = dataclasses.field(default_factory=dict)


def _checked(items: Iterator[xml.Response], what: str, status: int) -> Iterator[xml.Response]:
    try:
        yield from items
    except xml.XMLError as exc:
        raise PermanentError(f"{what}: {exc}", status) from exc


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client in the process: loading the CA bundle costs about
    50 ms, more than a whole no-change sync adds to its REPORT."""
    return httpx.create_ssl_context()


class CardDAVClient:
    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        read_retries: int = 2,
        retry_wait: float = 0.5,
        max_retry_after: float = 10.0,
        max_redirects: int = 5,
    ) -> None:
        self.url = canonical_href(url, url)
        self._read_retries = read_retries
        self._retry_wait = retry_wait
        self._max_retry_after = max_retry_after
        self._max_redirects = max_redirects
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._http = httpx.Client(
            auth=auth,
            # Public addresses only, unless the operator allows more (connectors.outbound).
            transport=transport or guarded_transport(_tls()),
            verify=_tls(),
            timeout=timeout,
            follow_redirects=False,  # httpx turns a redirected PROPFIND into a GET
            headers={"User-Agent": "rolodex-carddav/0.1"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- Transport ------------------------------------------------------------------------------

    def _send_once(
        self, method: str, url: str, phase: Phase, content: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        target = httpx.URL(url)
        for _ in range(self._max_redirects + 1):
            try:
                resp = self._http.request(method, target, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise classify(exc, href=url, phase=phase) from exc
            except (httpx.InvalidURL, UnicodeError) as exc:
                # A host httpx cannot encode (an IDNA error, "xn--a-"): no HTTPError, and
                # unclassified it was an unexpected failure (a 500 to the API's caller).
                raise PermanentError(f"bad CardDAV URL {url}: {exc}") from None
            location: str | None = resp.headers.get("Location")
            if resp.status_code not in _REDIRECTS or not location:
                return resp
            nxt = target.join(location)
            if target.scheme == "https" and nxt.scheme != "https":
                raise PermanentError(f"refusing redirect from HTTPS to {nxt}", resp.status_code)
            if resp.status_code == 303:
                method, content = "GET", None
            target = nxt
        raise PermanentError(f"too many redirects from {url}")

    def _retry_wait_for(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = self._retry_wait * 2.0 ** (state.attempt_number - 1)
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return max(exc.retry_after, backoff)
        return backoff

    def _retryable(self, exc: BaseException) -> bool:
        # A long Retry-After is the sync engine's business: it can schedule instead of sleeping.
        return isinstance(exc, TransientError) and (
            exc.retry_after is None or exc.retry_after <= self._max_retry_after
        )

    def _request(
        self,
        method: str,
        url: str,
        *,
        phase: Phase,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: Iterable[int] = (200, 207),
    ) -> httpx.Response:
        accepted = frozenset(ok)
        hdrs = dict(headers or {})

        def once() -> httpx.Response:
            resp = self._send_once(method, url, phase, content, hdrs)
            if resp.status_code not in accepted:
                raise classify(resp, href=url, phase=phase)
            return resp

        if method not in _READS or self._read_retries <= 0:
            return once()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._read_retries + 1),
            wait=self._retry_wait_for,
            retry=tenacity.retry_if_exception(self._retryable),
            reraise=True,
        )
        return retrying(once)

    def _dav(
        self, method: str, url: str, body: bytes, *, depth: str, phase: Phase
    ) -> tuple[xml.Multistatus, httpx.URL]:
        """A PROPFIND/REPORT; returns the multistatus and the URL that answered (after
        redirects), against which the response's hrefs resolve."""
        resp = self._request(
            method,
            url,
            phase=phase,
            content=body,
            headers={"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
            ok=(207,),
        )
        try:
            return xml.parse_multistatus(resp.content), resp.request.url
        except xml.XMLError as exc:
            raise PermanentError(f"{method} {url}: {exc}", resp.status_code) from exc

    # --- Discovery ------------------------------------------------------------------------------

    def discover(self, *, light: bool = False) -> list[AddressBook]:
        """Address books reachable from the configured URL, which may be a server root, a
        principal, a home set or an address book itself.

        ``light`` leaves out each book's sync-token and ctag (``None`` then): cheaper on
        servers that compute them from every card, for callers that do not need them."""
        start = httpx.URL(self.url)
        well_known = canonical_href(start, "/.well-known/carddav")
        at_root = start.path in ("", "/")
        candidates = [well_known, self.url] if at_root else [self.url, well_known]
        for candidate in candidates:
            try:
                books = self._discover_from(candidate, light)
            except (RemoteNotFound, PermanentError):
                continue  # not a DAV resource here; try the other entry point
            if books is not None:
                return books
        raise PermanentError(f"no CardDAV address book or principal found at {self.url}")

    def _discover_from(self, url: str, light: bool = False) -> list[AddressBook] | None:
        props = _light(xml.COLLECTION_PROPS) if light else xml.COLLECTION_PROPS
        ms, base = self._dav("PROPFIND", url, xml.propfind(props), depth="0", phase=Phase.DISCOVERY)
        if not ms.responses:
            return None
        here = ms.responses[0]
        here_url = canonical_href(base, here.href)
        if q(CARDDAV, "addressbook") in here.resourcetypes():
            return [self._book(here_url, here)]
        homes = [canonical_href(base, h) for h in here.hrefs(q(CARDDAV, "addressbook-home-set"))]
        principals = here.hrefs(q(DAV, "current-user-principal"))
        if not homes and principals:
            principal = canonical_href(base, principals[0])
            if principal != here_url:
                pms, pbase = self._dav(
                    "PROPFIND", principal, xml.propfind(props), depth="0", phase=Phase.DISCOVERY
                )
                for resp in pms.responses[:1]:
                    found = resp.hrefs(q(CARDDAV, "addressbook-home-set"))
                    homes = [canonical_href(pbase, h) for h in found]
        if homes:
            books: list[AddressBook] = []
            for home in dict.fromkeys(homes):
                books.extend(self._list_books(home, light))
            return books
        # No principal information: the URL may still be a plain container of address books.
        books = self._list_books(here_url, light)
        return books or None

    def _list_books(self, home: str, light: bool = False) -> list[AddressBook]:
        body = xml.propfind(_light(_LIST_PROPS) if light else _LIST_PROPS)
        ms, base = self._dav("PROPFIND", home, body, depth="1", phase=Phase.DISCOVERY)
        return [
            self._book(canonical_href(base, r.href), r)
            for r in ms.responses
            if q(CARDDAV, "addressbook") in r.resourcetypes()
        ]

    @staticmethod
    def _book(url: str, resp: xml.Response) -> AddressBook:
        return AddressBook(
            url=url,
            displayname=resp.text(q(DAV, "displayname")) or None,
            supports_sync=q(DAV, "sync-collection") in resp.supported_reports(),
            sync_token=resp.text(q(DAV, "sync-token")) or None,
            ctag=resp.text(q(CS, "getctag")) or resp.text(q(DAV, "getctag")) or None,
        )

    def addressbook(self, url: str) -> AddressBook:
        """The properties of one address book (cheap "did anything change?" via its ctag)."""
        href = canonical_href(self.url, url)
        ms, base = self._dav(
            "PROPFIND", href, xml.propfind(_LIST_PROPS), depth="0", phase=Phase.READ
        )
        for resp in ms.responses:
            if q(CARDDAV, "addressbook") in resp.resourcetypes():
                return self._book(canonical_href(base, resp.href), resp)
        raise RemoteNotFound(href)

    def sync_token(self, url: str) -> str | None:
        """The book's current sync-token alone (RFC 6578 §4): on servers that derive it from
        every card it costs a fraction of a sync-collection listing the whole book."""
        href = canonical_href(self.url, url)
        body = xml.propfind("<d:sync-token/>")
        ms, _ = self._dav("PROPFIND", href, body, depth="0", phase=Phase.READ)
        for resp in ms.responses[:1]:
            return resp.text(q(DAV, "sync-token")) or None
        return None

    # --- Listing and reading ------------------------------------------------------------------

    def sync_collection(
        self, url: str, token: str | None, *, with_data: bool = False
    ) -> SyncResult:
        """RFC 6578 changes since ``token`` (None: every member). Raises ``CursorExpired``.

        ``with_data`` asks for the cards' bodies in the same REPORT, saving the multiget
        round trip (and, on Radicale, a second read of the whole book)."""
        book = canonical_href(self.url, url)
        changed: dict[str, str] = {}
        bodies: dict[str, bytes] = {}
        removed: dict[str, None] = {}
        current = token or None
        for _ in range(_MAX_SYNC_ROUNDS):
            phase = Phase.SYNC if current else Phase.READ
            body = xml.sync_collection(current, with_data=with_data)
            # Parsed as a stream: a first sync lists every member, and a whole tree of
            # 100,000 of them would cost more memory than everything else of the sync.
            answer = self._request(
                "REPORT",
                book,
                phase=phase,
                content=body,
                headers={"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
                ok=(207,),
            )
            base = answer.request.url
            ms = xml.Multistatus([], None)
            responses = xml.iter_multistatus(xml.slices(answer.content), ms)
            truncated = False
            for resp in _checked(responses, f"REPORT {book}", answer.status_code):
                href = canonical_href(base, resp.href)
                if resp.status == 507:
                    truncated = True
                    continue
                if href == book:
                    continue
                if resp.status == 404 and not resp.props:
                    changed.pop(href, None)
                    bodies.pop(href, None)
                    removed[href] = None
                    continue
                removed.pop(href, None)
                changed[href] = resp.text(q(DAV, "getetag")) or ""
                card = resp.props.get(q(CARDDAV, "address-data"))
                if card is not None:
                    bodies[href] = crlf("".join(card.itertext()))
                else:
                    bodies.pop(href, None)
            if not ms.sync_token:
                raise PermanentError(f"sync-collection on {book} returned no sync-token")
            if not truncated:
                return SyncResult(changed, tuple(removed), ms.sync_token, bodies)
            if ms.sync_token == current:
                raise PermanentError(f"sync-collection on {book} truncated without progress")
            current = ms.sync_token
        raise PermanentError(f"sync-collection on {book} did not finish")

    def list_etags(self, url: str) -> dict[str, str]:
        """href -> etag of every member, for servers without sync-collection."""
        book = canonical_href(self.url, url)
        body = xml.propfind("<d:resourcetype/><d:getetag/>")
        ms, base = self._dav("PROPFIND", book, body, depth="1", phase=Phase.READ)
        out: dict[str, str] = {}
        for resp in ms.responses:
            href = canonical_href(base, resp.href)
            if href == book or q(DAV, "collection") in resp.resourcetypes():
                continue
            out[href] = resp.text(q(DAV, "getetag")) or ""
        return out

    def multiget(
        self, url: str, hrefs: Iterable[str], *, batch_size: int = MULTIGET_BATCH
    ) -> Iterator[CardResource]:
        """Current etag and body of each href; members gone meanwhile are skipped.

        Batches are large and their answers parsed as they stream in: servers such as
        Radicale read the whole book for every request, so round trips are what costs.
        """
        book = canonical_href(self.url, url)
        wanted = list(dict.fromkeys(canonical_href(book, h) for h in hrefs))
        for start in range(0, len(wanted), batch_size):
            batch = wanted[start : start + batch_size]
            body = xml.addressbook_multiget([wire_href(book, h) for h in batch])
            yield from self._cards("REPORT", book, body, depth="1")

    def all_cards(self, url: str) -> Iterator[CardResource]:
        """Every card of the book in one addressbook-query REPORT, streamed."""
        book = canonical_href(self.url, url)
        yield from self._cards("REPORT", book, xml.addressbook_query(), depth="1")

    def _cards(self, method: str, url: str, body: bytes, *, depth: str) -> Iterator[CardResource]:
        headers = {"Depth": depth, "Content-Type": "application/xml; charset=utf-8"}
        try:
            with self._http.stream(method, url, content=body, headers=headers) as resp:
                if resp.status_code != 207:
                    resp.read()
                    raise classify(resp, href=url, phase=Phase.READ)
                base = resp.request.url
                for item in xml.iter_multistatus(resp.iter_bytes()):
                    data = item.props.get(q(CARDDAV, "address-data"))
                    if item.status == 404 or data is None:
                        continue
                    yield CardResource(
                        href=canonical_href(base, item.href),
                        etag=item.text(q(DAV, "getetag")) or "",
                        data=crlf("".join(data.itertext())),
                    )
        except httpx.HTTPError as exc:
            raise classify(exc, href=url, phase=Phase.READ) from exc
        except xml.XMLError as exc:
            raise PermanentError(f"{method} {url}: {exc}") from exc

    def get(self, href: str) -> CardResource:
        url = canonical_href(self.url, href)
        resp = self._request("GET", url, phase=Phase.READ, ok=(200,))
        etag: str = resp.headers.get("ETag") or self._etag_of(url)
        return CardResource(url, etag, resp.content)

    def _etag_of(self, href: str) -> str:
        body = xml.propfind("<d:getetag/>")
        ms, _ = self._dav("PROPFIND", href, body, depth="0", phase=Phase.READ)
        for resp in ms.responses:
            etag = resp.text(q(DAV, "getetag"))
            if etag:
                return etag
        return ""

    # --- Writing -------------------------------------------------------------------------------

    def put(
        self,
        href: str,
        data: bytes,
        *,
        etag: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Create (``if_none_match=True``) or update (``etag``) a card; returns its new etag.

        Raises ``PreconditionFailed`` if the href exists (create) or changed (update).
        """
        if (etag is None) == (not if_none_match):
            raise ValueError("put needs exactly one of etag= (update) or if_none_match=True")
        url = canonical_href(self.url, href)
        headers = {"Content-Type": "text/vcard; charset=utf-8"}
        if if_none_match:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = etag or ""  # exactly as received: quotes are part of it
        resp = self._request(
            "PUT", url, phase=Phase.WRITE, content=data, headers=headers, ok=(200, 201, 204)
        )
        new: str | None = resp.headers.get("ETag")
        # Servers that rewrite the card may withhold the ETag (RFC 6352 §6.3.2.3) or give a
        # weak one, which If-Match can never match: ask for the stored one instead.
        if new and not new.startswith("W/"):
            return new
        try:
            return self._etag_of(url) or self.get(url).etag
        except ConnectorError as exc:
            # The write happened; failing it now would make the engine repeat a done PUT.
            raise TransientError(f"PUT {url} succeeded but its etag is unknown: {exc}") from exc

    def delete(self, href: str, etag: str) -> None:
        """Delete if unchanged; an href already gone counts as deleted."""
        url = canonical_href(self.url, href)
        self._request(
            "DELETE", url, phase=Phase.WRITE, headers={"If-Match": etag}, ok=(200, 204, 404)
        )

    def mkcol_addressbook(self, url: str, displayname: str | None = None) -> str:
        """Create an address book with extended MKCOL (RFC 5689); returns its URL."""
        target = canonical_href(self.url, url.rstrip("/") + "/")
        self._request(
            "MKCOL",
            target,
            phase=Phase.WRITE,
            content=xml.mkcol_addressbook(displayname),
            headers={"Content-Type": "application/xml; charset=utf-8"},
            ok=(201,),
        )
        return target
