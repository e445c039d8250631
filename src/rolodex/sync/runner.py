"""Runs the engine for one account at a time under a lease, and records the outcome."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from rolodex.connectors.base import (
    Connector,
    ConnectorError,
    InvalidCredentials,
    PermanentError,
    TransientError,
)
from rolodex.domain.account import SYNC_ERROR, SYNC_INVALID_CREDENTIALS, SYNC_RUNNING
from rolodex.service.accounts import AccountService
from rolodex.service.mirror import Mirror
from rolodex.sync.engine import MAX_BACKOFF, Progress, SyncEngine, SyncReport, no_progress

log = logging.getLogger(__name__)

# Longer than any one sync should take; a worker that dies holding it loses it after this.
LEASE_SECONDS = 600.0

ConnectorFactory = Callable[[str, dict[str, Any]], Connector]


class SyncRunner:
    def __init__(
        self,
        accounts: AccountService,
        mirror: Mirror,
        open_connector: ConnectorFactory,
        interval: float,
    ) -> None:
        self.accounts = accounts
        self.mirror = mirror
        self.engine = SyncEngine(mirror)
        self.open_connector = open_connector
        self.interval = interval
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"

    def run_due(self) -> int:
        """One round: every account whose sync is due, and every account with writes due
        for the provider (those get a push only). Returns how many accounts ran."""
        pull_due, push_due = self.mirror.due(time.time())
        ran = 0
        for account_id in pull_due:
            ran += self.run(account_id) is not None
        for account_id in push_due:
            if account_id not in pull_due:
                ran += self.run(account_id, pull=False) is not None
        return ran

    def run(
        self, account_id: str, progress: Progress = no_progress, *, pull: bool = True
    ) -> SyncReport | None:
        """Sync one account now; None when another worker holds it."""
        if not self.mirror.lease(account_id, self.owner, LEASE_SECONDS):
            return None
        connector: Connector | None = None
        try:
            account = self.accounts.get(account_id)
            settings = self.accounts.connection(account_id)
            if not account.is_connected or settings is None:
                return SyncReport()
            connector = self.open_connector(account.provider, settings)
            report = self.engine.sync(account, connector, progress, pull=pull)
        except InvalidCredentials as error:
            # Stop until someone fixes the credentials; retrying would only lock them out.
            self._record(account_id, SYNC_INVALID_CREDENTIALS, error.message, None, False)
            raise
        except TransientError as error:
            self._record(account_id, SYNC_ERROR, error.message, self._retry_at(account_id), False)
            raise
        except (PermanentError, ConnectorError) as error:
            self._record(account_id, SYNC_ERROR, str(error), self._retry_at(account_id), False)
            raise
        finally:
            if connector is not None:
                connector.close()
            self.mirror.release(account_id, self.owner)
        if pull:
            self._record(
                account_id,
                SYNC_RUNNING,
                report.last_push_error,
                time.time() + self.interval,
                True,
            )
        return report

    def _retry_at(self, account_id: str) -> float:
        """Back off while the provider keeps failing: wait half as long as it has been
        failing, between one interval and an hour."""
        account = self.accounts.get(account_id)
        since = time.time() - (account.last_synced_at or account.linked_at)
        return time.time() + min(MAX_BACKOFF, max(self.interval, since / 2))

    def _record(
        self, account_id: str, state: str, error: str | None, at: float | None, ok: bool
    ) -> None:
        self.mirror.record_status(
            account_id, state=state, error=error, next_sync_at=at, succeeded=ok
        )
