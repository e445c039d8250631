"""The connector contract: what the sync engine relies on from every connector, as one
test class that each connector's tests run with a harness of their own.

A harness gives a connector, a collection to work in, and "another client" of the same
provider (a person editing in the provider's own app), which never goes through the
connector. ``ConnectorContract`` runs against CardDAV on Radicale and Xandikos, the
in-memory connector the convergence state machine trusts (so the fake behaves like the real
ones), and the Google and Microsoft connectors against their emulators.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

from rolodex.connectors.base import (
    Connector,
    CursorExpired,
    LocalContact,
    LocalGroup,
    PreconditionFailed,
    RemoteContact,
    RemoteItem,
    RemoteNotFound,
)
from rolodex.domain.contact import ContactFields, Email
from rolodex.domain.ids import new_id

ADA = LocalContact(
    fields=ContactFields(
        given_name="Ada",
        surname="Lovelace",
        job_title="Analyst",
        emails=(Email(type="work", email="ada@example.org"),),
    )
)


class Harness(Protocol):
    connector: Connector
    collection: str

    def other_create(self, given_name: str) -> str:
        """Another client makes a contact; returns its remote id."""

    def other_update(self, remote_id: str, given_name: str) -> None: ...

    def other_delete(self, remote_id: str) -> None: ...

    def expired(self, cursor: str) -> str:
        """A cursor the provider no longer knows: ``cursor`` after making the provider
        forget it, or one of the provider's own shape that it never handed out."""


def _listings_carry_ids(harness: Harness) -> bool:
    """Whether listed items carry the Rolodex id, or only items read one by one do: Graph's
    delta cannot expand the extended property that holds it (an Outlook delta with
    ``$expand`` fails, microsoft-graph-docs#1993), so a harness may say
    ``listings_carry_rolodex_id = False``; the id is then checked on fetched items."""
    return bool(getattr(harness, "listings_carry_rolodex_id", True))


def _contacts(items: Iterator[RemoteItem]) -> dict[str, RemoteContact]:
    return {i.remote_id: i for i in items if isinstance(i, RemoteContact)}


def _snapshot(harness: Harness) -> tuple[str | None, dict[str, RemoteContact]]:
    changes = harness.connector.snapshot(harness.collection)
    if changes.stream is not None:
        items = _contacts(changes.stream)
        # Read once the stream is exhausted: Google hands out its sync token with the last
        # page of the listing (Connector.snapshot).
        return changes.cursor, items
    fetched = _contacts(harness.connector.fetch(harness.collection, list(changes.changed)))
    return changes.cursor, fetched


def _changes(harness: Harness, cursor: str | None) -> tuple[dict[str, RemoteContact], set[str]]:
    """What changed since ``cursor``, with the items' content, and what was removed."""
    changes = harness.connector.changes(harness.collection, cursor, with_data=True)
    fetched = {i.remote_id: i for i in changes.fetched if isinstance(i, RemoteContact)}
    missing = [rid for rid in changes.changed if rid not in fetched]
    fetched.update(_contacts(harness.connector.fetch(harness.collection, missing)))
    return fetched, set(changes.removed)


