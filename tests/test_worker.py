"""The scheduler: API writes reach the server within seconds, server changes come back within
one sync interval, and two workers never sync one account at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rolodex.api.app import build_services, create_app
from rolodex.cli.sync import make_runner
from rolodex.connectors.carddav.client import CardDAVClient
from rolodex.store import Store
from rolodex.worker import Worker
from tests.carddav_servers import RadicaleServer, vcard
from tests.conftest import settings_for_tests


def eventually(check: Callable[[], bool], seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RadicaleServer, str, Store, str, TestClient]]:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    settings = settings_for_tests(url)
    store = Store(url)
    store.migrate()
    with RadicaleServer() as server:
        book = server.new_addressbook()
        svc = build_services(settings, store)
        created = svc.accounts.connect(
            "w@example.com",
            name="W",
            provider="carddav",
            settings={"url": book, "username": server.username, "password": server.password},
        )
        client = TestClient(create_app(settings, store))
        client.auth = (created.access_token, "")
        yield server, book, store, created.account.id, client
    store.close()


def test_changes_flow_both_ways_while_serving(
    setup: tuple[RadicaleServer, str, Store, str, TestClient],
) -> None:
    server, book, store, _account_id, client = setup
    interval = 2.0
    settings = settings_for_tests(str(store.url))
    worker = Worker(make_runner(settings, store, interval), tick=0.2)
    worker.start()
    try:
        contact = client.post("/contacts", json={"given_name": "Api", "surname": "Made"}).json()
        dav = CardDAVClient(book, server.username, server.password)

        def on_server() -> bool:
            return any(contact["id"] in href for href in dav.list_etags(book))

        assert eventually(on_server, 5.0) < 5.0
        server.put_card(book + "remote.vcf", vcard("remote-1", "Remote Made"))

        def in_api() -> bool:
            return any(c["given_name"] == "Remote" for c in client.get("/contacts").json())

        assert eventually(in_api, interval + 3.0) <= interval + 3.0
        account = client.get("/account").json()
        assert account["sync_state"] == "running" and account["last_synced_at"]
        dav.close()
    finally:
        worker.stop()


def test_one_account_one_worker_at_a_time(
    setup: tuple[RadicaleServer, str, Store, str, TestClient],
) -> None:
    _server, _book, store, account_id, _client = setup
    settings = settings_for_tests(str(store.url))
    first, second = make_runner(settings, store), make_runner(settings, store)
    assert first.mirror.lease(account_id, first.owner, 60)
    assert second.run(account_id) is None  # held by the first
    first.mirror.release(account_id, first.owner)
    assert second.run(account_id) is not None
    # A crashed worker's lease runs out.
    assert first.mirror.lease(account_id, first.owner, -1)
    assert second.run(account_id) is not None
