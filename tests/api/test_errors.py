"""Bad input: each refusal is a 4xx in the v2 error shape naming the field, nothing is
written, and no request at all makes the server answer 500 (on either backend)."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ApiAccount, App


def assert_v2_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("message"), str) and body["message"]
    assert body["type"] == "invalid_request_error"
    return body


def fields_named(body: dict[str, Any]) -> set[str]:
    return {v["field"] for v in body.get("violations", [])}


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("wrong type of scalar", {"given_name": 5}, "given_name"),
    ("list is not a list", {"emails": "a@b.c"}, "emails"),
    ("item is not an object", {"emails": ["a@b.c"]}, "emails[0]"),
    ("item without its value", {"emails": [{"type": "work"}]}, "emails[0].email"),
    ("number is not a string", {"phone_numbers": [{"number": 5}]}, "phone_numbers[0].number"),
    ("type is not a string", {"web_pages": [{"type": 1, "url": "u"}]}, "web_pages[0].type"),
    ("birthday is not a date", {"birthday": "1960-13-01"}, "birthday"),
    ("birthday with a time", {"birthday": "1960-12-31T00:00:00Z"}, "birthday"),
    ("birthday as a number", {"birthday": 19601231}, "birthday"),
    (
        "unstructured address",
        {"physical_addresses": [{"format": "unstructured", "address": "1 Main St"}]},
        "physical_addresses[0].format",
    ),
    (
        "address part not a string",
        {"physical_addresses": [{"city": 7}]},
        "physical_addresses[0].city",
    ),
    ("name too long", {"surname": "s" * 1001}, "surname"),
    ("notes too long", {"notes": "n" * 10_001}, "notes"),
    ("value too long", {"emails": [{"email": "e" * 1001 + "@x.io"}]}, "emails[0].email"),
    ("too many items", {"emails": [{"email": f"p{n}@x.io"} for n in range(101)]}, "emails"),
    ("way too many items", {"web_pages": [{"url": "u"}] * 1001}, "web_pages"),
    ("group is not a string", {"group": ["g"]}, "group"),
    ("NUL in a name", {"given_name": "a\x00b"}, "given_name"),
    ("NUL in an email", {"emails": [{"email": "a\x00@x.io"}]}, "emails[0].email"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies_name_the_field_and_write_nothing(
    any_app: App, case: str, body: dict[str, Any], field: str
) -> None:
    api = any_app.new_account()
    original = api.client.post("/contacts", json={"given_name": "Original"}).json()
    created = api.client.post("/contacts", json=body)
    assert field in fields_named(assert_v2_error(created, 400)), case
    updated = api.client.put(f"/contacts/{original['id']}", json=body)
    assert field in fields_named(assert_v2_error(updated, 400)), case
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 1}
    assert api.client.get(f"/contacts/{original['id']}").json() == original


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "Empty request body"),
        (b"   ", "Empty request body"),
        (b"{", "Request body is not valid JSON"),
        (b"given_name=x", "Request body is not valid JSON"),
        (b"[]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (b"null", "Request body must be a JSON object"),
        (b"\xff\xfe", "Request body is not valid JSON"),
        (b"[" * 5000, "Request body is not valid JSON"),
    ],
)
def test_malformed_bodies_are_400_and_write_nothing(
    api: ApiAccount, raw: bytes, message: str
) -> None:
    original = api.client.post("/contacts", json={"given_name": "Original"}).json()
    for method, path in (("POST", "/contacts"), ("PUT", f"/contacts/{original['id']}")):
        response = api.client.request(method, path, content=raw)
        assert assert_v2_error(response, 400)["message"].startswith(message)
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 1}
    assert api.client.get(f"/contacts/{original['id']}").json() == original


def test_body_over_1_mb_is_413_and_writes_nothing(api: ApiAccount) -> None:
    original = api.client.post("/contacts", json={"given_name": "Original"}).json()
    big = b'{"notes": "' + b"n" * (1024 * 1024) + b'"}'
    for method, path in (("POST", "/contacts"), ("PUT", f"/contacts/{original['id']}")):
        response = api.client.request(method, path, content=big)
        assert "larger than the limit" in assert_v2_error(response, 413)["message"]
    # Also when the client does not declare a length (chunked upload).
    chunked = api.client.post("/contacts", content=iter([big[:600_000], big[600_000:]]))
    assert_v2_error(chunked, 413)
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 1}
    assert api.client.get(f"/contacts/{original['id']}").json() == original


def test_empty_string_means_empty(api: ApiAccount) -> None:
    body = api.client.post(
        "/contacts", json={"given_name": "", "birthday": "", "notes": "  ", "group": ""}
    ).json()
    assert (body["given_name"], body["birthday"], body["notes"], body["groups"]) == (
        None,
        None,
        None,
        [],
    )


@pytest.mark.parametrize("path", ["/contacts", "/contacts/groups", "/connect/authorize"])
def test_a_client_gone_before_its_body_arrived_is_no_server_error(
    app: App, api: ApiAccount, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The body's read ended in ClientDisconnect: logged as an unexpected error with its
    # traceback (twice), counted as a 500, for any client that hangs up mid-body.
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {api.token}".encode()),
            (b"content-length", b"100"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    messages = iter([{"type": "http.request", "body": b"{", "more_body": True}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    caplog.set_level(logging.ERROR)
    anyio.run(app.client.app, scope, receive, send)
    assert sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_unknown_routes_and_methods_answer_in_the_v2_shape(api: ApiAccount) -> None:
    assert api.client.get("/nope").json()["message"]
    response = api.client.patch("/contacts")
    assert response.status_code == 405
    assert set(response.json()) >= {"message", "type"}


def test_routing_errors_are_api_errors_as_in_v2(api: ApiAccount) -> None:
    # The v2 engine answered the framework's own errors (no such route, no such method) as
    # api_error, and its API's refusals as invalid_request_error (wire reference §5.2).
    for response in (api.client.get("/nope"), api.client.patch("/contacts")):
        assert response.json()["type"] == "api_error", response.text
    assert api.client.get("/contacts/nonexistent").json()["type"] == "invalid_request_error"


def test_a_method_not_allowed_names_the_methods_that_are(api: ApiAccount) -> None:
    # RFC 9110 §15.5.6: a 405 carries Allow; the v2 shape of its body must not lose it.
    response = api.client.patch("/contacts")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    cursor = api.client.get("/delta/latest_cursor")
    assert cursor.status_code == 405
    assert cursor.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/contacts", {"params": {"email": "a\x00b"}}),
        ("GET", "/contacts", {"params": {"group": "g\x00"}}),
        ("GET", "/contacts", {"params": {"offset": str(10**30)}}),
        ("GET", "/contacts", {"params": {"view": "ids", "offset": str(2**63)}}),
    ],
)
def test_query_values_no_database_can_hold_are_400(
    any_app: App, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    api = any_app.new_account()
    assert_v2_error(api.client.request(method, path, **kwargs), 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/contacts/a%00b"),
        ("PUT", "/contacts/a%00b"),
        ("DELETE", "/contacts/a%00b"),
        ("GET", "/contacts/a%00b/picture"),
        ("DELETE", "/contacts/a%00b/picture"),
        ("PUT", "/contacts/groups/a%00b"),
        ("DELETE", "/contacts/groups/a%00b"),
    ],
)
def test_ids_no_database_can_hold_are_404(any_app: App, method: str, path: str) -> None:
    api = any_app.new_account()
    assert_v2_error(api.client.request(method, path, json={"name": "x"}), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/accounts/a%00b"),
        ("DELETE", "/accounts/a%00b"),
        ("POST", "/accounts/a%00b/revoke-all"),
        ("POST", "/accounts/a%00b/token-info"),
    ],
)
def test_account_ids_no_database_can_hold_are_404(any_app: App, method: str, path: str) -> None:
    client = any_app.services.application.client()
    answer = any_app.client.request(
        method,
        f"/a/{client.client_id}{path}",
        json={"access_token": "x"},
        auth=(client.client_secret, ""),
    )
    assert_v2_error(answer, 404)


@pytest.mark.parametrize("client_id", ["%C3%A3%01", "%F3%AF%8A%84", "%0C%23"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("GET", "/accounts"),
        ("DELETE", "/accounts/x"),
        ("POST", "/accounts/x/revoke-all"),
    ],
)
def test_a_client_id_of_any_text_is_refused_not_a_500(
    any_app: App, client_id: str, method: str, path: str
) -> None:
    # hmac.compare_digest raises on non-ASCII text: the comparison must take any text.
    client = any_app.services.application.client()
    answer = any_app.client.request(
        method, f"/a/{client_id}{path}", auth=(client.client_secret, "")
    )
    assert_v2_error(answer, 401)


def test_a_client_secret_of_any_text_is_refused_not_a_500(any_app: App) -> None:
    client = any_app.services.application.client()
    body = {"client_id": client.client_id, "client_secret": "ã", "code": "x"}
    answer = any_app.client.post("/connect/token", json=body)
    assert answer.status_code == 401, answer.text
    assert answer.json()["type"] == "auth_error"
    # A lone surrogate is valid JSON text that Python's str.encode() refuses.
    raw = json.dumps(body).replace("\\u00e3", "\\ud800")
    answer = any_app.client.post(
        "/connect/token", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_v2_error(answer, 400)


def test_a_redirect_uri_no_database_can_hold_is_a_page_not_a_500(any_app: App) -> None:
    client = any_app.services.application.client()
    answer = any_app.client.get(
        "/oauth/authorize",
        params={"client_id": client.client_id, "redirect_uri": "a\x00b", "response_type": "code"},
    )
    assert answer.status_code == 400, answer.text


# Fuzzing: no request answers 500 -----------------------------------------------------------

# Text and numbers lean towards what databases choke on: NUL, huge integers, edge spacing.
texts = st.text(max_size=20) | st.sampled_from(["", " ", "\x00", "a\x00b", "x" * 1001, "🙂"])
numbers = st.sampled_from([str(2**63), str(10**30), "-1", "1_0", "1e3", " 5", "0", "1000"])
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = [
    "given_name", "surname", "birthday", "notes", "emails", "phone_numbers", "im_addresses",
    "physical_addresses", "web_pages", "group", "groups", "picture_url", "id", "name",
]  # fmt: skip
ITEM_KEYS = [
    "type", "email", "number", "url", "im_address", "format", "street_address", "city",
    "postal_code", "state", "country", "imAddress", "streetAddress",
]  # fmt: skip
item = st.dictionaries(st.sampled_from(ITEM_KEYS), texts | json_values, max_size=5)
contact_bodies = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=8),
    texts | json_values | st.lists(item, max_size=3),
    max_size=6,
)
QUERY_KEYS = [
    "limit", "offset", "view", "email", "phone_number", "street_address", "postal_code",
    "state", "country", "source", "group", "recurse", "junk",
]  # fmt: skip
query_strings = st.dictionaries(
    st.sampled_from(QUERY_KEYS),
    texts | numbers | st.integers(-5, 2**70).map(str) | st.sampled_from(["count", "ids"]),
    max_size=4,
)


def _assert_sane(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["message"], str) and body["type"] == "invalid_request_error"


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=contact_bodies | json_values, params=query_strings)
# What once answered 500, always tried first.
@example(body={"emails": [{"email": "a\x00@x.io"}]}, params={"offset": str(2**64)})
@example(body={"name": "x\x00"}, params={"email": "a\x00", "view": "ids"})
def test_random_bodies_and_queries_never_answer_500(
    any_app: App, body: Any, params: dict[str, str]
) -> None:
    client = _fuzz_client(any_app)
    _assert_sane(client.post("/contacts", json=body))
    _assert_sane(client.put(f"/contacts/{_fuzz_target(any_app)}", json=body))
    _assert_sane(client.get("/contacts", params=params))
    _assert_sane(client.post("/contacts/groups", json=body))


_FUZZ: dict[str, tuple[TestClient, str]] = {}


def _fuzz_client(any_app: App) -> TestClient:
    if any_app.store.url not in _FUZZ:
        api = any_app.new_account()
        target = api.client.post("/contacts", json={"given_name": "target"}).json()["id"]
        _FUZZ[any_app.store.url] = (api.client, target)
    return _FUZZ[any_app.store.url][0]


def _fuzz_target(any_app: App) -> str:
    return _FUZZ[any_app.store.url][1]