class ConnectorContract:
    """Subclasses provide a ``harness`` fixture."""

    def test_collections_have_one_default(self, harness: Harness) -> None:
        collections = harness.connector.collections()
        assert harness.collection in {c.id for c in collections}
        assert sum(c.is_default for c in collections) == 1

    def test_a_create_reads_back_with_its_rolodex_id(self, harness: Harness) -> None:
        contact_id = new_id()
        written = harness.connector.create(harness.collection, ADA, contact_id)
        assert not written.existed
        _cursor, items = _snapshot(harness)
        item = items[written.remote_id]
        assert item.etag == written.etag
        if _listings_carry_ids(harness):
            assert item.rolodex_id == contact_id
        assert (item.fields.given_name, item.fields.surname) == ("Ada", "Lovelace")
        assert [e.email for e in item.fields.emails] == ["ada@example.org"]
        fetched = _contacts(harness.connector.fetch(harness.collection, [written.remote_id]))
        assert fetched[written.remote_id].fields.job_title == "Analyst"
        if not _listings_carry_ids(harness):
            assert fetched[written.remote_id].rolodex_id == contact_id

    def test_a_retried_create_finds_the_first_and_makes_no_second(self, harness: Harness) -> None:
        contact_id = new_id()
        first = harness.connector.create(harness.collection, ADA, contact_id)
        again = harness.connector.create(harness.collection, ADA, contact_id, maybe_exists=True)
        assert again.existed and again.remote_id == first.remote_id
        _cursor, items = _snapshot(harness)
        if not _listings_carry_ids(harness):
            items = _contacts(harness.connector.fetch(harness.collection, list(items)))
        assert [i.remote_id for i in items.values() if i.rolodex_id == contact_id] == [
            first.remote_id
        ]

    def test_changes_after_a_cursor_name_what_another_client_did(self, harness: Harness) -> None:
        kept = harness.other_create("Kept")
        edited = harness.other_create("Edited")
        gone = harness.other_create("Gone")
        cursor, items = _snapshot(harness)
        assert {kept, edited, gone} <= set(items)
        assert cursor is not None
        added = harness.other_create("Added")
        harness.other_update(edited, "Changed")
        harness.other_delete(gone)
        changed, removed = _changes(harness, cursor)
        assert {added, edited} <= set(changed)
        assert changed[edited].fields.given_name == "Changed"
        assert changed[added].fields.given_name == "Added"
        assert gone in removed and gone not in changed
        assert kept not in changed and kept not in removed

    def test_an_update_with_a_stale_etag_is_refused(self, harness: Harness) -> None:
        written = harness.connector.create(harness.collection, ADA, new_id())
        harness.other_update(written.remote_id, "Elsewhere")
        touched = LocalContact(fields=ContactFields(given_name="Mine"), touched=("given_name",))
        with pytest.raises(PreconditionFailed):
            harness.connector.update(written.remote_id, written.etag, touched, written.raw)
        current = _contacts(harness.connector.fetch(harness.collection, [written.remote_id]))
        fresh = current[written.remote_id]
        assert fresh.fields.given_name == "Elsewhere"
        result = harness.connector.update(fresh.remote_id, fresh.etag, touched, fresh.raw)
        after = _contacts(harness.connector.fetch(harness.collection, [written.remote_id]))
        assert after[written.remote_id].etag == result.etag
        assert after[written.remote_id].fields.given_name == "Mine"
        # Only what the change touched was rewritten.
        assert after[written.remote_id].fields.surname == fresh.fields.surname
        assert after[written.remote_id].fields.job_title == fresh.fields.job_title

    def test_delete_checks_the_etag_and_tolerates_a_missing_item(self, harness: Harness) -> None:
        written = harness.connector.create(harness.collection, ADA, new_id())
        harness.connector.delete(written.remote_id, written.etag)
        assert written.remote_id not in _snapshot(harness)[1]
        harness.connector.delete(written.remote_id, written.etag)  # gone already: fine

    def test_an_expired_cursor_is_cursor_expired(self, harness: Harness) -> None:
        harness.other_create("Someone")
        cursor, _items = _snapshot(harness)
        assert cursor is not None
        with pytest.raises(CursorExpired):
            harness.connector.changes(harness.collection, harness.expired(cursor))


class GroupHarness(Harness, Protocol):
    # Where a new group's path puts it: "" for flat groups (Google), "Contacts/" for
    # folders made inside the default one (Graph).
    group_prefix: str

    def other_group_names(self) -> set[str]:
        """The names of the user's groups, as another client sees them."""


class GroupWriteContract:
    """What the engine relies on from a connector whose groups can be written
    (``Profile.groups_writable``): a group is made once, however often it is asked for."""

    @staticmethod
    def _group(harness: GroupHarness, name: str, remote_id: str | None = None) -> LocalGroup:
        return LocalGroup(name, harness.group_prefix + name, remote_id)

    def test_a_group_made_twice_is_made_once(self, harness: GroupHarness) -> None:
        first = harness.connector.create_group(self._group(harness, "Team"))
        assert "Team" in harness.other_group_names() and not first.existed
        # A retry after a lost reply: the group the first attempt made answers.
        again = harness.connector.create_group(self._group(harness, "Team"))
        assert again.remote_id == first.remote_id and again.existed
        assert sorted(harness.other_group_names()) == ["Team"]

    def test_a_group_is_found_by_its_path_and_nothing_is_made(self, harness: GroupHarness) -> None:
        """What a retry whose earlier attempt's reply was lost looks for (sync/groups.py)."""
        assert harness.connector.find_group(harness.group_prefix + "Team") is None
        assert harness.other_group_names() == set()
        made = harness.connector.create_group(self._group(harness, "Team"))
        found = harness.connector.find_group(harness.group_prefix + "Team")
        assert found is not None and found.remote_id == made.remote_id and found.existed
        assert harness.connector.find_group(harness.group_prefix + "Crew") is None
        assert harness.other_group_names() == {"Team"}

    def test_a_group_is_renamed_then_deleted(self, harness: GroupHarness) -> None:
        made = harness.connector.create_group(self._group(harness, "Team"))
        renamed = harness.connector.rename_group(
            LocalGroup("Crew", harness.group_prefix + "Crew", made.remote_id, made.etag)
        )
        assert harness.other_group_names() == {"Crew"}
        gone = self._group(harness, "Crew", renamed.remote_id)
        harness.connector.delete_group(gone)
        assert harness.other_group_names() == set()
        harness.connector.delete_group(gone)  # gone already: fine
        with pytest.raises(RemoteNotFound):
            harness.connector.rename_group(self._group(harness, "Again", renamed.remote_id))
