"""Rate limits, as v2 documents them (``nylas-v2-wire.md`` section 6), plus stricter ones
against guessing and against the routes that make the server reach out:

- per account (its token) and endpoint: ``rate_limit_account`` requests a second;
- per application and endpoint (the routes the application's own client id or secret
  authenticates, ``/connect/*``): ``rate_limit_application`` requests a second;
- concurrent requests per account: ``rate_limit_list_concurrency`` for ``GET /contacts``,
  ``rate_limit_delta_concurrency`` for ``/delta/longpoll`` and ``/delta/streaming``;
- per client address: after ``rate_limit_auth_failures`` answers of 401 in a minute, every
  request is refused until the minute is over; ``/connect/*`` at most ``rate_limit_connect``
  times a minute.

Over a limit: 429 in the v2 error shape with ``X-RateLimit-Limit`` and ``X-RateLimit-Reset``
(seconds until the window resets; also ``Retry-After``). Windows are fixed (a second, a
minute) and counted in this process: N API processes allow N times as much. The cost on a
hot read is a header scan and a few dictionary updates.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from rolodex.api.fastpath import Scope, Send
from rolodex.config import Settings
from rolodex.metrics import RATE_LIMITED

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
_PRUNE_AT = 50_000


def endpoint(method: str, path: str) -> str:
    """The endpoint a request is counted under: its method and path with ids blanked."""
    if path == "/contacts":
        return method + " /contacts"
    if path.startswith("/contacts/") and path.count("/") == 2 and path != "/contacts/groups":
        return method + " /contacts/*"  # the other hot read, without the general split
    return method + " " + "/".join(s if s in _STATIC else "*" for s in path.rstrip("/").split("/"))


# What a request admitted under a concurrency limit holds until it ends.
Slot = tuple[bytes, str]


class RateLimits:
    """The limits' counters; ``rolodex.api.observe`` asks ``admit`` before a request and
    tells ``finish`` after it (one layer for both: a layer of its own cost the hot reads
    a coroutine and a send wrapper more)."""

    def __init__(self, settings: Settings) -> None:
        self.per_account = settings.rate_limit_account
        self.per_application = settings.rate_limit_application
        self.concurrency = {
            "GET /contacts": settings.rate_limit_list_concurrency,
            "GET /delta/longpoll": settings.rate_limit_delta_concurrency,
            "GET /delta/streaming": settings.rate_limit_delta_concurrency,
        }
        self.auth_failures = settings.rate_limit_auth_failures
        self.per_connect = settings.rate_limit_connect
        # key -> [window (whole seconds, or the minute's end), count]
        self._second: dict[Any, list[float]] = {}
        self._minute: dict[Any, list[float]] = {}
        self._in_flight: dict[Slot, int] = {}

    def admit(self, scope: Scope, now: float) -> tuple[str, int, float] | Slot | None:
        """A refusal (which limit, its value, seconds until it resets), or the slot the
        request holds (give it back with ``finish``), or None."""
        path: str = scope["path"]
        client = scope.get("client")
        address = client[0] if client else ""
        failures = self._minute.get(address)
        if failures is not None and failures[1] >= self.auth_failures and failures[0] > now:
            return "auth_failures", self.auth_failures, failures[0] - now
        name = endpoint(scope["method"], path)
        authorization = b""
        for header, value in scope["headers"]:
            if header == b"authorization":
                authorization = value
                break
        if path.startswith(_APPLICATION_ROUTES):
            # Credentials and codes are tried at /connect/* and with POSTs to /oauth/*:
            # those are held to a few a minute per address. The hosted sign-in's pages
            # (a sign-in reads three to five of them; many users may share one address
            # behind a NAT) count only toward the application's limit.
            if scope["method"] != "GET" or not path.startswith("/oauth/"):
                wait = self._per_minute(("connect", address, name), self.per_connect, now)
                if wait is not None:
                    return "connect", self.per_connect, wait
            wait = self._per_second(name, self.per_application, now)
            if wait is not None:
                return "application", self.per_application, wait
            return None
        if not authorization:
            return None
        key = (authorization, name)
        wait = self._per_second(key, self.per_account, now)
        if wait is not None:
            return "account", self.per_account, wait
        most = self.concurrency.get(name)
        if most is None:
            return None
        running = self._in_flight.get(key, 0)
        if running >= most:
            return "concurrency", most, 1.0
        self._in_flight[key] = running + 1
        return key

    def finish(self, scope: Scope, slot: Slot | None, status: int, now: float) -> None:
        if slot is not None:
            left = self._in_flight[slot] - 1
            if left:
                self._in_flight[slot] = left
            else:
                del self._in_flight[slot]
        if status == 401:
            client = scope.get("client")
            self._per_minute(client[0] if client else "", self.auth_failures, now)

    def _per_second(self, key: Any, limit: int, now: float) -> float | None:
        """None if the request is within ``limit`` this second, else seconds to wait."""
        window = math.floor(now)
        entry = self._second.get(key)
        if entry is None or entry[0] != window:
            if len(self._second) > _PRUNE_AT:
                self._second = {k: v for k, v in self._second.items() if v[0] == window}
            self._second[key] = [window, 1]
            return None
        entry[1] += 1
        if entry[1] > limit:
            return window + 1 - now
        return None

    def _per_minute(self, key: Any, limit: int, now: float) -> float | None:
        entry = self._minute.get(key)
        if entry is None or entry[0] <= now:
            if len(self._minute) > _PRUNE_AT:
                self._minute = {k: v for k, v in self._minute.items() if v[0] > now}
            self._minute[key] = [now + 60.0, 1]
            return None
        entry[1] += 1
        if entry[1] > limit:
            return entry[0] - now
        return None


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
