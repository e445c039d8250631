"""Process pools for parsing a provider's items off the main process (first syncs).

The workers come from a fork server, never a fork of the syncing process (whose threads
may hold locks); the server preloads the parsing module that asks for it, so workers start
in milliseconds. Shared by the connectors that parse in parallel (CardDAV, Graph, Google).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from multiprocessing import forkserver


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
