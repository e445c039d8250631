"""API processes are stateless: the same request answers the same whichever process
serves it. Each "process" here is its own Store and services on the same database (their
own pools, caches and paging memory), as several ``rolodex serve`` processes behind a load
balancer are."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from rolodex.domain.query import ContactFilter, ListQuery
from rolodex.service.contacts import ContactService
from rolodex.store import Store
from tests.service.test_read_cache import names, new_account


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
