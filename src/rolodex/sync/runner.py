"""Runs the engine for one account at a time under a lease, and records the outcome.

Failures are isolated per account: whatever a sync raises is recorded on its account
(``sync_state``, ``last_error``, the time of the next try, which backs off) and never stops
the other accounts of a round. Only a lost lease is not the account's failure: another
process holds the account now.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable

from rolodex.connectors.base import InvalidCredentials, PermanentError, TransientError
from rolodex.domain.account import SYNC_ERROR, SYNC_INVALID_CREDENTIALS, SYNC_RUNNING
from rolodex.domain.errors import LeaseLost, NoSuchAccount
from rolodex.logs import carrying
from rolodex.metrics import PROVIDER_ERRORS, SYNC_RUNS
from rolodex.service.accounts import AccountService
from rolodex.service.mirror import Mirror, SyncStart
from rolodex.sync.connections import ConnectorFactory, OpenConnectors
from rolodex.sync.engine import SyncEngine
from rolodex.sync.lease import LEASE_SECONDS, Lease
from rolodex.sync.push import MAX_BACKOFF
from rolodex.sync.report import Progress, SyncReport, no_progress

log = logging.getLogger(__name__)

# How often a caller that waits for another process's sync looks again.
WAIT_POLL_SECONDS = 0.5


class SyncStopped(Exception):
    """The process is shutting down: the sync stopped at a safe point (``SyncRunner.stop``)."""


class SyncFailed(Exception):
    """A sync failed; the account shows why (``last_error``), as does ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SyncRunner:
    def __init__(
        self,
        accounts: AccountService,
        mirror: Mirror,
        open_connector: ConnectorFactory,
        interval: float | Callable[[str], float],
        *,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        """``interval``: seconds between syncs of an account, or a function of its
        provider's name giving them."""
        self.accounts = accounts
        self.mirror = mirror
        self.open_connector = open_connector
        self._interval = interval
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        # Set when the process shuts down: syncs stop before their next write.
        self.stopping = threading.Event()
        self._held: dict[str, Lease] = {}  # the leases of the syncs running
        # Each account's connector, kept between its syncs (rolodex.sync.connections).
        self.connectors = OpenConnectors(
            lambda provider, settings, changed: self.open_connector(provider, settings, changed),
            accounts.unseal,
            accounts.update_connection,
        )

    def stop(self) -> None:
        """Stop at a safe point: a sync running stops before its next write, to the
        provider or here, or its next item read (``SyncStopped``); its account's lease is
        given back and the account stays due, so another process takes it at once."""
        self.stopping.set()

    def abandon(self) -> None:
        """Give back the leases of the syncs still running (a shutdown that cannot wait
        for them any longer: a provider that does not answer). Their next write finds
        the lease gone and is not made."""
        for lease in list(self._held.values()):
            lease.release()

    def close(self) -> None:
        """Close the connectors kept between syncs (the process is done syncing)."""
        self.connectors.close()

    def interval(self, provider: str) -> float:
        return self._interval(provider) if callable(self._interval) else self._interval

    def run_due(self) -> int:
        """One round: every account whose sync is due, and every account with writes due
        for the provider (those get a push only). Returns how many accounts ran. A failing
        account is recorded and skipped; it never stops the round."""
        pull_due, push_due = self.mirror.due(time.time())
        ran = 0
        for account_id in pull_due:
            if self.stopping.is_set():
                return ran
            ran += self._run_isolated(account_id, pull=True)
        for account_id in push_due:
            if self.stopping.is_set():
                return ran
            if account_id not in pull_due:
                ran += self._run_isolated(account_id, pull=False)
        return ran

    def _run_isolated(self, account_id: str, *, pull: bool) -> bool:
        try:
            return self.run(account_id, pull=pull) is not None
        except SyncFailed:
            return True  # recorded on the account, and logged
        except NoSuchAccount:
            return False  # deleted meanwhile

    def wait_and_run(
        self,
        account_id: str,
        progress: Progress = no_progress,
        *,
        waiting: Callable[[str], None] = lambda _holder: None,
    ) -> SyncReport:
        """Sync now, after the sync another process is running, if any (``waiting`` is
        told who holds it, once). Its lease runs out soon after its holder dies, so this
        never waits for a dead process for long."""
        told = False
        while True:
            report = self.run(account_id, progress)
            if report is not None:
                return report
            if not told:
                waiting(self.mirror.lease_holder(account_id) or "another process")
                told = True
            time.sleep(WAIT_POLL_SECONDS)

    def run(
        self, account_id: str, progress: Progress = no_progress, *, pull: bool = True
    ) -> SyncReport | None:
        """Sync one account now; None when another process holds it. Raises
        ``SyncFailed`` once the failure is recorded on the account."""
        lease = Lease(
            account_id,
            self.owner,
            self.mirror.lease,
            self.mirror.release,
            seconds=self.lease_seconds,
        )
        if self.stopping.is_set():
            return None
        # The lease, the request that asked for this sync (if one did: the sync's logs
        # carry its id), the account and its cursors: one transaction.
        started = time.monotonic()
        start = self.mirror.start_sync(
            account_id, self.owner, self.lease_seconds, take_request=pull
        )
        if start is None:
            return None
        lease.taken_at(started)
        self._held[account_id] = lease
        with lease:
            requested = start.request_id
            with carrying(requested):
                if requested is not None:
                    log.info("sync of %s asked for", account_id, extra={"account_id": account_id})
                try:
                    report = self._sync(start, lease, progress, pull)
                except LeaseLost:
                    if not self.stopping.is_set():
                        log.warning("sync of %s stopped: its lease was taken over", account_id)
                    return None
                except SyncStopped:
                    log.info("sync of %s stopped at a safe point to shut down", account_id)
                    return None
                except InvalidCredentials as error:
                    # Stop until someone fixes the credentials; retrying would only lock
                    # them out.
                    self._failed(
                        account_id, "credentials", SYNC_INVALID_CREDENTIALS, error.message, None
                    )
                    raise SyncFailed(error.message) from error
                except TransientError as error:
                    self._failed(
                        account_id, "transient", SYNC_ERROR, error.message, error.retry_after
                    )
                    raise SyncFailed(error.message) from error
                except PermanentError as error:
                    self._failed(account_id, "refused", SYNC_ERROR, error.message, None)
                    raise SyncFailed(error.message) from error
                except NoSuchAccount:
                    raise
                except Exception as error:
                    # A bug, or a failure nothing classified: recorded like any other, so
                    # the account shows it and the worker backs off instead of retrying
                    # every tick.
                    log.exception("sync of %s failed unexpectedly", account_id)
                    message = f"sync failed unexpectedly ({type(error).__name__}: {error})"
                    self._failed(account_id, "unexpected", SYNC_ERROR, message, None)
                    raise SyncFailed(message) from error
                finally:
                    self._held.pop(account_id, None)
                _log_report(account_id, report, requested is not None)
        return report

    def _sync(
        self, start: SyncStart, lease: Lease, progress: Progress, pull: bool
    ) -> SyncReport | None:
        account, sealed = start.account, start.connection
        if not account.is_connected or sealed is None:
            return SyncReport()
        # New credentials the connector hands back are stored while the lease holds.
        held = self.connectors.take(account.id, account.provider, sealed, lease.check)
        if held is None:
            return SyncReport()
        assert held.connector is not None
        local = self.mirror.fenced(account.id, self.owner, start)
        reusable = False
        try:
            engine = SyncEngine(local, guard=lambda: self._guard(lease))
            report = engine.sync(account, held.connector, progress, pull=pull)
            reusable = True
        except (LeaseLost, NoSuchAccount):
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                local.flush()  # what was pulled before the failure stays pulled
            raise
        finally:
            self.connectors.give_back(held, reusable=reusable)
        if pull:
            # The status, the cursors not written yet and the lease: one transaction.
            next_at = time.time() + self.interval(account.provider)
            lease.release(
                lambda: local.finish_sync(
                    state=SYNC_RUNNING,
                    error=report.last_push_error,
                    next_sync_at=next_at,
                    succeeded=True,
                )
            )
            SYNC_RUNS.labels("ok").inc()
        else:
            lease.release(local.finish_sync)
        return report

    def _guard(self, lease: Lease) -> None:
        """The engine's safe points: go on only while the lease holds and the process is
        not shutting down."""
        lease.check()
        if self.stopping.is_set():
            raise SyncStopped()

    def _failed(
        self, account_id: str, kind: str, state: str, error: str, retry_after: float | None
    ) -> None:
        """Record a failure (``kind``: rolodex.metrics.PROVIDER_ERRORS); the account's
        writes wait as long as its next sync."""
        log.info("sync of %s failed: %s", account_id, error, extra={"account_id": account_id})
        PROVIDER_ERRORS.labels(self.accounts.get(account_id).provider, kind).inc()
        if state == SYNC_INVALID_CREDENTIALS:
            at = None  # until it is reconnected
            hold = time.time() + MAX_BACKOFF
        else:
            at = self._retry_at(account_id, retry_after)
            hold = at
        self._record(account_id, state, error, at, False)
        self.mirror.defer_pending(account_id, hold, error)

    def _retry_at(self, account_id: str, retry_after: float | None) -> float:
        """Back off while the provider keeps failing: wait half as long as it has been
        failing, between one interval (or what the provider asked for) and an hour."""
        account = self.accounts.get(account_id)
        since = time.time() - (account.last_synced_at or account.linked_at)
        floor = max(self.interval(account.provider), retry_after or 0.0)
        return time.time() + min(MAX_BACKOFF, max(floor, since / 2))

    def _record(
        self, account_id: str, state: str, error: str | None, at: float | None, ok: bool
    ) -> None:
        self.mirror.record_status(
            account_id, state=state, error=error, next_sync_at=at, succeeded=ok
        )
        SYNC_RUNS.labels("ok" if ok else state).inc()


def _log_report(account_id: str, report: SyncReport | None, asked: bool) -> None:
    """A line per sync that did something or was asked for (a worker's idle polls of many
    accounts would drown the rest)."""
    if report is None:
        return
    busy = report.pushed or report.push_failures or report.created_or_updated or report.deleted
    log.log(
        logging.INFO if busy or asked else logging.DEBUG,
        "sync of %s done",
        account_id,
        extra={"account_id": account_id, **report.__dict__},
    )
