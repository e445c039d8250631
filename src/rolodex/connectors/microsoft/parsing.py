"""Graph contact JSON into domain items, in this process or on every core.

Kept apart from the connector and its HTTP client so that the pool workers (started from a
fork server, like CardDAV's) import only the mapping and the domain. A first sync spends
most of its CPU here: the mapping, and the index terms (phone number parsing), which the
workers compute too.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson

from rolodex.connectors import forkpool
from rolodex.connectors.microsoft import mapping
from rolodex.domain.normalize import index_terms
from rolodex.domain.remote import RemoteContact

# Rolodex's id of the contact, in a single-value extended property of our own namespace
# (a MAPI named property: "String {GUID} Name ...").
ROLODEX_ID_PROPERTY = "String {8f3b2c1e-6d4a-4e57-9b0a-52c1d7e0f3a9} Name RolodexId"
_PROPERTY_KEY = ROLODEX_ID_PROPERTY.lower()
# From this many contacts of a folder on, the rest of its pages go to the pool (started once
# per connector, in about a quarter of a second).
PARALLEL_PARSE = 300


def etag_of(entry: dict[str, Any]) -> str:
    """An Outlook item's version: its ``@odata.etag``, which is ``W/"<changeKey>"``; built
    from the ``changeKey`` (a property of every Outlook item, DOC resources/contact) when an
    answer carries no ``@odata.etag``, so that what is sent back in If-Match is an entity
    tag either way."""
    etag = entry.get("@odata.etag")
    if etag:
        return str(etag)
    change_key = entry.get("changeKey")
    return f'W/"{change_key}"' if change_key else ""


def item(
    collection: str,
    path: str,
    entry: dict[str, Any],
    raw: bytes | None = None,
    terms: frozenset[tuple[str, str]] | None = None,
) -> RemoteContact:
    """One contact of folder ``collection`` (whose path is its one group)."""
    rolodex_id = None
    for prop in entry.get("singleValueExtendedProperties") or []:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower() == _PROPERTY_KEY:
            rolodex_id = str(prop.get("value") or "") or None
    return RemoteContact(
        remote_id=entry["id"],
        etag=etag_of(entry),
        collection=collection,
        fields=mapping.to_fields(entry),
        group_names=(path,),
        raw=raw if raw is not None else orjson.dumps(entry),
        rolodex_id=rolodex_id,
        terms=terms,
        # Neither a delta page nor a contact's JSON carries its photo (read apart).
        picture_checked=False,
    )


def contacts(page: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The contacts of a delta page (removals left out)."""
    for entry in page.get("value") or []:
        if isinstance(entry.get("id"), str) and "@removed" not in entry:
            yield entry


def page_terms(content: bytes) -> list[str]:
    """In a pool worker: the index terms of a page's contacts (phone number parsing is most
    of a first sync's CPU), each contact's as one string: "kind\x1fvalue" pairs joined by
    "\x1e". Strings, because pickling the domain objects back costs as much as making them."""
    out = []
    for entry in contacts(orjson.loads(content)):
        terms = index_terms(mapping.to_fields(entry))
        out.append("\x1e".join(f"{kind}\x1f{value}" for kind, value in terms))
    return out


def _decode(encoded: str) -> frozenset[tuple[str, str]]:
    if not encoded:
        return frozenset()
    pairs = (pair.split("\x1f", 1) for pair in encoded.split("\x1e"))
    return frozenset((kind, value) for kind, value in pairs)


class Pool:
    """The worker processes of one connector, started on first need and shared by its
    folders' snapshots (a pool takes about a quarter of a second to start)."""

    def __init__(self) -> None:
        self.workers = forkpool.workers()
        self._executor: ProcessPoolExecutor | None = None

    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=forkpool.context(__name__)
            )
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None


def parsed(
    collection: str, path: str, pages: Iterator[tuple[bytes, dict[str, Any]]], pool: Pool
) -> Iterator[RemoteContact]:
    """The contacts of ``pages`` (raw body, parsed body) in order: here for a small folder,
    and from the ``PARALLEL_PARSE``-th contact on by ``pool``, when there are cores for one."""
    seen = 0
    for _content, page in pages:
        for entry in contacts(page):
            yield item(collection, path, entry)
            seen += 1
        if seen >= PARALLEL_PARSE and pool.workers > 1:
            yield from _in_parallel(collection, path, pages, pool)
            return


def _in_parallel(
    collection: str, path: str, pages: Iterator[tuple[bytes, dict[str, Any]]], pool: Pool
) -> Iterator[RemoteContact]:
    """Pages' index terms computed by the pool, in order, while the next pages stream in;
    at most two pages per worker in flight, so memory stays flat in the folder's size."""
    executor = pool.executor()
    for page, found in forkpool.in_order(pages, executor, page_terms, 2 * pool.workers):
        for entry, terms in zip(contacts(page), found, strict=True):
            yield item(collection, path, entry, terms=_decode(terms))


def warm_up() -> None:
    """Start the fork server this module's pools come from, while the caller waits for the
    provider's first answer: the workers then start in milliseconds, not a quarter second."""
    forkpool.warm_up(__name__)
