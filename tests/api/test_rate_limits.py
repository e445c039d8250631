"""Rate limits: v2's per account and endpoint, per application, and concurrency for list
and delta routes; stricter per client address for failed authentications and /connect/*.
Each refusal is a 429 in the v2 shape with X-RateLimit-Limit and X-RateLimit-Reset."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rolodex.api.app import create_app
from rolodex.api.fastpath import hot_read
from rolodex.api.observe import Observed
from rolodex.api.ratelimit import HOT_ENDPOINTS, RateLimits, endpoint
from tests.conftest import App


def limited_app(app: App, **limits: Any) -> TestClient:
    """An app of its own with rate limits on, counting alone (the session's store is
    shared by every test; tests/api/test_shared_rate_limits.py shares counts)."""
    limits.setdefault("rate_limit_share_seconds", 0)
    settings = dataclasses.replace(app.settings, rate_limits=True, **limits)
    return TestClient(create_app(settings, app.store))


def client_for(app: App, base: TestClient, **kwargs: Any) -> tuple[TestClient, str]:
    created = app.accounts.create("rate@example.com")
    client = TestClient(base.app, **kwargs)
    client.auth = (created.access_token, "")
    return client, created.access_token


def start_of_a_second() -> None:
    """Wait for a fresh one-second window (of the wall clock, as every process's are), so
    a burst is not split across two."""
    time.sleep(1 - time.time() % 1 + 0.01)


def assert_429(response: Any, limit: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["type"] == "invalid_request_error" and "Too many requests" in body["message"]
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert 1 <= int(response.headers["x-ratelimit-reset"]) <= 60
    assert response.headers["retry-after"] == response.headers["x-ratelimit-reset"]


def test_endpoints_blank_ids() -> None:
    assert endpoint("GET", "/contacts") == "GET /contacts"
    assert endpoint("GET", "/contacts/") == "GET /contacts"  # the list, and its concurrency
    assert endpoint("GET", "/contacts/abc123") == "GET /contacts/*"
    assert endpoint("PUT", "/contacts/abc/picture") == "PUT /contacts/*/picture"
    assert endpoint("GET", "/contacts/groups/") == "GET /contacts/groups"
    assert endpoint("POST", "/connect/token") == "POST /connect/token"


@pytest.mark.parametrize("path", ["/contacts", "/contacts/", "/contacts/abc123", "/contacts/x/"])
def test_hot_reads_are_counted_under_the_endpoint_their_path_names(path: str) -> None:
    # rolodex.api.observe names a hot read's endpoint by its route, without the split.
    matched = hot_read({"type": "http", "method": "GET", "path": path})
    assert matched is not None
    assert HOT_ENDPOINTS[matched[0]] == endpoint("GET", path)


def test_requests_with_a_request_id_are_counted_alike(app: App) -> None:
    # One scan of the headers finds both (rolodex.api.observe).
    base = limited_app(app, rate_limit_account=2)
    client, _ = client_for(app, base)
    start_of_a_second()
    for _ in range(2):
        assert client.get("/account").status_code == 200
    assert_429(client.get("/account", headers={"x-request-id": "abcdefgh12"}), 2)


def test_per_account_per_endpoint(app: App) -> None:
    base = limited_app(app, rate_limit_account=5)
    client, _ = client_for(app, base)
    other, _ = client_for(app, base)
    start_of_a_second()
    for _ in range(5):
        assert client.get("/contacts").status_code == 200
    assert_429(client.get("/contacts"), 5)
    assert_429(client.get("/contacts"), 5)
    assert client.get("/contacts/nope").status_code == 404  # another endpoint
    assert other.get("/contacts").status_code == 200  # another account
    time.sleep(1.05)
    assert client.get("/contacts").status_code == 200  # a new second


def spellings(token: str) -> list[str]:
    """Authorization headers that all name ``token`` (Basic ignores the password)."""
    basic = [base64.b64encode(f"{token}:{n}".encode()).decode() for n in range(4)]
    return [
        f"Bearer {token}",
        f"bearer {token}",
        f"Bearer  {token}",
        f"BEARER {token}",
        *(f"Basic {b}" for b in basic),
        f"basic {basic[0]}",
    ]


@pytest.mark.parametrize("path", ["/contacts", "/contacts/groups"])
def test_the_account_limit_counts_the_token_however_it_is_spelt(app: App, path: str) -> None:
    # Counted under the header as sent, each spelling of one token had a limit of its own.
    base = limited_app(app, rate_limit_account=5)
    client, token = client_for(app, base)
    client.auth = None
    start_of_a_second()
    statuses = [
        client.get(path, headers={"authorization": header}).status_code
        for header in spellings(token)
    ]
    assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}, statuses


@pytest.mark.parametrize("path", ["/contacts", "/contacts/groups", "/account"])
def test_two_authorization_headers_are_refused(app: App, path: str) -> None:
    # Which one would count? The fast reads took the last, the other routes and the rate
    # limits the first: a fresh first header each time escaped the account's limit.
    base = limited_app(app, rate_limit_account=1000)
    client, token = client_for(app, base)
    client.auth = None
    for headers in (
        [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")],
        [("authorization", "Bearer forged"), ("authorization", f"Bearer {token}")],
        [("authorization", f"Bearer {token}"), ("authorization", "Bearer forged")],
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json() == {
            "message": "Could not verify access credential.",
            "type": "invalid_request_error",
        }


def test_rate_limit_refusals_are_counted(app: App) -> None:
    base = limited_app(app, rate_limit_account=1)
    client, _ = client_for(app, base)
    start_of_a_second()
    client.get("/account")
    assert client.get("/account").status_code == 429
    metrics = base.get("/metrics").text
    assert 'rolodex_rate_limited_total{limit="account"}' in metrics


def test_failed_authentication_per_address(app: App) -> None:
    base = limited_app(app, rate_limit_auth_failures=3)
    good, _ = client_for(app, base, client=("10.0.0.1", 1234))
    bad = TestClient(base.app, client=("10.0.0.1", 1235))
    bad.auth = ("wrong-token", "")
    elsewhere, _ = client_for(app, base, client=("10.0.0.2", 1234))
    for _ in range(3):
        assert bad.get("/contacts").status_code == 401
    assert_429(bad.get("/contacts"), 3)
    assert_429(good.get("/contacts"), 3)  # the address is refused, whatever it sends
    assert elsewhere.get("/contacts").status_code == 200


def test_health_readiness_and_metrics_answer_an_address_refused_for_failures(app: App) -> None:
    """They authenticate nothing, and a load balancer or a monitor may share the address of
    whoever failed (behind a proxy, every client's): refused, the instance would be taken
    out of service by anyone sending a few wrong tokens."""
    base = limited_app(app, rate_limit_auth_failures=2)
    bad = TestClient(base.app, client=("10.0.0.7", 1))
    bad.auth = ("wrong-token", "")
    for _ in range(2):
        assert bad.get("/contacts").status_code == 401
    assert_429(bad.get("/contacts"), 2)
    monitor = TestClient(base.app, client=("10.0.0.7", 2))
    assert monitor.get("/health").json() == {"status": "ok"}
    assert monitor.get("/ready").status_code == 200
    assert "rolodex_http_requests_total" in monitor.get("/metrics").text
    assert_429(bad.get("/contacts"), 2)  # and the address is still refused


def test_connect_per_address(app: App) -> None:
    base = limited_app(app, rate_limit_connect=2)
    client = TestClient(base.app, client=("10.0.0.9", 1))
    for _ in range(2):
        assert client.post("/connect/token", json={}).status_code == 400
    assert_429(client.post("/connect/token", json={}), 2)
    other = TestClient(base.app, client=("10.0.0.10", 1))
    assert other.post("/connect/token", json={}).status_code == 400


def test_per_application_per_endpoint(app: App) -> None:
    base = limited_app(app, rate_limit_application=3, rate_limit_connect=1000)
    start_of_a_second()
    for n in range(3):
        client = TestClient(base.app, client=(f"10.1.0.{n}", 1))
        assert client.post("/connect/token", json={}).status_code == 400
    assert_429(TestClient(base.app, client=("10.1.1.1", 1)).post("/connect/token", json={}), 3)


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/contacts", 5),
        ("/contacts/", 5),  # the list too (was counted as a contact's read: unlimited)
        ("/delta/longpoll", 10),
        ("/delta/streaming", 10),
        ("/contacts/x", None),
    ],
)
def test_concurrency_per_account(app: App, path: str, limit: int | None) -> None:
    settings = dataclasses.replace(app.settings, rate_limits=True, rate_limit_account=10_000)
    release = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limits = RateLimits(settings)
    limited = Observed(slow, app.store, limits)

    async def call(token: bytes) -> int:
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "headers": [(b"authorization", token)],
            "client": ("127.0.0.1", 1),
        }
        statuses: list[int] = []

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await limited(scope, _receive, send)
        return statuses[0]

    async def scenario() -> tuple[list[int], int]:
        n = (limit or 12) + 1
        tasks = [asyncio.create_task(call(b"Bearer one")) for _ in range(n)]
        await asyncio.sleep(0.05)
        other = asyncio.create_task(call(b"Bearer two"))
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(*tasks)), await other

    statuses, other = asyncio.run(scenario())
    if limit is None:
        assert 429 not in statuses
    else:
        assert statuses.count(429) == 1 and statuses.count(200) == limit
    assert other == 200
    assert not limits._in_flight  # every slot given back


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_off_means_off(app: App) -> None:
    settings = dataclasses.replace(app.settings, rate_limits=False, rate_limit_account=1)
    base = TestClient(create_app(settings, app.store))
    client, _ = client_for(app, base)
    assert all(client.get("/contacts").status_code == 200 for _ in range(5))


def test_hosted_sign_in_pages_are_not_held_to_the_connect_limit(app: App) -> None:
    base = limited_app(app, rate_limit_connect=1, rate_limit_application=1000)
    client = TestClient(base.app, client=("10.1.2.3", 1))
    for _ in range(5):  # an error page (no client_id), never a 429
        assert client.get("/oauth/authorize").status_code == 400
    assert client.post("/oauth/token", data={}).status_code != 429
    assert_429(client.post("/oauth/token", data={}), 1)
