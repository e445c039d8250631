"""Fixtures for connector tests: real CardDAV servers (see tests/carddav_servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rolodex.connectors.carddav.client import CardDAVClient
from tests.carddav_servers import SERVERS, DavServer, RadicaleServer


@pytest.fixture(scope="session", params=sorted(SERVERS))
def dav_server(request: pytest.FixtureRequest) -> Iterator[DavServer]:
    """One server per kind for the session (per xdist worker); tests stay apart by taking
    fresh address books from ``book``, and a test that stops the server restarts it."""
    with SERVERS[request.param]() as server:
        yield server


@pytest.fixture
def book(dav_server: DavServer) -> str:
    return dav_server.new_addressbook()


@pytest.fixture
def dav_client(dav_server: DavServer) -> Iterator[CardDAVClient]:
    # No read retries: a test that expects an error should see it at once.
    with CardDAVClient(
        dav_server.base_url, dav_server.username, dav_server.password, read_retries=0
    ) as client:
        yield client


@pytest.fixture(scope="session")
def radicale_htpasswd() -> Iterator[RadicaleServer]:
    """A Radicale that checks passwords (user "test", password "secret")."""
    with RadicaleServer(users={"test": "secret"}) as server:
        yield server
