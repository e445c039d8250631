"""v2 native authentication against a real Radicale that checks passwords."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest

from tests.carddav_servers import RadicaleServer
from tests.conftest import App


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer(users={"test": "secret"}) as server:
        yield server


def _authorize_body(app: App, radicale: RadicaleServer, password: str) -> dict[str, object]:
    client = app.services.application.client()
    return {
        "client_id": client.client_id,
        "name": "Tess Tester",
        "email_address": "tess@example.com",
        "provider": "carddav",
        "settings": {"url": radicale.base_url, "username": "test", "password": password},
        "scopes": "contacts",
    }


def test_connect_an_account_over_http(app: App, radicale: RadicaleServer) -> None:
    before = len(app.accounts.list())
    # Node sends its JSON bodies as text/plain.
    answer = app.client.post(
        "/connect/authorize",
        content=orjson.dumps(_authorize_body(app, radicale, "secret")),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert answer.status_code == 200, answer.text
    code = answer.json()["code"]
    client = app.services.application.client()
    body = {"client_id": client.client_id, "client_secret": client.client_secret, "code": code}
    token = app.client.post("/connect/token", json=body)
    assert token.status_code == 200, token.text
    account = token.json()
    assert account["object"] == "account" and account["provider"] == "carddav"
    assert account["email_address"] == "tess@example.com" and account["sandbox"] is False
    assert account["access_token"]
    me = app.client.get("/account", auth=(account["access_token"], ""))
    assert me.json()["id"] == account["id"]
    assert len(app.accounts.list()) == before + 1
    # A code works once.
    again = app.client.post("/connect/token", json=body)
    assert again.status_code == 400 and again.json()["type"] == "auth_error"


def test_wrong_password_is_refused_and_nothing_is_saved(app: App, radicale: RadicaleServer) -> None:
    before = len(app.accounts.list())
    answer = app.client.post("/connect/authorize", json=_authorize_body(app, radicale, "nope"))
    assert answer.status_code == 403
    assert answer.json()["message"] == "You've entered invalid credentials"
    assert answer.json()["type"] == "auth_error"
    assert len(app.accounts.list()) == before


def test_missing_fields_are_named(app: App) -> None:
    client = app.services.application.client()
    answer = app.client.post("/connect/authorize", json={"client_id": client.client_id})
    assert answer.status_code == 400
    assert answer.json()["missing_fields"] == ["email_address", "provider", "settings"]


def test_token_needs_the_client_secret(app: App, radicale: RadicaleServer) -> None:
    code = app.client.post(
        "/connect/authorize", json=_authorize_body(app, radicale, "secret")
    ).json()["code"]
    client = app.services.application.client()
    wrong = {"client_id": client.client_id, "client_secret": "guess", "code": code}
    answer = app.client.post("/connect/token", json=wrong)
    assert answer.status_code == 401 and answer.json()["type"] == "auth_error"


def test_unknown_client_and_unsupported_provider(app: App, radicale: RadicaleServer) -> None:
    body = _authorize_body(app, radicale, "secret")
    assert app.client.post("/connect/authorize", json={**body, "client_id": "x"}).status_code == 401
    yahoo = app.client.post("/connect/authorize", json={**body, "provider": "yahoo"})
    assert yahoo.status_code == 400 and "cannot be connected" in yahoo.json()["message"]


def test_unreachable_server_is_a_provider_error(app: App, radicale: RadicaleServer) -> None:
    body = _authorize_body(app, radicale, "secret")
    body["settings"] = {"url": "http://127.0.0.1:9/", "username": "a", "password": "b"}
    answer = app.client.post("/connect/authorize", json=body)
    assert answer.status_code == 502 and answer.json()["type"] == "provider_error"


def test_sync_request_and_sync_state_on_the_account(app: App, radicale: RadicaleServer) -> None:
    local = app.new_account()
    assert local.client.post("/account/sync").json()["sync_state"] == "running"
    created = app.accounts.connect(
        "sync@example.com",
        name="Sync",
        provider="carddav",
        settings={"url": radicale.base_url, "username": "test", "password": "secret"},
    )
    client = app.client_for(created.access_token)
    account = client.get("/account").json()
    assert account["sync_state"] == "running" and account["last_synced_at"] is None
    assert client.post("/account/sync").status_code == 200
    due, _ = app.services.mirror.due(time.time() + 1)
    assert created.account.id in due


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email_address", "a" * 320 + "@example.com"),  # the column holds 320
        ("email_address", "tess\x00@example.com"),  # PostgreSQL text refuses NUL
        ("email_address", "tess\r\n@example.com"),
        ("email_address", "no-at-sign"),
        ("name", "n" * 1001),
        ("name", "Tess\x00"),
        ("name", 5),
    ],
)
def test_an_account_that_cannot_be_stored_is_a_400_before_the_server_is_asked(
    app: App, radicale: RadicaleServer, field: str, value: object
) -> None:
    # Else the server's check passed and storing the account failed (a 500 on PostgreSQL).
    body = {**_authorize_body(app, radicale, "secret"), field: value}
    answer = app.client.post("/connect/authorize", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"] == "invalid_request_error"


@pytest.mark.parametrize("url", ["http://0177.0.0.1/", "http://[::1/", "http://xn--a-:8/"])
def test_a_url_httpx_cannot_parse_is_a_provider_error_not_a_500(
    app: App, radicale: RadicaleServer, url: str
) -> None:
    # httpx.InvalidURL is no httpx.HTTPError, so it went unclassified: a 500.
    body = _authorize_body(app, radicale, "secret")
    body["settings"] = {"url": url, "username": "a", "password": "b"}
    answer = app.client.post("/connect/authorize", json=body)
    assert answer.status_code == 502, answer.text
    assert answer.json() == {
        "message": "Could not reach the server",
        "type": "provider_error",
        "server_error": "could not reach the server",
    }
