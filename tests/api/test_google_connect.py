"""v2 native authentication of a Google account (``provider: "gmail"``) against the People
API emulator, then two-way sync through the API."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from rolodex.cli.sync import make_runner
from tests.conftest import App
from tests.emulators.google import GoogleServer

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def running() -> Iterator[GoogleServer]:
    with GoogleServer() as server:
        yield server


@pytest.fixture
def google(running: GoogleServer, monkeypatch: pytest.MonkeyPatch) -> GoogleServer:
    running.reset()
    monkeypatch.setenv("ROLODEX_GOOGLE_PEOPLE_URL", running.people_url)
    monkeypatch.setenv("ROLODEX_GOOGLE_TOKEN_URL", running.token_url)
    return running


def _body(app: App, email: str, refresh_token: str, provider: str = "gmail") -> dict[str, object]:
    return {
        "client_id": app.services.application.client().client_id,
        "name": "Gina",
        "email_address": email,
        "provider": provider,
        "settings": {
            "google_client_id": "client-id",
            "google_client_secret": "client-secret",
            "google_refresh_token": refresh_token,
        },
    }


def _token(app: App, code: str) -> dict[str, object]:
    client = app.services.application.client()
    body = {"client_id": client.client_id, "client_secret": client.client_secret, "code": code}
    answer = app.client.post("/connect/token", json=body)
    assert answer.status_code == 200, answer.text
    account: dict[str, object] = answer.json()
    return account


def test_connect_gmail_then_sync_both_ways(app: App, google: GoogleServer) -> None:
    emulator = google.emulator
    emulator.add_person(names=[{"givenName": "Remote"}])
    refresh_token = emulator.grant("client-id", "client-secret")
    answer = app.client.post("/connect/authorize", json=_body(app, "gina@gmail.com", refresh_token))
    assert answer.status_code == 200, answer.text
    # The grant was checked now: a token refresh and one People API call.
    assert emulator.token_requests == 1 and emulator.calls("/v1/people/me/connections")
    account = _token(app, answer.json()["code"])
    assert account["provider"] == "google" and account["sandbox"] is False
    client = app.client_for(str(account["access_token"]))

    runner = make_runner(app.settings, app.store)
    runner.run(str(account["id"]))
    assert [c["given_name"] for c in client.get("/contacts").json()] == ["Remote"]
    created = client.post("/contacts", json={"given_name": "Local", "surname": "Made"})
    assert created.status_code == 200, created.text
    runner.run(str(account["id"]))
    names = sorted(p["names"][0]["givenName"] for p in emulator.find_people())
    assert names == ["Local", "Remote"]
    me = client.get("/account").json()
    assert me["sync_state"] == "running" and me["last_error"] is None

    # Google's Other contacts: source "inbox", read-only.
    emulator.add_other_contact(names=[{"givenName": "Mailer"}])
    runner.run(str(account["id"]))
    [inbox] = client.get("/contacts", params={"source": "inbox"}).json()
    assert inbox["given_name"] == "Mailer"
    refused = client.put(f"/contacts/{inbox['id']}", json={"job_title": "X"})
    assert refused.status_code == 400 and "read-only" in refused.json()["message"]

    # Connecting the same address again re-links the same account with the new grant.
    fresh = emulator.grant("client-id", "client-secret")
    again = app.client.post(
        "/connect/authorize", json=_body(app, "gina@gmail.com", fresh, provider="google")
    )
    assert again.status_code == 200, again.text
    relinked = _token(app, again.json()["code"])
    assert relinked["id"] == account["id"]
    other = app.client_for(str(relinked["access_token"]))
    assert len(other.get("/contacts").json()) == 3


def test_revoked_refresh_token_is_403_and_nothing_is_saved(app: App, google: GoogleServer) -> None:
    refresh_token = google.emulator.grant("client-id", "client-secret")
    google.emulator.revoke(refresh_token)
    before = len(app.accounts.list())
    answer = app.client.post(
        "/connect/authorize", json=_body(app, "revoked@gmail.com", refresh_token)
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["type"] == "auth_error"
    assert len(app.accounts.list()) == before


def test_missing_google_settings_are_named(app: App, google: GoogleServer) -> None:
    body = _body(app, "x@gmail.com", "")
    answer = app.client.post("/connect/authorize", json=body)
    assert answer.status_code == 400
    assert "google_refresh_token" in answer.json()["message"]


def test_invalid_grant_during_sync_shows_on_the_account(app: App, google: GoogleServer) -> None:
    refresh_token = google.emulator.grant("client-id", "client-secret")
    answer = app.client.post(
        "/connect/authorize", json=_body(app, "later@gmail.com", refresh_token)
    )
    account = _token(app, answer.json()["code"])
    google.emulator.revoke(refresh_token)
    runner = make_runner(app.settings, app.store)
    with pytest.raises(Exception, match="reconnect"):
        runner.run(str(account["id"]))
    me = app.client_for(str(account["access_token"])).get("/account").json()
    assert me["sync_state"] == "invalid-credentials"
    assert "reconnect" in me["last_error"]


def test_writes_wait_for_a_reconnect_when_google_refuses_the_grant(
    any_app: App, google: GoogleServer
) -> None:
    app = any_app  # the state is read with the account's row lock: on both databases
    # v2's sync engine answered writes to an "invalid" account 403 (wire reference §5.2):
    # they could not reach the provider, and a 200 would say they had.
    kept_at_google = google.emulator.add_person(names=[{"givenName": "Kept"}])
    refresh_token = google.emulator.grant("client-id", "client-secret")
    answer = app.client.post(
        "/connect/authorize", json=_body(app, "stale@gmail.com", refresh_token)
    )
    account = _token(app, answer.json()["code"])
    client = app.client_for(str(account["access_token"]))
    runner = make_runner(app.settings, app.store)
    runner.run(str(account["id"]))
    [kept] = [c for c in client.get("/contacts").json() if c["given_name"] == "Kept"]
    group = client.post("/contacts/groups", json={"name": "Clients"}).json()["id"]
    runner.run(str(account["id"]))
    google.emulator.revoke(refresh_token)
    with pytest.raises(Exception, match="reconnect"):
        runner.run(str(account["id"]))

    before = client.get("/contacts").json()
    refusals = [
        client.post("/contacts", json={"given_name": "New"}),
        client.put(f"/contacts/{kept['id']}", json={"given_name": "Changed"}),
        client.delete(f"/contacts/{kept['id']}"),
        client.put(
            f"/contacts/{kept['id']}/picture", content=PNG, headers={"Content-Type": "image/png"}
        ),
        client.post("/contacts/groups", json={"name": "Fresh"}),
        client.put(f"/contacts/groups/{group}", json={"name": "Renamed"}),
    ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == "invalid_request_error"
        assert "Connect the account again" in refused.json()["message"]
    assert client.get("/contacts").json() == before

    # Connected again with a new grant: the same account takes writes again.
    fresh = google.emulator.grant("client-id", "client-secret")
    answer = app.client.post("/connect/authorize", json=_body(app, "stale@gmail.com", fresh))
    again = _token(app, answer.json()["code"])
    assert again["id"] == account["id"]
    client = app.client_for(str(again["access_token"]))
    changed = client.put(f"/contacts/{kept['id']}", json={"given_name": "Changed"})
    assert changed.status_code == 200, changed.text
    runner.run(str(account["id"]))
    assert google.emulator.person(kept_at_google)["names"][0]["givenName"] == "Changed"


def test_other_contacts_and_system_groups_through_the_api(app: App, google: GoogleServer) -> None:
    # Issue 10: Google's Other contacts are v2's source "inbox", read-only, and a write to
    # one is a 400 that says why; system groups show with their Google meaning (Starred; My
    # Contacts is the address book itself, not a group) and cannot be renamed or deleted.
    emulator = google.emulator
    emulator.add_person(
        names=[{"givenName": "Star"}],
        memberships=[
            {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/starred"}},
            {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}},
        ],
    )
    emulator.add_other_contact(
        names=[{"givenName": "Mailer"}], emailAddresses=[{"value": "mailer@example.com"}]
    )
    refresh_token = emulator.grant("client-id", "client-secret")
    answer = app.client.post("/connect/authorize", json=_body(app, "oc@gmail.com", refresh_token))
    assert answer.status_code == 200, answer.text
    account = _token(app, answer.json()["code"])
    client = app.client_for(str(account["access_token"]))
    runner = make_runner(app.settings, app.store)
    runner.run(str(account["id"]))

    [inbox] = client.get("/contacts", params={"source": "inbox"}).json()
    assert (inbox["given_name"], inbox["source"]) == ("Mailer", "inbox")
    assert inbox["emails"] == [{"type": None, "email": "mailer@example.com"}]
    own = client.get("/contacts", params={"source": "address_book"}).json()
    assert [c["given_name"] for c in own] == ["Star"]
    assert client.get("/contacts", params={"view": "count"}).json() == {"count": 2}
    refusals = [
        client.put(f"/contacts/{inbox['id']}", json={"job_title": "X"}),
        client.delete(f"/contacts/{inbox['id']}"),
        client.put(
            f"/contacts/{inbox['id']}/picture",
            content=PNG,
            headers={"Content-Type": "image/png"},
        ),
    ]
    for refused in refusals:
        assert refused.status_code == 400, refused.text
        assert refused.json()["type"] == "invalid_request_error"
        assert 'source "inbox"' in refused.json()["message"]
        assert "read-only" in refused.json()["message"]

    groups = client.get("/contacts/groups").json()
    assert [g["name"] for g in groups] == ["Starred"]  # My Contacts is no group
    [star] = own
    assert [g["name"] for g in star["groups"]] == ["Starred"]
    for method in ("PUT", "DELETE"):
        refused = client.request(
            method, f"/contacts/groups/{groups[0]['id']}", json={"name": "Stars"}
        )
        assert refused.status_code == 400, refused.text
        assert "'Starred' cannot be renamed or deleted" in refused.json()["message"]

    # Nothing of it was queued for Google: the next sync writes nothing there.
    emulator.clear_log()
    runner.run(str(account["id"]))
    assert [c for c in emulator.calls() if c.method != "GET"] == []
    assert client.get(f"/contacts/{inbox['id']}").json()["given_name"] == "Mailer"


def test_contact_groups_are_written_through_the_group_routes(
    app: App, google: GoogleServer
) -> None:
    emulator = google.emulator
    refresh_token = emulator.grant("client-id", "client-secret")
    answer = app.client.post("/connect/authorize", json=_body(app, "gus@gmail.com", refresh_token))
    account = _token(app, answer.json()["code"])
    client = app.client_for(str(account["access_token"]))
    runner = make_runner(app.settings, app.store)
    runner.run(str(account["id"]))
    group = client.post("/contacts/groups", json={"name": "Team"}).json()
    client.post("/contacts", json={"given_name": "Ann", "group": group["id"]})
    runner.run(str(account["id"]))
    team = emulator.user_groups()["Team"]["resourceName"]
    (ann,) = emulator.find_people()
    assert team in [
        m["contactGroupMembership"]["contactGroupResourceName"] for m in ann["memberships"]
    ]
    client.put(f"/contacts/groups/{group['id']}", json={"name": "Crew"})
    runner.run(str(account["id"]))
    assert emulator.user_groups()["Crew"]["resourceName"] == team
    client.delete(f"/contacts/groups/{group['id']}")
    runner.run(str(account["id"]))
    assert emulator.user_groups() == {} and len(emulator.find_people()) == 1
    assert client.get("/contacts/groups").json() == []
    assert client.get("/account").json()["last_error"] is None


def test_a_contact_group_renamed_then_deleted_in_google_contacts(
    app: App, google: GoogleServer
) -> None:
    from tests.sync.test_google_groups import delete_at_google, rename_at_google

    emulator = google.emulator
    team = emulator.add_group("Team")
    in_team = [{"contactGroupMembership": {"contactGroupResourceName": team}}]
    emulator.add_person(names=[{"givenName": "Ann"}], memberships=in_team)
    refresh_token = emulator.grant("client-id", "client-secret")
    answer = app.client.post("/connect/authorize", json=_body(app, "gil@gmail.com", refresh_token))
    account = _token(app, answer.json()["code"])
    client = app.client_for(str(account["access_token"]))
    runner = make_runner(app.settings, app.store)
    runner.run(str(account["id"]))
    (group,) = client.get("/contacts/groups").json()
    (ann,) = client.get("/contacts").json()
    assert [g["id"] for g in ann["groups"]] == [group["id"]]
    cursor = client.post("/delta/latest_cursor").json()["cursor"]

    rename_at_google(emulator, team, "Crew")
    runner.run(str(account["id"]))
    assert client.get("/contacts/groups").json() == [{**group, "name": "Crew", "path": "Crew"}]
    groups = client.get(f"/contacts/{ann['id']}").json()["groups"]
    assert [(g["id"], g["name"]) for g in groups] == [(group["id"], "Crew")]
    types = "contact,contact_group"
    page = client.get("/delta", params={"cursor": cursor, "include_types": types}).json()
    assert sorted((d["object"], d["id"], d["event"]) for d in page["deltas"]) == sorted(
        [("contact_group", group["id"], "modify"), ("contact", ann["id"], "modify")]
    )

    delete_at_google(emulator, team)
    runner.run(str(account["id"]))
    assert client.get("/contacts/groups").json() == []
    assert client.get(f"/contacts/{ann['id']}").json()["groups"] == []
    assert client.get("/account").json()["last_error"] is None
