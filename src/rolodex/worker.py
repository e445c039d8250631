"""The scheduler: syncs the accounts that are due, in the server process or on its own.

In the embedded default it is a thread of ``rolodex serve``. At scale any number of worker
processes share the accounts through the database: a short lease per account, renewed while
its sync runs and lost soon after its holder dies (``rolodex.sync.lease``), so no account is
synced by two workers at once and none is forgotten. Each account's failures are recorded on
it and back off (``rolodex.sync.runner``); a round never stops at one.
"""

from __future__ import annotations

import logging
import threading

from rolodex.sync.runner import SyncRunner

log = logging.getLogger(__name__)

# How often the worker looks for due work: writes reach the provider within about this.
TICK_SECONDS = 1.0


class Worker:
    def __init__(self, runner: SyncRunner, tick: float = TICK_SECONDS) -> None:
        self.runner = runner
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="rolodex-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.runner.run_due()
            except Exception:
                # Not an account's failure (those are recorded on it): the database is away,
                # say. The next tick tries again.
                log.exception("sync round failed")
            self._stop.wait(self.tick)
