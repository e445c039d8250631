"""The guide's first steps, in-process: list, get, groups, create, update, delete."""

from __future__ import annotations

from tests.conftest import ApiAccount


def test_create_list_get_update_delete(api: ApiAccount) -> None:
    created = api.client.post(
        "/contacts", json={"given_name": "My", "middle_name": "Nylas", "surname": "Friend"}
    )
    assert created.status_code == 200, created.text
    contact = created.json()
    assert contact["object"] == "contact"
    assert contact["emails"] == []
    listed = api.client.get("/contacts", params={"limit": 5})
    assert [c["id"] for c in listed.json()] == [contact["id"]]
    updated = api.client.put(
        f"/contacts/{contact['id']}", json={"emails": [{"email": "swag@nylas.com", "type": "work"}]}
    )
    assert updated.json()["emails"] == [{"type": "work", "email": "swag@nylas.com"}]
    assert updated.json()["given_name"] == "My"
    assert api.client.delete(f"/contacts/{contact['id']}").status_code == 200
    assert api.client.get(f"/contacts/{contact['id']}").status_code == 404
