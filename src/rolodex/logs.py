"""Logging: one JSON object a line when the stream is not a terminal (a service manager or
a container collects it), readable lines on a terminal; each record carries the id of the
request it was logged for. Records go to stderr, the access log to stdout (as uvicorn's)."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import orjson

# The id of the request being served (set by rolodex.api.observe; "" outside requests).
# anyio's worker threads run in a copy of the request's context, so they see it too.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


@contextmanager
def carrying(request_id: str | None) -> Iterator[None]:
    """Records made inside carry ``request_id``: for work a request caused that is done
    later, perhaps in another process (the outbox row or the sync request kept the id).
    Without an id, the records carry whatever they carried."""
    if not request_id:
        yield
        return
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        return f"{line} [{request_id}]" if request_id else line


def configure_logging(
    level: int = logging.INFO,
    *,
    stream: IO[str] | None = None,
    access_stream: IO[str] | None = None,
    json: bool | None = None,
) -> logging.Handler:
    """Send every logger's records (uvicorn's included) to ``stream`` (stderr), and the
    access log (``rolodex.access``, a line per request) to ``access_stream`` (stdout, where
    uvicorn writes its own), each as JSON unless it is a terminal; returns the handler
    installed on the root logger."""
    root = logging.getLogger()
    handler = _handler(stream or sys.stderr, json)
    root.addHandler(handler)
    root.setLevel(level)
    access = logging.getLogger("rolodex.access")
    access.addHandler(_handler(access_stream or sys.stdout, json))
    access.propagate = False
    # httpx logs every request a sync sends at INFO: an idle worker's polls of many
    # accounts would drown what the syncs themselves say. Shown when debugging.
    if level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def _handler(stream: IO[str], json: bool | None) -> logging.Handler:
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter()
        if json
        else _PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    return handler
