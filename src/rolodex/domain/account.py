"""Accounts: whose address book, where it lives, and how its sync is doing."""

from __future__ import annotations

from dataclasses import dataclass

from rolodex.domain.profiles import profile_for

# sync_state values shown by GET /account (wire reference, auth §4.2, plus the CardDAV work).
SYNC_RUNNING = "running"
SYNC_INVALID_CREDENTIALS = "invalid-credentials"
SYNC_ERROR = "sync-error"


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
    def is_connected(self) -> bool:
        """Its address book lives at a provider that Rolodex keeps in sync."""
        return not self.sandbox and self.provider != "local"

    @property
    def organization_unit(self) -> str:
        return "folder" if profile_for(self.provider).groups.model == "folders" else "label"
