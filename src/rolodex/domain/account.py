"""Accounts: whose address book, where it lives, and how its sync is doing."""

from __future__ import annotations

from dataclasses import dataclass

# sync_state values shown by GET /account (wire reference, auth §4.2, plus the CardDAV work).
SYNC_RUNNING = "running"
SYNC_INVALID_CREDENTIALS = "invalid-credentials"
SYNC_ERROR = "sync-error"
SYNC_STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email_address: str
    name: str
    provider: str
    sandbox: bool
    linked_at: float
    sync_state: str = SYNC_RUNNING
    last_synced_at: float | None = None
    last_error: str | None = None
    contact_count: int = 0

    @property
    def groups_live_in_rolodex(self) -> bool:
        return self.sandbox or self.provider == "local"
