"""A token reaches only its own account: another account's ids answer exactly like ids that
never existed, on every route, on both backends."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import ApiAccount, App

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)
NEVER = "neverexisted0000000000000"


def _same_answer(a: Any, b: Any, foreign: str) -> None:
    """The two responses may differ only by the id they echo."""
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.content.replace(foreign.encode(), b"ID") == b.content.replace(NEVER.encode(), b"ID")


@pytest.fixture
def pair(any_app: App) -> tuple[ApiAccount, ApiAccount, dict[str, Any], dict[str, Any]]:
    """Two accounts; the victim has a grouped contact with a picture."""
    victim = any_app.new_account()
    intruder = any_app.new_account()
    group = victim.client.post("/contacts/groups", json={"name": "Secret"}).json()
    contact = victim.client.post(
        "/contacts",
        json={"given_name": "Private", "emails": [{"email": "p@x.io"}], "group": group["id"]},
    ).json()
    pictured = victim.client.put(f"/contacts/{contact['id']}/picture", content=PNG)
    assert pictured.status_code == 200
    return victim, intruder, pictured.json(), group


CONTACT_ROUTES = [
    ("GET", "/contacts/{id}", None),
    ("PUT", "/contacts/{id}", {"given_name": "Hijacked"}),
    ("DELETE", "/contacts/{id}", None),
    ("GET", "/contacts/{id}/picture", None),
    ("PUT", "/contacts/{id}/picture", PNG),
    ("DELETE", "/contacts/{id}/picture", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTACT_ROUTES)
def test_contact_routes_answer_404_like_an_id_that_never_existed(
    pair: tuple[ApiAccount, ApiAccount, dict[str, Any], dict[str, Any]],
    method: str,
    path: str,
    body: Any,
) -> None:
    victim, intruder, contact, _ = pair
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    foreign = intruder.client.request(method, path.format(id=contact["id"]), **kwargs)
    never = intruder.client.request(method, path.format(id=NEVER), **kwargs)
    assert foreign.status_code == 404
    assert foreign.json()["type"] == "invalid_request_error"
    _same_answer(foreign, never, contact["id"])
    # And the victim's contact is untouched.
    assert victim.client.get(f"/contacts/{contact['id']}").json() == contact
    assert victim.client.get(f"/contacts/{contact['id']}/picture").content == PNG


@pytest.mark.parametrize(("method", "body"), [("PUT", {"name": "Mine now"}), ("DELETE", None)])
def test_group_writes_answer_404_like_a_group_that_never_existed(
    pair: tuple[ApiAccount, ApiAccount, dict[str, Any], dict[str, Any]],
    method: str,
    body: Any,
) -> None:
    victim, intruder, _, group = pair
    foreign = intruder.client.request(method, f"/contacts/groups/{group['id']}", json=body)
    never = intruder.client.request(method, f"/contacts/groups/{NEVER}", json=body)
    assert foreign.status_code == 404
    _same_answer(foreign, never, group["id"])
    assert victim.client.get("/contacts/groups").json() == [group]


def test_lists_filters_and_group_on_create_see_only_the_own_account(
    pair: tuple[ApiAccount, ApiAccount, dict[str, Any], dict[str, Any]],
) -> None:
    victim, intruder, contact, group = pair
    assert intruder.client.get("/contacts").json() == []
    assert intruder.client.get("/contacts", params={"view": "count"}).json() == {"count": 0}
    assert intruder.client.get("/contacts", params={"view": "ids"}).json() == []
    assert intruder.client.get("/contacts", params={"email": "p@x.io"}).json() == []
    assert intruder.client.get("/contacts/groups").json() == []
    for params in ({}, {"recurse": "true"}, {"view": "count"}, {"view": "ids"}):
        foreign = intruder.client.get("/contacts", params={"group": group["id"], **params})
        never = intruder.client.get("/contacts", params={"group": NEVER, **params})
        _same_answer(foreign, never, group["id"])
        assert foreign.status_code == 200
    foreign = intruder.client.post("/contacts", json={"group": group["id"]})
    never = intruder.client.post("/contacts", json={"group": NEVER})
    assert foreign.status_code == 400
    _same_answer(foreign, never, group["id"])
    assert intruder.client.get("/contacts", params={"view": "count"}).json() == {"count": 0}
    # Nothing the intruder did reached the victim.
    assert victim.client.get("/contacts").json() == [contact]
