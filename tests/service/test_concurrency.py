"""Concurrent writers lose nothing, on SQLite (one writer at a time, by BEGIN IMMEDIATE and
the busy timeout) and on PostgreSQL (writers of one account queue on its row)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from rolodex.domain.errors import DuplicateGroupName
from rolodex.domain.query import ContactFilter, ListQuery
from rolodex.service.accounts import AccountService
from rolodex.service.contacts import ContactService
from rolodex.service.groups import GroupService
from rolodex.store import Store
from tests.conftest import App

THREADS = 8
PER_THREAD = 25


def run_together(work: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Run ``work(i)`` in ``threads`` threads released at once; re-raise any failure."""
    barrier = threading.Barrier(threads)

    def start(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(start, range(threads)))


def test_concurrent_creates_through_the_service(store: Store) -> None:
    account = AccountService(store).create(f"{uuid.uuid4().hex[:8]}@example.com").account
    contacts = ContactService(store)

    def create_many(worker: int) -> list[str]:
        return [
            orjson.loads(
                contacts.create(
                    account,
                    {"given_name": f"w{worker}-{n}", "emails": [{"email": f"{worker}@x.io"}]},
                )
            )["id"]
            for n in range(PER_THREAD)
        ]

    made = [cid for batch in run_together(create_many) for cid in batch]
    total = THREADS * PER_THREAD
    assert len(set(made)) == total
    assert contacts.count(account, ContactFilter()) == total
    listed = contacts.ids(account, ListQuery(limit=1000))
    assert sorted(listed) == sorted(made)
    # Each thread's contacts appear in the order that thread created them.
    everyone = [orjson.loads(d) for d in contacts.page(account, ListQuery(limit=1000))]
    for worker in range(THREADS):
        names = [c["given_name"] for c in everyone if c["given_name"].startswith(f"w{worker}-")]
        assert names == [f"w{worker}-{n}" for n in range(PER_THREAD)]
    by_email = ContactFilter(terms=(("email", "3@x.io"),))
    assert contacts.count(account, by_email) == PER_THREAD
    with store.read() as tx:
        seqs = [c.seq for c in tx.changes.since(account.id, 0, 10_000)]
    assert seqs == list(range(1, total + 1))  # one change each, no gaps, no duplicates


def test_concurrent_updates_and_deletes_keep_count_and_index_right(store: Store) -> None:
    account = AccountService(store).create(f"{uuid.uuid4().hex[:8]}@example.com").account
    contacts = ContactService(store)
    made = [orjson.loads(contacts.create(account, {}))["id"] for _ in range(THREADS * 4)]

    def churn(worker: int) -> None:
        for cid in made[worker * 4 : worker * 4 + 2]:
            contacts.delete(account, cid)
        for cid in made[worker * 4 + 2 : worker * 4 + 4]:
            contacts.update(account, cid, {"emails": [{"email": "same@x.io"}]})
        contacts.create(account, {"emails": [{"email": "same@x.io"}]})

    run_together(churn)
    assert contacts.count(account, ContactFilter()) == THREADS * 3
    assert len(contacts.ids(account, ListQuery(limit=1000))) == THREADS * 3
    same = ContactFilter(terms=(("email", "same@x.io"),))
    assert contacts.count(account, same) == THREADS * 3


def test_concurrent_duplicate_group_names_make_exactly_one(store: Store) -> None:
    account = AccountService(store).create(f"{uuid.uuid4().hex[:8]}@example.com").account
    groups = GroupService(store)

    def attempt(_: int) -> bool:
        try:
            groups.create(account, {"name": "Everyone"})
        except DuplicateGroupName:
            return False
        return True

    assert sorted(run_together(attempt)) == [False] * (THREADS - 1) + [True]
    assert [g.name for g in groups.list(account)] == ["Everyone"]


def test_concurrent_creates_over_http(any_app: App) -> None:
    api = any_app.new_account()

    def create_many(worker: int) -> list[int]:
        return [
            api.client.post("/contacts", json={"given_name": f"{worker}/{n}"}).status_code
            for n in range(PER_THREAD)
        ]

    statuses = [s for batch in run_together(create_many) for s in batch]
    assert statuses == [200] * THREADS * PER_THREAD
    count = api.client.get("/contacts", params={"view": "count"}).json()
    assert count == {"count": THREADS * PER_THREAD}
    listed = api.client.get("/contacts", params={"limit": 1000}).json()
    assert len({c["id"] for c in listed}) == THREADS * PER_THREAD
