"""The read cache of the hot reads (rolodex.service.readcache): never stale, whoever writes
(this service, another Store on the same database, another process), isolated between
accounts, paging exactly as without it, within its byte bound."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from rolodex.domain.account import Account
from rolodex.domain.errors import NoSuchContact
from rolodex.domain.query import ListQuery
from rolodex.service.accounts import AccountService
from rolodex.service.contacts import ContactService
from rolodex.service.groups import GroupService
from rolodex.service.pictures import PictureService
from rolodex.service.readcache import ENTRY_OVERHEAD, ReadCache
from rolodex.store import Store
from tests.api.test_pictures import PNG

ROOT = Path(__file__).resolve().parents[2]


def new_account(store: Store) -> Account:
    return AccountService(store).create(f"{uuid.uuid4().hex[:8]}@example.com").account


def names(svc: ContactService, account: Account, limit: int = 100, offset: int = 0) -> list[str]:
    body = svc.page_body(account, ListQuery(limit=limit, offset=offset), b"http://x")
    return [c["given_name"] for c in orjson.loads(body)]


def given_name(svc: ContactService, account: Account, contact_id: str) -> str:
    name: str = orjson.loads(svc.document(account, contact_id, b"http://x"))["given_name"]
    return name


# --- ReadCache ------------------------------------------------------------------------------


def test_entries_hold_for_exactly_their_generation() -> None:
    cache = ReadCache(1 << 20)
    cache.put("a", 5, "k", "v5", 10)
    assert cache.get("a", 5, "k") == "v5"
    assert cache.get("a", 4, "k") is None  # an older snapshot never sees a newer read
    assert cache.get("a", 6, "k") is None  # a newer generation drops the account's entries
    assert len(cache) == 0 and cache.size == 0
    cache.put("a", 5, "k", "v5", 10)  # read in a snapshot older than one already seen
    assert cache.get("a", 6, "k") is None and len(cache) == 0
    cache.put("a", 6, "k", "v6", 10)
    assert cache.get("a", 6, "k") == "v6"


def test_accounts_do_not_share_entries() -> None:
    cache = ReadCache(1 << 20)
    cache.put("a", 1, "page", "A", 10)
    cache.put("b", 1, "page", "B", 10)
    assert (cache.get("a", 1, "page"), cache.get("b", 1, "page")) == ("A", "B")
    assert cache.get("b", 2, "page") is None
    assert cache.get("a", 1, "page") == "A"  # b's change leaves a alone


def test_the_byte_bound_is_respected_least_recently_used_first() -> None:
    cache = ReadCache(10 * (100 + ENTRY_OVERHEAD))
    for i in range(10):
        cache.put("a", 1, i, i, 100)
    assert cache.get("a", 1, 0) == 0  # 0 becomes the most recently used
    for i in range(10, 15):
        cache.put("b", 1, i, i, 100)
        assert cache.size <= cache.max_bytes
    assert len(cache) == 10
    assert cache.get("a", 1, 0) == 0
    assert [cache.get("a", 1, i) for i in range(1, 6)] == [None] * 5
    assert [cache.get("a", 1, i) for i in range(6, 10)] == list(range(6, 10))
    cache.put("a", 1, "huge", "x", cache.max_bytes)  # more than its share: not kept
    assert cache.get("a", 1, "huge") is None and cache.size <= cache.max_bytes
    cache.put("a", 2, "k", "v", 100)
    assert cache.size == 6 * (100 + ENTRY_OVERHEAD)  # a's generation-1 entries are gone


def test_a_zero_bound_caches_nothing() -> None:
    cache = ReadCache(0)
    cache.put("a", 1, "k", "v", 1)
    assert not cache.enabled and cache.get("a", 1, "k") is None


# --- ContactService with the cache ----------------------------------------------------------


def heard(svc: ContactService, account: Account) -> None:
    """Until this process knows of every change committed so far: at once on SQLite (the
    WAL-index header), a moment after commit on PostgreSQL (its notification,
    rolodex.store.notify), and at once there too while the listener is down (reads ask)."""
    versions = svc.hot.versions
    if versions is None:
        return
    with svc.store.read() as tx:
        current = tx.accounts.generation(account.id)
    deadline = time.monotonic() + 10
    while versions.healthy and (versions.known(account.id) or -1) < current:
        assert time.monotonic() < deadline, "no notification of the change"
        time.sleep(0.005)


def test_writes_through_another_store_are_seen_once_announced(store: Store) -> None:
    """Another Store has its own engine and connections: a second API process, or
    ``rolodex sync``, writing to the same database."""
    account = new_account(store)
    cached = ContactService(store)
    other_store = Store(store.url)
    try:
        other = ContactService(other_store, cache_bytes=0)
        ids = [orjson.loads(other.create(account, {"given_name": f"c{i}"}))["id"] for i in range(5)]
        heard(cached, account)
        assert names(cached, account) == ["c0", "c1", "c2", "c3", "c4"]
        assert given_name(cached, account, ids[1]) == "c1"
        assert names(cached, account) == ["c0", "c1", "c2", "c3", "c4"]
        assert cached.cache.hits >= 1

        other.update(account, ids[1], {"given_name": "changed"})
        heard(cached, account)
        assert names(cached, account) == ["c0", "changed", "c2", "c3", "c4"]
        assert given_name(cached, account, ids[1]) == "changed"

        other.delete(account, ids[1])
        heard(cached, account)
        assert names(cached, account) == ["c0", "c2", "c3", "c4"]
        with pytest.raises(NoSuchContact):
            cached.document(account, ids[1], b"http://x")

        other.create(account, {"given_name": "c5"})
        heard(cached, account)
        assert names(cached, account, limit=2, offset=3) == ["c4", "c5"]

        # Group renames and pictures rewrite documents without touching their fields.
        group = GroupService(other_store).create(account, {"name": "G"})
        other.update(account, ids[2], {"group": group.id})
        heard(cached, account)
        assert (
            orjson.loads(cached.document(account, ids[2], b"http://x"))["groups"][0]["name"] == "G"
        )
        GroupService(other_store).rename(account, group.id, {"name": "Renamed"})
        heard(cached, account)
        assert (
            orjson.loads(cached.document(account, ids[2], b"http://x"))["groups"][0]["name"]
            == "Renamed"
        )
        PictureService(other_store).put(account, ids[3], PNG)
        heard(cached, account)
        assert (
            orjson.loads(cached.document(account, ids[3], b"http://x"))["picture_url"] is not None
        )
        page = orjson.loads(cached.page_body(account, ListQuery(), b"http://h"))
        assert page[2]["picture_url"] == f"http://h/contacts/{ids[3]}/picture"
    finally:
        other_store.close()


WRITER = """
import sys
from rolodex.domain.account import Account
from rolodex.service.contacts import ContactService
from rolodex.store import Store

