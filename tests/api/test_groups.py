"""Contact groups: the v2 list, and writes for accounts whose groups live in Rolodex."""

from __future__ import annotations

from typing import Any

import pytest

from rolodex.service.credentials import CredentialBox
from tests.conftest import ApiAccount, App


def make_group(api: ApiAccount, name: str) -> dict[str, Any]:
    response = api.client.post("/contacts/groups", json={"name": name})
    assert response.status_code == 200, response.text
    group: dict[str, Any] = response.json()
    return group


def test_list_create_rename_delete(any_app: App) -> None:
    api = any_app.new_account()
    assert api.client.get("/contacts/groups").json() == []
    work = make_group(api, "  Work ")
    assert work == {
        "id": work["id"],
        "object": "contact_group",
        "account_id": api.id,
        "name": "Work",
        "path": "Work",
    }
    friends = make_group(api, "Friends")
    assert api.client.get("/contacts/groups").json() == [friends, work]
    a = api.client.post("/contacts", json={"given_name": "A", "group": work["id"]}).json()
    b = api.client.post("/contacts", json={"given_name": "B", "group": work["id"]}).json()
    api.client.put(f"/contacts/{b['id']}", json={"group": friends["id"]})

    renamed = api.client.put(f"/contacts/groups/{work['id']}", content=b'{"name":"Job"}')
    assert renamed.status_code == 200
    assert renamed.json() == {**work, "name": "Job", "path": "Job"}
    # Members carry the new name, in reads and lists alike.
    for contact in (a, b):
        names = {g["name"] for g in api.client.get(f"/contacts/{contact['id']}").json()["groups"]}
        assert "Job" in names and "Work" not in names
    listed = {c["id"]: c for c in api.client.get("/contacts").json()}
    assert {g["name"] for g in listed[a["id"]]["groups"]} == {"Job"}

    deleted = api.client.delete(f"/contacts/groups/{work['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert api.client.get("/contacts/groups").json() == [friends]
    # The contacts stay; only the membership goes.
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 2}
    assert api.client.get(f"/contacts/{a['id']}").json()["groups"] == []
    assert [g["id"] for g in api.client.get(f"/contacts/{b['id']}").json()["groups"]] == [
        friends["id"]
    ]
    assert api.client.get("/contacts", params={"group": work["id"]}).json() == []
    for method in ("PUT", "DELETE"):
        gone = api.client.request(method, f"/contacts/groups/{work['id']}", json={"name": "x"})
        assert gone.status_code == 404


def test_duplicate_names_are_409(any_app: App) -> None:
    api = any_app.new_account()
    make_group(api, "Work")
    other = make_group(api, "Other")
    for response in (
        api.client.post("/contacts/groups", json={"name": "Work"}),
        api.client.put(f"/contacts/groups/{other['id']}", json={"name": "Work"}),
    ):
        assert response.status_code == 409
        assert response.json() == {
            "message": "A contact group named 'Work' already exists",
            "type": "invalid_request_error",
        }
    assert [g["name"] for g in api.client.get("/contacts/groups").json()] == ["Other", "Work"]
    # Another account may use the same name.
    make_group(any_app.new_account(), "Work")


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "  "}, {"name": 5}, {"name": "a/b"}, {"name": "x" * 1001}]
)
def test_bad_names_are_400_and_write_nothing(api: ApiAccount, body: dict[str, Any]) -> None:
    group = make_group(api, "Keep")
    for response in (
        api.client.post("/contacts/groups", json=body),
        api.client.put(f"/contacts/groups/{group['id']}", json=body),
    ):
        assert response.status_code == 400
        assert "name" in response.json()["message"]
    assert api.client.get("/contacts/groups").json() == [group]


def test_sandbox_accounts_write_groups(any_app: App) -> None:
    api = any_app.new_account(provider="google")
    group = make_group(api, "Label")
    contact = api.client.post("/contacts", json={"group": group["id"]}).json()
    assert [g["id"] for g in contact["groups"]] == [group["id"]]


