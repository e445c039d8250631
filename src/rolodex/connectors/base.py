"""The connector interface every provider implements, and its classified errors.

The sync engine (``rolodex.sync``) knows only this module and the store. Errors are classified
before anything is retried: ``TransientError`` may be retried (after ``retry_after`` when the
provider says so), everything else may not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from rolodex.domain.contact import ContactFields

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


# --- Data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    """One remote address book (a CardDAV collection, a Graph contact folder...)."""

    id: str
    name: str
    is_default: bool = False


@dataclass(frozen=True)
class RemoteContact:
    """A contact as the provider holds it, mapped to the domain.

    ``raw`` is the provider's own representation (a vCard's text...), kept so that an update
    rewrites only what Rolodex changed and keeps what v2 cannot show.
    """

    remote_id: str
    etag: str
    collection: str
    fields: ContactFields
    group_names: tuple[str, ...] = ()
    picture: bytes | None = None
    picture_type: str | None = None
    raw: bytes | None = None
    # The provider's stable identity of the contact where it differs from remote_id (a
    # vCard's UID); group cards name their members by it.
    uid: str | None = None


@dataclass(frozen=True)
class RemoteGroup:
    """A group that is an item of its own at the provider (an Apple group vCard with
    X-ADDRESSBOOKSERVER-KIND:group or a vCard 4 KIND:group card, a Google contact group...).

    Groups that exist only as names on contacts (vCard CATEGORIES) are not items: they come
    as ``RemoteContact.group_names``.
    """

    remote_id: str
    etag: str
    collection: str
    name: str
    member_uids: tuple[str, ...] = ()
    raw: bytes | None = None


RemoteItem = RemoteContact | RemoteGroup


@dataclass(frozen=True)
class ChangeSet:
    """What changed in one collection since a cursor.

    ``complete`` is True when ``changed`` lists every item of the collection (a full listing:
    first sync, expired token, etag listing); then anything known locally but not listed was
    deleted remotely.
    """

    collection: str
    cursor: str | None
    changed: dict[str, str] = field(default_factory=dict)  # remote_id -> etag
    removed: tuple[str, ...] = ()
    complete: bool = False
    # Items whose current state came with the listing itself (``with_data``); the engine
    # does not fetch these again. Anything in ``changed`` but not here must be fetched.
    fetched: tuple[RemoteItem, ...] = ()


@dataclass(frozen=True)
class LocalContact:
    """What the sync engine asks a connector to write."""

    fields: ContactFields
    group_names: tuple[str, ...] = ()
    picture: bytes | None = None
    picture_type: str | None = None
    # The wire fields the local change touched ("groups" and "picture" included); an update
    # rewrites only these and keeps the rest of the remote item as it was. None: all.
    touched: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WriteResult:
    remote_id: str
    etag: str
    raw: bytes | None = None
    # A create found the item an earlier attempt made (its reply was lost); it may have been
    # edited there since, so what it holds is not necessarily what was sent.
    existed: bool = False


@dataclass(frozen=True)
class Capabilities:
    incremental: bool  # has a real change cursor (sync-collection, syncToken, deltaLink)
    groups: str  # "categories" | "labels" | "folders" | "none"
    pictures: bool = True


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

    def fetch(self, collection: str, remote_ids: Iterable[str]) -> Iterator[RemoteItem]:
        """The current state of these items, streamed (few round trips, memory flat in the
        number of items); items gone meanwhile are skipped. Group items come as
        ``RemoteGroup``."""

    def create(self, collection: str, contact: LocalContact, uid: str) -> WriteResult:
        """Create an item. ``uid`` is Rolodex's stable identity for the contact, so that a
        retried create finds the item it already made instead of making a second one."""

    def update(
        self, remote_id: str, etag: str, contact: LocalContact, raw: bytes | None
    ) -> WriteResult:
        """Write ``contact`` over the item if it still has ``etag``; ``raw`` is the last
        representation read, whose properties Rolodex does not map are kept.
        Raises ``PreconditionFailed``."""

    def delete(self, remote_id: str, etag: str) -> None:
        """Raises ``PreconditionFailed``; deleting an item already gone is not an error."""

    def close(self) -> None: ...
