"""The Host header: picture links are built from ROLODEX_PUBLIC_URL or a Host that is a
valid host name (and one of ROLODEX_ALLOWED_HOSTS when set), always JSON-escaped; nothing a
client sends is spliced into a document unescaped."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from rolodex.api.app import create_app
from rolodex.api.deps import base_url
from rolodex.domain.errors import InvalidHost
from tests.api.test_pictures import PNG
from tests.conftest import ApiAccount, App

EVIL_HOSTS = [
    'evil","given_name":"X',
    'evil\\"',
    "evil/path",
    "evil host",
    "a" * 300,
    "evil:port",
]


def contact_with_picture(api: ApiAccount) -> str:
    cid: str = api.client.post("/contacts", json={"given_name": "Real"}).json()["id"]
    assert api.client.put(f"/contacts/{cid}/picture", content=PNG).status_code == 200
    return cid


@pytest.mark.parametrize("host", EVIL_HOSTS)
@pytest.mark.parametrize("where", ["get", "list", "update"])
def test_a_forged_host_never_reaches_the_document(api: ApiAccount, host: str, where: str) -> None:
    cid = contact_with_picture(api)
    headers = {"host": host}
    if where == "get":
        response = api.client.get(f"/contacts/{cid}", headers=headers)
    elif where == "list":
        response = api.client.get("/contacts", headers=headers)
    else:
        response = api.client.put(f"/contacts/{cid}", json={"surname": "S"}, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json() == {"message": "Invalid Host header", "type": "invalid_request_error"}
    # and the contact is as it was
    assert api.client.get(f"/contacts/{cid}").json()["given_name"] == "Real"


@pytest.mark.parametrize(
    "host", ["testserver", "example.com:8443", "127.0.0.1:5555", "[::1]:5555", "a-b.example."]
)
def test_valid_hosts_make_the_links(api: ApiAccount, host: str) -> None:
    cid = contact_with_picture(api)
    doc = api.client.get(f"/contacts/{cid}", headers={"host": host}).json()
    assert doc["picture_url"] == f"http://{host}/contacts/{cid}/picture"


def test_allowed_hosts_restrict_the_host(app: App) -> None:
    settings = dataclasses.replace(app.settings, allowed_hosts=("api.example.com", ".corp.test"))
    client = TestClient(create_app(settings, app.store))
    created = app.accounts.create("host@example.com")
    client.auth = (created.access_token, "")
    assert client.get("/contacts", headers={"host": "api.example.com"}).status_code == 200
    assert client.get("/contacts", headers={"host": "a.corp.test:80"}).status_code == 200
    refused = client.get("/contacts", headers={"host": "other.example.com"})
    assert refused.status_code == 400
    assert refused.json()["message"] == "Invalid Host header"


def test_the_public_url_wins_and_is_escaped(app: App) -> None:
    settings = dataclasses.replace(app.settings, public_url='https://x.test/a"b')
    assert base_url(settings, "http", 'evil","x') == b'https://x.test/a\\"b'
    with pytest.raises(InvalidHost):
        base_url(dataclasses.replace(app.settings, public_url=None), "http", 'evil","x')


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/contacts/groups/", 200),
        ("GET", "/account/?x=1&y=2", 200),
        ("POST", "/contacts/", 200),
        ("PUT", "/contacts/abc%20def/", 404),
        ("DELETE", "/contacts/abc/", 404),
        # The path it names ends in a slash once decoded: served as /account.
        ("GET", "/account/%2F", 200),
        ("GET", "/nothing/", 404),
    ],
)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8443"])
def test_a_trailing_slash_is_served_as_the_path_without_it(
    api: ApiAccount, host: str, method: str, path: str, status: int
) -> None:
    # v2 took a trailing slash (wire reference §2.2). A redirect would leave a client that
    # does not follow redirects with a 307 for its write; and one built from the Host,
    # which is any client's to send, would send the client there.
    response = api.client.request(
        method, path, headers={"host": host}, json={}, follow_redirects=False
    )
    assert response.status_code == status, response.text
    assert "location" not in response.headers


def test_a_path_served_without_its_trailing_slash_is_counted_by_its_route(
    api: ApiAccount,
) -> None:
    assert api.client.get("/contacts/groups/").status_code == 200
    text = api.client.get("/metrics").text
    assert 'route="/contacts/groups",status="200"' in text