def test_connected_provider_accounts_refuse_group_writes(app: App) -> None:
    box = CredentialBox.from_settings(app.settings)
    from rolodex.service.accounts import AccountService

    created = AccountService(app.store, box).create(
        "c@example.com",
        provider="carddav",
        connection={"url": "https://dav.example/", "username": "u", "password": "p"},
    )
    assert created.account.is_connected
    client = app.client
    headers = {"Authorization": f"Bearer {created.access_token}"}
    assert client.get("/contacts/groups", headers=headers).json() == []
    for method, path in [
        ("POST", "/contacts/groups"),
        ("PUT", "/contacts/groups/anything"),
        ("DELETE", "/contacts/groups/anything"),
    ]:
        response = client.request(method, path, json={"name": "N"}, headers=headers)
        assert response.status_code == 400, response.text
        assert "cannot be changed" in response.json()["message"]
    assert client.get("/contacts/groups", headers=headers).json() == []


def _connected(app: App, provider: str, connection: dict[str, str]) -> tuple[Any, dict[str, str]]:
    from rolodex.service.accounts import AccountService

    created = AccountService(app.store, CredentialBox.from_settings(app.settings)).create(
        f"{provider}@example.com", provider=provider, connection=connection
    )
    assert created.account.is_connected
    return created.account, {"Authorization": f"Bearer {created.access_token}"}


GOOGLE = {
    "google_client_id": "id",
    "google_client_secret": "secret",
    "google_refresh_token": "refresh",
}


def test_connected_google_accounts_write_groups_through_the_outbox(app: App) -> None:
    account, headers = _connected(app, "google", GOOGLE)
    client = app.client
    made = client.post("/contacts/groups", json={"name": "Team"}, headers=headers)
    assert made.status_code == 200, made.text
    group = made.json()
    assert (group["name"], group["path"]) == ("Team", "Team")
    renamed = client.put(f"/contacts/groups/{group['id']}", json={"name": "Crew"}, headers=headers)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Crew"
    assert client.delete(f"/contacts/groups/{group['id']}", headers=headers).status_code == 200
    with app.store.read() as tx:
        waiting = tx.outbox.pending(account.id, now=float("inf"))
    assert [(i.object_type, i.object_id, i.operation) for i in waiting] == [
        ("contact_group", group["id"], "create"),
        ("contact_group", group["id"], "update"),
        ("contact_group", group["id"], "delete"),
    ]


def test_groups_the_provider_keeps_are_refused_with_the_reason(app: App) -> None:
    from rolodex.domain.contact import ContactFields
    from rolodex.domain.remote import RemoteContact
    from rolodex.service.mirror import Mirror

    account, headers = _connected(app, "google", GOOGLE)
    # A sync brought a contact starred at Google.
    person = RemoteContact("people/c1", "e1", "people/me", ContactFields(), ("Starred",))
    Mirror(app.store).apply(account, [person])
    (starred,) = app.client.get("/contacts/groups", headers=headers).json()
    for method in ("PUT", "DELETE"):
        response = app.client.request(
            method, f"/contacts/groups/{starred['id']}", json={"name": "Stars"}, headers=headers
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["type"] == "invalid_request_error"
        assert "'Starred' cannot be renamed or deleted" in body["message"]
        assert "Google's system groups" in body["message"]
    with app.store.read() as tx:
        assert tx.outbox.count(account.id) == 0


def test_microsoft_groups_are_folders_in_the_default_one(app: App) -> None:
    _account, headers = _connected(
        app,
        "microsoft",
        {
            "microsoft_client_id": "id",
            "microsoft_client_secret": "secret",
            "microsoft_refresh_token": "refresh",
            "redirect_uri": "http://localhost/cb",
        },
    )
    made = app.client.post("/contacts/groups", json={"name": "Friends"}, headers=headers)
    assert made.status_code == 200, made.text
    assert (made.json()["name"], made.json()["path"]) == ("Friends", "Contacts/Friends")
