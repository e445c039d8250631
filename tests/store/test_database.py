"""The transaction discipline of ``rolodex.store.database``, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from rolodex.service.accounts import AccountService
from rolodex.store import Store


def _seqs(store: Store, account_id: str) -> list[int]:
    with store.read() as tx:
        return [c.seq for c in tx.changes.since(account_id, 0, 100)]


def test_statements_sent_together_all_land(store: Store) -> None:
    account = AccountService(store).create("together@example.com").account
    with store.write(account.id) as tx:
        first = tx.accounts.allocate(account.id, 3)
        with tx.together():
            for seq in range(first, first + 3):
                tx.changes.append(account.id, seq, "contact", f"c{seq}", "create", 0.0)
    assert _seqs(store, account.id) == [first, first + 1, first + 2]
    # The pipeline ended with the transaction: the pooled connections answer as before.
    for _ in range(3):
        with store.write(account.id) as tx:
            assert tx.accounts.generation(account.id) == first + 2


def test_numbers_are_taken_under_the_lock_without_waiting(store: Store) -> None:
    """Under the account's lock, ``allocate`` sends its statement with the ones that
    follow it: the numbers are the ones it would have read back."""
    account = AccountService(store).create("together-numbers@example.com").account
    with store.write(account.id) as tx:
        before = tx.accounts.generation(account.id)
        with tx.together():
            first = tx.accounts.allocate(account.id, 2, new_contacts=2)
            third = tx.accounts.allocate(account.id)
    assert (first, third) == (before + 1, before + 3)
    with store.read() as tx:
        assert tx.accounts.generation(account.id) == before + 3
        assert tx.accounts.get(account.id).contact_count == 2


def test_an_error_sent_together_is_sqlalchemys_and_undoes_the_transaction(
    store: Store,
) -> None:
    """PostgreSQL answers a pipelined statement's error with the commit's answer: it is
    raised as the same exception a statement on its own would raise."""
    account = AccountService(store).create("together-error@example.com").account
    with pytest.raises(IntegrityError), store.write(account.id) as tx:
        seq = tx.accounts.allocate(account.id)
        with tx.together():
            tx.changes.append(account.id, seq, "contact", "a", "create", 0.0)
            tx.changes.append(account.id, seq, "contact", "b", "create", 0.0)  # same key
    assert _seqs(store, account.id) == []


def test_a_store_opened_without_mmap_maps_no_pages(tmp_path: Path) -> None:
    """A syncing process opens SQLite without a memory map (every page it maps stays in its
    resident set); the API's stores keep theirs."""
    from rolodex.store.database import SQLITE_MMAP_BYTES

    for mmap, expected in ((True, SQLITE_MMAP_BYTES), (False, 0)):
        store = Store(f"sqlite:///{tmp_path / f'mmap-{mmap}.db'}", mmap=mmap)
        try:
            with store.read() as tx:
                found = tx.conn.exec_driver_sql("PRAGMA mmap_size").scalar()
        finally:
            store.close()
        assert found == expected
