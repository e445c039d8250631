"""The connector interface every provider implements, and its classified errors.

The sync engine (``rolodex.sync``) knows only this module and the store. Errors are classified
before anything is retried: ``TransientError`` may be retried (after ``retry_after`` when the
provider says so), everything else may not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rolodex.domain.providers import ProviderSpec

# The data classes live in the domain (rolodex.domain.remote), shared with the local side
# of sync; they are named here too, for connectors.
from rolodex.domain.remote import (
    Capabilities,
    ChangeSet,
    Collection,
    LocalContact,
    LocalGroup,
    RemoteContact,
    RemoteGroup,
    RemoteItem,
    RemotePicture,
    WriteResult,
)
from rolodex.domain.signin import OAuthSignIn

# --- Errors ----------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises on purpose."""


@dataclass
class TransientError(ConnectorError):
    """Network failure, 5xx, 429: the same call may succeed later."""

    message: str
    retry_after: float | None = None


@dataclass
class PermanentError(ConnectorError):
    """The provider refused the call; repeating it unchanged will not help."""

    message: str
    status: int | None = None


@dataclass
class InvalidCredentials(ConnectorError):
    """Authentication failed: stop syncing the account until its credentials are fixed."""

    message: str


@dataclass
class CursorExpired(ConnectorError):
    """The provider no longer knows the sync cursor: do a full resync."""

    collection: str


@dataclass
class PreconditionFailed(ConnectorError):
    """The remote item changed since the etag we hold (HTTP 412 and friends)."""

    remote_id: str


@dataclass
class RemoteNotFound(ConnectorError):
    remote_id: str


__all__ = [
    "Capabilities",
    "ChangeSet",
    "Collection",
    "Connector",
    "ConnectorError",
    "CredentialsChanged",
    "CursorExpired",
    "InvalidCredentials",
    "KeptOpen",
    "LocalContact",
    "LocalGroup",
    "PermanentError",
    "PictureReader",
    "PreconditionFailed",
    "Provider",
    "RemoteContact",
    "RemoteGroup",
    "RemoteItem",
    "RemoteNotFound",
    "RemotePicture",
    "TransientError",
    "WriteResult",
]


