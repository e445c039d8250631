"""Sync against a real Radicale survives what real deployments do to it: the sync process
killed with SIGKILL mid-pull and mid-push, the server going away mid-sync, and the password
changing under it. Each case ends with a sync that converges: no duplicates, nothing lost.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rolodex.api.app import Services, build_services, create_app
from rolodex.config import Settings
from rolodex.connectors.base import InvalidCredentials, TransientError
from rolodex.connectors.carddav.client import CardDAVClient
from rolodex.domain.account import Account
from rolodex.domain.wire import contact_from_document
from rolodex.store import Store
from rolodex.store.schema import accounts, contact_remotes, contacts, outbox, sync_cursors
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.carddav_servers import RadicaleServer, vcard
from tests.conftest import TEST_SECRET_KEY
from tests.sync.crashing import count_rows, kill_when, lease_expires, sync_process

PULL_CARDS = 1500
PUSH_CONTACTS = 200


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer() as server:
        yield server


@pytest.fixture(scope="module")
def big_book(radicale: RadicaleServer) -> str:
    """One book of PULL_CARDS cards for the tests that only read it."""
    book = radicale.new_addressbook()
    fill_book(radicale, book, PULL_CARDS)
    with CardDAVClient(radicale.base_url, radicale.username, radicale.password) as client:
        assert len(client.list_etags(book)) == PULL_CARDS  # Radicale indexes them once, here
    return book


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Settings, Store, Services]]:
    url = f"sqlite:///{tmp_path / 'rolodex.db'}"
    store = Store(url)
    store.migrate()
    settings = Settings(database_url=url, secret_key=TEST_SECRET_KEY, public_url=None)
    yield settings, store, build_services(settings, store)
    store.close()


def make_runner(settings: Settings, store: Store) -> SyncRunner:
    from rolodex.cli.sync import make_runner as cli_runner

    return cli_runner(settings, store)


def connect(svc: Services, server: RadicaleServer, book: str) -> Account:
    created = svc.accounts.connect(
        f"{uuid.uuid4().hex[:8]}@example.com",
        name="Crash",
        provider="carddav",
        settings={"url": book, "username": server.username, "password": server.password},
    )
    return created.account


def fill_book(server: RadicaleServer, book: str, count: int) -> None:
    """Cards written straight into Radicale's storage (PUT one by one takes minutes)."""
    slug = book.rstrip("/").rsplit("/", 1)[-1]
    folder = server.root / "collections" / "collection-root" / server.username / slug
    assert folder.is_dir(), folder
    for n in range(count):
        extra = f"EMAIL;TYPE=work:person{n}@example.org\r\nTEL;TYPE=cell:+1555{n:07d}"
        (folder / f"card-{n}.vcf").write_bytes(
            vcard(f"card-{n}", f"Person{n} Family{n}", extra=extra)
        )


def remote_cards(server: RadicaleServer, book: str) -> dict[str, bytes]:
    with CardDAVClient(server.base_url, server.username, server.password) as client:
        etags = client.list_etags(book)
        return {res.href: res.data for res in client.multiget(book, list(etags))}


def card_uid(data: bytes) -> str:
    for line in data.decode().splitlines():
        if line.upper().startswith("UID:"):
            return line[4:].strip()
    raise AssertionError(data)


def local_docs(store: Store, account_id: str) -> list[dict[str, Any]]:
    with store.read() as tx:
        rows = tx.conn.execute(select(contacts.c.doc).where(contacts.c.account_id == account_id))
        return [orjson.loads(doc) for doc in rows.scalars()]


def assert_pulled_exactly(store: Store, account_id: str, count: int) -> None:
    docs = local_docs(store, account_id)
    assert len(docs) == count
    with store.read() as tx:
        remote_ids = list(
            tx.conn.execute(
                select(contact_remotes.c.remote_id).where(
                    contact_remotes.c.account_id == account_id
                )
            ).scalars()
        )
    assert len(remote_ids) == len(set(remote_ids)) == count
    by_name = {d["given_name"]: contact_from_document(d).fields for d in docs}
    assert sorted(by_name) == sorted(f"Person{n}" for n in range(count))
    for n in range(count):
        fields = by_name[f"Person{n}"]
        assert fields.surname == f"Family{n}"
        assert [e.email for e in fields.emails] == [f"person{n}@example.org"]
        assert [p.number for p in fields.phone_numbers] == [f"+1555{n:07d}"]


def test_killed_mid_pull_resumes_without_duplicates(
    radicale: RadicaleServer, big_book: str, env: tuple[Settings, Store, Services]
) -> None:
    settings, store, svc = env
    account = connect(svc, radicale, big_book)

    proc = sync_process(settings, account.id)
    kill_when(proc, lambda: 0 < count_rows(store, contacts, account.id) < PULL_CARDS)
    half = count_rows(store, contacts, account.id)
    assert 0 < half < PULL_CARDS

    runner = make_runner(settings, store)
    assert runner.run(account.id) is None, "the dead worker's lease holds until it times out"
    lease_expires(store, account.id)
    report = runner.run(account.id)
    assert report is not None
    assert_pulled_exactly(store, account.id, PULL_CARDS)
    assert svc.accounts.get(account.id).contact_count == PULL_CARDS


