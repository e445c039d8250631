"""v2 deltas over the change log: polled, long-polled, streamed, and through the real SDK."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from rolodex.api import delta
from tests.conftest import ApiAccount, App, LiveServer


def _cursor(api: ApiAccount) -> str:
    answer = api.client.post("/delta/latest_cursor")
    assert answer.status_code == 200
    cursor: str = answer.json()["cursor"]
    return cursor


def test_every_change_since_a_cursor(api: ApiAccount) -> None:
    start = _cursor(api)
    a = api.client.post("/contacts", json={"given_name": "A"}).json()
    b = api.client.post("/contacts", json={"given_name": "B"}).json()
    api.client.put(f"/contacts/{a['id']}", json={"surname": "Changed"})
    api.client.delete(f"/contacts/{b['id']}")
    page = api.client.get("/delta", params={"cursor": start}).json()
    assert page["cursor_start"] == start
    events = [(d["id"], d["event"]) for d in page["deltas"]]
    assert events == [
        (a["id"], "create"),
        (b["id"], "create"),
        (a["id"], "modify"),
        (b["id"], "delete"),
    ]
    assert all(d["object"] == "contact" for d in page["deltas"])
    # Attributes are the object as it is now; null once it is gone.
    assert page["deltas"][0]["attributes"]["surname"] == "Changed"
    assert page["deltas"][3]["attributes"] is None
    later = api.client.get("/delta", params={"cursor": page["cursor_end"]}).json()
    assert later["deltas"] == [] and later["cursor_end"] == page["cursor_end"]
    everything = api.client.get("/delta", params={"cursor": "0"}).json()
    assert len(everything["deltas"]) == 4


def test_types_and_bad_cursors(api: ApiAccount) -> None:
    start = _cursor(api)
    api.client.post("/contacts/groups", json={"name": "Team"})
    api.client.post("/contacts", json={"given_name": "C"})
    only_contacts = api.client.get("/delta", params={"cursor": start}).json()["deltas"]
    assert [d["object"] for d in only_contacts] == ["contact"]
    groups = api.client.get(
        "/delta", params={"cursor": start, "include_types": "contact_group"}
    ).json()["deltas"]
    assert [(d["object"], d["attributes"]["name"]) for d in groups] == [("contact_group", "Team")]
    excluded = api.client.get("/delta", params={"cursor": start, "excluded_types": "contact"})
    assert excluded.json()["deltas"] == []
    both = api.client.get(
        "/delta", params={"cursor": start, "include_types": "contact", "excluded_types": "x"}
    )
    assert both.status_code == 400
    for bad in ("nonsense", "r", "rzz", "rfffffffff"):
        answer = api.client.get("/delta", params={"cursor": bad})
        assert answer.status_code == 400, bad
        assert answer.json() == {
            "message": "Invalid cursor parameter",
            "type": "invalid_request_error",
        }


def test_another_accounts_changes_never_show(app: App, api: ApiAccount) -> None:
    other = app.new_account()
    start = _cursor(api)
    other.client.post("/contacts", json={"given_name": "Secret"})
    assert api.client.get("/delta", params={"cursor": start}).json()["deltas"] == []


def test_longpoll_answers_when_a_change_arrives(api: ApiAccount) -> None:
    start = _cursor(api)

    def write_soon() -> None:
        time.sleep(0.6)
        api.client.post("/contacts", json={"given_name": "Late"})

    threading.Thread(target=write_soon).start()
    began = time.monotonic()
    page = api.client.get("/delta/longpoll", params={"cursor": start, "timeout": 10}).json()
    assert [d["attributes"]["given_name"] for d in page["deltas"]] == ["Late"]
    assert time.monotonic() - began < 5
    empty = api.client.get("/delta/longpoll", params={"cursor": page["cursor_end"], "timeout": 0.6})
    assert empty.json()["deltas"] == []


def test_streaming_sends_one_delta_per_line(api: ApiAccount) -> None:
    start = _cursor(api)
    api.client.post("/contacts", json={"given_name": "S1"})
    api.client.post("/contacts", json={"given_name": "S2"})
    with api.client.stream(
        "GET", "/delta/streaming", params={"cursor": start, "timeout": 1}
    ) as answer:
        lines = [orjson.loads(line) for line in answer.iter_lines() if line]
    assert [d["attributes"]["given_name"] for d in lines] == ["S1", "S2"]


def test_an_idle_stream_sends_newline_heartbeats(
    api: ApiAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Node SDK restarts a stream that sent nothing for 15 s, counting on v2's newline
    # heartbeat every 5 s (its DeltaStream.onDataReceived); a wait here is shortened.
    monkeypatch.setattr(delta, "HEARTBEAT_SECONDS", 0.3)
    start = _cursor(api)
    with api.client.stream(
        "GET", "/delta/streaming", params={"cursor": start, "timeout": 1.5}
    ) as answer:
        body = b"".join(answer.iter_bytes())
    assert body.strip() == b""
    assert body.count(b"\n") >= 2


@pytest.mark.parametrize("package", ["nylas_legacy", "nylas"])
def test_python_sdk_reads_deltas(live_server: LiveServer, package: str) -> None:
    module = __import__(package)
    account = live_server.app.new_account()
    client = module.APIClient("id", "secret", account.token, api_server="https://rolodex.invalid")
    client.api_server = live_server.url
    cursor = client.deltas.latest_cursor()
    account.client.post("/contacts", json={"given_name": "Sdk", "emails": [{"email": "s@x.org"}]})
    deltas = client.deltas.since(cursor)
    [delta] = deltas.deltas
    assert delta.event == "create" and delta.object == "contact"
    assert delta.attributes.given_name == "Sdk"
    assert delta.attributes.emails == {None: ["s@x.org"]}
    # deltas.stream() is left out: the SDK ends a stream only on a read timeout, which
    # requests raises as ConnectionError mid-iteration, outside the SDK's except clause.


def test_a_stream_ends_once_its_token_is_revoked(app: App, api: ApiAccount) -> None:
    # A revoked token stops working at once (README, Secrets), a stream it opened too:
    # else it would carry the account's changes for up to 30 minutes more.
    token = app.accounts.issue_token(api.id)
    client = app.client_for(token)
    start = _cursor(api)

    def revoke_then_write() -> None:
        time.sleep(0.5)
        app.services.accounts.revoke(token)
        api.client.post("/contacts", json={"given_name": "AfterRevoke"})

    writer = threading.Thread(target=revoke_then_write)
    began = time.monotonic()
    with client.stream("GET", "/delta/streaming", params={"cursor": start, "timeout": 20}) as s:
        writer.start()
        lines = [orjson.loads(line) for line in s.iter_lines() if line]
    writer.join()
    assert lines == []
    assert time.monotonic() - began < 10


def test_a_longpoll_answers_401_once_its_token_is_revoked(app: App, api: ApiAccount) -> None:
    token = app.accounts.issue_token(api.id)
    client = app.client_for(token)
    start = _cursor(api)

    def revoke_then_write() -> None:
        time.sleep(0.5)
        app.services.accounts.revoke(token)
        api.client.post("/contacts", json={"given_name": "AfterRevoke"})

    writer = threading.Thread(target=revoke_then_write)
    writer.start()
    answer = client.get("/delta/longpoll", params={"cursor": start, "timeout": 20})
    writer.join()
    assert answer.status_code == 401, answer.text
    assert answer.json()["message"] == "Could not verify access credential."


@pytest.mark.parametrize("path", ["/delta/streaming", "/delta/longpoll"])
def test_an_idle_wait_ends_soon_after_its_token_is_revoked(
    any_app: App, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # With nothing to send it would hold one of the account's delta slots until its
    # timeout (a stream up to 30 minutes): the token is asked again at each heartbeat.
    # (On PostgreSQL a revocation announces no change to wake the wait.)
    monkeypatch.setattr(delta, "HEARTBEAT_SECONDS", 0.3)
    app, api = any_app, any_app.new_account()
    token = app.accounts.issue_token(api.id)
    client = app.client_for(token)
    start = _cursor(api)
    revoker = threading.Timer(0.5, app.services.accounts.revoke, (token,))
    revoker.start()
    began = time.monotonic()
    try:
        if path == "/delta/streaming":
            with client.stream("GET", path, params={"cursor": start, "timeout": 20}) as s:
                assert [line for line in s.iter_lines() if line] == []
        else:
            answer = client.get(path, params={"cursor": start, "timeout": 20})
            assert answer.status_code == 401, answer.text
    finally:
        revoker.join()
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("path", ["/delta", "/delta/longpoll", "/delta/streaming"])
@pytest.mark.parametrize(
    "query",
    [
        [("cursor", "0"), ("cursor", "r1")],
        [("cursor", "0"), ("timeout", "1"), ("timeout", "100")],
        [("cursor", "0"), ("include_types", "contact"), ("include_types", "contact_group")],
    ],
)
def test_a_parameter_given_twice_is_a_400(
    api: ApiAccount, path: str, query: list[tuple[str, str]]
) -> None:
    answer = api.client.get(path, params=query)
    assert answer.status_code == 400, answer.text
    name = next(n for n, _ in query if sum(1 for m, _ in query if m == n) > 1)
    assert answer.json() == {
        "message": f"Parameter {name} may be given only once",
        "type": "invalid_request_error",
    }