class Connector(Protocol):
    """One account's remote address book(s)."""

    def capabilities(self) -> Capabilities: ...

    def verify(self) -> None:
        """Check that the settings reach the provider and the credentials work."""

    def collections(self) -> list[Collection]: ...

    def changes(self, collection: str, cursor: str | None, *, with_data: bool = False) -> ChangeSet:
        """Changes since ``cursor`` (None: everything). Raises ``CursorExpired``.

        ``with_data`` asks for the changed items' content in the same round trip where the
        protocol allows it (CardDAV: address-data inside sync-collection), for incremental
        syncs, where one request instead of two is most of the cost on servers such as
        Radicale that read the whole book per request. The engine asks for it only with a
        cursor, so a first sync never holds a whole book in memory.
        """

    def snapshot(self, collection: str) -> ChangeSet:
        """Everything in the collection, for a first sync: a cursor taken first, then every
        item streamed (``ChangeSet.stream``), so that what changes during the read is
        reported again after the cursor. Memory stays flat in the number of items. A
        connector with no cheaper way returns ``changes(collection, None)``.

        ``cursor`` is read once the stream is exhausted: a provider that hands its cursor
        out only with the last page of a full listing (Google's ``nextSyncToken``, which
        covers the changes made since the listing began) sets it then.
        """

    def fetch(self, collection: str, remote_ids: Iterable[str]) -> Iterator[RemoteItem]:
        """The current state of these items, streamed (few round trips, memory flat in the
        number of items); items gone meanwhile are skipped. Group items come as
        ``RemoteGroup``.

        An item the provider has re-keyed (``Capabilities.rekeys``) and that answers under
        its new id when read by its old one (Google's people:batchGet,
        ``PersonResponse.requestedResourceName``) comes under the new id with the id it was
        asked by in ``RemoteContact.previous_ids``: the engine reads what a complete
        listing leaves out this way, and that is how it learns a re-key that the listing
        does not name."""

    def create(
        self, collection: str, contact: LocalContact, uid: str, *, maybe_exists: bool = False
    ) -> WriteResult:
        """Create an item carrying ``uid``, Rolodex's id of the contact, where the provider
        keeps client data (``RemoteContact.rolodex_id`` when read back).

        ``maybe_exists``: an earlier attempt may have made the item (its reply was lost, or
        the process died): look for an item carrying ``uid`` in ``collection`` first and
        answer it with ``existed=True``. A connector whose creates are idempotent by
        themselves (CardDAV: the href comes from ``uid``, written with If-None-Match) may
        ignore it."""

    def home(self, contact: LocalContact) -> str | None:
        """The collection ``contact`` belongs in, for providers whose collections are its
        groups (a Graph contact folder): where it is created, and where it is moved when its
        groups change (create there, then delete the old item; the Rolodex id stays). None:
        it stays where it is, or goes to the default collection when created."""

    def copies(self, uid: str) -> list[tuple[str, WriteResult]]:
        """(collection, item) of every item carrying Rolodex's id ``uid``, in any collection
        a contact may be moved to (``home``): a move interrupted between its create and
        its delete leaves a copy behind, which a later write of the contact removes. A
        connector whose contacts never move between collections finds none."""

    def update(
        self, remote_id: str, etag: str, contact: LocalContact, raw: bytes | None
    ) -> WriteResult:
        """Write ``contact`` over the item if it still has ``etag``; ``raw`` is the last
        representation read, whose properties Rolodex does not map are kept.
        Raises ``PreconditionFailed``."""

    def delete(self, remote_id: str, etag: str) -> None:
        """Raises ``PreconditionFailed``; deleting an item already gone is not an error."""

    # Groups that are items of their own at the provider (``Profile.groups_writable``): the
    # API's group writes, delivered from the outbox. A connector whose groups cannot be
    # written raises ``PermanentError``.

    def create_group(self, group: LocalGroup) -> WriteResult:
        """Make the group; answer its provider id (``LocalGroup.remote_id``). A group of
        that name already there (group names are unique at Google and within a folder at
        Graph) is the one an earlier attempt made, its reply lost, or one made there
        meanwhile: it is answered (``existed=True``), never made twice."""

    def find_group(self, path: str) -> WriteResult | None:
        """The group at ``path`` there now (listed afresh: the group an earlier attempt
        made or renamed, its reply lost); None when there is none. Nothing is made."""

    def rename_group(self, group: LocalGroup) -> WriteResult:
        """Rename the group ``group.remote_id`` to ``group.name``. The name is all a rename
        writes, so a stale etag is re-read and the rename retried. Raises
        ``RemoteNotFound``."""

    def delete_group(self, group: LocalGroup) -> None:
        """Delete the group ``group.remote_id`` and never its contacts: a provider that
        would delete them with it (a Graph folder) refuses while it holds any. Deleting a
        group already gone is not an error."""

    def close(self) -> None: ...


@runtime_checkable
class KeptOpen(Protocol):
    """A connector that holds more than its connections between two syncs (a long-lived
    worker keeps an account's connector open for its next sync:
    ``rolodex.sync.connections``)."""

    def idle(self) -> None:
        """The sync is over and the next one comes later: let go of what only a sync
        needs (worker processes), and keep the connections."""


class PictureReader(Protocol):
    """A connector whose items come without their pictures (``Capabilities.picture_backfill``
    above 0) reads them apart with this."""

    def pictures(self, remote_ids: Sequence[str]) -> Iterator[RemotePicture]:
        """The pictures of these contacts, in order, within the provider's concurrency
        limit; a contact gone meanwhile reads as having none, one the provider refuses to
        give comes ``refused``. A ``TransientError`` may come part way: the pictures that
        came before it stand."""


# Called by a connector with the account's whole new settings when the provider hands out
# new secrets mid-sync (a refreshed access token, a rotated refresh token); the caller
# stores them, encrypted, before the connector goes on.
CredentialsChanged = Callable[[dict[str, str]], None]


def credentials_ignored(_settings: dict[str, str]) -> None:
    pass


@dataclass(frozen=True)
class Provider:
    """One provider as the connectors registry knows it: what connecting needs
    (``spec``), and how to open a connector on an account's settings."""

    spec: ProviderSpec
    open: Callable[[dict[str, str], CredentialsChanged], Connector]
    # The provider's OAuth consent screen for hosted sign-in, built from the server's
    # configuration (its values by name: ``google_client_id``...); None where the
    # provider has none or its client is not configured.
    oauth: Callable[[Mapping[str, Any]], OAuthSignIn | None] | None = None

    def verify(self, settings: dict[str, str]) -> None:
        """Check that the settings reach the provider and the credentials work."""
        connector = self.open(settings, credentials_ignored)
        try:
            connector.verify()
        finally:
            connector.close()
