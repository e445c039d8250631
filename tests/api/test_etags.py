"""Optimistic concurrency beyond v2: GET answers an ETag, PUT and DELETE with If-Match
write only the version it names (412 otherwise, in the v2 error shape); without If-Match
the v2 behaviour is unchanged. On both backends, through the fast path and FastAPI."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from rolodex.api.app import create_app
from tests.api.test_isolation import PNG
from tests.conftest import ApiAccount, App


def _get(api: ApiAccount, contact_id: str) -> tuple[dict[str, Any], str]:
    response = api.client.get(f"/contacts/{contact_id}")
    assert response.status_code == 200
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    return response.json(), etag


def test_get_answers_an_etag_that_follows_every_change(any_app: App) -> None:
    api = any_app.new_account()
    made = api.client.post("/contacts", json={"given_name": "A"}).json()
    _, first = _get(api, made["id"])
    assert _get(api, made["id"])[1] == first  # stable (and cached) while unchanged
    put = api.client.put(f"/contacts/{made['id']}", json={"surname": "B"})
    assert put.status_code == 200
    _, second = _get(api, made["id"])
    assert second != first and put.headers["etag"] == second
    # Any writer moves it: a picture, a group renamed (not only PUT).
    assert api.client.put(f"/contacts/{made['id']}/picture", content=PNG).status_code == 200
    _, third = _get(api, made["id"])
    assert third not in (first, second)
    # The tag names the stored document, not the Host it was served under.
    other = TestClient(any_app.client.app, base_url="http://other.example")
    other.auth = api.client.auth
    assert other.get(f"/contacts/{made['id']}").headers["etag"] == third


def test_put_with_if_match(any_app: App) -> None:
    api = any_app.new_account()
    cid = api.client.post("/contacts", json={"given_name": "A"}).json()["id"]
    _, etag = _get(api, cid)
    ok = api.client.put(f"/contacts/{cid}", json={"surname": "S"}, headers={"If-Match": etag})
    assert ok.status_code == 200 and ok.json()["surname"] == "S"
    stale = api.client.put(f"/contacts/{cid}", json={"surname": "lost"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json() == {
        "message": f"Contact {cid} has changed since the version If-Match names; read it again",
        "type": "invalid_request_error",
    }
    assert _get(api, cid)[0]["surname"] == "S"
    current = ok.headers["etag"]
    listed = f'"nope", {current}'
    for header, notes in ((listed, "listed"), ("*", "any")):
        put = api.client.put(
            f"/contacts/{cid}", json={"notes": notes}, headers={"If-Match": header}
        )
        assert put.status_code == 200
        current = put.headers["etag"]
    # Strong comparison: a weak tag never matches (RFC 9110, 13.1.1).
    weak = api.client.put(
        f"/contacts/{cid}", json={"notes": "w"}, headers={"If-Match": "W/" + current}
    )
    assert weak.status_code == 412
    # Without If-Match: v2, last writer wins.
    assert api.client.put(f"/contacts/{cid}", json={"notes": "v2"}).status_code == 200


def test_delete_with_if_match(any_app: App) -> None:
    api = any_app.new_account()
    cid = api.client.post("/contacts", json={"given_name": "A"}).json()["id"]
    _, etag = _get(api, cid)
    api.client.put(f"/contacts/{cid}", json={"surname": "changed"})
    refused = api.client.delete(f"/contacts/{cid}", headers={"If-Match": etag})
    assert refused.status_code == 412 and set(refused.json()) == {"message", "type"}
    assert api.client.get(f"/contacts/{cid}").status_code == 200
    _, etag = _get(api, cid)
    assert api.client.delete(f"/contacts/{cid}", headers={"If-Match": etag}).json() == {}
    gone = api.client.delete(f"/contacts/{cid}", headers={"If-Match": etag})
    assert gone.status_code == 404  # like any missing contact, with or without If-Match


def test_the_documented_route_answers_the_same_etag(app: App) -> None:
    api = app.new_account()
    cid = api.client.post("/contacts", json={"given_name": "A"}).json()["id"]
    fast = api.client.get(f"/contacts/{cid}")
    plain = TestClient(create_app(app.settings, app.store, fast_reads=False))
    plain.auth = api.client.auth
    routed = plain.get(f"/contacts/{cid}")
    assert routed.headers["etag"] == fast.headers["etag"]
    assert routed.content == fast.content


def test_openapi_documents_etag_and_if_match(app: App) -> None:
    spec = app.client.get("/openapi.json").json()
    one = spec["paths"]["/contacts/{contact_id}"]
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    for method in ("put", "delete"):
        names = {p["name"].lower() for p in one[method]["parameters"]}
        assert "if-match" in names
        assert "412" in one[method]["responses"]
