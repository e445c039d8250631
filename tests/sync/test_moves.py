"""Moving a contact between collections, where collections are the groups (Graph's contact
folders) and the provider names items: a group change through the API moves the item to the
other collection (made there, then the old one deleted), with the Rolodex id unchanged,
exactly once even when the create's reply is lost or the delete fails after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from rolodex.api.app import Services, build_services
from rolodex.domain.account import Account
from rolodex.domain.contact import ContactFields
from rolodex.domain.query import ContactFilter
from rolodex.domain.wire import contact_from_document
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.store.schema import outbox
from rolodex.sync.runner import SyncFailed, SyncRunner
from tests.conftest import settings_for_tests
from tests.sync.memory_connector import MemoryConnector


class Rig:
    def __init__(self, store: Store, svc: Services, account: Account) -> None:
        self.store, self.svc, self.account = store, svc, account
        self.remote = MemoryConnector(("contacts", "friends"), assigns_ids=True, folders=True)
        self.runner = SyncRunner(
            svc.accounts, Mirror(store), lambda _p, _s, _c: self.remote, interval=60
        )

    def sync(self) -> None:
        with self.store.write() as tx:  # time passes: failed writes are due again
            tx.conn.execute(
                update(outbox)
                .where(outbox.c.account_id == self.account.id)
                .values(next_attempt_at=0)
            )
        with contextlib.suppress(SyncFailed):
            self.runner.run(self.account.id)

    def group_id(self, name: str) -> str:
        return next(g.id for g in self.svc.groups.list(self.account) if g.name == name)

    def local_groups(self, contact_id: str) -> list[str]:
        doc = orjson.loads(self.svc.contacts.document(self.account, contact_id, b""))
        return [g["name"] for g in doc["groups"]]

    def local(self) -> list[dict[str, object]]:
        with self.store.read() as tx:
            rows = tx.contacts.page(self.account.id, ContactFilter(), 100, 0)
            return [orjson.loads(r.doc) for r in rows]

    def remote_copies(self, contact_id: str) -> list[str]:
        return [i.collection for i in self.remote.items.values() if i.uid == contact_id]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'moves.db'}"
    store = Store(url)
    store.migrate()
    svc = build_services(settings_for_tests(url), store)
    account = svc.accounts.create(
        "moves@example.com",
        provider="microsoft",
        connection={"microsoft_client_id": "c", "microsoft_refresh_token": "r"},
    ).account
    yield Rig(store, svc, account)
    store.close()


def _contact_in_contacts(rig: Rig) -> str:
    created = orjson.loads(rig.svc.contacts.create(rig.account, {"given_name": "Ada"}))
    rig.sync()
    assert rig.remote_copies(created["id"]) == ["contacts"]
    return str(created["id"])


def test_a_group_change_moves_the_contact_and_keeps_its_id(rig: Rig) -> None:
    contact_id = _contact_in_contacts(rig)
    rig.svc.contacts.update(rig.account, contact_id, {"group": rig.group_id("Friends")})
    rig.sync()
    assert rig.remote_copies(contact_id) == ["friends"]
    rig.sync()  # the pull of the moved item changes nothing
    assert rig.local_groups(contact_id) == ["Friends"]
    docs = rig.local()
    assert [d["id"] for d in docs] == [contact_id]


@pytest.mark.parametrize(
    ("operation", "when"), [("create", "after"), ("delete", "before"), ("delete", "after")]
)
def test_a_move_cut_short_completes_once(rig: Rig, operation: str, when: str) -> None:
    contact_id = _contact_in_contacts(rig)
    rig.svc.contacts.update(rig.account, contact_id, {"group": rig.group_id("Friends")})
    rig.remote.plan.fail(operation, when)
    rig.sync()  # cut short; the pull of the same sync may see both copies
    rig.sync()
    rig.sync()
    assert rig.remote_copies(contact_id) == ["friends"]
    assert rig.local_groups(contact_id) == ["Friends"]
    docs = rig.local()
    assert [d["id"] for d in docs] == [contact_id]
    fields = contact_from_document(docs[0]).fields
    assert fields == ContactFields(given_name="Ada")
