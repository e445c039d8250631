"""API processes are stateless: the same request answers the same whichever process
serves it. Each "process" here is its own Store and services on the same database (their
own pools, caches and paging memory), as several ``rolodex serve`` processes behind a load
balancer are."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from rolodex.api.app import create_app
from rolodex.domain.query import ContactFilter, ListQuery
from rolodex.service.accounts import AccountService
from rolodex.service.contacts import ContactService
from rolodex.store import Store
from tests.conftest import settings_for_tests
from tests.service.test_read_cache import given_name, heard, names, new_account


@pytest.fixture
def processes(store: Store) -> Iterator[list[ContactService]]:
    """Three API processes on the database of ``store``."""
    stores = [Store(store.url) for _ in range(3)]
    yield [ContactService(s) for s in stores]
    for s in stores:
        s.close()


def test_a_walk_served_by_every_process_in_turn_neither_skips_nor_repeats(
    store: Store, processes: list[ContactService]
) -> None:
    account = new_account(store)
    writer = ContactService(store, cache_bytes=0)
    made = [orjson.loads(writer.create(account, {"given_name": f"p{i}"}))["id"] for i in range(25)]
    seen: list[str] = []
    offset = 0
    for turn in range(20):
        page = names(processes[turn % 3], account, 5, offset)
        if not page:
            break
        seen += page
        offset += len(page)
        if turn == 1:  # one contact the walk has seen and one it has not are deleted
            writer.delete(account, made[2])
            writer.delete(account, made[20])
        if turn == 2:
            writer.create(account, {"given_name": "late"})
    expected = [f"p{i}" for i in range(25) if i != 20] + ["late"]
    assert seen == expected


def test_a_walk_another_process_has_made_costs_one_statement_a_page(
    store: Store, processes: list[ContactService], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = new_account(store)
    writer = ContactService(store, cache_bytes=0)
    for i in range(14):
        writer.create(account, {"given_name": f"w{i}"})
    first, second, _ = processes
    walked = [names(first, account, 4, offset) for offset in range(0, 16, 4)]
    # The second process reads each page's end decision with the page (the first made
    # them): it writes none, and asks for none apart.
    calls: list[str] = []
    hot = second.hot
    for name in ("decide_page_end", "page_end", "read"):
        method = getattr(hot, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _method(*args, **kwargs)

        monkeypatch.setattr(hot, name, counted)
    assert [names(second, account, 4, offset) for offset in range(0, 12, 4)] == walked[:3]
    assert calls == []
    # The short last page has no decision to find; what it asks is as before.
    assert names(second, account, 4, 12) == walked[3] == ["w12", "w13"]
    assert "read" not in calls


@pytest.mark.parametrize("where", [ContactFilter(), ContactFilter(source="address_book")])
def test_every_process_answers_an_offset_alike(
    store: Store, processes: list[ContactService], where: ContactFilter
) -> None:
    account = new_account(store)
    writer = ContactService(store, cache_bytes=0)
    made = [orjson.loads(writer.create(account, {"given_name": f"n{i}"}))["id"] for i in range(12)]
    first, second, third = processes

    def page(svc: ContactService, offset: int) -> list[str]:
        query = ListQuery(filter=where, limit=4, offset=offset)
        return (
            [orjson.loads(d)["given_name"] for d in svc.page(account, query)]
            if not (where.is_empty)
            else names(svc, account, 4, offset)
        )

    assert page(first, 0) == ["n0", "n1", "n2", "n3"]
    writer.delete(account, made[1])
    # The first process continues its walk; the others, asked the same, answer the same.
    answers = [page(svc, 4) for svc in (second, first, third)]
    assert answers == [["n4", "n5", "n6", "n7"]] * 3
    # A fresh walk of the changed list starts from the beginning, alike everywhere too.
    assert [page(svc, 0) for svc in processes] == [["n0", "n2", "n3", "n4"]] * 3


# PostgreSQL announces every account change (rolodex.store.notify) ---------------------------


@pytest.fixture
def pg(postgres_url: str) -> Iterator[tuple[Store, Store]]:
    """Two processes on PostgreSQL: one that reads (and caches), one that writes."""
    reader, writer = Store(postgres_url), Store(postgres_url)
    reader.migrate()
    yield reader, writer
    reader.close()
    writer.close()


def _count_generation_queries(svc: ContactService, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    hot = svc.hot
    peek, lone = hot._peek, hot._lone

    def counted_peek(account_id: str) -> list[Any]:
        calls[0] += 1
        return peek(account_id)

    def counted_lone(statement: Any, values: dict[str, Any]) -> list[Any]:
        calls[0] += 1
        return lone(statement, values)

    monkeypatch.setattr(hot, "_peek", counted_peek)
    monkeypatch.setattr(hot, "_lone", counted_lone)
    return calls


@pytest.mark.postgres
def test_cached_reads_ask_nothing_while_changes_are_announced(
    pg: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader_store, writer_store = pg
    account = new_account(writer_store)
    reader, writer = ContactService(reader_store), ContactService(writer_store, cache_bytes=0)
    versions = reader.hot.versions
    assert versions is not None and versions.wait_connected(10)
    made = orjson.loads(writer.create(account, {"given_name": "before"}))["id"]
    heard(reader, account)
    assert names(reader, account) == ["before"]
    assert given_name(reader, account, made) == "before"
    calls = _count_generation_queries(reader, monkeypatch)
    for _ in range(50):
        assert names(reader, account) == ["before"]
        assert given_name(reader, account, made) == "before"
    assert calls[0] == 0
    writer.update(account, made, {"given_name": "after"})
    heard(reader, account)
    assert names(reader, account) == ["after"] and given_name(reader, account, made) == "after"


@pytest.mark.postgres
def test_a_lost_listener_falls_back_to_asking_then_listens_again(
    pg: tuple[Store, Store],
) -> None:
    reader_store, writer_store = pg
    account = new_account(writer_store)
    reader, writer = ContactService(reader_store), ContactService(writer_store, cache_bytes=0)
    versions = reader.hot.versions
    assert versions is not None and versions.wait_connected(10)
    made = orjson.loads(writer.create(account, {"given_name": "one"}))["id"]
    heard(reader, account)
    assert given_name(reader, account, made) == "one"
    with writer_store.engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'rolodex-listen' AND datname = current_database()"
            )
        )
        conn.commit()
    deadline = time.monotonic() + 10
    while versions.healthy:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Unannounced, a change is still seen at once: reads ask the database meanwhile.
    writer.update(account, made, {"given_name": "two"})
    assert given_name(reader, account, made) == "two"
    assert versions.wait_connected(10)
    writer.update(account, made, {"given_name": "three"})
    heard(reader, account)
    assert given_name(reader, account, made) == "three"


@pytest.mark.postgres
def test_a_long_poll_is_woken_by_another_process_and_polls_nothing_meanwhile(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(postgres_url)
    store.migrate()
    other = Store(postgres_url)
    try:
        client = TestClient(create_app(settings_for_tests(store.url), store))
        created = AccountService(store).create(f"{uuid.uuid4().hex[:8]}@example.com")
        client.auth = (created.access_token, "")
        feed = client.app.app.state.services.changes  # type: ignore[attr-defined]
        versions = store.versions()
        assert versions is not None and versions.wait_connected(10)
        reads = [0]
        since = feed.since

        def counted(*args: Any) -> Any:
            reads[0] += 1
            return since(*args)

        monkeypatch.setattr(feed, "since", counted)
        cursor = client.post("/delta/latest_cursor").json()["cursor"]
        started = time.monotonic()
        idle = client.get("/delta/longpoll", params={"cursor": cursor, "timeout": "1.5"})
        assert idle.json()["deltas"] == [] and time.monotonic() - started >= 1.5
        assert reads[0] == 1  # read once, then woken by nothing: no poll

        def write_soon() -> None:
            time.sleep(0.3)
            ContactService(other, cache_bytes=0).create(created.account, {"given_name": "x"})

        writer = threading.Thread(target=write_soon)
        started = time.monotonic()
        writer.start()
        woken = client.get("/delta/longpoll", params={"cursor": cursor, "timeout": "20"})
        writer.join()
        assert [d["event"] for d in woken.json()["deltas"]] == ["create"]
        assert time.monotonic() - started < 5
    finally:
        other.close()
        store.close()
