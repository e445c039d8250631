"""A bounded in-process cache of what the hot reads answered, valid for one account
generation.

``accounts.generation`` is taken by every change to an account's contacts and groups, in
the transaction that makes the change (``AccountRepository.allocate``). So what was read
in a snapshot of generation G is exactly what a later read of generation G would return,
whoever wrote since: this process, a sync worker, another API process on PostgreSQL. A
reader asks the database for the account's current generation (one primary-key lookup) and
only then consults the cache under it: a write committed before the request started has
moved the generation on, and nothing cached under the old one is served again.

Entries are least-recently-used, bounded by the bytes they hold. When a newer generation
of an account is seen, that account's older entries are dropped at once instead of waiting
to be evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from threading import Lock
from typing import Any

# Bookkeeping an entry costs beyond its payload (key tuple, OrderedDict node, value tuple),
# counted so that many tiny entries cannot exceed the bound either.
ENTRY_OVERHEAD = 200
# One entry may take at most this share of the cache: a single huge page must not flush
# everything else.
MAX_ENTRY_SHARE = 8


class _Account:
    __slots__ = ("generation", "keys")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.keys: set[Hashable] = set()


class ReadCache:
    """``(account_id, generation, key) -> value``, LRU, at most ``max_bytes`` of payload."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._entries: OrderedDict[tuple[str, Hashable], tuple[Any, int]] = OrderedDict()
        self._accounts: dict[str, _Account] = {}
        self._bytes = 0
        self._lock = Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size(self) -> int:
        """Bytes held now (payloads plus per-entry overhead)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, account_id: str, generation: int, key: Hashable) -> Any | None:
        """The value cached for ``key`` at exactly ``generation``, or None."""
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None or account.generation != generation:
                if account is not None and account.generation < generation:
                    self._forget(account_id)
                self.misses += 1
                return None
            entry_key = (account_id, key)
            entry = self._entries.get(entry_key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(entry_key)
            self.hits += 1
            return entry[0]

    def put(self, account_id: str, generation: int, key: Hashable, value: Any, size: int) -> None:
        """Remember ``value`` (``size`` bytes) as read in a snapshot of ``generation``."""
        cost = size + ENTRY_OVERHEAD
        if cost * MAX_ENTRY_SHARE > self.max_bytes:
            return
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None or account.generation < generation:
                self._forget(account_id)
                account = self._accounts[account_id] = _Account(generation)
            elif account.generation > generation:
                return  # read in an older snapshot than one already seen: already stale
            entry_key = (account_id, key)
            old = self._entries.pop(entry_key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[entry_key] = (value, cost)
            account.keys.add(key)
            self._bytes += cost
            while self._bytes > self.max_bytes:
                (old_account, old_key), (_, old_cost) = self._entries.popitem(last=False)
                self._bytes -= old_cost
                holder = self._accounts.get(old_account)
                if holder is not None:
                    holder.keys.discard(old_key)
                    if not holder.keys and old_account != account_id:
                        del self._accounts[old_account]

    def forget(self, account_id: str) -> None:
        """Drop everything cached for an account."""
        with self._lock:
            self._forget(account_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._accounts.clear()
            self._bytes = 0

    def _forget(self, account_id: str) -> None:
        account = self._accounts.pop(account_id, None)
        if account is None:
            return
        for key in account.keys:
            entry = self._entries.pop((account_id, key), None)
            if entry is not None:
                self._bytes -= entry[1]
