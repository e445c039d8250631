"""The outermost ASGI layer: what operators need of every request.

Every request, the fast read path's included, gets a request id (a well-formed
``X-Request-Id`` from a proxy is kept, else one is made) returned in ``X-Request-Id`` and
carried by every log record made while serving it; it is counted and timed by route and
status for ``GET /metrics``. ``GET /health`` answers while the process runs; ``GET /ready``
only while the database answers and its schema is current (for load balancers). The cost
on a hot read is a header scan, a counted id and two dictionary updates.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import orjson
from anyio import to_thread
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from rolodex.api.fastpath import (
    ASGIApp,
    FastReads,
    Message,
    Receive,
    Scope,
    Send,
    credential,
    hot_read,
)
from rolodex.api.ratelimit import HOT_ENDPOINTS, RateLimits, refuse
from rolodex.logs import REQUEST_ID
from rolodex.metrics import HTTP
from rolodex.store import Store
from rolodex.store.database import WRITE_WAIT
from rolodex.store.stats import read_stats, readiness

access_log = logging.getLogger("rolodex.access")

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{8,64}")
_OPS = frozenset({"/health", "/ready", "/metrics"})
# How long a request's write waits for SQLite's write lock held by another process (a
# command, a worker, a backup) before it answers 503: a client gets an answer it can
# retry rather than a request hanging for the whole busy timeout.
WRITE_WAIT_SECONDS = 5.0
UNMATCHED = "unmatched"
_UNAUTHENTICATED = orjson.dumps(
    {"message": "Could not verify access credential.", "type": "invalid_request_error"}
)


class Observed:
    def __init__(self, inner: ASGIApp, store: Store, limits: RateLimits | None = None) -> None:
        self.inner = inner
        # The hot reads' layer, when it is there: its answers are sent from here.
        self.fast = inner if isinstance(inner, FastReads) else None
        self.limits = limits
        # The FastAPI app (whoever introspects the application finds its state there).
        self.app: Any = getattr(inner, "app", inner)
        self.store = store
        # Request ids: random per process, then counted (a random id per request would
        # cost a system call).
        self._id_prefix = os.urandom(6).hex().encode()
        self._requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = b""
        authorization = b""
        authorizations = 0
        seen_id = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorizations += 1
                authorization = value
            elif name == b"x-request-id" and not seen_id:
                seen_id = True
                if _REQUEST_ID.fullmatch(value):
                    request_id = value
        if not request_id:
            self._requests += 1
            request_id = b"%s%x" % (self._id_prefix, self._requests)
        context = REQUEST_ID.set(request_id.decode())
        waiting = WRITE_WAIT.set(WRITE_WAIT_SECONDS)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        path: str = scope["path"]
        method: str = scope["method"]
        route = UNMATCHED
        slot = None
        reads = self.fast
        matched = hot_read(scope) if reads is not None else None
        # Health, readiness and metrics authenticate nothing and are not limited: a load
        # balancer or monitor may share an address refused for others' failures.
        operation = path in _OPS and method in ("GET", "HEAD")
        try:
            if authorizations > 1 and not operation:
                # Which one would count? Each layer would have to agree on it (the rate
                # limits, the fast reads, the routes); no client means two.
                await _answer(send_with_id, 401, _UNAUTHENTICATED, b"application/json")
                return
            if self.limits is not None and not operation:
                known = None if matched is None else HOT_ENDPOINTS[matched[0]]
                admitted = self.limits.admit(scope, time.time(), credential(authorization), known)
                if admitted is not None and len(admitted) == 3:
                    limit, allowed, reset = admitted
                    route = _route(scope)
                    await refuse(send_with_id, limit, allowed, reset)
                    return
                slot = admitted
            if reads is not None and matched is not None:
                route = matched[0]
                status, headers, body = await reads.answer(scope, matched[1])
                headers.append((b"x-request-id", request_id))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            elif operation:
                route = path
                await self._operations(path, send_with_id)
            else:
                await self.inner(scope, receive, send_with_id)
                route = _route(scope)
        finally:
            if self.limits is not None:
                self.limits.finish(scope, slot, status)
            REQUEST_ID.reset(context)
            WRITE_WAIT.reset(waiting)
            elapsed = time.perf_counter() - started
            HTTP.record(method, route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    method,
                    path,
                    status,
                    extra={
                        "request_id": request_id.decode(),
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )

    async def _operations(self, path: str, send: Send) -> None:
        if path == "/health":
            await _answer(send, 200, b'{"status":"ok"}', b"application/json")
        elif path == "/ready":
            problem = await to_thread.run_sync(readiness, self.store)
            if problem is None:
                await _answer(send, 200, b'{"status":"ready"}', b"application/json")
            else:
                body = orjson.dumps({"message": problem, "type": "api_error"})
                await _answer(send, 503, body, b"application/json")
        else:
            body = await to_thread.run_sync(self._metrics)
            await _answer(send, 200, body, CONTENT_TYPE_LATEST.encode())

    def _metrics(self) -> bytes:
        text = generate_latest(REGISTRY)
        try:
            stats = read_stats(self.store)
        except Exception:
            return text + b"# the database did not answer: no rolodex_outbox_depth\n"
        lines = [
            "# HELP rolodex_outbox_depth Writes waiting to be delivered to providers.",
            "# TYPE rolodex_outbox_depth gauge",
            f"rolodex_outbox_depth {stats.outbox_depth}",
            "# HELP rolodex_accounts Accounts by provider and sync state.",
            "# TYPE rolodex_accounts gauge",
            *(
                f'rolodex_accounts{{provider="{_label(p)}",sync_state="{_label(s)}"}} {n}'
                for (p, s), n in sorted(stats.accounts.items())
            ),
            "# HELP rolodex_sync_lag_seconds Since the least recently synced connected account "
            "of each provider last synced.",
            "# TYPE rolodex_sync_lag_seconds gauge",
            *(
                f'rolodex_sync_lag_seconds{{provider="{_label(p)}"}} {lag:.3f}'
                for p, lag in sorted(stats.sync_lag.items())
            ),
        ]
        return text + ("\n".join(lines) + "\n").encode()


def _route(scope: Scope) -> str:
    """The route's template (never the path itself: ids would make a label each)."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", UNMATCHED))
    matched = hot_read(scope)  # answered by the fast path
    return UNMATCHED if matched is None else matched[0]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
