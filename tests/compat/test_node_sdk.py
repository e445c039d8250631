"""The real Node SDK (nylas 6.11.1) against a real Rolodex server.

Each test runs one scenario of ``tests/compat/node/scenarios.js`` in a ``node`` process with
the server's URL and an account's token, and asserts on the JSON it prints and on the state
the server is left in. The scenarios are the guide's Node examples (bar its typos) plus the
SDK features an application leans on: paging, views, filters, forEach, errors.

Without ``node`` or ``make setup``'s node_modules these tests skip; with
``ROLODEX_REQUIRE_NODE=1`` (as in CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.compat.pictures import ASCII_GIF, png
from tests.conftest import ApiAccount, LiveServer

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "scenarios.js"
POPULATION = 120  # more than one of the Node SDK's 100-item pages, with a short last page
TIMEOUT = 30


def _node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (NODE_DIR / "node_modules" / "nylas" / "package.json").is_file():
        return f"the Node SDK is not installed in {NODE_DIR / 'node_modules'} (run `make setup`)"
    return None


@pytest.fixture(scope="session")
def node() -> str:
    missing = _node_missing()
    if missing is not None:
        if os.environ.get("ROLODEX_REQUIRE_NODE") == "1":
            pytest.fail(f"ROLODEX_REQUIRE_NODE=1 but {missing}")
        pytest.skip(f"{missing}; ROLODEX_REQUIRE_NODE=1 makes this a failure")
    found = shutil.which("node")
    assert found is not None
    return found


@dataclass
class Run:
    value: Any
    requests: list[tuple[str, str, dict[str, str]]]  # method, path, query
    stdout: str

    def gets(self, path: str = "/contacts") -> list[dict[str, str]]:
        return [q for m, p, q in self.requests if m == "GET" and p == path]


@dataclass
class Node:
    executable: str
    live_server: LiveServer

    def run(self, token: str, scenario: str, *args: str) -> Run:
        env = {**os.environ, "ROLODEX_URL": self.live_server.url, "ROLODEX_TOKEN": token}
        done = subprocess.run(
            [self.executable, str(SCRIPT), scenario, *args],
            cwd=NODE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{scenario} failed:\n{done.stderr}\n{done.stdout}"
        last = done.stdout.rstrip("\n").rsplit("\n", 1)[-1]
        assert last.startswith("RESULT "), done.stdout
        payload = json.loads(last[len("RESULT ") :])
        requests = []
        for request in payload["requests"]:
            url = urlsplit(request["path"])
            requests.append((request["method"], url.path, dict(parse_qsl(url.query))))
        return Run(payload["value"], requests, done.stdout)


@pytest.fixture(scope="module")
def sdk(node: str, live_server: LiveServer) -> Node:
    return Node(node, live_server)


@pytest.fixture
def account(live_server: LiveServer) -> ApiAccount:
    return live_server.app.new_account()


def create(account: ApiAccount, **body: Any) -> dict[str, Any]:
    response = account.client.post("/contacts", json=body)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def stored(account: ApiAccount, contact_id: str) -> dict[str, Any]:
    response = account.client.get(f"/contacts/{contact_id}")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def new_group(account: ApiAccount, name: str) -> dict[str, Any]:
    response = account.client.post("/contacts/groups", json={"name": name})
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


@dataclass
class Population:
    account: ApiAccount
    ids: list[str]  # in creation order, which is the list order


@pytest.fixture(scope="module")
def population(node: str, live_server: LiveServer) -> Population:
    """An account with POPULATION contacts, shared by the tests that only read."""
    account = live_server.app.new_account()
    ids = [
        create(
            account,
            given_name=f"Given{i}",
            emails=[{"type": "work", "email": f"person{i}@example.com"}],
        )["id"]
        for i in range(POPULATION)
    ]
    return Population(account, ids)


# The guide's examples ---------------------------------------------------------------------


def test_guide_list_five(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "list5")
    assert run.value == population.ids[:5]
    assert run.gets() == [{"limit": "5", "offset": "0"}]
    assert run.stdout.count("Contact {") == 5  # console.log(contact), five times


def test_guide_find(sdk: Node, account: ApiAccount) -> None:
    group = new_group(account, "Work")
    contact_id = create(
        account,
        given_name="My",
        birthday="2011-01-01",
        group=group["id"],
        emails=[{"type": "work", "email": "swag@nylas.com"}],
    )["id"]
    run = sdk.run(account.token, "find", contact_id)
    assert run.requests == [("GET", f"/contacts/{contact_id}", {})]
    assert run.value["givenName"] == "My"
    assert run.value["emailAddresses"] == [{"type": "work", "email": "swag@nylas.com"}]
    assert run.value["groups"] == [
        {
            "id": group["id"],
            "object": "contact_group",
            "accountId": account.id,
            "name": "Work",
            "path": group["path"],
        }
    ]
    assert run.value["json"]["birthday"] == "2011-01-01"
    assert run.value["hasGet"] is False  # the guide's contacts.get is find in 6.x


def test_guide_picture_bytes_survive_when_ascii(
    sdk: Node, live_server: LiveServer, account: ApiAccount, tmp_path: Path
) -> None:
    contact_id = create(account, given_name="Pictured")["id"]
    put = account.client.put(f"/contacts/{contact_id}/picture", content=ASCII_GIF)
    assert put.status_code == 200, put.text
    target = tmp_path / "picture.jpg"

    run = sdk.run(account.token, "picture", contact_id, str(target))

    assert run.requests[-1] == ("GET", f"/contacts/{contact_id}/picture", {})
    assert run.value["pictureUrl"] == f"{live_server.url}/contacts/{contact_id}/picture"
    assert run.value["type"] == "string"
    assert run.value["length"] == len(ASCII_GIF)
    assert target.read_bytes() == ASCII_GIF
    assert "The picture was saved!" in run.stdout


def test_guide_picture_binary_is_mangled_by_the_sdk_but_served(
    sdk: Node, account: ApiAccount, tmp_path: Path
) -> None:
    """getPicture() decodes the body as UTF-8 (an SDK bug): a PNG's 0x89 comes back as
    U+FFFD. The request itself must still succeed."""
    contact_id = create(account, given_name="Pictured")["id"]
    assert account.client.put(f"/contacts/{contact_id}/picture", content=png()).status_code == 200
    run = sdk.run(account.token, "picture", contact_id, str(tmp_path / "picture.jpg"))
    assert run.value["type"] == "string"
    assert run.value["head"][:4] == [0xFFFD, ord("P"), ord("N"), ord("G")]


def test_guide_groups(sdk: Node, account: ApiAccount) -> None:
    work = new_group(account, "Work")
    personal = new_group(account, "Personal")
    run = sdk.run(account.token, "groups")
    assert run.requests == [("GET", "/contacts/groups", {})]
    assert sorted(run.value, key=lambda g: g["name"]) == [
        {
            "id": g["id"],
            "object": "contact_group",
            "accountId": account.id,
            "name": g["name"],
            "path": g["path"],
        }
        for g in (personal, work)
    ]


def test_guide_create(sdk: Node, account: ApiAccount) -> None:
    run = sdk.run(account.token, "create")
    assert [m for m, _, _ in run.requests] == ["POST"]
    assert run.value["sameObject"] is True
    contact_id = run.value["id"]
    assert contact_id
    doc = stored(account, contact_id)
    assert (doc["given_name"], doc["middle_name"], doc["surname"]) == ("My", "Nylas", "Friend")
    assert doc["notes"] == "Make sure to keep in touch!"
    assert doc["emails"] == [{"type": "work", "email": "swag@nylas.com"}]
    assert doc["phone_numbers"] == [{"type": "business", "number": "(555) 555-5555"}]
    assert doc["web_pages"] == [{"type": "homepage", "url": "nylas.com"}]
    assert doc["groups"] == []
    assert run.value["json"]["account_id"] == account.id


def test_update_by_save_keeps_what_node_blanks(sdk: Node, account: ApiAccount) -> None:
    """6.x sends "" for every null string (birthday included) and groups without ids: the
    contact's empty fields stay empty, its groups and picture stay."""
    group = new_group(account, "Friends")
    contact_id = create(
        account,
        given_name="Given1",
        surname="Surname1",
        group=group["id"],
        emails=[{"type": "personal", "email": "old@example.com"}],
        phone_numbers=[{"type": "mobile", "number": "+1 555 0100"}],
    )["id"]
    assert account.client.put(f"/contacts/{contact_id}/picture", content=png()).status_code == 200
    before = stored(account, contact_id)
    assert before["middle_name"] is None and before["birthday"] is None

    run = sdk.run(account.token, "update", contact_id)

    assert [(m, p) for m, p, _ in run.requests] == [
        ("GET", f"/contacts/{contact_id}"),
        ("PUT", f"/contacts/{contact_id}"),
    ]
    after = stored(account, contact_id)
    assert after == {
        **before,
        "job_title": "Factory Owner",
        "emails": [{"type": "work", "email": "swag@nylas.com"}],
    }
    assert [g["id"] for g in after["groups"]] == [group["id"]]
    assert run.value["json"]["job_title"] == "Factory Owner"
    assert run.value["id"] == contact_id


