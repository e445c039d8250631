"""A few seconds without the database (a PostgreSQL restart, a locked SQLite file) answer
503 in the v2 shape meanwhile, and the server recovers without a restart."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from tests.conftest import ApiAccount, App


@contextmanager
def database_away(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    @contextmanager
    def unavailable(*_args: Any, **_kwargs: Any) -> Iterator[Any]:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        yield  # pragma: no cover

    with monkeypatch.context() as patch:
        patch.setattr(app.store, "read", unavailable)
        patch.setattr(app.store, "write", unavailable)
        yield


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/contacts"), ("GET", "/contacts/{id}"), ("GET", "/account"), ("POST", "/contacts")],
)
def test_503_while_the_database_is_away_then_recovery(
    app: App, api: ApiAccount, monkeypatch: pytest.MonkeyPatch, method: str, path: str
) -> None:
    cid = api.client.post("/contacts", json={"given_name": "A"}).json()["id"]
    url = path.replace("{id}", cid)
    kwargs: dict[str, Any] = {"json": {"given_name": "B"}} if method == "POST" else {}
    app.services.accounts._token_cache.clear()
    with database_away(app, monkeypatch):
        answer = api.client.request(method, url, **kwargs)
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"] == "api_error"
        assert "database" in answer.json()["message"].lower()
        assert app.client.get("/ready").status_code == 503
    assert api.client.request(method, url, **kwargs).status_code == 200
    assert app.client.get("/ready").status_code == 200


def test_a_write_while_another_process_holds_sqlite_locked_is_503_then_recovers(
    app: App, api: ApiAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real lock, as a backup or a second process takes it: reads go on (WAL), a write
    # gives up after a few seconds instead of hanging for SQLite's whole busy timeout.
    from rolodex.api import observe

    monkeypatch.setattr(observe, "WRITE_WAIT_SECONDS", 0.3)
    database = app.store.url.removeprefix("sqlite:///")
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        answer = api.client.post("/contacts", json={"given_name": "Waits"})
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"] == "api_error"
        assert time.monotonic() - started < 5
        assert api.client.get("/account").status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert api.client.post("/contacts", json={"given_name": "Lands"}).status_code == 200
    names = [c["given_name"] for c in api.client.get("/contacts").json()]
    assert "Lands" in names and "Waits" not in names
