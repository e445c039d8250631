"""What a provider holds and what is written to it, in the domain's terms.

Shared vocabulary of the connectors (which produce and take these), the sync engine, and
the local side of sync (``rolodex.service.mirror``); no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from rolodex.domain.contact import SOURCE_ADDRESS_BOOK, Contact, ContactFields, Picture
from rolodex.domain.normalize import index_terms


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
    # The provider's ids of the groups ``group_names`` names, in the same order, where
    # groups are items of their own there whose id outlives a rename (a Google contact
    # group's resource name): a contact is in the group of that id, whatever it is called
    # now on either side. None for a group known by its name only (Google's system groups);
    # empty where the provider's groups have no ids (vCard CATEGORIES).
    group_ids: tuple[str | None, ...] = ()
    picture: bytes | None = None
    picture_type: str | None = None
    raw: bytes | None = None
    # The provider's stable identity of the contact where it differs from remote_id (a
    # vCard's UID); group cards name their members by it.
    uid: str | None = None
    # The Rolodex contact id the item carries where the provider keeps client data (a
    # card's UID that Rolodex chose, Google's clientData, a Graph extended property): the
    # item was made by a create of Rolodex's own, perhaps one whose reply was lost.
    rolodex_id: str | None = None
    # Remote ids the provider knew this contact by before (Google's
    # ``metadata.previousResourceNames`` when it re-keys a person): the local contact linked
    # to one of them is this one, re-keyed, not a new contact.
    previous_ids: tuple[str, ...] = ()
    # v2's ``source``: "inbox" for people the provider saved from mail (Google's "Other
    # contacts"), which are read-only; "address_book" for the user's own contacts.
    source: str = SOURCE_ADDRESS_BOOK
    # False: the item came without its picture (Graph's delta pages and contact JSON carry
    # none; a photo is read apart), so whether it has one is not known and the local copy's
    # picture stays as it is until the engine checks it (``Capabilities.picture_backfill``).
    picture_checked: bool = True
    # ``index_terms(fields)`` (rolodex.domain.normalize), when the connector computed them
    # where it parsed the item, off the main process; None: whoever needs them computes them.
    terms: frozenset[tuple[str, str]] | None = None

    def index_terms(self) -> frozenset[tuple[str, str]]:
        if self.terms is not None:
            return self.terms
        return frozenset(index_terms(self.fields))


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


@dataclass(frozen=True)
class RemotePicture:
    """A contact's picture as the provider holds it, read apart from the contact."""

    remote_id: str
    data: bytes | None  # None: it has none
    content_type: str | None = None
    # Why the provider would not give it (a refusal other than "none"): whether it has one
    # is not known, so the picture held stays, and it is checked again later.
    refused: str | None = None


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
    # A snapshot (``Connector.snapshot``): every item of the collection, streamed, read
    # after ``cursor`` was taken; ``changed`` stays empty. Whatever is known locally but
    # not in the stream was deleted remotely.
    stream: Iterator[RemoteItem] | None = None
    # Every group of the provider, (its id, its name), as of these changes, where groups are
    # items of their own that sync with a collection (Google's contact groups, with their
    # own sync token in the collection's cursor): the local groups are made to match them,
    # by id, before the items are applied (``LocalSide.provider_groups``), so that a group
    # renamed there keeps its members here. None: the provider's groups come otherwise.
    groups: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class LocalContact:
    """What the sync engine asks a connector to write."""

    fields: ContactFields
    group_names: tuple[str, ...] = ()
    # The provider's ids of those groups, in the same order (``LocalGroup.remote_id``);
    # None for one not at the provider yet, found or made there by its name. A group
    # renamed on one side and not yet on the other is still the group of its id.
    group_ids: tuple[str | None, ...] = ()
    picture: bytes | None = None
    picture_type: str | None = None
    # The wire fields the local change touched ("groups" and "picture" included); an update
    # rewrites only these and keeps the rest of the remote item as it was. None: all.
    touched: tuple[str, ...] | None = None
    # The provider's representation of the item a create replaces: a contact moved to
    # another collection (Graph has no move: it is made in the new folder, then the old
    # item deleted) keeps what Rolodex does not map (Outlook categories...), as an update
    # would.
    replaces: bytes | None = None


