"""Process pools for parsing a provider's items off the main process (first syncs).

The workers come from a fork server, never a fork of the syncing process (whose threads
may hold locks); the server preloads the parsing module that asks for it, so workers start
in milliseconds. Shared by the connectors that parse in parallel (CardDAV, Graph, Google).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from multiprocessing import forkserver
from typing import TypeVar

Page = TypeVar("Page")
Result = TypeVar("Result")


def workers() -> int:
    """How many parsing processes a pool gets: the cores, at most four."""
    return min(os.cpu_count() or 1, 4)


def context(preload: str) -> multiprocessing.context.BaseContext:
    """The fork server context whose server has imported the module ``preload``."""
    found = multiprocessing.get_context("forkserver")
    found.set_forkserver_preload([preload])
    return found


def warm_up(preload: str) -> None:
    """Start the fork server (preloading ``preload``) while the caller waits for the
    provider's first answer. A no-op on one core, and cheap when no pool follows."""
    if workers() > 1:
        context(preload)
        forkserver.ensure_running()


def in_order(
    pages: Iterator[tuple[bytes, Page]],
    pool: Executor,
    work: Callable[[bytes], Result],
    depth: int,
) -> Iterator[tuple[Page, Result]]:
    """Each page with what ``work`` made of its raw body in the pool, in the pages' order,
    while later pages stream in and are submitted. At most ``depth`` pages wait in flight,
    so memory stays flat in the book's size; what is still in flight when the caller
    stops is cancelled."""
    pending: deque[tuple[Page, Future[Result]]] = deque()
    try:
        for content, page in pages:
            pending.append((page, pool.submit(work, content)))
            while len(pending) > depth or (pending and pending[0][1].done()):
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        for _page, future in pending:
            future.cancel()
