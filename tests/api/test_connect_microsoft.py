"""v2 native authentication of a Microsoft account (provider office365), end to end against
the Graph emulator: connect, sync both ways, a refused grant, and picture deletes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rolodex.cli.sync import make_runner
from tests.conftest import App
from tests.emulators.microsoft import GraphEmulator


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    with GraphEmulator(email=f"{uuid.uuid4().hex[:8]}@contoso.example") as emulator:
        monkeypatch.setenv("ROLODEX_MICROSOFT_GRAPH_URL", emulator.graph_url)
        monkeypatch.setenv("ROLODEX_MICROSOFT_LOGIN_URL", emulator.login_url)
        yield emulator


def _body(app: App, graph: GraphEmulator, refresh_token: str, provider: str) -> dict[str, Any]:
    return {
        "client_id": app.services.application.client().client_id,
        "name": "Adele Vance",
        "email_address": graph.email,
        "provider": provider,
        "settings": {
            "microsoft_client_id": graph.client_id,
            "microsoft_client_secret": graph.client_secret,
            "microsoft_refresh_token": refresh_token,
            "redirect_uri": "http://localhost:8400/callback",
        },
        "scopes": "contacts",
    }


def _connect(
    app: App, graph: GraphEmulator, provider: str = "office365", refresh: str | None = None
) -> dict[str, Any]:
    answer = app.client.post(
        "/connect/authorize", json=_body(app, graph, refresh or graph.refresh_token, provider)
    )
    assert answer.status_code == 200, answer.text
    client = app.services.application.client()
    token = app.client.post(
        "/connect/token",
        json={
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "code": answer.json()["code"],
        },
    )
    assert token.status_code == 200, token.text
    account: dict[str, Any] = token.json()
    return account


def test_connect_office365_and_sync_both_ways(app: App, graph: GraphEmulator) -> None:
    friends = graph.add_folder("Friends")
    graph.add_contact({"givenName": "Ann", "surname": "Outlook"}, folder=friends)
    account = _connect(app, graph)
    assert account["provider"] == "microsoft" and account["sandbox"] is False
    # The check refreshed the grant: the token stored is the new one, the old one is dead.
    stored = app.accounts.connection(account["id"])
    assert stored is not None
    assert stored["microsoft_refresh_token"] in graph.refresh_tokens
    assert stored["tenant"] == "common"
    assert graph.graph_requests("GET")  # one Graph call checked it
    user = app.client_for(account["access_token"])
    make_runner(app.settings, app.store).run(account["id"])
    contacts = user.get("/contacts").json()
    assert [c["given_name"] for c in contacts] == ["Ann"]
    groups = {g["path"]: g for g in user.get("/contacts/groups").json()}
    assert set(groups) == {"Contacts", "Contacts/Friends"}
    assert groups["Contacts/Friends"]["name"] == "Friends"
    created = user.post(
        "/contacts", json={"given_name": "Bea", "group": groups["Contacts"]["id"]}
    ).json()
    make_runner(app.settings, app.store).run(account["id"])
    assert [c.props["givenName"] for c in graph.in_folder()] == ["Bea"]
    # Graph cannot delete a contact photo: refused at once, with the rule named.
    refused = user.delete(f"/contacts/{created['id']}/picture")
    assert refused.status_code == 400, refused.text
    assert "picture" in refused.text
    caps = user.get("/account/capabilities").json()
    assert caps["pictures"] == {"deletable": False}
    # Connecting the same address again (a new consent) re-links the same account.
    again = _connect(app, graph, provider="microsoft", refresh=graph.issue_refresh_token())
    assert again["id"] == account["id"]


def test_a_refused_grant_is_403_and_nothing_is_saved(app: App, graph: GraphEmulator) -> None:
    before = len(app.accounts.list())
    answer = app.client.post(
        "/connect/authorize", json=_body(app, graph, "M.R3_BAY.revoked", "office365")
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["type"] == "auth_error"
    assert len(app.accounts.list()) == before


def test_missing_microsoft_settings_are_named(app: App, graph: GraphEmulator) -> None:
    body = _body(app, graph, graph.refresh_token, "office365")
    del body["settings"]["microsoft_refresh_token"]
    answer = app.client.post("/connect/authorize", json=body)
    assert answer.status_code == 400
    assert "microsoft_refresh_token" in answer.text


def test_folders_are_written_through_the_group_routes(app: App, graph: GraphEmulator) -> None:
    account = _connect(app, graph)
    user = app.client_for(account["access_token"])
    sync = make_runner(app.settings, app.store)
    sync.run(account["id"])
    made = user.post("/contacts/groups", json={"name": "Friends"})
    assert made.status_code == 200, made.text
    group = made.json()
    assert group["path"] == "Contacts/Friends"
    ann = user.post("/contacts", json={"given_name": "Ann", "group": group["id"]}).json()
    sync.run(account["id"])
    (folder,) = [f for f in graph.folders.values() if f.name == "Friends"]
    assert [c.props["givenName"] for c in graph.in_folder(folder.id)] == ["Ann"]
    renamed = user.put(f"/contacts/groups/{group['id']}", json={"name": "Pals"})
    assert renamed.json()["path"] == "Contacts/Pals"
    sync.run(account["id"])
    assert graph.folders[folder.id].name == "Pals"
    assert user.delete(f"/contacts/groups/{group['id']}").status_code == 200
    sync.run(account["id"])
    assert folder.id not in graph.folders
    # The contact stayed, in the default folder, with the same id.
    assert [c.props["givenName"] for c in graph.in_folder()] == ["Ann"]
    assert [g["path"] for g in user.get(f"/contacts/{ann['id']}").json()["groups"]] == ["Contacts"]
    (default,) = user.get("/contacts/groups").json()
    refused = user.delete(f"/contacts/groups/{default['id']}")
    assert refused.status_code == 400
    assert "default contact folder" in refused.json()["message"]