def test_killed_mid_push_creates_each_card_once(
    radicale: RadicaleServer, env: tuple[Settings, Store, Services]
) -> None:
    settings, store, svc = env
    book = radicale.new_addressbook()
    account = connect(svc, radicale, book)
    runner = make_runner(settings, store)
    runner.run(account.id)  # the first sync: an empty book
    for n in range(PUSH_CONTACTS):
        svc.contacts.create(
            account,
            {"given_name": f"Local{n}", "surname": "Pushed", "emails": [{"email": f"l{n}@x.org"}]},
        )
    assert count_rows(store, outbox, account.id) == PUSH_CONTACTS

    proc = sync_process(settings, account.id)
    kill_when(proc, lambda: 0 < count_rows(store, outbox, account.id) < PUSH_CONTACTS - 5)

    lease_expires(store, account.id)
    report = runner.run(account.id)
    assert report is not None and report.push_failures == 0
    assert count_rows(store, outbox, account.id) == 0
    cards = remote_cards(radicale, book)
    uids = [card_uid(data) for data in cards.values()]
    assert len(cards) == PUSH_CONTACTS
    assert len(set(uids)) == PUSH_CONTACTS
    local_ids = {d["id"] for d in local_docs(store, account.id)}
    assert set(uids) == local_ids  # each card is the contact it was made from
    # And another sync changes nothing: the pull finds no strangers.
    again = runner.run(account.id)
    assert again is not None and again.created_or_updated == again.deleted == 0
    assert count_rows(store, contacts, account.id) == PUSH_CONTACTS


def test_server_going_down_mid_pull_backs_off_then_converges(
    radicale: RadicaleServer, big_book: str, env: tuple[Settings, Store, Services]
) -> None:
    settings, store, svc = env
    account = connect(svc, radicale, big_book)
    runner = make_runner(settings, store)

    def progress(phase: str, _done: int, _total: int | None) -> None:
        if phase.startswith("pull") and radicale.running:
            radicale.stop()  # the cursor came; the cards are still to be read

    try:
        started = time.time()
        with pytest.raises(SyncFailed) as failed:
            runner.run(account.id, progress)
        assert isinstance(failed.value.__cause__, TransientError)
    finally:
        radicale.start()
    state = svc.accounts.get(account.id)
    assert state.sync_state == "sync-error"
    assert state.last_error
    with store.read() as tx:
        next_sync_at = tx.conn.execute(
            select(accounts.c.next_sync_at).where(accounts.c.id == account.id)
        ).scalar_one()
    assert next_sync_at is not None and next_sync_at > started + 1  # backs off
    assert account.id not in svc.mirror.due(time.time())[0]
    # Nothing half-applied: no contact without its link, and the cursor was not kept (the
    # next pull starts over rather than believing it has everything).
    partial = count_rows(store, contacts, account.id)
    assert partial < PULL_CARDS
    assert count_rows(store, contact_remotes, account.id) == partial
    with store.read() as tx:
        kept = tx.conn.execute(
            select(sync_cursors.c.cursor).where(sync_cursors.c.account_id == account.id)
        ).scalars()
        assert not any(kept)

    report = runner.run(account.id)
    assert report is not None
    assert_pulled_exactly(store, account.id, PULL_CARDS)
    assert svc.accounts.get(account.id).sync_state == "running"


def test_bad_credentials_stop_syncing_and_show_on_the_account(
    env: tuple[Settings, Store, Services],
) -> None:
    settings, store, svc = env
    with RadicaleServer(users={"test": "secret"}) as server:
        book = server.new_addressbook()
        server.put_card(book + "a.vcf", vcard("a", "Ada Lovelace"))
        created = svc.accounts.connect(
            "creds@example.com",
            name="Creds",
            provider="carddav",
            settings={"url": book, "username": "test", "password": "secret"},
        )
        account = created.account
        runner = make_runner(settings, store)
        assert runner.run(account.id) is not None
        # The user changes the password at the provider.
        (server.root / "htpasswd").write_text("test:changed\n")
        with pytest.raises(SyncFailed) as failed:
            runner.run(account.id)
        assert isinstance(failed.value.__cause__, InvalidCredentials)

    client = TestClient(create_app(settings, store))
    client.auth = (created.access_token, "")
    body = client.get("/account").json()
    assert body["sync_state"] == "invalid-credentials"
    assert body["last_error"]
    with store.read() as tx:
        next_sync_at = tx.conn.execute(
            select(accounts.c.next_sync_at).where(accounts.c.id == account.id)
        ).scalar_one()
    assert next_sync_at is None
    assert account.id not in svc.mirror.due(time.time() + 10 * 86400)[0]
