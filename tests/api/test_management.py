"""v2's application routes (/a/{client_id}/accounts...): the client secret, and only it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiAccount, App

UNAUTHORIZED = {"message": "Could not verify access credential.", "type": "invalid_request_error"}


def admin(app: App) -> tuple[str, TestClient]:
    client = app.services.application.client()
    session = TestClient(app.client.app, base_url="http://testserver")
    session.auth = (client.client_secret, "")
    return client.client_id, session


def listed(app: App, **params: Any) -> list[dict[str, Any]]:
    cid, session = admin(app)
    response = session.get(f"/a/{cid}/accounts", params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def test_accounts_are_listed_and_read_in_the_management_shape(app: App) -> None:
    mine = [app.new_account(email=f"m{i}@example.com") for i in range(3)]
    everyone = listed(app, limit=1000)
    ids = [a["id"] for a in everyone]
    assert [ids.index(m.id) for m in mine] == sorted(ids.index(m.id) for m in mine)
    first = next(a for a in everyone if a["id"] == mine[0].id)
    assert first == {
        "id": mine[0].id,
        "object": "account",
        "account_id": mine[0].id,
        "namespace_id": mine[0].id,
        "email": "m0@example.com",
        "name": "Test User",
        "provider": "local",
        "sync_state": "running",
        "billing_state": "paid",
        "trial": False,
        "linked_at": first["linked_at"],
    }
    assert isinstance(first["linked_at"], int)
    at = ids.index(mine[1].id)
    assert [a["id"] for a in listed(app, offset=at, limit=2)] == ids[at : at + 2]
    cid, session = admin(app)
    one = session.get(f"/a/{cid}/accounts/{mine[2].id}", params={"offset": 0})
    assert one.status_code == 200 and one.json()["email"] == "m2@example.com"
    missing = session.get(f"/a/{cid}/accounts/nosuchaccount")
    assert missing.status_code == 404
    assert missing.json() == {
        "message": "The account does not exist.",
        "type": "invalid_request_error",
    }
    bad = session.get(f"/a/{cid}/accounts", params={"limit": 1001})
    assert bad.status_code == 400


@pytest.mark.parametrize("how", ["access token", "wrong secret", "no credentials", "client id"])
def test_anything_but_the_client_secret_is_401(app: App, api: ApiAccount, how: str) -> None:
    cid, session = admin(app)
    path = f"/a/{cid}/accounts"
    if how == "access token":
        # What the Python SDK sends when built with one: it must not list every account.
        response = api.client.get(path, headers={"Authorization": f"Bearer {api.token}"})
    elif how == "wrong secret":
        response = app.client_for("not-the-secret").get(path)
    elif how == "no credentials":
        response = TestClient(app.client.app).get(path)
    else:
        response = session.get("/a/someoneelse/accounts")
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_revoke_all_keeps_the_token_asked_for_and_delete_removes_the_account(app: App) -> None:
    account = app.new_account()
    kept = app.accounts.issue_token(account.id)
    other = app.accounts.issue_token(account.id)
    cid, session = admin(app)
    answer = session.post(
        f"/a/{cid}/accounts/{account.id}/revoke-all", json={"keep_access_token": kept}
    )
    assert answer.status_code == 200 and answer.json() == {"success": True}
    assert app.client_for(kept).get("/account").status_code == 200
    assert app.client_for(other).get("/account").status_code == 401
    assert account.client.get("/account").status_code == 401
    bare = session.post(f"/a/{cid}/accounts/{account.id}/revoke-all")
    assert bare.status_code == 200
    assert app.client_for(kept).get("/account").status_code == 401
    survivor = app.new_account()
    gone = session.delete(f"/a/{cid}/accounts/{account.id}")
    assert gone.status_code == 200 and gone.json() == {"success": True}
    assert session.get(f"/a/{cid}/accounts/{account.id}").status_code == 404
    assert session.delete(f"/a/{cid}/accounts/{account.id}").status_code == 404
    assert survivor.client.get("/account").status_code == 200


def test_token_info_says_when_a_token_of_the_account_was_made(app: App) -> None:
    account = app.new_account()
    other = app.new_account()
    cid, session = admin(app)
    path = f"/a/{cid}/accounts/{account.id}/token-info"
    info = session.post(path, json={"access_token": account.token})
    assert info.status_code == 200, info.text
    body = info.json()
    assert set(body) == {"created_at", "scopes", "state", "updated_at"}
    assert body["state"] == "valid" and body["scopes"] == "contacts"
    assert isinstance(body["created_at"], int) and body["updated_at"] == body["created_at"]
    # Another account's token is no token of this one.
    assert session.post(path, json={"access_token": other.token}).status_code == 404
    assert session.post(path, json={"access_token": "nonsense"}).status_code == 404
    missing = session.post(path, json={})
    assert missing.status_code == 400
    assert missing.json()["message"] == "No access_token passed."


def test_application_details(app: App) -> None:
    cid, session = admin(app)
    details = session.get(f"/a/{cid}")
    assert details.status_code == 200, details.text
    assert details.json() == {
        "application_name": "Rolodex",
        "icon_url": None,
        "redirect_uris": app.services.signin.redirect_uris(),
    }
    assert app.client_for("wrong").get(f"/a/{cid}").status_code == 401
