"""Focused cases found by the convergence state machine (test_convergence.py), each once
a bug: a create whose reply was lost, and merges after a precondition failure."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from rolodex.api.app import Services, build_services
from rolodex.config import Settings
from rolodex.domain.account import Account
from rolodex.domain.contact import ContactFields
from rolodex.domain.query import ContactFilter
from rolodex.domain.wire import contact_from_document
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.store.schema import outbox
from rolodex.sync.engine import BATCH
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.conftest import TEST_SECRET_KEY
from tests.sync.memory_connector import MemoryConnector

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@dataclass
class Rig:
    store: Store
    svc: Services
    account: Account
    remote: MemoryConnector
    runner: SyncRunner

    def sync(self) -> None:
        with self.store.write() as tx:  # time passes: failed writes are due again
            tx.conn.execute(
                update(outbox)
                .where(outbox.c.account_id == self.account.id)
                .values(next_attempt_at=0)
            )
        with contextlib.suppress(SyncFailed):
            self.runner.run(self.account.id)

    def local(self) -> dict[str, ContactFields]:
        with self.store.read() as tx:
            rows = tx.contacts.page(self.account.id, ContactFilter(), 1000, 0)
            return {r.id: contact_from_document(orjson.loads(r.doc)).fields for r in rows}

    def count(self) -> int:
        with self.store.read() as tx:
            return tx.contacts.count(self.account.id, ContactFilter())

    def outbox_size(self) -> int:
        with self.store.read() as tx:
            return tx.outbox.count(self.account.id)


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[Store, Services]]:
    path = Path(tempfile.mkdtemp(prefix="rolodex-faults-")) / "rolodex.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    settings = Settings(database_url=store.url, secret_key=TEST_SECRET_KEY, public_url=None)
    yield store, build_services(settings, store)
    store.close()


@pytest.fixture
def rig(services: tuple[Store, Services]) -> Rig:
    store, svc = services
    account = svc.accounts.create(
        "faults@example.com",
        name="Faults",
        provider="carddav",
        connection={"url": "memory://", "username": "u", "password": "p"},
    ).account
    remote = MemoryConnector()
    runner = SyncRunner(svc.accounts, Mirror(store), lambda _p, _s, _c: remote, interval=60)
    return Rig(store, svc, account, remote, runner)


def test_lost_create_reply_then_pull_makes_no_duplicate(rig: Rig) -> None:
    contact_id = orjson.loads(rig.svc.contacts.create(rig.account, {"given_name": "Ada"}))["id"]
    rig.remote.plan.fail("create", "after")  # the card lands, the reply is lost
    rig.sync()  # the pull of the same sync sees the card before the push recorded it
    rig.sync()
    assert list(rig.local()) == [contact_id]
    assert [i.uid for i in rig.remote.items.values()] == [contact_id]
    assert rig.outbox_size() == 0


def test_lost_create_reply_then_local_delete_deletes_the_card(rig: Rig) -> None:
    contact_id = orjson.loads(rig.svc.contacts.create(rig.account, {"given_name": "Ada"}))["id"]
    rig.remote.plan.fail("create", "after")
    rig.sync()
    rig.svc.contacts.delete(rig.account, contact_id)
    rig.sync()
    rig.sync()
    assert rig.local() == {}
    assert rig.remote.items == {}
    assert rig.outbox_size() == 0


def test_lost_create_reply_then_pull_failed_then_local_delete(rig: Rig) -> None:
    contact_id = orjson.loads(rig.svc.contacts.create(rig.account, {"given_name": "Ada"}))["id"]
    rig.remote.plan.fail("create", "after")
    rig.remote.plan.fail("snapshot", "before")  # and the (first) pull fails too
    rig.sync()
    rig.svc.contacts.delete(rig.account, contact_id)
    rig.sync()  # nothing links the card yet: the pull finds it
    rig.sync()
    assert rig.local() == {}
    assert rig.remote.items == {}


def test_a_first_sync_cut_short_is_completed_by_the_next_snapshot(rig: Rig) -> None:
    batch = BATCH
    names = [f"n{i}" for i in range(batch + 1)]
    items = [rig.remote.remote_create(ContactFields(given_name=n)) for n in names]
    rig.remote.plan.fail("snapshot", "after")  # the stream breaks after its last card
    rig.sync()
    assert len(rig.local()) == batch  # the first batch was applied, the cursor not kept
    rig.remote.remote_delete(items[0].remote_id)
    rig.sync()  # a snapshot again: what it no longer streams was deleted there
    assert sorted(f.given_name or "" for f in rig.local().values()) == sorted(names[1:])
    assert rig.remote.calls.count("snapshot") == 2
    rig.remote.remote_update(items[1].remote_id, given_name="changed")
    rig.sync()  # and from its cursor on, incremental
    assert "changed" in {f.given_name for f in rig.local().values()}
    assert rig.remote.calls.count("snapshot") == 2


def test_a_long_first_sync_is_applied_in_batches_that_grow(rig: Rig) -> None:
    # Batches of BATCH, then 2 * BATCH, ... (rolodex.sync.engine.MAX_BATCH): a stream cut
    # before its second batch is whole keeps only the first (each batch commits whole).
    for i in range(2 * BATCH + 1):
        rig.remote.remote_create(ContactFields(given_name=f"n{i}"))
    rig.remote.plan.fail("snapshot", "after")
    rig.sync()
    assert rig.count() == BATCH
    rig.sync()
    assert rig.count() == 2 * BATCH + 1


def test_merge_keeps_every_waiting_local_change(rig: Rig) -> None:
    item = rig.remote.remote_create(ContactFields(given_name="Ada", surname="Byron"))
    rig.sync()
    [contact_id] = rig.local()
    rig.svc.contacts.update(rig.account, contact_id, {"given_name": "Augusta"})
    rig.svc.contacts.update(rig.account, contact_id, {"surname": "King"})
    rig.remote.remote_update(item.remote_id, notes="edited there")  # the push will get a 412
    rig.sync()
    rig.sync()
    expected = ContactFields(given_name="Augusta", surname="King", notes="edited there")
    assert rig.local() == {contact_id: expected}
    assert rig.remote.items[item.remote_id].fields == expected


def test_merge_brings_the_remote_picture_here(rig: Rig) -> None:
    # Like Xandikos: changes come without their data, so the pull goes by etags alone.
    rig.remote.inline_data = False
    item = rig.remote.remote_create(ContactFields(given_name="Ada"))
    rig.sync()
    [contact_id] = rig.local()
    rig.svc.contacts.update(rig.account, contact_id, {"surname": "Lovelace"})
    rig.remote.remote_update(item.remote_id, picture=PNG + b"there")
    rig.sync()
    rig.sync()
    assert rig.remote.items[item.remote_id].picture == PNG + b"there"
    assert rig.svc.pictures.get(rig.account, contact_id).data == PNG + b"there"


def test_lost_create_reply_then_edit_there_before_any_pull(rig: Rig) -> None:
    contact_id = orjson.loads(rig.svc.contacts.create(rig.account, {"given_name": "Ada"}))["id"]
    rig.remote.plan.fail("create", "after")
    rig.remote.plan.fail("changes", "before")  # no pull sees the card before the retry
    rig.sync()
    item = rig.remote.by_uid(contact_id)
    assert item is not None
    rig.remote.remote_update(item.remote_id, notes="edited there")
    rig.sync()
    rig.sync()
    assert rig.local()[contact_id] == rig.remote.items[item.remote_id].fields
    # Merged, not overwritten: the edit made there survives beside what was created here.
    assert rig.local()[contact_id].notes == "edited there"
    assert rig.local()[contact_id].given_name == "Ada"
