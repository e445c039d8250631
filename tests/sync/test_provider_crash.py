"""A ``rolodex sync`` killed with SIGKILL while it pushes creates to Google or Microsoft, on
each database: the next sync makes each contact there exactly once.

The emulators take a while over each write and apply it at the end (as a slow provider
does), so the kill most likely lands while a create is on the wire: the provider makes that
contact after the process that asked for it is gone, and nothing here recorded its reply.
The next sync (another process, once the dead one's lease runs out) must find it by the
Rolodex id it carries (Google's clientData, Graph's extended property) rather than make a
second one, and the pull after it must not take it for a contact made at the provider.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import orjson
import pytest

from rolodex.api.app import build_services
from rolodex.cli.sync import make_runner
from rolodex.connectors.google import mapping
from rolodex.connectors.microsoft.connector import ROLODEX_ID_PROPERTY
from rolodex.domain.account import Account
from rolodex.domain.query import ListQuery
from rolodex.store import Store
from rolodex.store.schema import contact_remotes, contacts, outbox
from rolodex.sync.runner import SyncRunner
from tests.conftest import settings_for_tests
from tests.emulators.google import GoogleServer
from tests.emulators.microsoft import GraphEmulator
from tests.sync.crashing import count_rows, kill_when, lease_expires, sync_process

CREATES = 40
SLOW_WRITE = 0.05  # seconds the provider takes over each request


def _created_then_killed(
    url: str,
    account: Account,
    store: Store,
    remote_ids: Callable[[], list[str | None]],
    creating: Callable[[], bool],
) -> SyncRunner:
    """Queue ``CREATES`` contacts, start a sync process, and kill it while the provider
    works on a create, once some (not all) are recorded as pushed; then wait until the
    provider is done with it (by the time the dead process's lease runs out, it is).
    ``remote_ids``: the Rolodex ids of the contacts at the provider. Returns a runner of
    this process for the syncs after."""
    settings = settings_for_tests(url)
    svc = build_services(settings, store)
    runner = make_runner(settings, store)
    assert runner.run(account.id) is not None  # the first sync: an empty address book
    for n in range(CREATES):
        svc.contacts.create(
            account,
            {"given_name": f"Local{n}", "surname": "Pushed", "emails": [{"email": f"l{n}@x.org"}]},
        )
    proc = sync_process(settings, account.id)
    kill_when(
        proc,
        lambda: creating() and 0 < count_rows(store, outbox, account.id) < CREATES - 5,
        timeout=120,
    )
    deadline = time.monotonic() + 10
    while creating() and time.monotonic() < deadline:
        time.sleep(0.01)
    recorded = CREATES - count_rows(store, outbox, account.id)
    # The create on the wire at the kill landed, and nothing here knows it did.
    assert len(remote_ids()) == recorded + 1 < CREATES
    lease_expires(store, account.id)
    return runner


def _converged(
    url: str, runner: SyncRunner, store: Store, account: Account, made: list[str | None]
) -> None:
    """Every local contact made once at the provider, carrying its own id, and linked."""
    svc = build_services(settings_for_tests(url), store)
    local = {orjson.loads(d)["id"] for d in svc.contacts.page(account, ListQuery(limit=1000))}
    assert len(local) == CREATES
    assert len(made) == CREATES, f"{len(made)} made at the provider for {CREATES} contacts"
    assert sorted(made) == sorted(local)  # type: ignore[type-var]
    assert count_rows(store, contact_remotes, account.id) == CREATES
    # And the next sync finds nothing new on either side.
    again = runner.run(account.id)
    assert again is not None and again.created_or_updated == again.deleted == 0
    assert count_rows(store, contacts, account.id) == CREATES


@pytest.fixture(scope="module")
def google_server() -> Iterator[GoogleServer]:
    with GoogleServer() as server:
        yield server


def test_google_killed_mid_push_makes_each_person_once(
    google_server: GoogleServer, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    google = google_server.reset()
    monkeypatch.setenv("ROLODEX_GOOGLE_PEOPLE_URL", google_server.people_url)
    monkeypatch.setenv("ROLODEX_GOOGLE_TOKEN_URL", google_server.token_url)
    store = Store(fresh_database_url)
    store.migrate()
    try:
        svc = build_services(settings_for_tests(fresh_database_url), store)
        account = svc.accounts.connect(
            "crash@gmail.com",
            name="Crash",
            provider="gmail",
            settings={
                "google_client_id": "client-id",
                "google_client_secret": "client-secret",
                "google_refresh_token": google.grant("client-id", "client-secret"),
            },
        ).account

        def made() -> list[str | None]:
            return [mapping.rolodex_id_of(p) for p in google.find_people()]

        google.mutation_latency = SLOW_WRITE
        runner = _created_then_killed(
            fresh_database_url, account, store, made, lambda: google._mutating > 0
        )
        google.mutation_latency = 0.0
        report = runner.run(account.id)
        assert report is not None and report.push_failures == 0
        assert count_rows(store, outbox, account.id) == 0
        _converged(fresh_database_url, runner, store, account, made())
    finally:
        store.close()


def test_microsoft_killed_mid_push_makes_each_contact_once(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GraphEmulator() as graph:
        monkeypatch.setenv("ROLODEX_MICROSOFT_GRAPH_URL", graph.graph_url)
        monkeypatch.setenv("ROLODEX_MICROSOFT_LOGIN_URL", graph.login_url)
        store = Store(fresh_database_url)
        store.migrate()
        try:
            svc = build_services(settings_for_tests(fresh_database_url), store)
            account = svc.accounts.connect(
                graph.email,
                name="Crash",
                provider="office365",
                settings={
                    "microsoft_client_id": graph.client_id,
                    "microsoft_client_secret": graph.client_secret,
                    "microsoft_refresh_token": graph.refresh_token,
                    "redirect_uri": "http://localhost:8400/callback",
                },
            ).account

            def made() -> list[str | None]:
                key = ROLODEX_ID_PROPERTY.lower()
                return [c.extended.get(key) for c in list(graph.contacts.values())]

            graph.latency = SLOW_WRITE
            runner = _created_then_killed(
                fresh_database_url,
                account,
                store,
                made,
                lambda: any(
                    r.method == "POST" and r.received and not r.status for r in list(graph.requests)
                ),
            )
            graph.latency = 0.0
            report = runner.run(account.id)
            assert report is not None and report.push_failures == 0
            assert count_rows(store, outbox, account.id) == 0
            _converged(fresh_database_url, runner, store, account, made())
        finally:
            store.close()
