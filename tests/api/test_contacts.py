"""GET/POST/PUT/DELETE /contacts over HTTP: auth forms, list views, filters, paging, the
lenient write bodies the v2 SDKs send, and the shape of every contact returned."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiAccount, App

CONTACT_KEYS = {
    "id", "object", "account_id", "given_name", "middle_name", "surname", "suffix", "nickname",
    "birthday", "company_name", "job_title", "manager_name", "office_location", "notes",
    "picture_url", "emails", "im_addresses", "phone_numbers", "physical_addresses", "web_pages",
    "groups", "source",
}  # fmt: skip
VALUE_KEYS = {
    "emails": "email",
    "im_addresses": "im_address",
    "phone_numbers": "number",
    "web_pages": "url",
    "physical_addresses": "street_address",
}
UNAUTHORIZED = {"message": "Could not verify access credential.", "type": "invalid_request_error"}


def assert_v2_contact(contact: dict[str, Any]) -> None:
    """What both SDKs need of every contact (wire reference §9.9, §12)."""
    assert set(contact) >= CONTACT_KEYS, CONTACT_KEYS - set(contact)
    assert contact["object"] == "contact"
    assert contact["source"] == "address_book"
    assert re.fullmatch(r"[0-9a-z]{25}", contact["id"])
    for name, key in VALUE_KEYS.items():
        assert isinstance(contact[name], list), name
        for item in contact[name]:
            assert "type" in item and key in item, (name, item)
    assert isinstance(contact["groups"], list)
    birthday = contact["birthday"]
    assert birthday is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", birthday)
    url = contact["picture_url"]
    assert url is None or url == f"http://testserver/contacts/{contact['id']}/picture"


def create(api: ApiAccount, **body: Any) -> dict[str, Any]:
    response = api.client.post("/contacts", json=body)
    assert response.status_code == 200, response.text
    contact: dict[str, Any] = response.json()
    assert_v2_contact(contact)
    return contact


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


FULL = {
    "given_name": "My",
    "middle_name": "Nylas",
    "surname": "Friend",
    "suffix": "Jr.",
    "nickname": "Nylas",
    "birthday": "2011-01-01",
    "company_name": "Nylas",
    "job_title": "Communications Platform",
    "manager_name": "Boss",
    "office_location": "San Francisco",
    "notes": "Make sure to keep in touch!",
    "emails": [{"type": "work", "email": "Swag@Nylas.com"}],
    "im_addresses": [{"type": "aim", "im_address": "myaim"}],
    "phone_numbers": [{"type": "business", "number": "+1 (415) 888-9990"}],
    "physical_addresses": [
        {
            "type": "work",
            "format": "structured",
            "street_address": "944 Market St",
            "city": "San Francisco",
            "postal_code": "94102",
            "state": "CA",
            "country": "USA",
        }
    ],
    "web_pages": [{"type": "homepage", "url": "https://nylas.com"}],
}


# Authentication ---------------------------------------------------------------------------


def test_basic_and_bearer_are_the_same_token(app: App, api: ApiAccount) -> None:
    contact = create(api, given_name="Auth")
    bare = TestClient(app.client.app)
    basic = base64.b64encode(f"{api.token}:".encode()).decode()
    for header in (f"Basic {basic}", f"Bearer {api.token}", f"bearer {api.token}"):
        for path in ("/contacts", f"/contacts/{contact['id']}", "/contacts/groups"):
            response = bare.get(path, headers={"Authorization": header})
            assert response.status_code == 200, (header, path, response.text)
    # A write through the FastAPI routes authenticates the same way as the fast reads.
    assert (
        bare.post(
            "/contacts", json={}, headers={"Authorization": f"Bearer {api.token}"}
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer not-a-token",
        "Bearer a b",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b":password-only").decode(),
        "Token abc",
    ],
)
def test_anything_else_is_401_in_the_v2_shape(app: App, header: str | None) -> None:
    bare = TestClient(app.client.app)
    headers = {} if header is None else {"Authorization": header}
    for method, path in [
        ("GET", "/contacts"),
        ("GET", "/contacts/abc"),
        ("POST", "/contacts"),
        ("GET", "/contacts/groups"),
        ("DELETE", "/contacts/abc"),
    ]:
        response = bare.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path)
        assert response.json() == UNAUTHORIZED


def test_a_revoked_token_stops_working(app: App, api: ApiAccount) -> None:
    assert api.client.post("/oauth/revoke").status_code == 200
    response = api.client.get("/contacts")
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


# Listing ------------------------------------------------------------------------------------


def test_list_is_a_bare_array_in_creation_order_with_default_limit_100(api: ApiAccount) -> None:
    assert api.client.get("/contacts").json() == []
    made = [create(api, given_name=f"n{i}")["id"] for i in range(105)]
    first = api.client.get("/contacts")
    assert ids(first) == made[:100]
    for contact in first.json():
        assert_v2_contact(contact)
    assert ids(api.client.get("/contacts", params={"limit": 1000})) == made
    assert ids(api.client.get("/contacts", params={"limit": 0})) == []
    assert ids(api.client.get("/contacts", params={"offset": 100})) == made[100:]
    assert ids(api.client.get("/contacts", params={"offset": 3, "limit": 2})) == made[3:5]
    assert ids(api.client.get("/contacts/", params={"limit": 1})) == made[:1]
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 105}
    view_ids = api.client.get("/contacts", params={"view": "ids", "offset": 100})
    assert view_ids.json() == made[100:]
    assert api.client.get("/contacts", params={"view": "ids"}).json() == made[:100]
    assert api.client.get("/contacts").headers["nylas-api-version"] == "2.5"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 1001}, "Cannot request more than 1000 resources at once."),
        ({"limit": "abc"}, "Limit parameter must be an integer."),
        ({"limit": "1.5"}, "Limit parameter must be an integer."),
        ({"limit": "1_0"}, "Limit parameter must be an integer."),
        ({"limit": -1}, "Limit parameter must be nonnegative."),
        ({"offset": "x"}, "Offset parameter must be an integer."),
        ({"offset": -5}, "Offset parameter must be nonnegative."),
        ({"offset": 2**64}, "Offset parameter must be at most 9223372036854775807."),
        ({"view": "expanded"}, "Unknown view 'expanded'; use view=count or view=ids"),
        ({"nope": "1"}, "Unexpected query parameters: nope"),
        ({"limit": 5, "cursor": "x"}, "Unexpected query parameters: cursor"),
        ({"recurse": "maybe"}, "recurse must be true or false"),
    ],
)
def test_bad_list_parameters_are_400(api: ApiAccount, params: dict[str, Any], message: str) -> None:
    for view in (None, "count", "ids"):
        query = {**params, "view": view} if view and "view" not in params else params
        response = api.client.get("/contacts", params=query)
        assert response.status_code == 400, (query, response.text)
        assert response.json() == {"message": message, "type": "invalid_request_error"}


@pytest.mark.parametrize("limit", [1, 100, 1000])
def test_a_page_past_every_contact_is_empty_up_to_the_largest_offset(
    api: ApiAccount, limit: int
) -> None:
    # offset + limit past a 64-bit integer is where the page ends: it must not be bound.
    create(api, given_name="One")
    for offset in (2**63 - 1, 2**63 - limit, 2**63 - 1 - limit):
        for view in (None, "ids"):
            query = {"limit": limit, "offset": offset, "view": view}
            response = api.client.get("/contacts", params=query)
            assert response.status_code == 200, (query, response.text)
            assert response.json() == []


def test_filters_match_exactly_and_combine_with_views(api: ApiAccount) -> None:
    full = create(api, **FULL)
    other = create(
        api,
        emails=[{"type": "work", "email": "other@nylas.com"}],
        physical_addresses=[{"type": "home", "street_address": "1 Elm", "state": "CA"}],
        phone_numbers=[{"type": "mobile", "number": "020 7946 0018"}],
    )
    create(api, given_name="nobody")

    def found(**params: Any) -> list[str]:
        listed = ids(api.client.get("/contacts", params=params))
        counted = api.client.get("/contacts", params={**params, "view": "count"}).json()
        only_ids = api.client.get("/contacts", params={**params, "view": "ids"}).json()
        assert counted == {"count": len(listed)}
        assert only_ids == listed
        return listed

    assert found(email="swag@nylas.com") == [full["id"]]
    assert found(email="SWAG@NYLAS.COM") == [full["id"]]
    assert found(email="swag@nylas") == []  # exact, not a substring
    assert found(phone_number="14158889990") == [full["id"]]
    assert found(phone_number="4158889990") == [full["id"]]
    assert found(phone_number="+1 (415) 888-9990") == [full["id"]]
    assert found(phone_number="0207946 0018") == [other["id"]]
    assert found(phone_number="888") == []
    assert found(street_address="944 market st") == [full["id"]]
    assert found(postal_code="94102") == [full["id"]]
    assert found(state="CA") == [full["id"], other["id"]]
    assert found(state="ca", street_address="1 Elm") == [other["id"]]
    assert found(country="usa") == [full["id"]]
    assert found(source="address_book", state="CA") == [full["id"], other["id"]]
    assert found(source="inbox") == []
    paged = {"state": "CA", "limit": 1, "offset": 1}
    assert ids(api.client.get("/contacts", params=paged)) == [other["id"]]
    assert api.client.get("/contacts", params={**paged, "view": "ids"}).json() == [other["id"]]
    # count ignores paging: it counts what the filters match.
    assert api.client.get("/contacts", params={**paged, "view": "count"}).json() == {"count": 2}
    assert found(email="swag@nylas.com", state="NY") == []


def test_group_filter_recurse_and_group_on_create(api: ApiAccount) -> None:
    group = api.client.post("/contacts/groups", json={"name": "Work"}).json()
    member = create(api, given_name="in", group=group["id"])
    assert [g["id"] for g in member["groups"]] == [group["id"]]
    assert member["groups"][0] == {
        "id": group["id"],
        "object": "contact_group",
        "account_id": api.id,
        "name": "Work",
        "path": "Work",
    }
    create(api, given_name="out")
    for recurse in (None, "true", "True", "false", "1"):
        params = {"group": group["id"], **({"recurse": recurse} if recurse else {})}
        assert ids(api.client.get("/contacts", params=params)) == [member["id"]]
    count = api.client.get("/contacts", params={"group": group["id"], "view": "count"})
    assert count.json() == {"count": 1}


def test_offset_paging_neither_skips_nor_repeats_while_the_list_changes(
    api: ApiAccount,
) -> None:
    made = [create(api, given_name=f"p{i}")["id"] for i in range(25)]
    seen: list[str] = []
    page = ids(api.client.get("/contacts", params={"limit": 10, "offset": 0}))
    seen += page
    # Between pages: one contact already seen is deleted, one not yet seen is deleted,
    # and two new ones are created.
    assert api.client.delete(f"/contacts/{made[3]}").status_code == 200
    assert api.client.delete(f"/contacts/{made[15]}").status_code == 200
    fresh = [create(api, given_name="late")["id"] for _ in range(2)]
    page = ids(api.client.get("/contacts", params={"limit": 10, "offset": 10}))
    seen += page
    assert api.client.delete(f"/contacts/{made[0]}").status_code == 200
    page = ids(api.client.get("/contacts", params={"limit": 10, "offset": 20}))
    seen += page
    offset = 20 + len(page)
    while page:
        page = ids(api.client.get("/contacts", params={"limit": 10, "offset": offset}))
        seen += page
        offset += len(page)
    assert len(seen) == len(set(seen)), "a contact was served twice"
    expected = [c for c in made if c != made[15]] + fresh
    assert seen == expected


def test_view_ids_pages_the_same_way(api: ApiAccount) -> None:
    made = [create(api)["id"] for _ in range(6)]
    first = api.client.get("/contacts", params={"view": "ids", "limit": 3}).json()
    api.client.delete(f"/contacts/{made[0]}")
    second = api.client.get("/contacts", params={"view": "ids", "limit": 3, "offset": 3}).json()
    assert first + second == made


# Reading one --------------------------------------------------------------------------------


def test_get_one_ignores_query_parameters(api: ApiAccount) -> None:
    contact = create(api, **FULL)
    for params in ({}, {"offset": 0}, {"limit": "nonsense", "whatever": "x"}):
        response = api.client.get(f"/contacts/{contact['id']}", params=params)
        assert response.status_code == 200
        assert response.json() == contact
    missing = api.client.get("/contacts/doesnotexist0000000000000")
    assert missing.status_code == 404
    assert missing.json() == {
        "message": "Couldn't find contact doesnotexist0000000000000",
        "type": "invalid_request_error",
    }


# Writing ------------------------------------------------------------------------------------


def test_create_returns_every_field_normalised(api: ApiAccount) -> None:
    contact = create(api, **FULL)
    assert contact["account_id"] == api.id
    assert contact["birthday"] == "2011-01-01"
    assert contact["picture_url"] is None
    assert contact["groups"] == []
    for name in ("given_name", "notes", "manager_name"):
        assert contact[name] == FULL[name]
    assert contact["physical_addresses"][0]["format"] == "structured"
    assert contact["emails"] == [{"type": "work", "email": "Swag@Nylas.com"}]
    empty = create(api)
    assert {k: empty[k] for k in VALUE_KEYS} == {k: [] for k in VALUE_KEYS}
    assert empty["given_name"] is None and empty["birthday"] is None


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        None,
    ],
)
def test_bodies_are_json_whatever_content_type_says(
    api: ApiAccount, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    created = api.client.post("/contacts", content=b'{"given_name":"Typed"}', headers=headers)
    assert created.status_code == 200, created.text
    assert created.json()["given_name"] == "Typed"
    cid = created.json()["id"]
    updated = api.client.put(f"/contacts/{cid}", content=b'{"surname":"S"}', headers=headers)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["given_name"], updated.json()["surname"]) == ("Typed", "S")
    # Node's DELETE carries {} as text/plain.
    assert (
        api.client.request("DELETE", f"/contacts/{cid}", content=b"{}", headers=headers).status_code
        == 200
    )


def test_read_only_and_unknown_keys_are_ignored(api: ApiAccount) -> None:
    contact = create(
        api,
        id="x" * 25,
        object="banana",
        account_id="someone-else",
        picture_url="https://evil.example/p.jpg",
        source="inbox",
        job_status_id="j",
        email_addresses=[{"email": "dropped@x.com"}],
        groups=[{"id": "nope", "name": "Forged"}],
        given_name="Kept",
    )
    assert contact["id"] != "x" * 25
    assert (contact["object"], contact["account_id"], contact["source"]) == (
        "contact",
        api.id,
        "address_book",
    )
    assert contact["picture_url"] is None and contact["groups"] == []
    assert contact["emails"] == [] and contact["given_name"] == "Kept"


def test_put_replaces_what_it_sends_and_keeps_the_rest(api: ApiAccount) -> None:
    group = api.client.post("/contacts/groups", json={"name": "Keep"}).json()
    contact = create(api, **FULL, group=group["id"])
    cid = contact["id"]
    updated = api.client.put(f"/contacts/{cid}", json={"job_title": "Owner", "emails": []})
    assert updated.status_code == 200
    body = updated.json()
    assert_v2_contact(body)
    assert body["job_title"] == "Owner" and body["emails"] == []
    assert body["given_name"] == "My" and body["phone_numbers"] == contact["phone_numbers"]
    assert [g["id"] for g in body["groups"]] == [group["id"]]
    # Node echoes every null string as "", groups without ids, picture_url and source.
    echo = {k: "" for k in ("middle_name", "suffix", "birthday", "nickname")}
    echo |= {"groups": [{"name": "Keep", "path": "Keep"}], "source": "address_book"}
    echo |= {"picture_url": None, "surname": None}
    body = api.client.put(f"/contacts/{cid}", json=echo).json()
    assert body["middle_name"] is None and body["birthday"] is None
    assert body["suffix"] is None and body["surname"] is None
    assert [g["id"] for g in body["groups"]] == [group["id"]]  # membership survives
    assert api.client.get(f"/contacts/{cid}").json() == body
    # The filters follow the update (the index is rewritten, not appended to).
    assert ids(api.client.get("/contacts", params={"email": "swag@nylas.com"})) == []
    api.client.put(f"/contacts/{cid}", json={"emails": [{"type": "work", "email": "n@x.io"}]})
    assert ids(api.client.get("/contacts", params={"email": "n@x.io"})) == [cid]


def test_put_group_adds_a_membership(api: ApiAccount) -> None:
    a = api.client.post("/contacts/groups", json={"name": "A"}).json()
    b = api.client.post("/contacts/groups", json={"name": "B"}).json()
    contact = create(api, group=a["id"])
    body = api.client.put(f"/contacts/{contact['id']}", json={"group": b["id"]}).json()
    assert sorted(g["id"] for g in body["groups"]) == sorted([a["id"], b["id"]])


def test_create_in_unknown_group_is_400_naming_the_field_and_writes_nothing(
    api: ApiAccount,
) -> None:
    response = api.client.post("/contacts", json={"given_name": "x", "group": "nosuchgroup"})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "invalid_request_error"
    assert [v["field"] for v in body["violations"]] == ["group"]
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 0}


def test_delete_then_404_everywhere(api: ApiAccount) -> None:
    cid = create(api, **FULL)["id"]
    response = api.client.delete(f"/contacts/{cid}")
    assert (response.status_code, response.json()) == (200, {})
    for method in ("GET", "PUT", "DELETE"):
        assert api.client.request(method, f"/contacts/{cid}", json={"a": 1}).status_code == 404
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 0}
    assert ids(api.client.get("/contacts", params={"email": "swag@nylas.com"})) == []
