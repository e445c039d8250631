"""The local side of sync as the engine sees it: an interface, implemented by
``rolodex.service.mirror.Mirror`` over the store.

Each call is one transaction. Changes applied through it came from the provider and are
never queued for the provider again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from rolodex.domain.account import Account
from rolodex.domain.remote import (
    LocalGroup,
    LocalState,
    OutboxItem,
    RemoteContact,
    RemoteGroup,
    RemoteLink,
    RemotePicture,
    WriteResult,
)


class LocalSide(Protocol):
    # Pull
    def cursor(self, account_id: str, collection: str) -> str | None: ...

    def cursors(self, account_id: str) -> dict[str, str | None]:
        """collection -> cursor of every collection synced before."""

    def set_cursor(self, account_id: str, collection: str, cursor: str | None) -> None: ...

    def known_etags(self, account_id: str, collection: str) -> dict[str, str]:
        """remote id -> etag of every item of the collection known here."""

    def etags_of(self, account_id: str, remote_ids: Iterable[str]) -> dict[str, str]: ...

    def apply(self, account: Account, items: Sequence[RemoteContact]) -> int:
        """Create or update the local copies; returns how many changed."""

    def apply_groups(self, account: Account, items: Sequence[RemoteGroup]) -> None: ...

    def provider_groups(self, account: Account, groups: Sequence[tuple[str, str]]) -> None:
        """Where the provider's groups are items of their own, listed whole (Graph's
        folders, which are its collections; Google's labels, ``ChangeSet.groups``): one
        group per (provider id, name or path), renamed with it, and none for those gone."""

    def forget_collections(self, account: Account, keep: set[str]) -> int:
        """Delete the local copies of everything in collections not in ``keep`` (gone at
        the provider); returns how many."""

    def remove(self, account: Account, remote_ids: Iterable[str]) -> int:
        """Delete the local copies of items deleted at the provider; returns how many."""

    # Pictures checked apart (``Capabilities.picture_backfill``)
    def pictures_due(
        self, account_id: str, limit: int, checked_before: float
    ) -> tuple[list[tuple[str, str]], int]:
        """Up to ``limit`` (contact id, remote id) whose picture is due a check: never
        checked first, then checked before ``checked_before``, oldest first; and how many
        were never checked."""

    def apply_pictures(self, account: Account, found: Sequence[tuple[str, RemotePicture]]) -> int:
        """Store the pictures the checks found (by contact id) and record the checks;
        returns how many local copies changed."""

    # Push
    def pending(self, account_id: str, limit: int = 100) -> list[OutboxItem]: ...

    def local_state(self, account_id: str, contact_id: str) -> LocalState | None: ...

    def pending_fields(
        self, account_id: str, contact_id: str, fields: tuple[str, ...]
    ) -> tuple[str, ...]: ...

    def link_of(self, account_id: str, contact_id: str) -> RemoteLink | None: ...

    def group_creates(self, account_id: str, group_ids: Iterable[str]) -> list[OutboxItem]:
        """The creates of these groups waiting in the outbox, in order."""

    def group_state(self, account: Account, item: OutboxItem) -> LocalGroup | None:
        """What a group write asks of the provider (``LocalGroup``); None: nothing left."""

    def group_lost(self, account: Account, item: OutboxItem) -> tuple[str, ...]:
        """For a write of a group deleted here since attempts at it recorded the paths
        they made or renamed the group at (``group_attempting``), their replies lost: those
        paths, where the group may be there. Empty otherwise."""

    def group_pushed(self, account: Account, item: OutboxItem, result: WriteResult | None) -> None:
        """Record a delivered group write (the provider's id of the group, from
        ``result``; None after a delete) and drop it from the outbox."""

    def carried(self, account: Account, link: RemoteLink, merged: RemoteContact) -> None:
        """Before a write carries a change made at the provider along (a move's create):
        the local copy becomes ``merged``, the link ``link``; the write stays waiting."""

    def touches(
        self, account_id: str, item: OutboxItem, fields: tuple[str, ...]
    ) -> tuple[str, ...]:
        """The waiting write touches ``fields`` too from now on; returns all it touches."""

    def attempting(self, account_id: str, item: OutboxItem) -> None:
        """Count an attempt at ``item`` before it is made."""

    def group_linked(self, account: Account, remote_id: str) -> str | None:
        """The id of the group here linked to the provider's group ``remote_id`` (the
        connector's id of it, as ``LocalGroup.remote_id``); None: no group here is."""

    def group_attempting(self, account_id: str, item: OutboxItem, paths: tuple[str, ...]) -> None:
        """Record, before a group write makes or renames the group at the provider, every
        path the group may be at there once it is sent (the item's ``fields`` then name
        them, the latest last), in case the reply is lost."""

    def pushed(
        self,
        account: Account,
        item: OutboxItem,
        collection: str,
        uid: str | None,
        result: WriteResult | None,
        merged: RemoteContact | None = None,
        *,
        no_picture_there: bool = False,
        in_folder_group: bool = False,
    ) -> None: ...

    def dropped(self, account_id: str, item: OutboxItem) -> None: ...

    def retry_later(self, account_id: str, item: OutboxItem, at: float, error: str) -> None: ...
