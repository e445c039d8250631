"""The one schema, for SQLite and PostgreSQL.

Every table carries ``account_id`` and every index starts with it, so the data can be sharded
by account without redesign. A contact is one row holding its rendered wire document; the
filters read small index tables (``contact_terms``, ``contact_groups``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email_address", String(320), nullable=False),
    Column("name", String(1000), nullable=False, server_default=""),
    Column("provider", String(32), nullable=False),
    # True when the account has no remote address book: contacts live only in Rolodex
    # but the provider's rules still apply.
    Column("sandbox", Boolean, nullable=False),
    # Provider connection settings (credentials included), encrypted at rest.
    Column("connection", LargeBinary, nullable=True),
    Column("sync_state", String(32), nullable=False, server_default="running"),
    Column("last_synced_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("linked_at", Float, nullable=False),
    # Maintained in the write transaction so `view=count` never scans.
    Column("contact_count", BigInteger, nullable=False, server_default="0"),
    # The account's sequence: every change takes the next numbers from it (contact creation
    # order, change-log and outbox positions). Taking them locks the account row, which
    # orders concurrent writers of one account; readers compare it to know whether what
    # they cached about the account's lists still holds.
    Column("generation", BigInteger, nullable=False, server_default="0"),
    # Sync scheduling: when the account is next due, and which worker holds it until when.
    # A crashed worker's lease runs out, so no account is forgotten or synced twice at once.
    Column("next_sync_at", Float, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    # A sync asked for (POST /account/sync) that has not started yet: the id of the request
    # that asked ("" without one), carried into that sync's logs; set while a sync runs, it
    # makes another follow.
    Column("sync_request_id", String(64), nullable=True),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
    Index("ix_access_tokens_account", "account_id"),
)

contact_groups = Table(
    "groups",
    metadata,
    Column("account_id", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("path", String(4000), nullable=False),
    Column("parent_id", String(64), nullable=True),
    # The provider's own identity of the group (CardDAV group card UID, Google resourceName...).
    Column("remote_id", String(1000), nullable=True),
    Column("remote_etag", String(1000), nullable=True),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("account_id", "id"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
    UniqueConstraint("account_id", "path"),
    Index("ix_groups_account_remote_id", "account_id", "remote_id"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("account_id", String(64), nullable=False),
    # Creation order within the account (from accounts.generation): lists are ordered by it,
    # so offset paging never skips or repeats.
    Column("pk", BigInteger, nullable=False),
    Column("id", String(64), nullable=False),
    Column("source", String(32), nullable=False, server_default="address_book"),
    # The rendered v2 JSON document, served as stored.
    Column("doc", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("account_id", "pk"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
    UniqueConstraint("account_id", "id"),
)

contact_terms = Table(
    "contact_terms",
    metadata,
    Column("account_id", String(64), nullable=False),
    # email | phone | street_address | postal_code | state | country
    Column("kind", String(16), nullable=False),
    Column("term", String(1000), nullable=False),
    Column("contact_pk", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "kind", "term", "contact_pk"),
    Index("ix_contact_terms_account_contact", "account_id", "contact_pk"),
    sqlite_with_rowid=False,
)

memberships = Table(
    "contact_group_members",
    metadata,
    Column("account_id", String(64), nullable=False),
    Column("group_id", String(64), nullable=False),
    Column("contact_pk", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "group_id", "contact_pk"),
    Index("ix_contact_group_members_account_contact", "account_id", "contact_pk"),
    sqlite_with_rowid=False,
)

pictures = Table(
    "pictures",
    metadata,
    Column("account_id", String(64), nullable=False),
    Column("contact_id", String(64), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("etag", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("account_id", "contact_id"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
)

changes = Table(
    "changes",
    metadata,
    Column("account_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("account_id", "seq"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("account_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    # create | update | delete | picture
    Column("operation", String(16), nullable=False),
    # JSON list of the wire fields the local change touched (for re-applying after a 412).
    Column("fields", Text, nullable=False, server_default="[]"),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    # The id of the API request that made the write, carried into the logs of its delivery.
    Column("request_id", String(64), nullable=True),
    PrimaryKeyConstraint("account_id", "seq"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
    Index("ix_outbox_account_next_attempt", "account_id", "next_attempt_at"),
)

# Where each synced contact lives at the provider, and the representation last read or
# written there (kept whole so that updates rewrite only what Rolodex changed).
contact_remotes = Table(
    "contact_remotes",
    metadata,
    Column("account_id", String(64), nullable=False),
    Column("contact_id", String(64), nullable=False),
    Column("collection", String(2000), nullable=False),
    Column("remote_id", String(2000), nullable=False),
    Column("uid", String(1000), nullable=True),
    Column("etag", String(1000), nullable=False),
    Column("raw", LargeBinary, nullable=True),
    # When the contact's picture was last read from the provider, where its listings carry
    # none (``Capabilities.picture_backfill``, rolodex.service.picturechecks); null: never.
    # Written by the picture checks only, so that a sync round resumes where one stopped.
    Column("picture_checked_at", Float, nullable=True),
    PrimaryKeyConstraint("account_id", "contact_id"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
    UniqueConstraint("account_id", "remote_id"),
    Index("ix_contact_remotes_account_uid", "account_id", "uid"),
    Index("ix_contact_remotes_account_picture_checked", "account_id", "picture_checked_at"),
)

# The provider's change cursor per collection (CardDAV sync-token, People syncToken,
# Graph deltaLink).
sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("account_id", String(64), nullable=False),
    Column("collection", String(2000), nullable=False),
    Column("cursor", Text, nullable=True),
    PrimaryKeyConstraint("account_id", "collection"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
)

# Where pages of offset paging continue, decided once per account generation and shared by
# every API process (rolodex.store.paging): "at generation G, offset N of this list
# continues after key P" (P null: plain OFFSET), until ``expires_at`` if set. Rows are
# never changed, only added and, once stale, removed.
page_ends = Table(
    "page_ends",
    metadata,
    Column("account_id", String(64), nullable=False),
    # Which list: a digest of its filter.
    Column("scope", String(32), nullable=False),
    Column("end_offset", BigInteger, nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("after_pk", BigInteger, nullable=True),
    Column("expires_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("account_id", "scope", "end_offset", "generation"),
    ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
)

# One-time codes of native authentication (POST /connect/authorize), before an account
# exists: the connection settings they carry are sealed like stored credentials.
auth_codes = Table(
    "auth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Hosted sign-in (rolodex.service.signin): the redirect URIs registered for the
# application, and the sign-ins in progress (each bound to its browser by a cookie; what
# they carry, PKCE verifier included, sealed like stored credentials).
redirect_uris = Table(
    "redirect_uris",
    metadata,
    Column("client_id", String(200), nullable=False),
    Column("uri", String(2000), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("client_id", "uri"),
)

sign_ins = Table(
    "sign_ins",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("client_id", String(200), nullable=False),
    Column("browser_hash", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

# Rate-limit counts that every API process adds its own to (rolodex.api.sharedcounts, on
# PostgreSQL), so that N processes on any number of hosts are held to one limit: how many
# requests a limit's key (a hash of an account's token and endpoint...; a client address
# as it is) had in the window ending at ``window_end``, summed over the processes. The
# processes alive are rows too (key ``process:<id>``, until ``window_end``). Rows of
# windows past are removed.
rate_limit_counts = Table(
    "rate_limit_counts",
    metadata,
    Column("window_end", BigInteger, nullable=False),
    Column("key", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("window_end", "key"),
)
