"""Cards into domain items, in this process or on every core.

Kept apart from the connector and its HTTP client so that the pool workers, which start
from a fork server, import only the vCard and domain code (half the import time of the
connector module), and start sooner.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from rolodex.connectors import forkpool
from rolodex.domain.ids import looks_like_id
from rolodex.domain.remote import RemoteContact, RemoteGroup, RemoteItem
from rolodex.domain.vcard import KIND_GROUP, InvalidCard, parse_card

log = logging.getLogger(__name__)

# From this many cards of a stream on, the rest is parsed on every core (parsing is most of
# the CPU of a first sync; a pool takes about a quarter of a second to start), in chunks of
# PARSE_CHUNK.
PARALLEL_PARSE = 200
PARSE_CHUNK = 200


@dataclass(frozen=True)
class CardResource:
    href: str
    etag: str
    data: bytes


def item(collection: str, href: str, etag: str, data: bytes) -> RemoteItem | None:
    try:
        card = parse_card(data)
    except InvalidCard as exc:
        # One unreadable card must not stop the sync of the others; it stays remote.
        log.warning("skipping unreadable card %s: %s", href, exc)
        return None
    if card.kind == KIND_GROUP:
        return RemoteGroup(
            remote_id=href,
            etag=etag,
            collection=collection,
            name=card.name,
            member_uids=card.member_uids,
            raw=data,
        )
    return RemoteContact(
        remote_id=href,
        etag=etag,
        collection=collection,
        fields=card.fields,
        group_names=card.categories,
        picture=card.photo,
        picture_type=card.photo_type,
        raw=data,
        uid=card.uid or None,
        # Rolodex names the cards it creates by the contact's id (their UID): a card whose
        # UID looks like one may be a create of ours whose reply was lost.
        rolodex_id=card.uid if card.uid and looks_like_id(card.uid) else None,
    )


def parse_chunk(collection: str, chunk: list[tuple[str, str, bytes]]) -> list[RemoteItem]:
    """In a pool worker: the cards parsed, and the contacts' index terms computed there too
    (phone number parsing is the next largest cost of a first sync after vCard parsing)."""
    items: list[RemoteItem] = []
    for href, etag, data in chunk:
        parsed_item = item(collection, href, etag, data)
        if isinstance(parsed_item, RemoteContact):
            parsed_item = dataclasses.replace(parsed_item, terms=parsed_item.index_terms())
        if parsed_item is not None:
            items.append(parsed_item)
    return items


def parsed(collection: str, cards: Iterator[CardResource]) -> Iterator[RemoteItem]:
    """The cards parsed, in their order: here for a small book, and from the
    ``PARALLEL_PARSE``-th card on by a pool of processes, when there are cores for one."""
    workers = forkpool.workers()
    for n, res in enumerate(cards, 1):
        parsed_item = item(collection, res.href, res.etag, res.data)
        if parsed_item is not None:
            yield parsed_item
        if n == PARALLEL_PARSE and workers > 1:
            yield from parse_in_parallel(collection, cards, workers)
            return


def parse_in_parallel(
    collection: str, cards: Iterator[CardResource], workers: int
) -> Iterator[RemoteItem]:
    """The cards parsed by a pool of processes, in their order, while the rest streams in.

    At most two chunks per worker are in flight, so memory stays flat in the book's size.
    The workers start from a fork server (never a fork of this process, whose threads may
    hold locks) that has imported this module once.
    """
    with ProcessPoolExecutor(workers, mp_context=forkpool.context(__name__)) as pool:
        pending: deque[Future[list[RemoteItem]]] = deque()
        chunk: list[tuple[str, str, bytes]] = []
        for card in cards:
            chunk.append((card.href, card.etag, card.data))
            if len(chunk) >= PARSE_CHUNK:
                pending.append(pool.submit(parse_chunk, collection, chunk))
                chunk = []
                while len(pending) > 2 * workers or (pending and pending[0].done()):
                    yield from pending.popleft().result()
        if chunk:
            pending.append(pool.submit(parse_chunk, collection, chunk))
        while pending:
            yield from pending.popleft().result()


def warm_up() -> None:
    """Start the fork server this module's pools come from, while the caller waits for the
    provider's first answer: the workers then start in milliseconds, not a quarter second."""
    forkpool.warm_up(__name__)
