"""Contact pictures: raw bytes with their image type, checked by content, size-limited."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from tests.conftest import ApiAccount

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # noqa: E501


def encoded(image_format: str, size: tuple[int, int] = (2, 2)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, image_format)
    return buffer.getvalue()


JPEG = encoded("JPEG")
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
        # The right first bytes, then nothing an image decoder can read.
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9", 400),
        (PNG[:40], 400),
        (PNG[:16] + b"x" * 200, 400),
        (b"GIF89a" + b"\x00" * 64, 400),
        (b"RIFF\x1a\x00\x00\x00WEBPVP8 " + b"\x00" * 64, 400),
        (encoded("BMP"), 400),  # decodes, but is not one of the four types
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


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims another size (a decompression bomb's first step)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return PNG[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + PNG[33:]


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (9_000, 9_000)])
def test_pictures_too_many_pixels_are_refused(api: ApiAccount, width: int, height: int) -> None:
    cid = new_contact(api)
    response = api.client.put(f"/contacts/{cid}/picture", content=_png_claiming(width, height))
    assert response.status_code == 400, response.text
    # Said as what it is, however far past the limit (Pillow's own bomb check included).
    assert response.json()["type"] == "invalid_request_error"
    message = response.json()["message"]
    assert message.startswith("Invalid picture: a picture may have at most 40000000 pixels")


def test_pictures_are_served_nosniff_with_an_etag_and_304(api: ApiAccount) -> None:
    cid = new_contact(api)
    api.client.put(f"/contacts/{cid}/picture", content=PNG)
    got = api.client.get(f"/contacts/{cid}/picture")
    assert got.headers["x-content-type-options"] == "nosniff"
    etag = got.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    for header in [etag, f"W/{etag}", f'"other", {etag}', "*"]:
        again = api.client.get(f"/contacts/{cid}/picture", headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
    for header in ['"other"', etag[:-2] + '"', ""]:
        fresh = api.client.get(f"/contacts/{cid}/picture", headers={"If-None-Match": header})
        assert fresh.status_code == 200 and fresh.content == PNG, header
    # A new picture is a new etag.
    api.client.put(f"/contacts/{cid}/picture", content=GIF)
    changed = api.client.get(f"/contacts/{cid}/picture", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.content == GIF
    assert changed.headers["etag"] != etag
