"""The change feed: the per-account change log, read as v2 deltas.

Every mutation appends to the change log in its own transaction (``service.records``), so
the feed misses nothing and survives restarts. A cursor names a position in the log.
"""

from __future__ import annotations

import re
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


class ChangeFeed:
    def __init__(self, store: Store) -> None:
        self.store = store

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