def test_resave_unchanged_then_null(sdk: Node, account: ApiAccount) -> None:
    group = new_group(account, "Friends")
    contact_id = create(
        account,
        given_name="Round",
        nickname="RT",
        birthday="1960-12-31",
        group=group["id"],
        im_addresses=[{"type": "aim", "im_address": "roundtrip"}],
        physical_addresses=[
            {"type": "home", "format": "structured", "city": "Denver", "country": "USA"}
        ],
    )["id"]
    before = stored(account, contact_id)
    run = sdk.run(account.token, "resave", contact_id)
    assert [m for m, _, _ in run.requests] == ["GET", "PUT", "PUT"]
    assert stored(account, contact_id) == {**before, "nickname": None}


def test_guide_delete(sdk: Node, account: ApiAccount) -> None:
    keep = create(account, given_name="Keep")["id"]
    gone = create(account, given_name="Gone")["id"]
    run = sdk.run(account.token, "delete", gone)
    assert run.requests == [("DELETE", f"/contacts/{gone}", {})]
    assert run.value["answer"] in (None, {})
    assert account.client.get(f"/contacts/{gone}").status_code == 404
    assert account.client.get("/contacts", params={"view": "ids"}).json() == [keep]


# Reading: paging, views, filters -----------------------------------------------------------


