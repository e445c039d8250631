"""Rate limits, as v2 documents them (``nylas-v2-wire.md`` section 6), plus stricter ones
against guessing and against the routes that make the server reach out:

- per account (its token) and endpoint: ``rate_limit_account`` requests a second;
- per application and endpoint (the routes the application's own client id or secret
  authenticates, ``/connect/*``): ``rate_limit_application`` requests a second;
- concurrent requests per account: ``rate_limit_list_concurrency`` for ``GET /contacts``,
  ``rate_limit_delta_concurrency`` for ``/delta/longpoll`` and ``/delta/streaming``;
- per client address: after ``rate_limit_auth_failures`` answers of 401 in a minute, every
  request (but ``/health``, ``/ready`` and ``/metrics``) is refused until the minute is over;
  ``/connect/*`` at most ``rate_limit_connect`` times a minute.

Over a limit: 429 in the v2 error shape with ``X-RateLimit-Limit`` and ``X-RateLimit-Reset``
(seconds until the window resets; also ``Retry-After``). Windows are fixed (a second, a
minute, on the wall clock). On PostgreSQL the counts are shared by every API process
(``rolodex.api.sharedcounts``, off the request path), so N processes on any number of hosts
are held to one limit; on SQLite, and for concurrency, they are counted per process. The
cost on a hot read is a few dictionary updates (``rolodex.api.observe`` scans the headers
once, for the request id and the token, and names the endpoint by the route it matched):
about half a microsecond, a percent of the hot reads' time in uvicorn.
"""

from __future__ import annotations

import math
import time

import orjson

from rolodex.api.fastpath import CONTACT_ROUTE, LIST_ROUTE, Scope, Send
from rolodex.api.sharedcounts import Counts, SharedCounts
from rolodex.config import Settings
from rolodex.metrics import RATE_LIMITED
from rolodex.store import Store

# Path segments that name a route rather than an object: anything else is an id.
_STATIC = frozenset(
    {
        "",
        "contacts",
        "groups",
        "picture",
        "delta",
        "latest_cursor",
        "longpoll",
        "streaming",
        "account",
        "capabilities",
        "sync",
        "connect",
        "authorize",
        "token",
        "oauth",
        "revoke",
        "docs",
        "openapi.json",
        "health",
        "ready",
        "metrics",
    }
)
_APPLICATION_ROUTES = ("/connect/", "/oauth/")


def endpoint(method: str, path: str) -> str:
    """The endpoint a request is counted under: its method and path with ids blanked."""
    if path == "/contacts":
        return method + " /contacts"
    if (
        path.startswith("/contacts/")
        and path.count("/") == 2
        and path not in ("/contacts/", "/contacts/groups")  # the list, the groups
    ):
        return method + " /contacts/*"  # the other hot read, without the general split
    return method + " " + "/".join(s if s in _STATIC else "*" for s in path.rstrip("/").split("/"))


# The endpoints of the hot reads by their route (``fastpath.hot_read``), as ``endpoint``
# names them: the caller that has matched the route already need not split the path again.
HOT_ENDPOINTS = {LIST_ROUTE: "GET /contacts", CONTACT_ROUTE: "GET /contacts/*"}


# What a request admitted under a concurrency limit holds until it ends.
Slot = tuple[bytes, str]


