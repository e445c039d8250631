"""The hot reads over HTTP with the read cache: absolute picture URLs per request, the
plain-paging shortcut parsing exactly as the general parser, the cache's setting."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from fastapi.testclient import TestClient

from rolodex.api.fastpath import paging_query
from rolodex.config import Settings
from rolodex.domain.errors import InvalidQuery
from rolodex.domain.query import parse_list_query
from tests.api.test_pictures import PNG
from tests.conftest import ApiAccount, App


def test_picture_urls_follow_each_request_host(app: App, api: ApiAccount) -> None:
    cid = api.client.post("/contacts", json={"given_name": "Pic"}).json()["id"]
    assert api.client.put(f"/contacts/{cid}/picture", content=PNG).status_code == 200
    other = TestClient(app.client.app, base_url="http://other.example:8080")
    other.auth = api.client.auth
    for _ in range(2):  # the second round is answered from the cache
        for client, base in (
            (api.client, "http://testserver"),
            (other, "http://other.example:8080"),
        ):
            listed = client.get("/contacts", params={"limit": 10}).json()
            assert listed[0]["picture_url"] == f"{base}/contacts/{cid}/picture"
            one = client.get(f"/contacts/{cid}").json()
            assert one["picture_url"] == f"{base}/contacts/{cid}/picture"


def test_a_write_is_seen_by_the_next_cached_read(api: ApiAccount) -> None:
    cid = api.client.post("/contacts", json={"given_name": "Before"}).json()["id"]
    for _ in range(2):
        assert api.client.get("/contacts").json()[0]["given_name"] == "Before"
        assert api.client.get(f"/contacts/{cid}").json()["given_name"] == "Before"
    api.client.put(f"/contacts/{cid}", json={"given_name": "After"})
    assert api.client.get("/contacts").json()[0]["given_name"] == "After"
    assert api.client.get(f"/contacts/{cid}").json()["given_name"] == "After"
    api.client.delete(f"/contacts/{cid}")
    assert api.client.get("/contacts").json() == []
    gone = api.client.get(f"/contacts/{cid}")
    assert gone.status_code == 404 and gone.json()["type"] == "invalid_request_error"


QUERIES = [
    "",
    "limit=100&offset=4500",
    "offset=0",
    "limit=0",
    "limit=1000",
    "limit=1001",
    "limit=01000",
    "limit=007&offset=0009",
    "offset=999999999999999999",
    "offset=9223372036854775807",
    "offset=9223372036854775808",
    "limit=",
    "limit=-1",
    "limit=+5",
    "limit=1e3",
    "limit=%31",
    "limit=5&limit=6",
    "offset=1&offset=1",
    "limit=5&",
    "&limit=5",
    "limit=5&view=ids",
    "limit=5;offset=3",
    "LIMIT=5",
    "limit",
    "offset=\u0661",
    "limit=5&email=a@b.c",
]


@pytest.mark.parametrize("query_string", QUERIES)
def test_the_paging_shortcut_agrees_with_the_parser(query_string: str) -> None:
    try:
        expected = parse_list_query(parse_qs(query_string, keep_blank_values=True))
    except InvalidQuery:
        expected = None
    fast = paging_query(query_string.encode())
    if fast is not None:  # where it answers, it answers the same
        assert fast == expected
    if query_string in ANSWERED:  # and it answers what the SDKs send
        assert fast is not None


ANSWERED = {
    "",
    "limit=100&offset=4500",
    "offset=0",
    "limit=0",
    "limit=1000",
    "limit=007&offset=0009",
}


def test_the_cache_size_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLODEX_READ_CACHE_MB", "0.5")
    assert Settings().read_cache_bytes == 512 * 1024
    monkeypatch.setenv("ROLODEX_READ_CACHE_MB", "0")
    assert Settings().read_cache_bytes == 0
    monkeypatch.delenv("ROLODEX_READ_CACHE_MB")
    assert Settings().read_cache_bytes == 128 * 1024 * 1024
