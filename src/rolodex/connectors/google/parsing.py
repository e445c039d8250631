"""People into domain items, in this process or on every core, for a first sync.

A first sync of a large Google account spends most of its CPU on the people's index terms
(phone number parsing) and on mapping them; here the pages of ``connections.list`` stream
in on a thread while, where there are cores beside this process's, a pool of processes
(from the shared fork server, ``forkpool``) computes each page's index terms, and this
process maps the people and the engine writes the previous ones. The pool sends back only
the terms, as tuples of strings: pickling the mapped domain objects back cost this process
(the writer, which is what a first sync waits for) as much as mapping them. At most a few
pages are in flight, so memory stays flat in the size of the book.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson

from rolodex.connectors import forkpool
from rolodex.connectors.google import mapping
from rolodex.domain.contact import SOURCE_ADDRESS_BOOK
from rolodex.domain.normalize import index_terms
from rolodex.domain.remote import RemoteContact

MY_CONTACTS = "contactGroups/myContacts"
# Pages fetched ahead of the one being mapped.
AHEAD = 2

Mapped = tuple[RemoteContact, str | None]  # the contact, and its photo's URL (read apart)
Terms = tuple[tuple[str, str], ...]


def contact(
    collection: str,
    person: dict[str, Any],
    groups: Mapping[str, tuple[str, str | None]],
    *,
    terms: Terms | None = None,
    source: str = SOURCE_ADDRESS_BOOK,
) -> Mapped:
    """One person as a ``RemoteContact`` (its picture not read yet: the URL comes beside);
    ``groups``: resource name -> (name, id it is linked by) of the groups contacts show;
    ``terms``: its index terms, when a pool worker computed them."""
    found = [
        groups[rn] for rn in mapping.group_names_of(person) if rn != MY_CONTACTS and rn in groups
    ]
    item = RemoteContact(
        remote_id=person["resourceName"],
        etag=str(person.get("etag") or ""),
        collection=collection,
        fields=mapping.fields_of(person),
        group_names=tuple(name for name, _id in found),
        group_ids=tuple(gid for _name, gid in found),
        raw=orjson.dumps(person),
        rolodex_id=mapping.rolodex_id_of(person),
        previous_ids=tuple(
            str(rn) for rn in (person.get("metadata") or {}).get("previousResourceNames") or ()
        ),
        source=source,
        terms=None if terms is None else frozenset(terms),
    )
    return item, mapping.photo_url_of(person)


def page_terms(content: bytes) -> list[Terms]:
    """In a pool worker: the index terms of a page's people, in order."""
    people = orjson.loads(content).get("connections") or ()
    return [tuple(index_terms(mapping.fields_of(person))) for person in people]


def workers() -> int:
    """Processes to compute terms on: the cores but one, which maps and writes (and is
    what a first sync waits for). On two cores a pool only took CPU from that process:
    measured side by side, a first sync of 20,000 people took longer with one than
    without, though the process itself spent less."""
    return min((os.cpu_count() or 1) - 1, 4)


def warm_up() -> None:
    """Start the fork server the pool comes from while the first page is awaited (where
    there will be a pool): the workers then start in milliseconds, not a quarter second."""
    if workers() > 1:
        forkpool.warm_up(__name__)


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
    groups: Callable[[], Mapping[str, tuple[str, str | None]]],
) -> Iterator[Mapped]:
    """Every person of ``pages`` (``connections.list`` answers), mapped in order: the
    first page here, and the index terms of the rest, when there is more than one, on a
    pool of processes where there are cores for one."""
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
    with ProcessPoolExecutor(count, mp_context=forkpool.context(__name__)) as pool:
        for page, found in forkpool.in_order(source, pool, page_terms, count):
            for person, terms in zip(page.get("connections") or (), found, strict=True):
                yield contact(collection, person, names, terms=terms)