def test_list_pages_in_hundreds_until_a_short_page(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "listAll")
    assert run.value == population.ids
    assert run.gets() == [{"offset": "0", "limit": "100"}, {"offset": "100", "limit": "100"}]


def test_list_with_limit_and_offset(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "listLimit", "110")
    assert run.value == population.ids[:110]
    assert run.gets() == [{"limit": "100", "offset": "0"}, {"limit": "10", "offset": "100"}]
    run = sdk.run(population.account.token, "listLimit", "5", "117")
    assert run.value == population.ids[117:]


def test_count(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "count", "person9@example.com")
    assert run.value == {"all": POPULATION, "byEmail": 1}
    assert run.gets() == [{"view": "count"}, {"view": "count", "email": "person9@example.com"}]


def test_ids_view(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "ids")
    assert run.value == population.ids
    assert [q["view"] for q in run.gets()] == ["ids", "ids"]


def test_list_by_email(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "byEmail", "person42@example.com")
    assert run.value == [population.ids[42]]
    assert run.gets()[0]["email"] == "person42@example.com"


def test_first(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "first")
    assert run.value == population.ids[0]
    assert run.gets() == [{"offset": "0", "limit": "1"}]


def test_for_each(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "forEach")
    assert run.value == population.ids
    assert [q["offset"] for q in run.gets()] == ["0", "100"]


# Deltas ---------------------------------------------------------------------------------------


def test_deltas_since_of_the_types_asked_for(sdk: Node, account: ApiAccount) -> None:
    cursor = account.client.post("/delta/latest_cursor").json()["cursor"]
    group = new_group(account, "Team")
    contact = create(account, given_name="Delta")
    run = sdk.run(account.token, "deltasSince", cursor)
    assert run.value["cursorStart"] == cursor
    assert [(d["object"], d["id"]) for d in run.value["deltas"]] == [("contact", contact["id"])]
    # The SDK spells the inclusion includeTypes on the wire (its exclusion exclude_types).
    run = sdk.run(account.token, "deltasSince", cursor, "contact_group")
    assert run.gets("/delta") == [{"cursor": cursor, "includeTypes": "contact_group"}]
    assert [(d["object"], d["id"]) for d in run.value["deltas"]] == [("contact_group", group["id"])]
    run = sdk.run(account.token, "deltasSince", cursor, "contact,contact_group")
    assert [d["object"] for d in run.value["deltas"]] == ["contact_group", "contact"]
    run = sdk.run(account.token, "deltasSince", cursor, "", "contact")
    assert run.gets("/delta") == [{"cursor": cursor, "exclude_types": "contact"}]
    assert run.value["deltas"] == []


# The application's accounts ---------------------------------------------------------------


def test_accounts_with_the_client_secret(sdk: Node, account: ApiAccount) -> None:
    app = sdk.live_server.app.services.application.client()
    run = sdk.run(account.token, "accounts", app.client_id, app.client_secret, account.id)
    expected = {
        "id": account.id,
        "accountId": account.id,
        "emailAddress": account.account.email_address,
        "provider": "local",
        "syncState": "running",
        "billingState": "paid",
        "trial": False,
    }
    assert run.value["one"] == expected
    assert expected in run.value["all"]
    assert (run.value["tokenState"], run.value["tokenScopes"]) == ("valid", "contacts")
    assert run.value["redirectUris"] == sdk.live_server.app.services.signin.redirect_uris()
    assert run.gets(f"/a/{app.client_id}/accounts") == [{"offset": "0", "limit": "100"}]


# Errors ---------------------------------------------------------------------------------------


def test_find_missing_contact_is_a_404_api_error(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "findError", "nonexistent")
    assert run.value == {
        "isNylasApiError": True,
        "name": "Not Found",
        "statusCode": 404,
        "type": "invalid_request_error",
        "message": "Couldn't find contact nonexistent",
    }


def test_delete_missing_contact_is_a_404_api_error(sdk: Node, population: Population) -> None:
    run = sdk.run(population.account.token, "deleteError", "nonexistent")
    assert run.value["isNylasApiError"] is True
    assert run.value["statusCode"] == 404


def test_bad_token_is_a_401_api_error(sdk: Node) -> None:
    run = sdk.run("not-a-token", "listError")
    assert run.value == {
        "isNylasApiError": True,
        "name": "Unauthorized",
        "statusCode": 401,
        "type": "invalid_request_error",
        "message": "Could not verify access credential.",
    }
