"""Sync runs are counted by outcome, and provider errors by kind, where they run (GET /metrics
of the serving process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from rolodex.cli.sync import make_runner
from rolodex.sync.runner import SyncFailed
from tests.carddav_servers import RadicaleServer
from tests.conftest import App, free_port


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer(users={"test": "secret"}) as server:
        yield server


def runs(outcome: str) -> float:
    return REGISTRY.get_sample_value("rolodex_sync_runs_total", {"outcome": outcome}) or 0.0


def provider_errors(provider: str, kind: str) -> float:
    labels = {"provider": provider, "kind": kind}
    return REGISTRY.get_sample_value("rolodex_provider_errors_total", labels) or 0.0


def test_sync_runs_are_counted_by_outcome(app: App, radicale: RadicaleServer) -> None:
    runner = make_runner(app.settings, app.store, 30.0)
    created = app.accounts.connect(
        "metrics@example.com",
        name="M",
        provider="carddav",
        settings={"url": radicale.base_url, "username": "test", "password": "secret"},
    )
    gone = app.accounts.create(
        "gone@example.com",
        provider="carddav",
        connection={"url": f"http://127.0.0.1:{free_port()}/", "username": "a", "password": "b"},
    )
    before_ok, before_error = runs("ok"), runs("sync-error")
    unreachable = provider_errors("carddav", "transient")
    runner.run(created.account.id)
    assert runs("ok") == before_ok + 1
    with pytest.raises(SyncFailed):
        runner.run(gone.account.id)
    assert runs("sync-error") == before_error + 1
    assert provider_errors("carddav", "transient") == unreachable + 1
