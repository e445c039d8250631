"""``rolodex serve --workers N``: N API processes on one port.

The processes share nothing but the database: each has its own pool, read cache and
paging memory, kept valid by the database itself (rolodex.store.notify,
rolodex.store.paging), so any of them answers any request alike, as separate hosts behind
a load balancer do. uvicorn's supervisor holds the port, starts the processes
fresh (spawned, not forked: none inherits the parent's database descriptors, which
SQLite forbids) and replaces one that dies. The supervising process runs the sync worker,
when ``serve`` runs one.

On Linux each process listens on a socket of its own, all bound to the port with
``SO_REUSEPORT``, and the kernel spreads new connections over them (``SharedPort``). On one
shared socket the processes race to accept, and the one that wins takes every connection
waiting (the event loop accepts them all at once): keep-alive clients that connect
together, wrk's or a load balancer's pool, all landed in one process while the others
idled. Elsewhere the processes share the one socket, as uvicorn does.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import uvicorn
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
    sockets = SharedPort.bind(config) if SharedPort.supported() else [config.bind_socket()]
    try:
        Multiprocess(config, sockets=sockets).run()
    finally:
        for sock in sockets:
            sock.close()


class SharedPort(list[socket.socket]):
    """The sockets the supervisor hands each process it starts: in the supervisor, one
    bound (not listening) socket that holds the port, so that a port taken fails here
    and port 0 picks one; in each process, a socket of its own bound anew to that port.

    uvicorn passes the list to each process it spawns by pickling it, also when it
    replaces one that died; this list pickles as its address, and unpickles (in the new
    process) as a fresh ``SO_REUSEPORT`` socket there. A process that dies takes only its
    own socket's waiting connections with it; the kernel sends new ones to the others.
    """

    @staticmethod
    def supported() -> bool:
        # Elsewhere (macOS, the BSDs) SO_REUSEPORT does not spread connections.
        return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")

    @classmethod
    def bind(cls, config: uvicorn.Config) -> SharedPort:
        family = socket.AF_INET6 if ":" in (config.host or "") else socket.AF_INET
        holder = _reuse_port_socket(family, (config.host, config.port))
        return cls([holder])

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        holder = self[0]
        return (_own_socket, (holder.family, holder.getsockname()[:2]))


def _own_socket(family: socket.AddressFamily, address: tuple[str, int]) -> list[socket.socket]:
    """In a new worker process: its own socket on the shared port (uvicorn listens)."""
    return [_reuse_port_socket(family, address)]


def _reuse_port_socket(family: socket.AddressFamily, address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR as uvicorn sets it: a restart binds despite connections in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
