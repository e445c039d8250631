"""The change feed: the per-account change log, read as v2 deltas.

Every mutation appends to the change log in its own transaction (``service.records``), so
the feed misses nothing and survives restarts. A cursor names a position in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from rolodex.domain.account import Account
from rolodex.domain.errors import InvalidQuery, NoSuchContact, NoSuchGroup
from rolodex.domain.wire import render_group
from rolodex.service.records import CONTACT, GROUP
from rolodex.store import Store, Tx

MAX_DELTAS = 1000
_CURSOR_PREFIX = "r"
# Lowercase hex of a sequence number (int() would also take signs, "_" and spaces).
_CURSOR = re.compile(_CURSOR_PREFIX + "[0-9a-f]{1,16}")
DEFAULT_TYPES = frozenset({CONTACT})
KNOWN_TYPES = frozenset({CONTACT, GROUP})


@dataclass(frozen=True)
class Delta:
    cursor: str
    object_type: str
    object_id: str
    event: str
    document: bytes | None  # the object as it is now; None once it is gone


@dataclass(frozen=True)
class DeltaPage:
    cursor_start: str
    cursor_end: str
    deltas: list[Delta]


def encode_cursor(seq: int) -> str:
    return f"{_CURSOR_PREFIX}{seq:x}"


def decode_cursor(cursor: str) -> int:
    """``0`` (or empty) is the beginning of the log, as in v2."""
    if cursor in ("", "0"):
        return 0
    if _CURSOR.fullmatch(cursor):
        return int(cursor[len(_CURSOR_PREFIX) :], 16)
    raise InvalidQuery("Invalid cursor parameter")


def parse_types(include: str | None, exclude: str | None) -> frozenset[str]:
    if include and exclude:
        raise InvalidQuery("Cannot set both include_types and excluded_types")
    if include:
        return frozenset(_split(include)) & KNOWN_TYPES
    if exclude:
        return DEFAULT_TYPES - frozenset(_split(exclude))
    return DEFAULT_TYPES


def _split(value: str) -> Iterable[str]:
    return (part.strip() for part in value.split(",") if part.strip())


# How often a waiter looks at the change log again when no announcement of changes can be
# relied on (SQLite written by other processes; PostgreSQL while its listener is
# reconnecting), and how often it wakes anyway while they can (to notice its client left).
POLL_SECONDS = 0.5
IDLE_SECONDS = 5.0


class ChangeSignals:
    """Wakes the delta waiters (long-polls, streams) of an account when it changes.

    A commit in this process tells it directly (``Store.on_commit``); on PostgreSQL, one
    listener per process hears every other process's commits (``rolodex.store.notify``)
    and wakes the waiters of that account only: a waiter costs no query while nothing
    happens to its account, however many wait.

    A waiter reads the change log before it waits, so a change announced in between would
    wake nobody: each announcement is counted (``mark``), and a wait given the count from
    before the read ends at once when it moved since.
    """

    def __init__(self, store: Store) -> None:
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()
        self._heard: dict[str | None, int] = {}  # announcements, by account (None: all)
        self._versions = store.versions()
        store.on_commit.append(self.notify)
        if self._versions is not None:
            self._versions.subscribe(self.notify)

    @property
    def announced(self) -> bool:
        """Whether every change of an account reaches ``notify`` (else: poll)."""
        return self._versions is not None and self._versions.healthy

    def notify(self, account_id: str | None) -> None:
        """Wake the waiters of ``account_id`` (None: every waiter). Any thread."""
        with self._lock:
            self._heard[account_id] = self._heard.get(account_id, 0) + 1
            if account_id is None:
                waiting = [w for ws in self._waiters.values() for w in ws]
            else:
                waiting = list(self._waiters.get(account_id, ()))
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def mark(self, account_id: str) -> int:
        """How many announcements reached the account's waiters so far."""
        with self._lock:
            return self._heard.get(account_id, 0) + self._heard.get(None, 0)

    async def wait(self, account_id: str, timeout: float, mark: int | None = None) -> bool:
        """Until the account may have changed (True) or ``timeout`` passes (False); at
        once when it was announced to since ``mark``."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(account_id, set()).add(waiter)
            if mark is not None and mark != self._heard.get(account_id, 0) + self._heard.get(
                None, 0
            ):
                waiter[1].set()
        try:
            await asyncio.wait_for(waiter[1].wait(), max(0.0, timeout))
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._waiters.get(account_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[account_id]


class ChangeFeed:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.signals = ChangeSignals(store)

    def mark(self, account: Account) -> int:
        """To take before reading the change log, and give ``wait_for_change`` after."""
        return self.signals.mark(account.id)

    async def wait_for_change(self, account: Account, until: float, mark: int) -> bool:
        """Wait until the account may have changed since ``mark`` or the monotonic time
        ``until``; True when its change log is worth reading again."""
        left = until - time.monotonic()
        if self.signals.announced:
            return await self.signals.wait(account.id, min(left, IDLE_SECONDS), mark)
        await self.signals.wait(account.id, min(left, POLL_SECONDS), mark)
        return True

    def latest_cursor(self, account: Account) -> str:
        with self.store.read() as tx:
            return encode_cursor(tx.accounts.generation(account.id))

    def since(
        self, account: Account, cursor: str, types: frozenset[str], limit: int = MAX_DELTAS
    ) -> DeltaPage:
        start = decode_cursor(cursor)
        deltas: list[Delta] = []
        end = start
        with self.store.read() as tx:
            latest = tx.accounts.generation(account.id)
            if start > latest:
                raise InvalidQuery("Invalid cursor parameter")
            while len(deltas) < limit:
                changes = tx.changes.since(account.id, end, MAX_DELTAS)
                if not changes:
                    break
                for change in changes:
                    end = change.seq
                    if change.object_type not in types:
                        continue
                    deltas.append(
                        Delta(
                            encode_cursor(change.seq),
                            change.object_type,
                            change.object_id,
                            change.event,
                            self._document(tx, account, change.object_type, change.object_id),
                        )
                    )
                    if len(deltas) >= limit:
                        break
            if not deltas and end == start:
                end = max(end, latest)
        return DeltaPage(encode_cursor(start), encode_cursor(end), deltas)

    @staticmethod
    def _document(tx: Tx, account: Account, object_type: str, object_id: str) -> bytes | None:
        try:
            if object_type == CONTACT:
                return tx.contacts.get(account.id, object_id).doc
            return orjson.dumps(render_group(tx.groups.get(account.id, object_id)))
        except (NoSuchContact, NoSuchGroup):
            return None
