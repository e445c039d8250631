"""The change feed's waiters: what wakes them (``rolodex.service.changefeed``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rolodex.service.changefeed import ChangeSignals
from rolodex.store import Store


def test_a_change_announced_between_the_read_and_the_wait_ends_the_wait_at_once(
    tmp_path: Path,
) -> None:
    """A long poll reads the log, then waits: a commit in between (another process's,
    heard by the listener) must not wait for the next one, or for the poll's timeout."""
    store = Store(f"sqlite:///{tmp_path / 'feed.db'}")
    signals = ChangeSignals(store)

    async def poll() -> tuple[bool, float]:
        mark = signals.mark("a1")  # taken before the read
        signals.notify("a1")  # the commit lands after the read, before the wait
        started = time.monotonic()
        woken = await signals.wait("a1", 5.0, mark)
        return woken, time.monotonic() - started

    woken, took = asyncio.run(poll())
    assert woken and took < 1.0
    store.close()


def test_other_accounts_changes_do_not_end_the_wait(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'feed.db'}")
    signals = ChangeSignals(store)

    async def poll() -> bool:
        mark = signals.mark("a1")
        signals.notify("a2")
        return await signals.wait("a1", 0.2, mark)

    assert asyncio.run(poll()) is False
    signals.notify(None)  # every waiter (a listener that reconnected): a1's too

    async def again() -> bool:
        return await signals.wait("a1", 0.2, 0)

    assert asyncio.run(again()) is True
    store.close()
