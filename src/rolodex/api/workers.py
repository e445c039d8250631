"""``rolodex serve --workers N``: N API processes on one listening socket.

The processes share nothing but the database: each has its own pool, read cache and
paging memory, kept valid by the database itself (rolodex.store.notify,
rolodex.store.paging), so any of them answers any request alike, as separate hosts behind
a load balancer do. uvicorn's supervisor binds the socket once, starts the processes
fresh (spawned, not forked: none inherits the parent's database descriptors, which
SQLite forbids) and replaces one that dies. The supervising process runs the sync worker,
when ``serve`` runs one.
"""

from __future__ import annotations

import os

from uvicorn.supervisors import Multiprocess

from rolodex.api.fastpath import ASGIApp
from rolodex.config import Settings

WORKER_HEALTHCHECK_SECONDS = 60
# The factory each worker process imports (settings from the environment the parent set).
APP_FACTORY = "rolodex.api.workers:app_from_environment"


def app_from_environment() -> ASGIApp:
    """One worker process's application; the parent has migrated the database already."""
    from rolodex.api.app import create_app
    from rolodex.logs import configure_logging
    from rolodex.store import Store

    configure_logging()
    settings = Settings()
    return create_app(settings, Store(settings.database_url))


def serve_workers(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve with ``workers`` processes until interrupted."""
    from rolodex.api.server import server_config

    # The processes read their settings as this one did; a --database-url flag is passed on.
    os.environ["ROLODEX_DATABASE_URL"] = settings.database_url
    config = server_config(APP_FACTORY, host, port, settings)
    config.factory = True
    config.workers = workers
    # A process that is still importing is not a dead one (the supervisor's default of 5
    # seconds restarted processes on a busy machine before they had started).
    config.timeout_worker_healthcheck = WORKER_HEALTHCHECK_SECONDS
    sock = config.bind_socket()
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