@dataclass(frozen=True)
class LocalGroup:
    """A group the sync engine asks a connector to create, rename or delete at the provider
    (for providers whose groups are items of their own: Google contact groups, Graph
    contact folders)."""

    name: str
    path: str  # where it sits among nested groups ("Contacts/Friends"); the name if flat
    # The provider's id of the group, as the connector answered it when the group was made
    # or read (a Google label's resource name, a Graph folder's id: both outlive a rename);
    # None: not at the provider yet.
    remote_id: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class WriteResult:
    remote_id: str
    etag: str
    raw: bytes | None = None
    # A create found the item an earlier attempt made (its reply was lost); it may have been
    # edited there since, so what it holds is not necessarily what was sent.
    existed: bool = False
    # The provider holds less than was sent: the write left out what it could not hold (a
    # group deleted there meanwhile). The item then comes back in the next pull as any
    # change made there does, rather than as this write returning, so that the contact here
    # becomes what the provider holds (``UNKNOWN_ETAG``).
    partial: bool = False


@dataclass(frozen=True)
class Capabilities:
    incremental: bool  # has a real change cursor (sync-collection, syncToken, deltaLink)
    groups: str  # "categories" | "labels" | "folders" | "none"
    pictures: bool = True
    # The provider names an item on create (a People resource name, a Graph id) rather
    # than taking the name Rolodex gives it (a CardDAV href). A create is then recorded as
    # attempted before it is sent, so that any retry looks for the item first.
    assigns_ids: bool = False
    # The provider may give an item a new id and name the old one in its changes (Google
    # re-keys a person linked with a profile: ``RemoteContact.previous_ids``). Before the
    # engine deletes such an item, it checks the item is still where its link says; what a
    # complete listing, which names no old ids, leaves out is read directly
    # (``Connector.fetch`` answers a re-keyed item under its new id, the old one in
    # ``previous_ids``) before the items it lists that nothing here links to are applied,
    # so that the contact keeps its Rolodex id rather than being made again.
    rekeys: bool = False
    # Pictures that the provider's listings and change feed do not carry (Graph: a photo is
    # a navigation property, absent from delta pages, and a photo changed alone is no
    # change there). After a sync's pull, unless it read a collection whole, up to this
    # many contacts have their picture checked (``PictureReader.pictures``): those never
    # checked first (a first sync reads none), then those checked longest ago, once
    # ``picture_recheck`` seconds have passed. 0: pictures come with the items.
    picture_backfill: int = 0
    picture_recheck: float = 86400.0
    # A complete listing may leave out items that are there (Google: "Writes may have a
    # propagation delay of several minutes for sync requests", people.connections.list;
    # old contacts missing from full lists, google-microsoft.md §2 #5). What one leaves
    # out of what is known here is read directly (``Connector.fetch``) before it is taken
    # for deleted there.
    lagging_lists: bool = False
    # The changes of several collections may be read at once, from threads (the
    # connector's reads and its token refresh are thread-safe): an incremental sync of
    # several collections waits for one round trip where it waited for one per collection.
    concurrent_reads: bool = False


# The local side of sync, as the engine sees it ------------------------------------------

CONTACT_OBJECT = "contact"  # OutboxItem.object_type of contacts
GROUP_OBJECT = "contact_group"


# The etag of a link whose remote version is not known (never read, or not what was
# written: ``WriteResult.partial``): no provider's etag matches it, so a pull reads the
# item again, and a write with it fails its precondition and is merged with what the
# provider holds.
UNKNOWN_ETAG = '"rolodex:unknown"'


@dataclass(frozen=True, slots=True)
class RemoteLink:
    """Which remote item a local contact is the copy of, and its version there."""

    contact_id: str
    collection: str
    remote_id: str
    uid: str | None
    etag: str
    raw: bytes | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A local write waiting to be delivered to the provider."""

    seq: int
    account_id: str
    object_type: str
    object_id: str
    operation: str
    fields: tuple[str, ...]
    attempts: int
    # The id of the API request that made the write: its delivery's logs carry it.
    request_id: str | None = None


@dataclass(frozen=True)
class LocalState:
    """A contact as the push side needs it."""

    contact: Contact
    group_names: tuple[str, ...]
    picture: Picture | None
    link: RemoteLink | None
    group_ids: tuple[str | None, ...] = ()  # as ``LocalContact.group_ids``
    # Rolodex's ids of those groups that are not at the provider yet (no link).
    unlinked_groups: tuple[str, ...] = ()
