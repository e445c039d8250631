"""The store contract: one test class, run against every backend (SQLite and PostgreSQL).

The service layer relies on these behaviours whichever database is underneath; a backend
that differs (ordering, cascades, unique constraints, NUL handling) breaks the API there
and nowhere else, so each one is pinned here rather than only through HTTP on SQLite.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from rolodex.domain.account import Account
from rolodex.domain.contact import Group, Picture
from rolodex.domain.errors import (
    DuplicateGroupName,
    NoSuchAccount,
    NoSuchContact,
    NoSuchGroup,
    NoSuchPicture,
)
from rolodex.domain.ids import hash_token, new_id
from rolodex.domain.query import ContactFilter
from rolodex.store import Store
from rolodex.store.contacts import NewContact
from rolodex.store.schema import metadata

NOW = 1_700_000_000.0


def make_account(store: Store, provider: str = "local") -> str:
    account = Account(
        id=new_id(),
        email_address=f"{uuid.uuid4().hex[:8]}@example.com",
        name="Contract",
        provider=provider,
        sandbox=False,
        linked_at=time.time(),
    )
    with store.write() as tx:
        tx.accounts.insert(account, b"sealed")
    return account.id


def add_contact(
    store: Store,
    account_id: str,
    *,
    terms: frozenset[tuple[str, str]] = frozenset(),
    group_ids: tuple[str, ...] = (),
    source: str = "address_book",
) -> NewContact:
    """Insert one contact the way the service does: its pk taken from the sequence."""
    with store.write() as tx:
        pk = tx.accounts.allocate(account_id)
        cid = new_id()
        new = NewContact(
            pk=pk,
            id=cid,
            doc=b'{"id":"' + cid.encode() + b'"}',
            terms=terms,
            group_ids=group_ids,
            source=source,
        )
        tx.contacts.insert(account_id, new, NOW)
        tx.accounts.add_contacts(account_id, 1)
    return new


def add_group(store: Store, account_id: str, path: str) -> Group:
    group = Group(new_id(), account_id, path.rsplit("/", 1)[-1], path)
    with store.write() as tx:
        tx.groups.insert(group, NOW)
    return group


def ids_of(store: Store, account_id: str, where: ContactFilter, **kw: int) -> list[str]:
    with store.read() as tx:
        return [r.id for r in tx.contacts.page(account_id, where, kw.pop("limit", 1000), **kw)]


class TestStoreContract:
    # Accounts and tokens ---------------------------------------------------------------

    def test_account_roundtrip_and_unknown(self, store: Store) -> None:
        account_id = make_account(store)
        with store.read() as tx:
            account = tx.accounts.get(account_id)
            assert account.id == account_id
            assert account.contact_count == 0
            assert tx.accounts.connection(account_id) == b"sealed"
            with pytest.raises(NoSuchAccount):
                tx.accounts.get(new_id())

    def test_tokens_are_looked_up_by_hash_and_revocable(self, store: Store) -> None:
        account_id = make_account(store)
        digest = hash_token(uuid.uuid4().hex)
        with store.write() as tx:
            tx.accounts.add_token(digest, account_id, NOW)
            tx.accounts.add_token(hash_token("other"), account_id, NOW)
        with store.read() as tx:
            assert tx.accounts.account_id_for_token(digest) == account_id
            assert tx.accounts.account_id_for_token(hash_token("never issued")) is None
        with store.write() as tx:
            assert tx.accounts.delete_token(digest) is True
            assert tx.accounts.delete_token(digest) is False
            assert tx.accounts.delete_tokens(account_id) == 1
        with store.read() as tx:
            assert tx.accounts.account_id_for_token(digest) is None

    def test_allocate_hands_out_consecutive_numbers_and_bumps_generation(
        self, store: Store
    ) -> None:
        account_id = make_account(store)
        with store.write() as tx:
            assert tx.accounts.generation(account_id) == 0
            assert tx.accounts.allocate(account_id) == 1
            assert tx.accounts.allocate(account_id, 5) == 2
            assert tx.accounts.allocate(account_id) == 7
            assert tx.accounts.generation(account_id) == 7
            with pytest.raises(NoSuchAccount):
                tx.accounts.allocate(new_id())
            with pytest.raises(NoSuchAccount):
                tx.accounts.generation(new_id())

    def test_failed_write_transaction_rolls_back(self, store: Store) -> None:
        account_id = make_account(store)
        with pytest.raises(RuntimeError), store.write() as tx:
            tx.accounts.allocate(account_id)
            tx.accounts.add_contacts(account_id, 1)
            raise RuntimeError("abort")
        with store.read() as tx:
            assert tx.accounts.generation(account_id) == 0
            assert tx.accounts.get(account_id).contact_count == 0

    # Contacts --------------------------------------------------------------------------

    def test_insert_get_and_unknown_ids(self, store: Store) -> None:
        account_id = make_account(store)
        other = make_account(store)
        new = add_contact(store, account_id)
        with store.read() as tx:
            row = tx.contacts.get(account_id, new.id)
            assert (row.pk, row.id, row.doc) == (new.pk, new.id, new.doc)
            with pytest.raises(NoSuchContact):
                tx.contacts.get(other, new.id)  # another account's id
            with pytest.raises(NoSuchContact):
                tx.contacts.get(account_id, new_id())
            # PostgreSQL text cannot hold NUL: such an id simply does not exist.
            with pytest.raises(NoSuchContact):
                tx.contacts.get(account_id, "a\x00b")

    def test_page_is_creation_order_with_offset_and_after_pk(self, store: Store) -> None:
        account_id = make_account(store)
        made = [add_contact(store, account_id).id for _ in range(7)]
        everything = ContactFilter()
        assert ids_of(store, account_id, everything) == made
        assert ids_of(store, account_id, everything, limit=3) == made[:3]
        assert ids_of(store, account_id, everything, limit=3, offset=3) == made[3:6]
        assert ids_of(store, account_id, everything, limit=3, offset=6) == made[6:]
        assert ids_of(store, account_id, everything, limit=3, offset=99) == []
        with store.read() as tx:
            rows = tx.contacts.page(account_id, everything, 3)
            after = tx.contacts.page(account_id, everything, 3, after_pk=rows[-1].pk)
            assert [r.id for r in after] == made[3:6]
            # after_pk replaces the offset: it is a seek, not an addition.
            after = tx.contacts.page(account_id, everything, 3, offset=3, after_pk=rows[-1].pk)
            assert [r.id for r in after] == made[3:6]
            keys = tx.contacts.page(account_id, everything, 2, 1, documents=False)
            assert [(r.pk, r.id, r.doc) for r in keys] == [(r.pk, r.id, b"") for r in rows[1:3]]
            assert tx.contacts.count(account_id, everything) == 7

    def test_filters_terms_source_and_their_combination(self, store: Store) -> None:
        account_id = make_account(store)
        other = make_account(store)
        a = add_contact(store, account_id, terms=frozenset({("email", "a@x.com"), ("state", "ca")}))
        b = add_contact(store, account_id, terms=frozenset({("email", "b@x.com"), ("state", "ca")}))
        c = add_contact(store, account_id, terms=frozenset({("state", "ca")}), source="inbox")
        add_contact(store, other, terms=frozenset({("email", "a@x.com")}))

        def where(**kw: object) -> list[str]:
            return ids_of(store, account_id, ContactFilter(**kw))  # type: ignore[arg-type]

        assert where(terms=(("email", "a@x.com"),)) == [a.id]
        assert where(terms=(("state", "ca"),)) == [a.id, b.id, c.id]
        assert where(terms=(("state", "ca"), ("email", "b@x.com"))) == [b.id]
        assert where(terms=(("state", "ny"),)) == []
        assert where(source="inbox") == [c.id]
        assert where(source="address_book", terms=(("state", "ca"),)) == [a.id, b.id]
        with store.read() as tx:
            assert tx.contacts.count(account_id, ContactFilter(terms=(("state", "ca"),))) == 3
            assert tx.contacts.count(account_id, ContactFilter(source="inbox")) == 1

    def test_group_filter_and_recurse_into_subgroups_only(self, store: Store) -> None:
        account_id = make_account(store)
        top = add_group(store, account_id, "Contacts")
        work = add_group(store, account_id, "Contacts/Work")
        team = add_group(store, account_id, "Contacts/Work/Team")
        lookalike = add_group(store, account_id, "Contactsx")
        # LIKE wildcards in a path must match themselves only.
        under = add_group(store, account_id, "a_b")
        not_under = add_group(store, account_id, "axb/c")
        in_top = add_contact(store, account_id, group_ids=(top.id,))
        in_work = add_contact(store, account_id, group_ids=(work.id,))
        in_team = add_contact(store, account_id, group_ids=(team.id, work.id))
        add_contact(store, account_id, group_ids=(lookalike.id,))
        add_contact(store, account_id, group_ids=(not_under.id,))

        def where(group: Group, recurse: bool) -> list[str]:
            return ids_of(store, account_id, ContactFilter(group_id=group.id, recurse=recurse))

        assert where(top, False) == [in_top.id]
        assert where(top, True) == [in_top.id, in_work.id, in_team.id]
        assert where(work, False) == [in_work.id, in_team.id]
        assert where(work, True) == [in_work.id, in_team.id]
        assert where(under, True) == []
        assert ids_of(store, account_id, ContactFilter(group_id=new_id(), recurse=True)) == []
        with store.read() as tx:
            assert tx.contacts.count(account_id, ContactFilter(group_id=top.id, recurse=True)) == 3
            assert sorted(tx.contacts.group_ids_of(account_id, in_team.pk)) == sorted(
                [team.id, work.id]
            )
            assert [r.id for r in tx.contacts.rows_in_group(account_id, work.id)] == [
                in_work.id,
                in_team.id,
            ]

    def test_groups_by_id_all_or_only_those_asked_for(self, store: Store) -> None:
        account_id = make_account(store)
        a, b = add_group(store, account_id, "A"), add_group(store, account_id, "B")
        add_group(store, make_account(store), "elsewhere")
        with store.read() as tx:
            assert tx.groups.by_id(account_id) == {a.id: a, b.id: b}
            assert tx.groups.by_id(account_id, [b.id, b.id, new_id(), "x" * 500]) == {b.id: b}
            assert tx.groups.by_id(account_id, ()) == {}

    def test_group_pages_in_creation_order_with_other_filters(self, store: Store) -> None:
        # One group's pages are read from the membership key: the same order, offset and
        # seek as every other page, and other filters still apply.
        account_id = make_account(store)
        group = add_group(store, account_id, "Friends")
        state = frozenset({("state", "ca")})
        members = [
            add_contact(
                store,
                account_id,
                group_ids=(group.id,),
                terms=state if i % 2 else frozenset(),
                source="inbox" if i % 3 == 0 else "address_book",
            )
            for i in range(7)
        ]
        add_contact(store, account_id, terms=state)  # not a member
        ids = [m.id for m in members]
        only = ContactFilter(group_id=group.id)
        assert ids_of(store, account_id, only) == ids
        assert ids_of(store, account_id, only, limit=3, offset=2) == ids[2:5]
        assert ids_of(store, account_id, only, limit=3, after_pk=members[4].pk) == ids[5:]
        in_ca = ContactFilter(group_id=group.id, terms=(("state", "ca"),))
        assert ids_of(store, account_id, in_ca) == ids[1::2]
        inbox = ContactFilter(group_id=group.id, source="inbox")
        assert ids_of(store, account_id, inbox) == ids[::3]
        with store.read() as tx:
            assert tx.contacts.count(account_id, only) == 7
            assert tx.contacts.count(account_id, in_ca) == 3

    def test_update_reindexes_terms_and_memberships(self, store: Store) -> None:
        account_id = make_account(store)
        group = add_group(store, account_id, "Friends")
        new = add_contact(store, account_id, terms=frozenset({("email", "old@x.com")}))
        with store.write() as tx:
            tx.contacts.update(
                account_id,
                new.pk,
                b'{"v":2}',
                frozenset({("email", "new@x.com")}),
                (group.id,),
                NOW + 1,
            )
        old = ContactFilter(terms=(("email", "old@x.com"),))
        assert ids_of(store, account_id, old) == []
        assert ids_of(store, account_id, ContactFilter(terms=(("email", "new@x.com"),))) == [new.id]
        assert ids_of(store, account_id, ContactFilter(group_id=group.id)) == [new.id]
        with store.write() as tx:
            tx.contacts.set_document(account_id, new.pk, b'{"v":3}', NOW + 2)
        with store.read() as tx:
            assert tx.contacts.get(account_id, new.id).doc == b'{"v":3}'
        # set_document leaves the index alone.
        assert ids_of(store, account_id, ContactFilter(group_id=group.id)) == [new.id]

    def test_delete_removes_the_row_and_its_index(self, store: Store) -> None:
        account_id = make_account(store)
        group = add_group(store, account_id, "G")
        gone = add_contact(
            store, account_id, terms=frozenset({("phone", "1")}), group_ids=(group.id,)
        )
        kept = add_contact(store, account_id, terms=frozenset({("phone", "1")}))
        with store.write() as tx:
            assert tx.contacts.delete(account_id, gone.id) == gone.pk
            with pytest.raises(NoSuchContact):
                tx.contacts.delete(account_id, gone.id)
        assert ids_of(store, account_id, ContactFilter(terms=(("phone", "1"),))) == [kept.id]
        assert ids_of(store, account_id, ContactFilter(group_id=group.id)) == []
        with store.read() as tx:
            assert tx.contacts.rows_in_group(account_id, group.id) == []
            assert tx.contacts.group_ids_of(account_id, gone.pk) == []

    # Groups ----------------------------------------------------------------------------

    def test_groups_insert_list_rename_delete_and_duplicates(self, store: Store) -> None:
        account_id = make_account(store)
        other = make_account(store)
        b = add_group(store, account_id, "Beta")
        a = add_group(store, account_id, "Alpha")
        add_group(store, other, "Alpha")  # the same name in another account is fine
        with store.read() as tx:
            assert [g.name for g in tx.groups.list(account_id)] == ["Alpha", "Beta"]
            assert tx.groups.get(account_id, a.id) == a
            assert set(tx.groups.by_id(account_id)) == {a.id, b.id}
            with pytest.raises(NoSuchGroup):
                tx.groups.get(other, a.id)
            with pytest.raises(NoSuchGroup):
                tx.groups.get(account_id, "a\x00b")
        with pytest.raises(DuplicateGroupName), store.write() as tx:
            tx.groups.insert(Group(new_id(), account_id, "Alpha", "Alpha"), NOW)
        with store.write() as tx:
            # The duplicate is refused without spoiling the transaction around it.
            with pytest.raises(DuplicateGroupName):
                tx.groups.insert(Group(new_id(), account_id, "Alpha", "Alpha"), NOW)
            tx.groups.rename(Group(a.id, account_id, "Gamma", "Gamma"))
        with pytest.raises(DuplicateGroupName), store.write() as tx:
            tx.groups.rename(Group(a.id, account_id, "Beta", "Beta"))
        with pytest.raises(NoSuchGroup), store.write() as tx:
            tx.groups.rename(Group(new_id(), account_id, "X", "X"))
        member = add_contact(store, account_id, group_ids=(b.id,))
        with store.write() as tx:
            tx.groups.delete(account_id, b.id)
            with pytest.raises(NoSuchGroup):
                tx.groups.delete(account_id, b.id)
        with store.read() as tx:
            assert [g.name for g in tx.groups.list(account_id)] == ["Gamma"]
            assert tx.contacts.get(account_id, member.id).id == member.id  # contact stays
            assert tx.contacts.group_ids_of(account_id, member.pk) == []

    # Pictures --------------------------------------------------------------------------

    def test_pictures_put_get_replace_delete(self, store: Store) -> None:
        account_id = make_account(store)
        other = make_account(store)
        new = add_contact(store, account_id)
        with store.write() as tx:
            tx.pictures.put(account_id, new.id, Picture("image/png", "e1", b"\x89PNG one"))
            tx.pictures.put(account_id, new.id, Picture("image/jpeg", "e2", b"\xff\xd8two\x00"))
        with store.read() as tx:
            assert tx.pictures.get(account_id, new.id) == Picture(
                "image/jpeg", "e2", b"\xff\xd8two\x00"
            )
            with pytest.raises(NoSuchPicture):
                tx.pictures.get(other, new.id)
        with store.write() as tx:
            assert tx.pictures.delete(account_id, new.id) is True
            assert tx.pictures.delete(account_id, new.id) is False
        with store.read() as tx, pytest.raises(NoSuchPicture):
            tx.pictures.get(account_id, new.id)

    # Change log and outbox -------------------------------------------------------------

    def test_change_log_is_per_account_and_ordered(self, store: Store) -> None:
        account_id = make_account(store)
        other = make_account(store)
        with store.write() as tx:
            for event in ("create", "modify", "delete"):
                seq = tx.accounts.allocate(account_id)
                tx.changes.append(account_id, seq, "contact", "c1", event, NOW)
            tx.changes.append(other, 1, "contact", "c9", "create", NOW)
        with store.read() as tx:
            changes = tx.changes.since(account_id, 0, 100)
            assert [(c.seq, c.event) for c in changes] == [
                (1, "create"),
                (2, "modify"),
                (3, "delete"),
            ]
            assert [c.seq for c in tx.changes.since(account_id, 1, 1)] == [2]
            assert tx.changes.since(account_id, 3, 100) == []

    def test_outbox_enqueue_pending_retry_later_done(self, store: Store) -> None:
        account_id = make_account(store)
        other = make_account(store)
        with store.write() as tx:
            tx.outbox.enqueue(account_id, 1, "contact", "c1", "create", ("given_name",), NOW)
            tx.outbox.enqueue(account_id, 2, "contact", "c2", "update", (), NOW)
            tx.outbox.enqueue(other, 1, "contact", "c9", "delete", (), NOW)
        with store.read() as tx:
            pending = tx.outbox.pending(account_id, NOW)
            assert [(p.seq, p.object_id, p.operation, p.fields, p.attempts) for p in pending] == [
                (1, "c1", "create", ("given_name",), 0),
                (2, "c2", "update", (), 0),
            ]
            assert tx.outbox.pending(account_id, NOW - 1) == []  # not due yet
            assert tx.outbox.count(account_id) == 2
        with store.write() as tx:
            tx.outbox.retry_later(account_id, 1, NOW + 60, "503 from provider")
            tx.outbox.done(account_id, 2)
        with store.read() as tx:
            assert tx.outbox.pending(account_id, NOW) == []
            (retried,) = tx.outbox.pending(account_id, NOW + 60)
            assert (retried.seq, retried.attempts) == (1, 1)
            assert tx.outbox.count(account_id) == 1
            assert tx.outbox.count(other) == 1

    # Account deletion ------------------------------------------------------------------

    def test_account_delete_cascades_to_every_table(self, store: Store) -> None:
        account_id = make_account(store)
        survivor = make_account(store)
        for owner in (account_id, survivor):
            group = add_group(store, owner, "G")
            new = add_contact(
                store, owner, terms=frozenset({("email", "x@y.z")}), group_ids=(group.id,)
            )
            with store.write() as tx:
                tx.accounts.add_token(hash_token(uuid.uuid4().hex), owner, NOW)
                tx.pictures.put(owner, new.id, Picture("image/png", "e", b"png"))
                tx.changes.append(owner, 99, "contact", new.id, "create", NOW)
                tx.outbox.enqueue(owner, 99, "contact", new.id, "create", (), NOW)
        with store.write() as tx:
            tx.accounts.delete(account_id)
            with pytest.raises(NoSuchAccount):
                tx.accounts.delete(account_id)
        tables = [t for t in metadata.sorted_tables if "account_id" in t.c]
        with store.read() as tx:
            for table in tables:
                left = tx.conn.execute(
                    select(func.count()).where(table.c.account_id == account_id)
                ).scalar_one()
                assert left == 0, f"{table.name} keeps rows of a deleted account"
            for name in ("contacts", "contact_terms", "contact_group_members", "pictures"):
                table = metadata.tables[name]
                kept = tx.conn.execute(
                    select(func.count()).where(table.c.account_id == survivor)
                ).scalar_one()
                assert kept == 1, f"{name} lost rows of another account"


def test_a_code_taken_by_two_transactions_at_once_works_once(store: Store) -> None:
    # Read, then deleted: on PostgreSQL a second transaction read the code before the
    # first's delete committed, and one code made two access tokens.
    code = hash_token(uuid.uuid4().hex)
    with store.write() as tx:
        tx.auth_codes.put(code, "client", b"payload", NOW + 600)
    first_took = threading.Event()
    taken: list[bytes | None] = []

    def second() -> None:
        first_took.wait(5)
        with store.write() as tx:
            taken.append(tx.auth_codes.take(code, "client", NOW))

    other = threading.Thread(target=second)
    other.start()
    with store.write() as tx:
        taken.append(tx.auth_codes.take(code, "client", NOW))
        first_took.set()
        time.sleep(0.5)  # the second transaction reads meanwhile
    other.join(10)
    assert sorted(taken, key=lambda t: t is None) == [b"payload", None]
