"""Pages decided as plain OFFSET are read after the nearest known exact page end
(rolodex.service.positions): the same rows, on both databases."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rolodex.domain.query import ListQuery
from rolodex.service.contacts import ContactService
from rolodex.service.positions import Positions
from rolodex.store import Store
from rolodex.store.hot import HotTx
from tests.service.test_read_cache import new_account


def test_an_end_is_exact_only_after_a_plain_page_or_an_exact_end() -> None:
    positions = Positions()
    positions.record("a", 1, 0, None, 10, 110)  # OFFSET 0: ends at position 10
    positions.record("a", 1, 10, 110, 10, 130)  # after that end: at 20
    positions.record("a", 1, 30, 999, 10, 150)  # after a key of unknown position
    assert positions.nearest("a", 1, 20) == (130, 0)
    assert positions.nearest("a", 1, 35) == (130, 15)
    assert positions.nearest("a", 2, 35) is None  # another generation
    positions.record("a", 2, 50, None, 5, 300)
    assert positions.nearest("a", 1, 35) is None  # the older one is forgotten
    assert positions.nearest("a", 2, 40) is None
    assert positions.nearest("a", 2, 57) == (300, 2)


def _ids(body: bytes) -> list[str]:
    return [c["id"] for c in orjson.loads(body)]


def test_plain_offset_pages_are_the_same_rows_read_after_a_known_end(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = new_account(store)
    writer = ContactService(store, cache_bytes=0)
    for i in range(25):
        writer.create(account, {"given_name": f"c{i:02d}"})
    expected = _ids(
        ContactService(store, cache_bytes=0).page_body(account, ListQuery(limit=25), b"")
    )
    reader = ContactService(store, cache_bytes=0)
    reads: list[tuple[Any, ...]] = []
    original = HotTx.page_body

    def spy(tx: HotTx, *args: Any) -> Any:
        reads.append(args)
        return original(tx, *args)

    monkeypatch.setattr(HotTx, "page_body", spy)
    assert _ids(reader.page_body(account, ListQuery(limit=5, offset=0), b"")) == expected[:5]
    # 7, 12 and 23 follow no page end (decided plain): read after the nearest end known
    # exactly (5, then 11; 16 for 23), skipping the difference; 5 continues page 0's end.
    for offset in (7, 12, 5, 23):
        page = _ids(reader.page_body(account, ListQuery(limit=4, offset=offset), b""))
        assert page == expected[offset : offset + 4], offset
    assert all(args[3] is not None for args in reads[1:])
    assert [args[4] for args in reads[1:]] == [2, 1, 0, 7]
