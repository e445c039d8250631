"""The two ASGI apps the HTTP benchmarks serve, both through ``python -m uvicorn --factory``
with the same settings: Rolodex itself, and the baseline, a bare ASGI app answering every
request with a body of the same size from memory.

``python -m bench.apps FACTORY PORT WORKERS [uvicorn flags...]`` serves one of them with
several processes the way ``rolodex serve --workers`` does (a socket of its own per
process, ``rolodex.api.workers.SharedPort``), so a baseline with several processes shares
its load as Rolodex does, not as one shared socket would (often all in one process)."""

from __future__ import annotations

import os
from typing import Any

from rolodex.api.fastpath import ASGIApp, Receive, Scope, Send

# uvloop + httptools, no access log: the same for every server we measure.
UVICORN_SETTINGS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
    "log_level": "warning",
    "backlog": 4096,
}


def rolodex_app() -> ASGIApp:
    from rolodex.api.app import create_app
    from rolodex.config import Settings
    from rolodex.store import Store

    settings = Settings()
    return create_app(settings, Store(settings.database_url))


def baseline_app() -> ASGIApp:
    """The body of ``BENCH_BODY_FILE`` for every request; with ``BENCH_LIST_BODY_FILE``,
    that one for requests with a query string (a read mix: lists ask ``?limit=``)."""
    one = _answer(os.environ["BENCH_BODY_FILE"])
    listed = _answer(os.environ.get("BENCH_LIST_BODY_FILE") or os.environ["BENCH_BODY_FILE"])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        start, message = listed if scope["query_string"] else one
        await send(start)
        await send(message)

    return app


def _answer(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with open(path, "rb") as f:
        body = f.read()
    headers = [
        (b"content-type", b"application/json"),
        (b"nylas-api-version", b"2.5"),
        (b"content-length", str(len(body)).encode()),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": headers}
    return start, {"type": "http.response.body", "body": body}


def serve_workers(factory: str, port: int, workers: int) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from rolodex.api.workers import SharedPort

    config = uvicorn.Config(
        f"bench.apps:{factory}",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        **UVICORN_SETTINGS,
    )
    sockets = SharedPort.bind(config)
    try:
        Multiprocess(config, sockets=sockets).run()
    finally:
        for sock in sockets:
            sock.close()


if __name__ == "__main__":
    import sys

    serve_workers(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
