"""Every curl example of the Contacts API guide, run with the real ``curl`` against a real
Rolodex server.

The commands are the guide's, with ``https://{access_token}:@api.nylas.com`` replaced by the
live server (the token stays in the URL, so curl sends it as HTTP Basic) and ``-sS`` plus a
``--write-out`` of the status added for the test's sake. ``-d`` makes curl send
``application/x-www-form-urlencoded``: the body must still be read as JSON. The guide's PUT
example lacks its closing quote; the intended body is used.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compat.pictures import png
from tests.conftest import ApiAccount, LiveServer

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not on PATH")

STATUS_MARK = "\n--status:"


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def curl(
    live_server: LiveServer, token: str, *args: str, path: str, stdout: Path | None = None
) -> Answer:
    """Run ``curl <args> <url>`` as the guide does, the status written to stderr."""
    host = urlsplit(live_server.url).netloc
    url = f"http://{token}:@{host}{path}"
    command = ["curl", "-sS", "--write-out", f"%{{stderr}}{STATUS_MARK}%{{http_code}}", *args, url]
    if stdout is None:
        done = subprocess.run(command, capture_output=True, timeout=30, check=False)
        body = done.stdout
    else:
        with stdout.open("wb") as out:  # the guide's `> picture.jpg`
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.PIPE, timeout=30, check=False
            )
        body = stdout.read_bytes()
    assert done.returncode == 0, done.stderr.decode()
    stderr = done.stderr.decode()
    assert STATUS_MARK in stderr, stderr
    return Answer(int(stderr.rsplit(STATUS_MARK, 1)[1]), body)


@pytest.fixture
def account(live_server: LiveServer) -> ApiAccount:
    return live_server.app.new_account()


def create(account: ApiAccount, **body: Any) -> dict[str, Any]:
    response = account.client.post("/contacts", json=body)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def test_list_with_limit(live_server: LiveServer, account: ApiAccount) -> None:
    ids = [create(account, given_name=f"Given{i}")["id"] for i in range(7)]
    # curl -X GET https://{access_token}:@api.nylas.com/contacts?limit=5
    answer = curl(live_server, account.token, "-X", "GET", path="/contacts?limit=5")
    assert answer.status == 200
    contacts = answer.json()
    assert [c["id"] for c in contacts] == ids[:5]
    assert all(c["object"] == "contact" for c in contacts)


def test_get_one(live_server: LiveServer, account: ApiAccount) -> None:
    contact = create(
        account,
        given_name="My",
        middle_name="Nylas",
        surname="Friend",
        birthday="2011-01-01",
        emails=[{"email": "swag@nylas.com", "type": "work"}],
    )
    # curl -X GET https://{access_token}:@api.nylas.com/contacts/{id}
    answer = curl(live_server, account.token, "-X", "GET", path=f"/contacts/{contact['id']}")
    assert answer.status == 200
    got = answer.json()
    assert got == contact
    assert got["birthday"] == "2011-01-01"


def test_picture_to_file(live_server: LiveServer, account: ApiAccount, tmp_path: Path) -> None:
    contact_id = create(account, given_name="Pictured")["id"]
    image = png()
    assert account.client.put(f"/contacts/{contact_id}/picture", content=image).status_code == 200
    target = tmp_path / "picture.jpg"
    # curl -X GET https://{access_token}:@api.nylas.com/contacts/{id}/picture > picture.jpg
    answer = curl(
        live_server,
        account.token,
        "-X",
        "GET",
        path=f"/contacts/{contact_id}/picture",
        stdout=target,
    )
    assert answer.status == 200
    assert target.read_bytes() == image


def test_groups(live_server: LiveServer, account: ApiAccount) -> None:
    for name in ("Work", "Personal"):
        assert account.client.post("/contacts/groups", json={"name": name}).status_code == 200
    # curl -X GET https://{access_token}:@api.nylas.com/contacts/groups
    answer = curl(live_server, account.token, "-X", "GET", path="/contacts/groups")
    assert answer.status == 200
    groups = answer.json()
    assert sorted(g["name"] for g in groups) == ["Personal", "Work"]
    for group in groups:
        assert set(group) == {"id", "object", "account_id", "name", "path"}
        assert group["object"] == "contact_group"
        assert group["account_id"] == account.id


def test_create_with_form_encoded_json(live_server: LiveServer, account: ApiAccount) -> None:
    # curl -X POST https://{access_token}:@api.nylas.com/contacts -d '{...}'
    body = '{\n"given_name": "My",\n"middle_name": "Nylas",\n"surname": "Friend"\n}'
    answer = curl(live_server, account.token, "-X", "POST", "-d", body, path="/contacts")
    assert answer.status == 200, answer.body
    created = answer.json()
    assert (created["given_name"], created["middle_name"], created["surname"]) == (
        "My",
        "Nylas",
        "Friend",
    )
    assert account.client.get(f"/contacts/{created['id']}").json() == created


def test_update_with_form_encoded_json(live_server: LiveServer, account: ApiAccount) -> None:
    contact = create(account, given_name="My", surname="Friend", job_title="Friend")
    # curl -X PUT https://{access_token}:@api.nylas.com/contacts/{id} -d '{"emails": [...]}'
    body = '{\n"emails": [\n{\n"email": "swag@nylas.com",\n"type": "work"\n}\n]\n}'
    answer = curl(
        live_server, account.token, "-X", "PUT", "-d", body, path=f"/contacts/{contact['id']}"
    )
    assert answer.status == 200, answer.body
    assert answer.json() == {**contact, "emails": [{"email": "swag@nylas.com", "type": "work"}]}


def test_delete(live_server: LiveServer, account: ApiAccount) -> None:
    keep = create(account, given_name="Keep")["id"]
    gone = create(account, given_name="Gone")["id"]
    # curl -X DELETE https://{access_token}:@api.nylas.com/contacts/{id}
    answer = curl(live_server, account.token, "-X", "DELETE", path=f"/contacts/{gone}")
    assert answer.status == 200
    assert answer.body in (b"", b"{}")
    assert account.client.get(f"/contacts/{gone}").status_code == 404
    assert account.client.get("/contacts", params={"view": "ids"}).json() == [keep]


def test_unknown_token(live_server: LiveServer) -> None:
    answer = curl(live_server, "not-a-token", "-X", "GET", path="/contacts?limit=5")
    assert answer.status == 401
    assert answer.json() == {
        "message": "Could not verify access credential.",
        "type": "invalid_request_error",
    }


def test_missing_contact(live_server: LiveServer, account: ApiAccount) -> None:
    answer = curl(live_server, account.token, "-X", "GET", path="/contacts/nonexistent")
    assert answer.status == 404
    assert answer.json() == {
        "message": "Couldn't find contact nonexistent",
        "type": "invalid_request_error",
    }
