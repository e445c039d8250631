"""The HTTP server: uvicorn with httptools, plus the limits uvicorn does not have.

uvicorn neither times out a request head nor bounds its size with httptools (a head sent a
byte every 15 s, or 20 MB of one header, is read to the end), nor caps connections before
they take a file descriptor each for as long as the client likes. This protocol does:

- a client has ``header_timeout`` seconds from connecting (or from the first byte of the
  next request on a kept-alive connection) to finish the head: else 408;
- and then ``body_timeout`` seconds to finish the body: else 408 (or, once the request is
  answered, the connection is closed), so a body trickled in holds no connection for long;
- a head of more than ``max_header_bytes`` (URL and headers together): 431, found while it
  is still arriving, so no more than one read's worth past the limit is ever buffered;
- a URL of more than ``max_url_bytes``: 414;
- past ``max_connections`` open connections, a new one is answered 503 and closed at once;
- an idle keep-alive connection is closed after ``keep_alive_timeout`` (uvicorn's own);
- a request that is not HTTP: 400;
- a websocket upgrade is answered as the plain HTTP request it also is.

Each answer is in the v2 error shape, with ``Connection: close``.

On SIGTERM or SIGINT uvicorn stops accepting connections and lets the requests in flight
finish, for at most ``shutdown_timeout`` seconds; the first connection told to shut down
raises the server's flag (``rolodex.api.draining``), so long-polls and streams answer at
once.
"""

from __future__ import annotations

import asyncio
import resource
from asyncio import TimerHandle
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rolodex.api import draining
from rolodex.config import Settings

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
# File descriptors kept for everything but client connections (database, logs, providers).
_SPARE_DESCRIPTORS = 100


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        settings: Settings = getattr(config, "rolodex_settings", None) or Settings()
        self._head_timeout = settings.header_timeout
        self._max_head = settings.max_header_bytes
        self._max_url = settings.max_url_bytes
        self._max_connections = max_connections(settings)
        self._body_timeout = settings.body_timeout
        self._head_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0
        # Whether a request has begun since the head timer was armed (its bytes may all
        # have come in the read that began it, which ``on_message_begin`` counts afresh).
        self._head_began = False
        self._refusal: tuple[int, str, str] | None = None
        self._draining = draining.flag_of(self.server_state)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            self._refuse(503, "The server has too many connections; try again", "api_error")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refusal is not None:
            self._refuse(*self._refusal)
        elif self._in_head and self._head_bytes > self._max_head:
            # Still no end of the head, and more of it than the limit already arrived.
            self._refuse(431, "Request headers are too large", "invalid_request_error")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[draining.SCOPE_KEY] = self._draining  # type: ignore[literal-required]
        self._in_head = True
        self._head_bytes = 0
        self._head_began = True
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self._max_url and self._refusal is None:
            self._refusal = (414, "The request URL is too long", "invalid_request_error")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        if self._refusal is not None:
            return
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self._max_head:
            self._refusal = (431, "Request headers are too large", "invalid_request_error")
            return
        super().on_headers_complete()
        if self._body_timer is None:  # disarmed when the message is complete
            self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm_body_timer()
        if self._refusal is None:
            super().on_message_complete()

    def shutdown(self) -> None:
        self._draining.set()
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "The request is not valid HTTP", "invalid_request_error")

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; its successor's head waits for it
        if self._head_bytes == 0 and not self._head_began:
            self.transport.close()  # nothing sent at all: nothing to answer
            return
        self._refuse(408, "The request head did not arrive in time", "invalid_request_error")

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already (a 413, say): nothing more to say
            return
        self._refuse(408, "The request body did not arrive in time", "invalid_request_error")

    def _refuse(self, status: int, message: str, kind: str) -> None:
        self._disarm_head_timer()
        self._disarm_body_timer()
        if self.transport.is_closing():
            return
        body = orjson.dumps({"message": message, "type": kind})
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body))
        )
        self.transport.write(head + body)
        self.transport.close()


def max_connections(settings: Settings) -> int:
    """The configured cap, within what the process may open."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(1, min(settings.max_connections, soft - _SPARE_DESCRIPTORS))


def server_config(app: Any, host: str, port: int, settings: Settings) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=LimitedHttpToolsProtocol,
        # No route is a websocket: an upgrade is an ordinary request, within the limits
        # above (the websocket library took the connection out of them, to answer 403).
        ws="none",
        timeout_keep_alive=max(1, round(settings.keep_alive_timeout)),
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
        log_level="info",
        log_config=None,
        access_log=False,  # rolodex.api.observe logs each request, with its request id
    )
    config.rolodex_settings = settings  # type: ignore[attr-defined]
    return config
