"""Contact pictures: raw bytes with their image type, checked by content, size-limited."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import ApiAccount

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # noqa: E501
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"  # noqa: E501


def new_contact(api: ApiAccount) -> str:
    cid: str = api.client.post("/contacts", json={"given_name": "Pic"}).json()["id"]
    return cid


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(PNG, "image/png"), (GIF, "image/gif"), (JPEG, "image/jpeg"), (WEBP, "image/webp")],
)
def test_put_get_delete_roundtrip(api: ApiAccount, data: bytes, content_type: str) -> None:
    cid = new_contact(api)
    missing = api.client.get(f"/contacts/{cid}/picture")
    assert missing.status_code == 404
    assert missing.json() == {
        "message": f"Contact {cid} has no picture",
        "type": "invalid_request_error",
    }
    # The claimed type is irrelevant: the bytes decide.
    put = api.client.put(
        f"/contacts/{cid}/picture", content=data, headers={"Content-Type": "text/plain"}
    )
    assert put.status_code == 200, put.text
    url = f"http://testserver/contacts/{cid}/picture"
    assert put.json()["picture_url"] == url
    assert api.client.get(f"/contacts/{cid}").json()["picture_url"] == url
    assert api.client.get("/contacts").json()[0]["picture_url"] == url
    got = api.client.get(f"/contacts/{cid}/picture")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == content_type
    assert "content-encoding" not in got.headers  # the Python SDK does not decode it
    # An update that does not mention the picture keeps it.
    api.client.put(f"/contacts/{cid}", json={"picture_url": None, "surname": "S"})
    assert api.client.get(f"/contacts/{cid}/picture").content == data
    deleted = api.client.delete(f"/contacts/{cid}/picture")
    assert deleted.status_code == 200 and deleted.json()["picture_url"] is None
    assert api.client.get(f"/contacts/{cid}/picture").status_code == 404
    assert api.client.get(f"/contacts/{cid}").json()["picture_url"] is None
    assert api.client.delete(f"/contacts/{cid}/picture").status_code == 404


def test_public_url_makes_picture_url_absolute_there(api: ApiAccount) -> None:
    cid = new_contact(api)
    api.client.put(f"/contacts/{cid}/picture", content=PNG)
    other_host = api.client.get(f"/contacts/{cid}", headers={"Host": "rolodex.example:8443"})
    assert other_host.json()["picture_url"] == f"http://rolodex.example:8443/contacts/{cid}/picture"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"just some text, named photo.jpg", 400),
        (b"", 400),
        (b"%PDF-1.4 not an image", 400),
        (PNG + b"\x00" * (5 * 1024 * 1024), 413),
    ],
)
def test_refused_pictures_change_nothing(api: ApiAccount, data: bytes, status: int) -> None:
    cid = new_contact(api)
    api.client.put(f"/contacts/{cid}/picture", content=GIF)
    before = api.client.get(f"/contacts/{cid}").json()
    response = api.client.put(
        f"/contacts/{cid}/picture", content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert response.status_code == status, response.text
    assert response.json()["type"] == "invalid_request_error"
    assert api.client.get(f"/contacts/{cid}").json() == before
    assert api.client.get(f"/contacts/{cid}/picture").content == GIF


def test_deleting_the_contact_deletes_its_picture(api: ApiAccount) -> None:
    cid = new_contact(api)
    api.client.put(f"/contacts/{cid}/picture", content=PNG)
    assert api.client.delete(f"/contacts/{cid}").status_code == 200
    assert api.client.get(f"/contacts/{cid}/picture").status_code == 404
