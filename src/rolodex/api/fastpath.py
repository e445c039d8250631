"""The ASGI front of the server: serves the two hot reads directly, adds v2 headers.

``GET /contacts`` and ``GET /contacts/{id}`` are most of an API's traffic and answer with
stored bytes; FastAPI's per-request machinery (dependency solving, validation, response
classes) would cost them more than the work itself (DESIGN.md, performance notes). They go
through the same functions as the documented FastAPI routes, so behaviour cannot drift.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from anyio import to_thread

from rolodex.api.auth import token_from_authorization
from rolodex.api.contacts import get_tagged, list_body, query_params
from rolodex.api.deps import Services, base_url
from rolodex.api.errors import describe
from rolodex.domain.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    ContactFilter,
    ListQuery,
)
from rolodex.store import nowait

_NO_FILTER = ContactFilter()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_VERSION_HEADER = (b"nylas-api-version", b"2.5")
# The routes of the hot reads, as metrics name them (the documented FastAPI routes').
LIST_ROUTE = "/contacts"
CONTACT_ROUTE = "/contacts/{contact_id}"
_JSON_HEADERS = [(b"content-type", b"application/json"), API_VERSION_HEADER]


def hot_read(scope: Scope) -> tuple[str, str | None] | None:
    """For a hot read (an HTTP scope), its route's template and the contact id (None for
    the list); None for anything else."""
    if scope["method"] != "GET":
        return None
    path: str = scope["path"]
    if path in ("/contacts", "/contacts/"):
        return LIST_ROUTE, None
    if path.startswith("/contacts/"):
        rest = path[len("/contacts/") :].rstrip("/")
        if rest and "/" not in rest and rest != "groups":
            return CONTACT_ROUTE, rest
    return None


class FastReads:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        # A hot read is answered on the event loop when that costs less than handing it
        # to a worker thread and back: on SQLite always (its page cache answers sooner),
        # on PostgreSQL when it needs no round trip (rolodex.store.nowait: tried with
        # waiting forbidden, then from a thread if it needs the database). Anything else
        # (filters, views) goes to a thread.
        self.wait_inline = services.store.is_sqlite
        self.versions = services.store.versions()  # PostgreSQL's announcements
        # (scheme, Host header) -> base URL of picture links: the hot reads need it on
        # every request, and it is the same for nearly all of them.
        self._bases: dict[tuple[str, bytes | None], bytes] = {}

    def _base(self, scheme: str, host: bytes | None) -> bytes:
        key = (scheme, host)
        base = self._bases.get(key)
        if base is None:
            if len(self._bases) > 1000:  # Host is the client's to choose
                self._bases.clear()
            base = base_url(
                self.services.settings, scheme, host.decode("latin-1") if host else None
            )
            self._bases[key] = base
        return base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = hot_read(scope) if scope["type"] == "http" else None
        if matched is None:
            await self.app(scope, receive, _with_version_header(send))
            return
        status, headers, body = await self.answer(scope, matched[1])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(
        self, scope: Scope, contact_id: str | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """A hot read's status, headers (a list of its own, for the caller to add to) and
        body (``rolodex.api.observe`` sends them itself: a wrapped ``send`` cost two more
        coroutine calls a request)."""
        answered = None
        if contact_id is not None or paging_query(scope["query_string"]) is not None:
            if self.wait_inline:
                answered = self._answer(scope, contact_id)
            else:
                nowait.forbid()
                if self.versions is not None:
                    self.versions.begin_answer()
                try:
                    answered = self._answer(scope, contact_id)
                except nowait.WouldWait:
                    pass
                finally:
                    nowait.allow()
                    if self.versions is not None:
                        self.versions.end_answer()
        if answered is None:
            answered = await to_thread.run_sync(self._answer, scope, contact_id)
        status, body, etag = answered
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        if etag is not None:
            headers.append((b"etag", etag))
        return status, headers, body

    def _answer(self, scope: Scope, contact_id: str | None) -> tuple[int, bytes, bytes | None]:
        """Status, body and (for one contact) its ETag."""
        svc = self.services
        authorization = host = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"host":
                host = value
        try:
            account = svc.accounts.authenticate(_token(authorization))
            base = self._base(scope["scheme"], host)
            if contact_id is None:
                query_string: bytes = scope["query_string"]
                query = paging_query(query_string)
                if query is None:
                    params = query_params(query_string.decode("latin-1"))
                    return 200, list_body(svc, account, params, base), None
                return 200, list_body(svc, account, query, base), None
            return 200, *get_tagged(svc, account, contact_id, base)
        except nowait.WouldWait:
            raise
        except Exception as exc:
            status, error = describe(exc)
            return status, orjson.dumps(error), None


# The largest values the shortcut below takes; anything else goes the general way.
_SHORT_LIMIT = len(str(MAX_LIMIT))
_SHORT_OFFSET = len(str(MAX_OFFSET)) - 1


@functools.lru_cache(maxsize=4096)  # walkers send the same few thousand query strings
def paging_query(query_string: bytes) -> ListQuery | None:
    """The plain list query (``limit`` and/or ``offset``, each once, plain decimal digits,
    in range) without the general parser; None for anything else, which
    ``parse_list_query`` answers (errors included), so both give the same result."""
    limit, offset = DEFAULT_LIMIT, 0
    seen_limit = seen_offset = False
    if query_string:
        for pair in query_string.split(b"&"):
            name, _, value = pair.partition(b"=")
            if not value.isdigit():  # ASCII digits only, as the parser's pattern
                return None
            if name == b"offset" and not seen_offset and len(value) <= _SHORT_OFFSET:
                offset, seen_offset = int(value), True
            elif name == b"limit" and not seen_limit and len(value) <= _SHORT_LIMIT:
                limit, seen_limit = int(value), True
                if limit > MAX_LIMIT:
                    return None
            else:
                return None
    return ListQuery(filter=_NO_FILTER, limit=limit, offset=offset)


@functools.lru_cache(maxsize=1024)  # clients send the same Authorization header each time
def _token(authorization: bytes | None) -> str | None:
    return token_from_authorization(authorization.decode("latin-1") if authorization else None)


@functools.lru_cache(maxsize=1024)
def credential(authorization: bytes) -> bytes:
    """The access token an Authorization header names (empty if none), which is what the
    rate limits count: the header itself has many spellings of one token (the scheme's
    case, the spaces, any Basic password), each of which would have had a limit of its own."""
    token = _token(authorization)
    return token.encode() if token else b""


def _with_version_header(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), API_VERSION_HEADER]
        await send(message)

    return wrapped
