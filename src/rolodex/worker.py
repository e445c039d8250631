"""The scheduler: syncs the accounts that are due, in the server process or on its own.

In the embedded default it is a thread of ``rolodex serve``. At scale any number of worker
processes share the accounts through the database: a short lease per account, renewed while
its sync runs and lost soon after its holder dies (``rolodex.sync.lease``), so no account is
synced by two workers at once and none is forgotten. Each account's failures are recorded on
it and back off (``rolodex.sync.runner``); a round never stops at one.
"""

from __future__ import annotations

import logging
import signal
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
        """Stop at a safe point (``SyncRunner.stop``), waiting up to ``timeout`` seconds
        for the sync running; one that has not stopped by then (a provider that does not
        answer) has its lease given back anyway, so another process takes its account at
        once rather than when the lease runs out."""
        self._stop.set()
        self.runner.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("a sync did not stop within %g s; its lease is given back", timeout)
                self.runner.abandon()
        self.runner.close()

    def run_until_signalled(self, timeout: float = 10.0) -> None:
        """``rolodex worker``: run until SIGTERM or SIGINT (Ctrl-C), then ``stop``."""
        signalled = threading.Event()
        handlers = {
            number: signal.signal(number, lambda _number, _frame: signalled.set())
            for number in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            while not signalled.wait(0.5):
                pass
            log.info("stopping: a sync running stops at its next safe point")
        finally:
            self.stop(timeout)
            for number, handler in handlers.items():
                signal.signal(number, handler)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.runner.run_due()
            except Exception:
                # Not an account's failure (those are recorded on it): the database is away,
                # say. The next tick tries again.
                log.exception("sync round failed")
            self._stop.wait(self.tick)
