"""Every pair of writers of one contact, run at once, on both databases: no acknowledged
change lost, no deadlock, the change feed readable in commit order, nothing orphaned.

The writers take their locks in the one order the store documents (``rolodex.store``): the
account row, then the contact, then its pictures, memberships and index rows. PostgreSQL's
READ COMMITTED does not serialise what SQLite's single writer does, so these run on both.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from rolodex.domain.account import Account
from rolodex.domain.contact import ContactFields
from rolodex.domain.errors import NoSuchAccount, NoSuchContact
from rolodex.domain.etags import ContactChanged
from rolodex.domain.remote import RemoteContact
from rolodex.service.accounts import AccountService
from rolodex.service.contacts import ContactService
from rolodex.service.credentials import CredentialBox
from rolodex.service.groups import GroupService
from rolodex.service.mirror import Mirror
from rolodex.service.pictures import PictureService
from rolodex.store import Store
from tests.api.test_isolation import PNG
from tests.conftest import settings_for_tests
from tests.service.test_concurrency import run_together

# Distinct fields, one per concurrent writer, so that each one's change can be checked.
FIELDS = (
    "given_name",
    "middle_name",
    "surname",
    "suffix",
    "nickname",
    "company_name",
    "job_title",
    "manager_name",
    "office_location",
    "notes",
)
ROUNDS = 4
REMOTE_ID = "item-1"


@dataclass
class Scene:
    store: Store
    account: Account
    contact_id: str
    contacts: ContactService
    pictures: PictureService
    groups: GroupService
    mirror: Mirror
    group_ids: list[str] = field(default_factory=list)
    # Checks of the final document, one per acknowledged write (the last one of a slot).
    checks: dict[int, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    # Pulls replace every field, so of two concurrent ones either may be the last: one of
    # these must hold.
    pulls: dict[int, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    deleted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked(self, slot: int, check: Callable[[dict[str, Any]], None]) -> None:
        with self.lock:
            self.checks[slot] = check


def _update(scene: Scene, slot: int, r: int) -> None:
    name, value = FIELDS[slot], f"u{slot}-{r}"
    scene.contacts.update(scene.account, scene.contact_id, {name: value})

    def check(doc: dict[str, Any]) -> None:
        assert doc[name] == value, (name, doc)

    scene.acked(slot, check)


def _picture(scene: Scene, slot: int, r: int) -> None:
    data = PNG + f"{slot}-{r}".encode()
    scene.pictures.put(scene.account, scene.contact_id, data)

    def check(doc: dict[str, Any]) -> None:
        assert doc["picture_url"], doc

    scene.acked(slot, check)


def _membership(scene: Scene, slot: int, r: int) -> None:
    group_id = scene.group_ids[slot]
    scene.contacts.update(scene.account, scene.contact_id, {"group": group_id})

    def check(doc: dict[str, Any]) -> None:
        assert group_id in {g["id"] for g in doc["groups"]}, doc

    scene.acked(slot, check)


def _rename(scene: Scene, slot: int, r: int) -> None:
    # The contact is a member of every scene group: a rename re-renders its document.
    group_id, name = scene.group_ids[slot + 2], f"renamed-{slot}-{r}"
    scene.groups.rename(scene.account, group_id, {"name": name})

    def check(doc: dict[str, Any]) -> None:
        assert {g["id"]: g["name"] for g in doc["groups"]}[group_id] == name, doc

    scene.acked(slot, check)


def _delete(scene: Scene, slot: int, r: int) -> None:
    if r == 1:
        scene.deleted = True
        with contextlib.suppress(NoSuchContact):  # the other writer deleted it first
            scene.contacts.delete(scene.account, scene.contact_id)


def _mirror(scene: Scene, slot: int, r: int) -> None:
    """A pull applying a remote change; skipped while local writes wait for the provider."""
    name, value = FIELDS[slot], f"m{slot}-{r}"
    item = RemoteContact(
        remote_id=REMOTE_ID,
        etag=f'"{slot}-{r}"',
        collection="book",
        fields=ContactFields(**{"given_name": "remote", name: value}),
    )
    if scene.mirror.apply(scene.account, [item]):

        def check(doc: dict[str, Any]) -> None:
            assert doc[name] == value, (name, doc)

        with scene.lock:
            scene.pulls[slot] = check


WRITERS: dict[str, Callable[[Scene, int, int], None]] = {
    "update": _update,
    "picture": _picture,
    "membership": _membership,
    "rename": _rename,
    "delete": _delete,
    "mirror": _mirror,
}
# Group writes are refused on connected accounts; mirror writes need one.
LOCAL = ("update", "picture", "membership", "rename", "delete")
CONNECTED = ("update", "picture", "delete", "mirror")
PAIRS = sorted(
    {
        *itertools.combinations_with_replacement(LOCAL, 2),
        *((a, b) for a, b in itertools.combinations_with_replacement(CONNECTED, 2)),
    }
)


def _scene(store: Store, connected: bool) -> Scene:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    if connected:
        box = CredentialBox.from_settings(settings_for_tests(store.url))
        account = (
            AccountService(store, box)
            .create(
                email,
                provider="carddav",
                connection={"url": "memory://", "username": "u", "password": "p"},
            )
            .account
        )
    else:
        account = AccountService(store).create(email).account
    scene = Scene(
        store,
        account,
        "",
        ContactService(store, cache_bytes=0),
        PictureService(store),
        GroupService(store),
        Mirror(store),
    )
    if connected:
        item = RemoteContact(REMOTE_ID, '"0"', "book", ContactFields(given_name="remote"))
        assert scene.mirror.apply(account, [item]) == 1
        with store.read() as tx:
            scene.contact_id = tx.remotes.for_remote_ids(account.id, [REMOTE_ID])[
                REMOTE_ID
            ].contact_id
    else:
        scene.contact_id = orjson.loads(scene.contacts.create(account, {"given_name": "x"}))["id"]
        for n in range(4):
            group = scene.groups.create(account, {"name": f"g{n}"})
            scene.group_ids.append(group.id)
            if n >= 2:
                scene.contacts.update(account, scene.contact_id, {"group": group.id})
    return scene


class FeedWatcher:
    """Reads the change log while the writers run, as a delta client does: each read asks
    for what follows the last change seen. A change committed after a later-numbered one
    would be stepped over, and so missing from what was seen."""

    def __init__(self, store: Store, account_id: str) -> None:
        self.store, self.account_id = store, account_id
        with store.read() as tx:
            self.seen = [c.seq for c in tx.changes.since(account_id, 0, 10_000)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self._read()

    def _read(self) -> None:
        with self.store.read() as tx:
            after = self.seen[-1] if self.seen else 0
            self.seen += [c.seq for c in tx.changes.since(self.account_id, after, 10_000)]

    def finish(self) -> list[int]:
        self.stop.set()
        self.thread.join(10)
        self._read()
        return self.seen


def _check_consistent(scene: Scene) -> None:
    aid = scene.account.id
    with scene.store.read() as tx:
        c = tx.conn
        params = {"a": aid}
        for table in ("contact_terms", "contact_group_members"):
            orphans = c.execute(
                text(
                    f"SELECT count(*) FROM {table} WHERE account_id = :a AND contact_pk NOT IN "
                    "(SELECT pk FROM contacts WHERE account_id = :a)"
                ),
                params,
            ).scalar_one()
            assert orphans == 0, f"orphan {table} rows"
        orphans = c.execute(
            text(
                "SELECT count(*) FROM pictures WHERE account_id = :a AND contact_id NOT IN "
                "(SELECT id FROM contacts WHERE account_id = :a)"
            ),
            params,
        ).scalar_one()
        assert orphans == 0, "orphan pictures"
        counted = c.execute(
            text("SELECT count(*) FROM contacts WHERE account_id = :a"), params
        ).scalar_one()
        assert tx.accounts.get(aid).contact_count == counted
        events = [
            ch.event for ch in tx.changes.since(aid, 0, 10_000) if ch.object_id == scene.contact_id
        ]
    if scene.deleted:
        assert events.count("delete") == 1 and events[-1] == "delete", events
        with pytest.raises(NoSuchContact):
            scene.contacts.document(scene.account, scene.contact_id, b"")
        return
    doc = orjson.loads(scene.contacts.document(scene.account, scene.contact_id, b""))
    for check in scene.checks.values():
        check(doc)
    if scene.pulls:
        failures = []
        for pull in scene.pulls.values():
            try:
                pull(doc)
            except AssertionError as exc:
                failures.append(exc)
        assert len(failures) < len(scene.pulls), failures
    picture = doc["picture_url"] is not None
    try:
        scene.pictures.get(scene.account, scene.contact_id)
        stored = True
    except Exception:
        stored = False
    assert picture == stored, "the document and the pictures table disagree"


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=["+".join(p) for p in PAIRS])
def test_two_writers_of_one_contact(store: Store, first: str, second: str) -> None:
    connected = "mirror" in (first, second)
    scene = _scene(store, connected)
    watcher = FeedWatcher(store, scene.account.id)
    writers = (WRITERS[first], WRITERS[second])
    barrier = threading.Barrier(2)
    missing: list[int] = []

    def run(slot: int) -> None:
        for r in range(ROUNDS):
            barrier.wait(10)
            try:
                writers[slot](scene, slot, r)
            except NoSuchContact:
                missing.append(r)

    try:
        run_together(run, threads=2)
    finally:
        seen = watcher.finish()
    assert scene.deleted or not missing, "NoSuchContact without a delete"
    with store.read() as tx:
        logged = [c.seq for c in tx.changes.since(scene.account.id, 0, 10_000)]
    assert seen == logged, "a change committed after a later-numbered one"
    _check_consistent(scene)


def test_ten_updates_of_different_fields_all_survive(store: Store) -> None:
    """The reported case: ten concurrent PUTs of one contact, each setting its own field."""
    scene = _scene(store, connected=False)
    watcher = FeedWatcher(store, scene.account.id)
    try:
        run_together(lambda slot: _update(scene, slot, 0), threads=len(FIELDS))
    finally:
        seen = watcher.finish()
    doc = orjson.loads(scene.contacts.document(scene.account, scene.contact_id, b""))
    assert {name: doc[name] for name in FIELDS} == {
        name: f"u{slot}-0" for slot, name in enumerate(FIELDS)
    }
    with store.read() as tx:
        changes = tx.changes.since(scene.account.id, 0, 10_000)
    assert seen == [c.seq for c in changes]
    assert [c.event for c in changes[-len(FIELDS) :]] == ["modify"] * len(FIELDS)


def test_if_match_lets_one_of_several_writers_of_one_version_through(store: Store) -> None:
    scene = _scene(store, connected=False)
    etag = scene.contacts.tagged_document(scene.account, scene.contact_id, b"")[1].decode()

    def put(slot: int) -> bool:
        try:
            scene.contacts.update(
                scene.account, scene.contact_id, {FIELDS[slot]: f"if-{slot}"}, if_match=etag
            )
        except ContactChanged:
            return False
        return True

    assert sorted(run_together(put, threads=4)) == [False, False, False, True]


def test_deleting_an_account_while_its_contacts_are_written(store: Store) -> None:
    scene = _scene(store, connected=False)
    accounts = AccountService(store)

    def work(slot: int) -> None:
        if slot == 0:
            accounts.delete(scene.account.id)
            return
        for r in range(ROUNDS):
            try:
                _update(scene, slot, r)
            except (NoSuchContact, NoSuchAccount):
                return

    run_together(work, threads=4)
    with store.read() as tx:
        for table in ("contact_terms", "contact_group_members", "contacts", "changes"):
            left = tx.conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE account_id = :a"),
                {"a": scene.account.id},
            ).scalar_one()
            assert left == 0, table
