"""Every query of account data filters by ``account_id`` (DESIGN.md: the schema stays
ready for sharding by account, Citus). The statements the store emits while a workload
runs every route and the sync side are read as they go to the database and checked: each
table holding account data that a statement reads, changes or deletes is constrained by
its ``account_id`` (in the WHERE clause or a join condition), and each insert into one
sets it. Only the schedulers' queries span accounts, by design (``due_for_sync``,
``accounts_due``: which accounts are due; on Citus they run against every shard), and no
route or sync step runs them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Delete, Insert, Join, Select, Table, Update, event
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression, ClauseElement, TextClause

from rolodex.domain.contact import ContactFields
from rolodex.domain.remote import RemoteContact, RemoteGroup
from rolodex.service.mirror import Mirror
from rolodex.store import bulk, hotsql
from rolodex.store.schema import metadata
from tests.api.test_isolation import PNG
from tests.conftest import App

# Tables of account data: every one with an account_id column, except the token index
# (looked up by a token's hash to find the account in the first place).
ACCOUNT_TABLES = frozenset(
    name for name, table in metadata.tables.items() if "account_id" in table.c
) - {"access_tokens"}


def _tables(from_: Any) -> Iterator[Table]:
    if isinstance(from_, Table):
        yield from_
    elif isinstance(from_, Join):
        yield from _tables(from_.left)
        yield from _tables(from_.right)


def _scoped(conditions: list[Any]) -> set[Table]:
    """Tables whose account_id a condition compares with something."""
    found: set[Table] = set()
    for condition in conditions:
        if condition is None:
            continue
        for element in visitors.iterate(condition):
            if isinstance(element, BinaryExpression):
                for side in (element.left, element.right):
                    if isinstance(side, Column) and side.name == "account_id":
                        assert isinstance(side.table, Table)
                        found.add(side.table)
    return found


def unscoped(statement: ClauseElement) -> list[str]:
    """The account tables ``statement`` touches without constraining their account_id."""
    problems: list[str] = []
    for element in visitors.iterate(statement):
        if isinstance(element, Select):
            froms = list(element.get_final_froms())
            joins = [f for f in froms if isinstance(f, Join)]
            conditions = [element.whereclause, *(j.onclause for j in joins)]
            for join in joins:
                conditions += [j.onclause for j in visitors.iterate(join) if isinstance(j, Join)]
            touched = {t for f in froms for t in _tables(f)}
        elif isinstance(element, Update | Delete):
            assert isinstance(element.table, Table)
            touched, conditions = {element.table}, [element.whereclause]
        elif isinstance(element, Insert):
            assert isinstance(element.table, Table)
            if element.table.name in ACCOUNT_TABLES and "account_id" not in str(element):
                problems.append(f"insert into {element.table.name} without account_id")
            continue
        else:
            continue
        scoped = _scoped(conditions)
        problems += [
            f"{t.name} unscoped in: {' '.join(str(element).split())[:200]}"
            for t in touched
            if t.name in ACCOUNT_TABLES and t not in scoped
        ]
    return problems


def test_the_checker_finds_an_unscoped_query() -> None:
    contacts = metadata.tables["contacts"]
    assert unscoped(Select(contacts.c.id).where(contacts.c.id == "x"))
    assert not unscoped(Select(contacts.c.id).where(contacts.c.account_id == "a"))


@pytest.fixture
def emitted(any_app: App) -> Iterator[list[str]]:
    """Every problem of every statement the store executes meanwhile."""
    problems: list[str] = []
    checked: list[Any] = []
    engine = any_app.store.engine

    def check(_conn: Any, clause: Any, *_args: Any) -> None:
        checked.append(clause)
        if isinstance(clause, TextClause):
            mentioned = [t for t in ACCOUNT_TABLES if t in clause.text]
            if mentioned and "account_id" not in clause.text:
                problems.append(f"text query of {mentioned}: {clause.text[:200]}")
        elif isinstance(clause, ClauseElement):
            problems.extend(unscoped(clause))

    event.listen(engine, "before_execute", check)
    original = bulk.insert_rows

    def insert_rows(conn: Any, table: Table, columns: Any, rows: Any) -> None:
        if table.name in ACCOUNT_TABLES and "account_id" not in columns:
            problems.append(f"bulk insert into {table.name} without account_id")
        original(conn, table, columns, rows)

    bulk.insert_rows = insert_rows  # type: ignore[assignment]
    try:
        yield problems
        tables = {t.name for c in checked if isinstance(c, ClauseElement)
                  for t in visitors.iterate(c) if isinstance(t, Table)}  # fmt: skip
        # The workload reached every table of account data (so each was checked), but
        # for those only the hot connections read (test_the_hot_reads_are_scoped).
        assert ACCOUNT_TABLES - tables - HOT_ONLY == set(), ACCOUNT_TABLES - tables
    finally:
        bulk.insert_rows = original  # type: ignore[assignment]
        event.remove(engine, "before_execute", check)


# Tables whose statements run on raw DBAPI connections only (rolodex.store.hot, its
# statements in rolodex.store.hotsql).
HOT_ONLY = frozenset({"page_ends"})


def test_the_hot_reads_are_scoped() -> None:
    """The hot reads run precompiled statements on raw connections, past the events."""
    checked = 0
    for name in dir(hotsql):
        statement = getattr(hotsql, name)
        if isinstance(statement, Select):
            assert unscoped(statement) == [], name
            checked += 1
    assert checked >= 8
    assert "account_id" in hotsql.PAGE_END_VALUES


def _workload(app: App) -> None:
    api = app.new_account()
    c = api.client
    group = c.post("/contacts/groups", json={"name": "Work"}).json()
    full = {
        "given_name": "Ada",
        "emails": [{"type": "work", "email": "ada@example.com"}],
        "phone_numbers": [{"type": "mobile", "number": "+1 415 555 0100"}],
        "physical_addresses": [{"type": "work", "street_address": "1 Main St",
                                "postal_code": "94110", "state": "CA", "country": "US"}],
        "group": group["id"],
    }  # fmt: skip
    ids = [c.post("/contacts", json=full).json()["id"] for _ in range(3)]
    for params in (
        {},
        {"offset": 1, "limit": 1},
        {"email": "ada@example.com"},
        {"phone_number": "14155550100"},
        {"street_address": "1 Main St"},
        {"postal_code": "94110", "state": "CA", "country": "US"},
        {"source": "address_book"},
        {"group": group["id"], "recurse": "true"},
        {"group": group["id"], "offset": 1},
        {"view": "count"},
        {"view": "ids", "email": "ada@example.com"},
    ):
        assert c.get("/contacts", params=params).status_code == 200
    etag = c.get(f"/contacts/{ids[0]}").headers["etag"]
    c.put(f"/contacts/{ids[0]}", json={"surname": "L"}, headers={"If-Match": etag})
    c.put(f"/contacts/{ids[0]}/picture", content=PNG)
    c.get(f"/contacts/{ids[0]}/picture")
    c.delete(f"/contacts/{ids[0]}/picture")
    c.put(f"/contacts/groups/{group['id']}", json={"name": "Job"})
    cursor = c.post("/delta/latest_cursor").json()["cursor"]
    c.delete(f"/contacts/{ids[1]}")
    c.get("/delta", params={"cursor": "0", "include_types": "contact,contact_group"})
    c.get("/delta/longpoll", params={"cursor": cursor, "timeout": "0"})
    c.get("/contacts/groups")
    c.delete(f"/contacts/groups/{group['id']}")
    c.get("/account")
    # The sync side, on an account of its own.
    account = app.new_account().account
    mirror = Mirror(app.store)
    item = RemoteContact("r1", '"1"', "book", ContactFields(given_name="R"), group_names=("G",))
    mirror.apply(account, [item])
    mirror.apply(account, [RemoteContact("r1", '"2"', "book", ContactFields(given_name="S"))])
    mirror.apply_groups(account, [RemoteGroup("g1", '"1"', "book", "Team", ("r1",))])
    mirror.known_etags(account.id, "book")
    mirror.etags_of(account.id, ["r1"])
    with app.store.read() as tx:
        contact_id = tx.remotes.for_remote_ids(account.id, ["r1"])["r1"].contact_id
    mirror.local_state(account.id, contact_id)
    mirror.pending(account.id)
    mirror.set_cursor(account.id, "book", "token-1")
    mirror.cursor(account.id, "book")
    mirror.remove(account, ["g1", "r1"])
    app.accounts.delete(api.id)


def test_every_query_of_account_data_filters_by_account_id(
    any_app: App, emitted: list[str]
) -> None:
    _workload(any_app)
    assert sorted(set(emitted)) == []
