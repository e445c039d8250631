"""Outbound safety: provider connections go to public addresses only unless the operator
allows more; checking settings has an overall deadline, never holds the threads other
routes run on, and answers plain messages whatever the socket said."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from rolodex.api.app import create_app
from rolodex.api.server import server_config
from rolodex.connectors.base import TransientError
from rolodex.connectors.carddav.client import CardDAVClient
from rolodex.connectors.outbound import ENV, NotAllowed, Policy, allowed_addresses
from rolodex.store import Store
from tests.carddav_servers import RadicaleServer
from tests.conftest import App, free_port


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        # IPv6 forms of private IPv4 addresses, which the ipaddress module calls global:
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a00:1",
        "fec0::1",  # site-local (deprecated)
    ],
)
def test_private_and_local_addresses_are_refused(address: str) -> None:
    assert not Policy("").allows_address(ipaddress.ip_address(address))
    with pytest.raises(NotAllowed):
        allowed_addresses(address, 443, Policy(""))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "17.253.144.10", "2001:4860:4860::8888", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert allowed_addresses(address, 443, Policy("")) == [address]


def test_names_resolving_to_private_addresses_are_refused() -> None:
    with pytest.raises(NotAllowed):
        allowed_addresses("localhost", 80, Policy(""))


def test_the_operator_allows_names_networks_or_everything() -> None:
    assert allowed_addresses("localhost", 80, Policy("localhost"))
    assert allowed_addresses("127.0.0.1", 80, Policy("127.0.0.0/8"))
    assert allowed_addresses("10.9.9.9", 80, Policy("10.0.0.0/8, ::1"))
    assert allowed_addresses("::1", 80, Policy("::1"))
    assert allowed_addresses("192.168.0.2", 80, Policy("*"))
    with pytest.raises(NotAllowed):
        allowed_addresses("10.9.9.9", 80, Policy("192.168.0.0/16"))
    assert Policy(".lan").allows_name("carddav.lan") and Policy(".lan").allows_name("lan")
    assert not Policy(".lan").allows_name("evil-lan")


def test_the_carddav_client_refuses_private_servers(
    radicale_htpasswd: RadicaleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "")
    with (
        CardDAVClient(radicale_htpasswd.base_url, "test", "secret") as client,
        pytest.raises(TransientError, match="not an address this server may connect to"),
    ):
        client.discover()
    monkeypatch.setenv(ENV, "127.0.0.1")
    with CardDAVClient(radicale_htpasswd.base_url, "test", "secret") as client:
        assert isinstance(client.discover(), list)  # reached: no books is no error


def _body(app: App, url: str, password: str = "secret") -> dict[str, object]:
    return {
        "client_id": app.services.application.client().client_id,
        "email_address": "out@example.com",
        "provider": "carddav",
        "settings": {"url": url, "username": "test", "password": password},
    }


def _listener(reply: bool) -> Iterator[int]:
    """A port that accepts connections and, unless ``reply``, never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(100)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            if reply:
                conn.sendall(b"garbage that is not HTTP\r\n\r\n")
                conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()
        for conn in held:
            conn.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    yield from _listener(reply=False)


@pytest.fixture
def garbage_port() -> Iterator[int]:
    yield from _listener(reply=True)


def test_the_api_refuses_private_servers_with_one_plain_message(
    app: App, radicale_htpasswd: RadicaleServer, garbage_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "")
    closed = free_port()
    answers = [
        app.client.post("/connect/authorize", json=_body(app, url))
        for url in (
            radicale_htpasswd.base_url,  # a real server, at a private address
            f"http://127.0.0.1:{closed}/",
            f"http://127.0.0.1:{garbage_port}/",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:5432/",
        )
    ]
    for answer in answers:
        assert answer.status_code == 502, answer.text
        assert answer.json()["message"] == "Could not reach the server"
        assert answer.json()["server_error"] == "could not reach the server"
    assert len({a.text for a in answers}) == 1  # nothing tells one port from another


def test_allowed_but_unreachable_servers_answer_the_same_plain_message(
    app: App, garbage_port: int
) -> None:
    for url in (f"http://127.0.0.1:{free_port()}/", f"http://127.0.0.1:{garbage_port}/"):
        answer = app.client.post("/connect/authorize", json=_body(app, url))
        assert answer.status_code == 502
        assert answer.json()["message"] == "Could not reach the server"


def test_refused_credentials_are_a_plain_message(
    app: App, radicale_htpasswd: RadicaleServer
) -> None:
    answer = app.client.post(
        "/connect/authorize", json=_body(app, radicale_htpasswd.base_url, "wrong")
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == "the server refused these credentials"


def test_silent_servers_cost_the_deadline_and_never_stall_other_routes(
    app: App, silent_port: int
) -> None:
    settings = dataclasses.replace(app.settings, provider_check_seconds=1.5)
    store = Store(app.store.url)
    port = free_port()
    config = server_config(create_app(settings, store), "127.0.0.1", port, settings)
    config.log_level = "warning"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    body = _body(app, f"http://127.0.0.1:{silent_port}/")
    token = app.accounts.create("other@example.com").access_token

    async def scenario() -> tuple[list[tuple[int, float]], float, int]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def connect() -> tuple[int, float]:
                started = time.monotonic()
                answer = await client.post("/connect/authorize", json=body)
                return answer.status_code, time.monotonic() - started

            callers = [asyncio.create_task(connect()) for _ in range(60)]
            await asyncio.sleep(0.5)
            started = time.monotonic()
            other = await client.get("/contacts", auth=(token, ""))
            other_seconds = time.monotonic() - started
            return list(await asyncio.gather(*callers)), other_seconds, other.status_code

    try:
        results, other_seconds, other_status = asyncio.run(scenario())
        assert other_status == 200
        assert other_seconds < 1.0  # not behind 60 stuck verifications
        assert len(results) == 60
        assert all(status == 502 for status, _ in results)
        # The deadline and its grace (3.5 s), on a busy machine: not the 90 s of before.
        assert max(seconds for _, seconds in results) < 10
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        store.close()