store = Store(sys.argv[1])
account = Account(id=sys.argv[2], email_address="x@example.com", name="", provider="local",
                  sandbox=False, linked_at=0.0)
ContactService(store).update(account, sys.argv[3], {"given_name": sys.argv[4]})
store.close()
"""


def test_a_write_by_another_process_is_seen_at_once(sqlite_store: Store) -> None:
    account = new_account(sqlite_store)
    cached = ContactService(sqlite_store)
    made = [orjson.loads(cached.create(account, {"given_name": f"p{i}"}))["id"] for i in range(3)]
    assert names(cached, account) == ["p0", "p1", "p2"]
    assert given_name(cached, account, made[0]) == "p0"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(
        [sys.executable, "-c", WRITER, sqlite_store.url, account.id, made[0], "elsewhere"],
        check=True,
        env=env,
        timeout=60,
    )
    assert names(cached, account) == ["elsewhere", "p1", "p2"]
    assert given_name(cached, account, made[0]) == "elsewhere"


def test_cached_reads_stay_within_their_account(store: Store) -> None:
    svc = ContactService(store)
    a, b = new_account(store), new_account(store)
    a_ids = [orjson.loads(svc.create(a, {"given_name": f"a{i}"}))["id"] for i in range(3)]
    for i in range(3):
        svc.create(b, {"given_name": f"b{i}"})
    for _ in range(2):  # the second round is answered from the cache
        assert names(svc, a, limit=2, offset=1) == ["a1", "a2"]
        assert names(svc, b, limit=2, offset=1) == ["b1", "b2"]
        assert given_name(svc, a, a_ids[0]) == "a0"
        with pytest.raises(NoSuchContact):
            svc.document(b, a_ids[0], b"http://x")
    svc.create(b, {"given_name": "b3"})
    assert names(svc, a) == ["a0", "a1", "a2"]
    assert names(svc, b) == ["b0", "b1", "b2", "b3"]


def test_paging_is_identical_with_and_without_the_cache(store: Store) -> None:
    """The same requests and writes, through a cached and an uncached service (each with its
    own page cursors, fed the same requests): every page the same, as the list changes
    between and during walks (a deleted contact shifts the offsets that follow it)."""
    account = new_account(store)
    writer = ContactService(store, cache_bytes=0)
    ids = [orjson.loads(writer.create(account, {"given_name": f"n{i}"}))["id"] for i in range(40)]
    cached, plain = ContactService(store), ContactService(store, cache_bytes=0)

    def both(limit: int, offset: int) -> list[str]:
        got = names(cached, account, limit, offset)
        assert got == names(plain, account, limit, offset), (limit, offset)
        return got

    seen: list[str] = []
    for offset in range(0, 40, 7):
        seen += both(7, offset)
        if offset == 14:
            writer.delete(account, ids[3])  # before what the walk has seen
            writer.create(account, {"given_name": "late"})
    assert len(seen) == len(set(seen))
    assert "late" in seen and "n3" in seen
    for offset in range(0, 45, 5):  # a second walk, partly over cached pages
        both(5, offset)
    writer.update(account, ids[10], {"given_name": "renamed"})
    assert "renamed" in both(5, 5) + both(5, 10)
    for offset in (0, 5, 3, 100):  # fresh offsets and past the end
        both(5, offset)
    assert cached.cache.hits > 0


def test_the_bound_holds_for_pages_and_documents(store: Store) -> None:
    account = new_account(store)
    svc = ContactService(store, cache_bytes=16 * 1024)
    ids = [
        orjson.loads(svc.create(account, {"given_name": "x" * 200, "notes": "y" * 500}))["id"]
        for _ in range(60)
    ]
    for offset in range(0, 60, 5):
        svc.page_body(account, ListQuery(limit=5, offset=offset), b"http://x")
        assert svc.cache.size <= svc.cache.max_bytes
    for contact_id in ids:
        svc.document(account, contact_id, b"http://x")
        assert svc.cache.size <= svc.cache.max_bytes
    assert len(svc.cache) > 0


def test_a_page_continued_from_a_cursor_is_not_mistaken_for_the_plain_offset(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one generation, offset N can mean two pages: the continuation of a page read
    before a change (while the cursor lives) and plain OFFSET N (after it expired)."""
    clock = [1000.0]
    monkeypatch.setattr("rolodex.service.contacts.time.time", lambda: clock[0])
    account = new_account(store)
    writer = ContactService(store, cache_bytes=0)
    ids = [orjson.loads(writer.create(account, {"given_name": f"n{i}"}))["id"] for i in range(12)]
    cached, plain = ContactService(store), ContactService(store, cache_bytes=0)
    for svc in (cached, plain):
        assert names(svc, account, 5, 0) == ["n0", "n1", "n2", "n3", "n4"]
    writer.delete(account, ids[2])
    for svc in (cached, plain):  # continues after n4: nothing skipped
        assert names(svc, account, 5, 5) == ["n5", "n6", "n7", "n8", "n9"]
    clock[0] += 10 * 3600  # the cursor has expired: offset 5 is plain OFFSET now
    for svc in (cached, plain):
        assert names(svc, account, 5, 5) == ["n6", "n7", "n8", "n9", "n10"]
