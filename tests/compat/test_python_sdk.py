"""The real Python SDKs (nylas-legacy 5.15.0 and nylas 5.14.1) against a real Rolodex server.

Every Python example of the Contacts API guide runs here as written (bar the guide's typos:
``nylas.contact.get`` for ``nylas.contacts.get``, ``'w+b"'`` for ``'w+b'``), plus the SDK
features an application leans on: paging, iteration, filters, views, slicing, re-saving what
was read, errors. The requests each call makes are recorded with a response hook on the SDK's
own ``requests`` session, so paging is asserted on the wire, not only on the result.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.compat.pictures import png
from tests.conftest import ApiAccount, LiveServer

SDKS = ["nylas_legacy", "nylas"]
POPULATION = 120  # more than two of the Python SDK's 50-item pages, with a short last page


@pytest.fixture(params=SDKS)
def sdk(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


@dataclass
class Wire:
    """The (method, path, query) of every request the SDK client sent."""

    requests: list[tuple[str, str, dict[str, str]]]

    def gets(self, path: str = "/contacts") -> list[dict[str, str]]:
        return [q for m, p, q in self.requests if m == "GET" and p == path]


def connect(sdk: ModuleType, live_server: LiveServer, token: str) -> tuple[Any, Wire]:
    """An SDK client for ``token`` on the live server (wire reference §8: the constructor
    insists on https, every URL is rebuilt from ``api_server`` afterwards)."""
    client = sdk.APIClient(
        "client-id", "client-secret", token, api_server="https://rolodex.invalid"
    )
    client.api_server = live_server.url
    wire = Wire([])

    def record(response: Any, *_args: Any, **_kwargs: Any) -> None:
        url = urlsplit(response.request.url)
        wire.requests.append((response.request.method, url.path, dict(parse_qsl(url.query))))

    client.session.hooks["response"].append(record)
    return client, wire


def api_error(sdk: ModuleType) -> type[Exception]:
    errors = importlib.import_module(f"{sdk.__name__}.client.errors")
    cls: type[Exception] = errors.NylasApiError
    return cls


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


@dataclass
class Population:
    account: ApiAccount
    ids: list[str]  # in creation order, which is the list order


@pytest.fixture(scope="module")
def population(live_server: LiveServer) -> Population:
    """An account with POPULATION contacts, shared by the tests that only read."""
    account = live_server.app.new_account()
    ids = [
        create(
            account,
            given_name=f"Given{i}",
            surname=f"Surname{i}",
            emails=[{"type": "work", "email": f"person{i}@example.com"}],
            phone_numbers=[{"type": "mobile", "number": f"+1 555 000 {i:04d}"}],
        )["id"]
        for i in range(POPULATION)
    ]
    return Population(account, ids)


@pytest.fixture
def reader(sdk: ModuleType, live_server: LiveServer, population: Population) -> Iterator[Any]:
    client, wire = connect(sdk, live_server, population.account.token)
    client.wire = wire
    yield client


# The guide's examples ---------------------------------------------------------------------


def test_guide_list_five_and_print(
    reader: Any, population: Population, capsys: pytest.CaptureFixture[str]
) -> None:
    nylas = reader
    contacts = nylas.contacts.all(limit=5)
    for contact in contacts:
        print(contact)

    assert [c.id for c in contacts] == population.ids[:5]
    assert contacts[0].given_name == "Given0"
    assert contacts[0].emails == {"work": ["person0@example.com"]}
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert nylas.wire.gets() == [{"offset": "0", "limit": "5"}]


def test_guide_get(reader: Any, population: Population, capsys: pytest.CaptureFixture[str]) -> None:
    nylas = reader
    contact = nylas.contacts.get(population.ids[7])  # the guide writes nylas.contact.get
    print(contact)

    assert contact.id == population.ids[7]
    assert contact.object == "contact"
    assert contact.account_id == population.account.id
    assert (contact.given_name, contact.surname) == ("Given7", "Surname7")
    assert contact.emails == {"work": ["person7@example.com"]}
    assert contact.phone_numbers == {"mobile": ["+1 555 000 0007"]}
    assert contact.source == "address_book"
    assert contact.picture_url is None
    assert capsys.readouterr().out.strip()


def test_guide_picture(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount, tmp_path: Any
) -> None:
    contact_id = create(account, given_name="Pictured")["id"]
    image = png()
    uploaded = account.client.put(
        f"/contacts/{contact_id}/picture", content=image, headers={"Content-Type": "image/png"}
    )
    assert uploaded.status_code == 200, uploaded.text
    nylas, wire = connect(sdk, live_server, account.token)

    contact = nylas.contacts.get(contact_id)
    picture = contact.get_picture()
    file = open(tmp_path / "picture.jpg", "w+b")  # noqa: SIM115 - the guide's code, as written
    file.write(picture.read())
    file.close()
    print(contact.picture_url)

    assert (tmp_path / "picture.jpg").read_bytes() == image
    assert picture.headers["Content-Type"] == "image/png"
    assert "Content-Encoding" not in picture.headers  # get_picture() would not decode it
    assert contact.picture_url == f"{live_server.url}/contacts/{contact_id}/picture"
    assert ("GET", f"/contacts/{contact_id}/picture", {}) in wire.requests


def test_picture_of_a_contact_without_one_is_none(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    contact_id = create(account, given_name="Faceless")["id"]
    nylas, wire = connect(sdk, live_server, account.token)
    contact = nylas.contacts.get(contact_id)
    assert contact.picture_url is None
    assert contact.get_picture() is None  # the SDK does not even ask
    assert len(wire.requests) == 1


def test_guide_create(
    sdk: ModuleType,
    live_server: LiveServer,
    account: ApiAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nylas, _ = connect(sdk, live_server, account.token)

    contact = nylas.contacts.create()
    contact.given_name = "My"
    contact.middle_name = "Nylas"
    contact.surname = "Friend"
    contact.emails["work"] = ["swag@nylas.com"]
    contact.notes = "Make sure to keep in touch!"
    contact.phone_numbers["business"] = ["(555) 555-5555"]
    contact.web_pages["homepage"] = ["https://nylas.com"]

    contact.save()
    print(contact)

    assert contact.id
    assert contact.account_id == account.id
    assert contact.source == "address_book"
    doc = stored(account, contact.id)
    assert (doc["given_name"], doc["middle_name"], doc["surname"]) == ("My", "Nylas", "Friend")
    assert doc["notes"] == "Make sure to keep in touch!"
    assert doc["emails"] == [{"type": "work", "email": "swag@nylas.com"}]
    assert doc["phone_numbers"] == [{"type": "business", "number": "(555) 555-5555"}]
    assert doc["web_pages"] == [{"type": "homepage", "url": "https://nylas.com"}]
    assert doc["im_addresses"] == doc["physical_addresses"] == doc["groups"] == []
    assert capsys.readouterr().out.strip()


def test_create_with_keyword_arguments(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    nylas, _ = connect(sdk, live_server, account.token)
    contact = nylas.contacts.create(given_name="Kw", company_name="Nylas")
    contact.save()
    doc = stored(account, contact.id)
    assert (doc["given_name"], doc["company_name"]) == ("Kw", "Nylas")


def test_guide_update_via_save(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    """The guide's update (PUT of emails), done the SDK way: read, change, save()."""
    contact_id = create(
        account,
        given_name="Given1",
        surname="Surname1",
        job_title="Engineer",
        emails=[{"type": "work", "email": "person1@example.com"}],
        physical_addresses=[
            {
                "type": "work",
                "format": "structured",
                "street_address": "123 Main Street",
                "city": "San Francisco",
                "postal_code": "94107",
                "state": "CA",
                "country": "USA",
            }
        ],
    )["id"]
    nylas, wire = connect(sdk, live_server, account.token)

    contact = nylas.contacts.get(contact_id)
    contact.job_title = "Factory Owner"
    contact.emails["work"] = ["swag@nylas.com"]
    contact.emails["personal"] = ["second@example.com"]
    contact.save()

    assert [(m, p) for m, p, _ in wire.requests] == [
        ("GET", f"/contacts/{contact_id}"),
        ("PUT", f"/contacts/{contact_id}"),
    ]
    assert contact.job_title == "Factory Owner"
    doc = stored(account, contact_id)
    assert doc["job_title"] == "Factory Owner"
    assert doc["given_name"] == "Given1"
    assert sorted((e["type"], e["email"]) for e in doc["emails"]) == [
        ("personal", "second@example.com"),
        ("work", "swag@nylas.com"),
    ]
    assert doc["physical_addresses"][0]["city"] == "San Francisco"


