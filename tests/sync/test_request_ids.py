"""The request id an API response returned is carried into the sync and push work the
request caused, wherever that runs: the outbox row and the sync request keep it, and the
JSON log records of the delivery and of the sync carry it (here a runner with a store of
its own, as another process has, on SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rolodex.api.app import create_app
from rolodex.connectors.base import CredentialsChanged
from rolodex.logs import JsonFormatter
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.sync.runner import SyncRunner
from tests.conftest import settings_for_tests
from tests.sync.memory_connector import MemoryConnector


class Logs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def carrying(self, request_id: str) -> list[str]:
        return [r["message"] for r in self.records() if r.get("request_id") == request_id]


@pytest.fixture
def logs() -> Iterator[Logs]:
    captured = Logs()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield captured
    root.removeHandler(handler)
    root.setLevel(level)


class Elsewhere:
    """The API on one store, a sync runner on another store of the same database."""

    def __init__(self, store: Store) -> None:
        settings = settings_for_tests(store.url)
        self.api = TestClient(create_app(settings, store))
        self.worker_store = Store(store.url)
        from rolodex.cli.sync import make_runner

        accounts = make_runner(settings, self.worker_store).accounts
        created = accounts.create(
            f"ids-{time.monotonic_ns()}@example.com",
            provider="carddav",
            connection={"url": "memory://", "username": "u", "password": "p"},
        )
        self.account_id = created.account.id
        self.api.auth = (created.access_token, "")
        self.remote = MemoryConnector()
        self.runner = SyncRunner(accounts, Mirror(self.worker_store), self.open, 60)

    def open(self, _provider: str, _settings: dict[str, Any], _changed: CredentialsChanged) -> Any:
        return self.remote

    def close(self) -> None:
        self.worker_store.close()


@pytest.fixture
def elsewhere(store: Store) -> Iterator[Elsewhere]:
    rig = Elsewhere(store)
    yield rig
    rig.close()


def test_a_write_carries_its_request_id_into_its_delivery(elsewhere: Elsewhere, logs: Logs) -> None:
    elsewhere.runner.run(elsewhere.account_id)  # the first sync, before the write
    created = elsewhere.api.post(
        "/contacts", json={"given_name": "Ann"}, headers={"X-Request-Id": "write-req-000123"}
    )
    assert created.status_code == 200, created.text
    assert created.headers["x-request-id"] == "write-req-000123"
    contact_id = created.json()["id"]
    elsewhere.runner.run(elsewhere.account_id, pull=False)
    assert elsewhere.remote.items  # delivered
    assert f"create of contact {contact_id} delivered" in logs.carrying("write-req-000123")


def test_a_requested_sync_carries_the_request_id(elsewhere: Elsewhere, logs: Logs) -> None:
    elsewhere.runner.run(elsewhere.account_id)
    asked = elsewhere.api.post("/account/sync", headers={"X-Request-Id": "sync-req-000456"})
    assert asked.status_code == 200, asked.text
    # As a worker's round would run it (run_due would sync other tests' accounts too).
    assert elsewhere.runner.run(elsewhere.account_id) is not None
    messages = logs.carrying("sync-req-000456")
    assert f"sync of {elsewhere.account_id} asked for" in messages
    assert f"sync of {elsewhere.account_id} done" in messages
    # Taken by that sync: the next one is nobody's request.
    elsewhere.runner.run(elsewhere.account_id)
    assert len(logs.carrying("sync-req-000456")) == len(messages)


def test_a_sync_asked_for_while_one_runs_follows_it(elsewhere: Elsewhere) -> None:
    mirror = elsewhere.runner.mirror
    account_id = elsewhere.account_id
    elsewhere.runner.run(account_id)
    assert mirror.lease(account_id, "busy", 30)  # a sync is running
    assert elsewhere.api.post("/account/sync").json()["sync_in_progress"] is True
    # That sync ends and schedules the next one a whole interval away...
    mirror.record_status(
        account_id, state="running", error=None, next_sync_at=time.time() + 60, succeeded=True
    )
    mirror.release(account_id, "busy")
    # ...but the one asked for meanwhile is due at once.
    pull_due, _ = mirror.due(time.time() + 1)
    assert account_id in pull_due
