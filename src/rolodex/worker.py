"""The scheduler: syncs the accounts that are due, in the server process or on its own.

In the embedded default it is a thread of ``rolodex serve``. At scale any number of worker
processes share the accounts through the database: a lease per account, which a crashed
worker loses after a timeout, so no account is synced by two workers at once.
"""

from __future__ import annotations

import logging
import threading

from rolodex.connectors.base import ConnectorError
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
            except ConnectorError as error:
                # Already recorded on the account; the schedule decides when to try again.
                log.info("sync failed: %r", error)
            except Exception:
                log.exception("sync round failed")
            self._stop.wait(self.tick)
