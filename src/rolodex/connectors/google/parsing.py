"""People into domain items, in this process or on every core, for a first sync.

A first sync of a large Google account spends most of its CPU mapping people and computing
their index terms (phone number parsing); here pages of ``connections.list`` are mapped by a
pool of processes (from a fork server that imported only this module and the domain) while
the next pages stream in on a thread and the engine writes the previous ones. At most a few
pages are in flight, so memory stays flat in the size of the book.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.context
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import orjson

from rolodex.connectors.google import mapping
from rolodex.domain.contact import SOURCE_ADDRESS_BOOK
from rolodex.domain.remote import RemoteContact

MY_CONTACTS = "contactGroups/myContacts"
# Pages fetched ahead of the one being mapped.
AHEAD = 2

Mapped = tuple[RemoteContact, str | None]  # the contact, and its photo's URL (read apart)


def contact(
    collection: str,
    person: dict[str, Any],
    groups: Mapping[str, str],
    *,
    terms: bool = False,
    source: str = SOURCE_ADDRESS_BOOK,
) -> Mapped:
    """One person as a ``RemoteContact`` (its picture not read yet: the URL comes beside)."""
    fields = mapping.fields_of(person)
    item = RemoteContact(
        remote_id=person["resourceName"],
        etag=str(person.get("etag") or ""),
        collection=collection,
        fields=fields,
        group_names=tuple(
            groups[rn]
            for rn in mapping.group_names_of(person)
            if rn != MY_CONTACTS and rn in groups
        ),
        raw=orjson.dumps(person),
        rolodex_id=mapping.rolodex_id_of(person),
        previous_ids=tuple(
            str(rn) for rn in (person.get("metadata") or {}).get("previousResourceNames") or ()
        ),
        source=source,
    )
    if terms:
        item = dataclasses.replace(item, terms=item.index_terms())
    return item, mapping.photo_url_of(person)


def map_page(collection: str, content: bytes, groups: Mapping[str, str]) -> list[Mapped]:
    """In a pool worker: a page's people mapped, with their index terms."""
    page = orjson.loads(content)
    return [
        contact(collection, person, groups, terms=True) for person in page.get("connections") or ()
    ]


def workers() -> int:
    """Processes to map pages on: the cores but one, which writes what they map (on two
    cores a pool only competes with that writer and costs the pickling)."""
    return min((os.cpu_count() or 1) - 1, 4)


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


Page = tuple[bytes, dict[str, Any]]  # as sent, and parsed


def _prefetched(pages: Iterator[Page]) -> Iterator[Page]:
    """``pages`` read on a thread, ``AHEAD`` pages ahead of the consumer."""
    ahead: queue.Queue[tuple[Page | None, BaseException | None]] = queue.Queue(AHEAD)
    stop = threading.Event()

    def read() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        ahead.put((page, None), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ahead.put((None, None))
        except BaseException as exc:  # handed to the consumer, raised there
            ahead.put((None, exc))

    reader = threading.Thread(target=read, name="google-pages", daemon=True)
    reader.start()
    try:
        while True:
            page, error = ahead.get()
            if error is not None:
                raise error
            if page is None:
                return
            yield page
    finally:
        stop.set()


def mapped_pages(
    collection: str,
    pages: Iterator[Page],
    groups: Callable[[], Mapping[str, str]],
) -> Iterator[Mapped]:
    """Every person of ``pages`` (``connections.list`` answers), mapped in order: the
    first page here, the rest, when there is more than one, on a pool of processes where
    there are cores for one."""
    source = _prefetched(pages)
    first = next(source, None)
    if first is None:
        return
    names = dict(groups())
    page = first[1]
    for person in page.get("connections") or ():
        yield contact(collection, person, names)
    if not page.get("nextPageToken"):
        return
    count = workers()
    if count < 2:
        for _content, page in source:
            for person in page.get("connections") or ():
                yield contact(collection, person, names)
        return
    with ProcessPoolExecutor(count, mp_context=_context()) as pool:
        pending: deque[Future[list[Mapped]]] = deque()
        for content, _page in source:
            pending.append(pool.submit(map_page, collection, content, names))
            while len(pending) > count or (pending and pending[0].done()):
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