def test_save_twice_after_create_updates_the_same_contact(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    nylas, wire = connect(sdk, live_server, account.token)
    contact = nylas.contacts.create()
    contact.given_name = "My"
    contact.save()
    first_id = contact.id
    contact.notes = "second save"
    contact.save()
    assert contact.id == first_id
    assert [m for m, _, _ in wire.requests] == ["POST", "PUT"]
    assert account.client.get("/contacts", params={"view": "count"}).json() == {"count": 1}
    assert stored(account, first_id)["notes"] == "second save"


def test_guide_delete(sdk: ModuleType, live_server: LiveServer, account: ApiAccount) -> None:
    keep = create(account, given_name="Keep")["id"]
    gone = create(account, given_name="Gone")["id"]
    nylas, wire = connect(sdk, live_server, account.token)

    nylas.contacts.delete(gone)

    assert wire.requests == [("DELETE", f"/contacts/{gone}", {})]
    assert account.client.get(f"/contacts/{gone}").status_code == 404
    assert account.client.get("/contacts", params={"view": "ids"}).json() == [keep]


# Reading: paging, iteration, filters, views -----------------------------------------------


def test_all_pages_in_fifties_until_a_short_page(reader: Any, population: Population) -> None:
    contacts = reader.contacts.all()
    assert [c.id for c in contacts] == population.ids
    assert reader.wire.gets() == [
        {"offset": "0", "limit": "50"},
        {"offset": "50", "limit": "50"},
        {"offset": "100", "limit": "50"},
    ]


def test_iteration_pages_until_an_empty_page(reader: Any, population: Population) -> None:
    seen = [c.id for c in reader.contacts]
    assert seen == population.ids
    assert [q["offset"] for q in reader.wire.gets()] == ["0", "50", "100", "120"]


def test_all_with_a_limit_above_the_page_size(reader: Any, population: Population) -> None:
    contacts = reader.contacts.all(limit=70)
    assert [c.id for c in contacts] == population.ids[:70]
    assert reader.wire.gets() == [{"offset": "0", "limit": "50"}, {"offset": "50", "limit": "20"}]


def test_where_limit_is_sent_as_one_request(reader: Any, population: Population) -> None:
    contacts = reader.contacts.where(limit=120).all()
    assert [c.id for c in contacts] == population.ids
    assert reader.wire.gets() == [{"limit": "120", "offset": "0"}]


def test_where_email(reader: Any, population: Population) -> None:
    found = reader.contacts.where(email="person42@example.com").all()
    assert [c.id for c in found] == [population.ids[42]]
    assert reader.wire.gets()[0]["email"] == "person42@example.com"
    assert reader.contacts.where(email="nobody@example.com").all() == []


def test_where_phone_number_and_source(reader: Any, population: Population) -> None:
    found = reader.contacts.where(phone_number="+1 555 000 0042").all()
    assert [c.id for c in found] == [population.ids[42]]
    two = reader.contacts.where(source="address_book", limit=2).all()
    assert [c.id for c in two] == population.ids[:2]


def test_where_group(sdk: ModuleType, live_server: LiveServer, account: ApiAccount) -> None:
    group = account.client.post("/contacts/groups", json={"name": "Friends"}).json()
    member = create(account, given_name="In", group=group["id"])["id"]
    create(account, given_name="Out")
    nylas, wire = connect(sdk, live_server, account.token)
    assert [c.id for c in nylas.contacts.where(group=group["id"]).all()] == [member]
    # A Python bool goes out as "True".
    assert [c.id for c in nylas.contacts.where(group=group["id"], recurse=True).all()] == [member]
    assert wire.gets()[-1]["recurse"] == "True"


def test_count_view(reader: Any, population: Population) -> None:
    assert reader.contacts.where(view="count").count() == POPULATION
    assert reader.wire.gets() == [{"view": "count", "offset": "0"}]
    assert reader.contacts.where(view="count", email="person3@example.com").count() == 1


def test_first(reader: Any, population: Population) -> None:
    first = reader.contacts.first()
    assert first.id == population.ids[0]
    assert reader.wire.gets() == [{"offset": "0", "limit": "1"}]


def test_slicing(reader: Any, population: Population) -> None:
    window = reader.contacts[1:3]
    assert [c.id for c in window] == population.ids[1:3]
    assert reader.wire.gets() == [{"offset": "1", "limit": "2"}]


def test_offset_past_the_end_is_empty(reader: Any) -> None:
    assert reader.contacts.where(offset=POPULATION).all() == []
    rest = reader.contacts.where(offset=POPULATION - 3).all()
    assert len(rest) == 3


# Writing: dates, re-saving what was read ---------------------------------------------------


def test_birthday_as_date(sdk: ModuleType, live_server: LiveServer, account: ApiAccount) -> None:
    nylas, _ = connect(sdk, live_server, account.token)
    contact = nylas.contacts.create(given_name="Born")
    contact.birthday = dt.date(1999, 3, 6)
    contact.save()

    assert stored(account, contact.id)["birthday"] == "1999-03-06"
    again = nylas.contacts.get(contact.id)
    assert again.birthday == dt.date(1999, 3, 6)
    again.birthday = dt.date(2000, 2, 29)
    again.save()
    assert stored(account, contact.id)["birthday"] == "2000-02-29"


def test_resaving_what_was_read_keeps_everything(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    """The SDK PUTs the whole object back, echoing picture_url and source, and never sends
    groups: none of that may fail, and membership and picture must survive."""
    group = account.client.post("/contacts/groups", json={"name": "Work"})
    assert group.status_code == 200, group.text
    group_id = group.json()["id"]
    contact_id = create(
        account,
        given_name="Round",
        surname="Trip",
        birthday="1960-12-31",
        group=group_id,
        emails=[{"type": "work", "email": "round@example.com"}],
        im_addresses=[{"type": "aim", "im_address": "roundtrip"}],
        web_pages=[{"type": "profile", "url": "https://example.com/round"}],
    )["id"]
    assert account.client.put(f"/contacts/{contact_id}/picture", content=png()).status_code == 200
    before = stored(account, contact_id)
    nylas, wire = connect(sdk, live_server, account.token)

    contact = nylas.contacts.get(contact_id)
    contact.save()  # unchanged
    assert stored(account, contact_id) == before

    contact.nickname = "RT"
    contact.save()
    after = stored(account, contact_id)
    assert after == {**before, "nickname": "RT"}
    assert [g["id"] for g in after["groups"]] == [group_id]
    assert after["picture_url"] == f"http://testserver/contacts/{contact_id}/picture"
    assert contact.picture_url == f"{live_server.url}/contacts/{contact_id}/picture"
    assert [m for m, _, _ in wire.requests] == ["GET", "PUT", "PUT"]


# Errors --------------------------------------------------------------------------------------


def test_get_missing_contact_is_a_404_api_error(reader: Any, sdk: ModuleType) -> None:
    with pytest.raises(api_error(sdk)) as raised:
        reader.contacts.get("nonexistent")
    error: Any = raised.value
    assert error.response.status_code == 404
    assert error.response.json() == {
        "message": "Couldn't find contact nonexistent",
        "type": "invalid_request_error",
    }
    assert str(error) == (
        "404 Not Found. Reason: Couldn't find contact nonexistent. "
        "Nylas Error Type: invalid_request_error"
    )


def test_delete_missing_contact_is_a_404_api_error(reader: Any, sdk: ModuleType) -> None:
    with pytest.raises(api_error(sdk)) as raised:
        reader.contacts.delete("nonexistent")
    assert raised.value.response.status_code == 404  # type: ignore[attr-defined]


@pytest.mark.parametrize("token", ["not-a-token", None])
def test_bad_token_is_a_401_api_error(
    sdk: ModuleType, live_server: LiveServer, token: str | None
) -> None:
    nylas, _ = connect(sdk, live_server, token)  # type: ignore[arg-type]
    with pytest.raises(api_error(sdk)) as raised:
        nylas.contacts.all(limit=5)
    error: Any = raised.value
    assert error.response.status_code == 401
    assert error.response.json() == {
        "message": "Could not verify access credential.",
        "type": "invalid_request_error",
    }
    with pytest.raises(api_error(sdk)) as raised:
        nylas.contacts.get("anything")
    assert raised.value.response.status_code == 401  # type: ignore[attr-defined]


def test_invalid_write_is_a_400_api_error(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    nylas, _ = connect(sdk, live_server, account.token)
    contact = nylas.contacts.create(given_name="Bad")
    contact.physical_addresses["home"] = [{"type": "home", "format": "unstructured"}]
    with pytest.raises(api_error(sdk)) as raised:
        contact.save()
    error: Any = raised.value
    assert error.response.status_code == 400
    assert error.response.json()["type"] == "invalid_request_error"
    assert account.client.get("/contacts", params={"view": "count"}).json() == {"count": 0}


# The application's accounts (client id and secret) -------------------------------------------


def admin_client(sdk: ModuleType, live_server: LiveServer, token: str | None = None) -> Any:
    app = live_server.app.services.application.client()
    client = sdk.APIClient(
        app.client_id, app.client_secret, token, api_server="https://rolodex.invalid"
    )
    client.api_server = live_server.url
    return client


def test_accounts_with_the_client_secret(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    client = admin_client(sdk, live_server)
    everyone = client.accounts.all()
    mine = next(a for a in everyone if a.id == account.id)
    assert (mine.account_id, mine.email, mine.provider) == (
        account.id,
        account.account.email_address,
        "local",
    )
    assert (mine.sync_state, mine.billing_state, mine.trial) == ("running", "paid", False)
    one = client.accounts.get(account.id)
    assert one.email == account.account.email_address
    assert client.accounts.where(limit=1).all()[0].id == everyone[0].id


def test_accounts_with_an_access_token_are_refused(
    sdk: ModuleType, live_server: LiveServer, account: ApiAccount
) -> None:
    # Built with a token the SDK sends it, not the secret: one account never manages all.
    client = admin_client(sdk, live_server, account.token)
    with pytest.raises(api_error(sdk)) as raised:
        client.accounts.all()
    assert "401" in str(raised.value)


def test_delete_an_account_with_the_client_secret(sdk: ModuleType, live_server: LiveServer) -> None:
    doomed = live_server.app.new_account()
    client = admin_client(sdk, live_server)
    client.accounts.delete(doomed.id)
    assert doomed.client.get("/contacts").status_code == 401
    assert all(a.id != doomed.id for a in client.accounts.all())