class RateLimits:
    """The limits' counters; ``rolodex.api.observe`` asks ``admit`` before a request and
    tells ``finish`` after it (one layer for both: a layer of its own cost the hot reads
    a coroutine and a send wrapper more). With a ``store``, the counts are shared with the
    other processes of that database (``rolodex.api.sharedcounts``); ``now`` is wall-clock
    time, the same in every process."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.account = Counts("account", settings.rate_limit_account, 1)
        self.application = Counts("application", settings.rate_limit_application, 1)
        self.connect = Counts("connect", settings.rate_limit_connect, 60)
        self.auth_failures = Counts("auth", settings.rate_limit_auth_failures, 60, urgent=True)
        self.concurrency = {
            "GET /contacts": settings.rate_limit_list_concurrency,
            "GET /delta/longpoll": settings.rate_limit_delta_concurrency,
            "GET /delta/streaming": settings.rate_limit_delta_concurrency,
        }
        self._in_flight: dict[Slot, int] = {}
        self.shared: SharedCounts | None = None
        tick = settings.rate_limit_share_seconds
        # Shared on PostgreSQL only. On SQLite any commit changes the file that tells a
        # cached read that nothing changed (rolodex.store.walstamp): counts written there
        # ten times a second cost the hot reads a quarter of their rate.
        if store is not None and tick > 0 and not store.is_sqlite:
            counts = [self.account, self.application, self.connect, self.auth_failures]
            self.shared = SharedCounts(store, counts, tick)

    def admit(
        self, scope: Scope, now: float, authorization: bytes, name: str | None = None
    ) -> tuple[str, int, float] | Slot | None:
        """A refusal (which limit, its value, seconds until it resets), or the slot the
        request holds (give it back with ``finish``), or None. ``authorization`` is the
        access token the request's Authorization header names (empty without one), and ``name`` its
        ``endpoint`` if the caller knows it, a hot read's (``HOT_ENDPOINTS``; never an
        application route): ``rolodex.api.observe`` scans the headers once for everything
        it needs and has matched the route already."""
        path: str = scope["path"]
        client = scope.get("client")
        address = client[0] if client else ""
        failures = self.auth_failures.entries.get(address)  # inline: most have none
        if failures is not None and failures[1] >= failures[3]:
            wait = self.auth_failures.reached(address, now)
            if wait is not None:
                return "auth_failures", self.auth_failures.limit, wait
        if name is None:
            name = endpoint(scope["method"], path)
            if path.startswith(_APPLICATION_ROUTES):
                return self._admit_application(scope["method"], path, address, name, now)
        if not authorization:
            return None
        key = (authorization, name)
        # ``Counts.add`` inline for a key counted in its window already and under its
        # allowance (nearly every request of a busy client): a call less on the hot reads.
        account = self.account
        entry = account.entries.get(key)
        if entry is None or entry[0] != math.floor(now / account.length) or entry[1] + 1 > entry[3]:
            wait = account.add(key, now)
            if wait is not None:
                return "account", account.limit, wait
        else:
            entry[1] += 1
        most = self.concurrency.get(name)
        if most is None:
            return None
        running = self._in_flight.get(key, 0)
        if running >= most:
            return "concurrency", most, 1.0
        self._in_flight[key] = running + 1
        return key

    def _admit_application(
        self, method: str, path: str, address: str, name: str, now: float
    ) -> tuple[str, int, float] | None:
        """``admit`` for the application's routes (``/connect/*``, ``/oauth/*``).

        Credentials and codes are tried at /connect/* and with POSTs to /oauth/*:
        those are held to a few a minute per address. The hosted sign-in's pages
        (a sign-in reads three to five of them; many users may share one address
        behind a NAT) count only toward the application's limit."""
        if method != "GET" or not path.startswith("/oauth/"):
            wait = self.connect.add((address, name), now)
            if wait is not None:
                return "connect", self.connect.limit, wait
        wait = self.application.add(name, now)
        if wait is not None:
            return "application", self.application.limit, wait
        return None

    def finish(self, scope: Scope, slot: Slot | None, status: int) -> None:
        if slot is not None:
            left = self._in_flight[slot] - 1
            if left:
                self._in_flight[slot] = left
            else:
                del self._in_flight[slot]
        if status == 401:
            client = scope.get("client")
            self.auth_failures.note(client[0] if client else "", time.time())
            if self.shared is not None:
                self.shared.urgent()  # the other processes learn of it at once

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()


async def refuse(send: Send, limit: str, allowed: int, reset: float) -> None:
    RATE_LIMITED.labels(limit).inc()
    body = orjson.dumps(
        {
            "message": f"Too many requests: the limit is {allowed} ({_WHAT[limit]}); "
            "try again later",
            "type": "invalid_request_error",
        }
    )
    seconds = str(max(1, math.ceil(reset))).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-ratelimit-limit", str(allowed).encode()),
        (b"x-ratelimit-reset", seconds),
        (b"retry-after", seconds),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_WHAT = {
    "account": "requests a second per account and endpoint",
    "application": "requests a second per endpoint of the application",
    "concurrency": "requests at once per account on this endpoint",
    "auth_failures": "failed authentications a minute from one address",
    "connect": "connection requests a minute from one address",
}
