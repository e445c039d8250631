"""OpenAPI describes every route, request bodies included, and the docs page answers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import App

ROUTES = {
    "/contacts": {"get", "post"},
    "/contacts/{contact_id}": {"get", "put", "delete"},
    "/contacts/{contact_id}/picture": {"get", "put", "delete"},
    "/contacts/groups": {"get", "post"},
    "/contacts/groups/{group_id}": {"put", "delete"},
    "/account": {"get"},
    "/a/{client_id}/accounts": {"get"},
    "/a/{client_id}/accounts/{account_id}": {"get", "delete"},
    "/a/{client_id}/accounts/{account_id}/revoke-all": {"post"},
    "/a/{client_id}/accounts/{account_id}/token-info": {"post"},
    "/a/{client_id}": {"get"},
}


def test_openapi_describes_every_route_and_body(app: App) -> None:
    client = TestClient(app.client.app)  # no credentials: the description is public
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    paths = spec["paths"]
    for path, methods in ROUTES.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    schemas = spec["components"]["schemas"]
    for path, method in [
        ("/contacts", "post"),
        ("/contacts/{contact_id}", "put"),
        ("/contacts/groups", "post"),
        ("/contacts/groups/{group_id}", "put"),
    ]:
        body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        name = body["$ref"].rsplit("/", 1)[-1]
        assert name in schemas, name
    write = schemas["ContactWrite"]["properties"]
    assert {"given_name", "birthday", "emails", "physical_addresses", "group"} <= set(write)
    assert "name" in schemas["GroupWrite"]["properties"]
    picture = paths["/contacts/{contact_id}/picture"]["put"]["requestBody"]["content"]
    assert "image/*" in picture
    listing = {p["name"] for p in paths["/contacts"]["get"]["parameters"]}
    assert {"limit", "offset", "view", "email", "phone_number", "group", "recurse"} <= listing
    # Every $ref points at something that exists.
    text = response.text
    for ref in {part.split('"')[0] for part in text.split('"$ref":"')[1:]}:
        assert ref.rsplit("/", 1)[-1] in schemas, ref


def test_docs_answer(app: App) -> None:
    client = TestClient(app.client.app)
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
