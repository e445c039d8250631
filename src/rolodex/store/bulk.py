"""Inserts of many rows straight through the driver's ``executemany``.

A first sync writes tens of thousands of rows (contacts, their index terms, links, change
log). Through ``Connection.execute(insert(table), [dict, ...])`` SQLAlchemy processes every
row's parameters in Python, which cost more than SQLite's own work on them; the values
written here are plain ``str``, ``int``, ``float`` and ``bytes``, which both drivers take as
they are. The statement runs on the transaction's own DBAPI connection, so it commits or
rolls back with everything else the transaction did.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """``INSERT INTO table (columns) VALUES (...)`` once per row, in one call."""
    rows = list(rows)
    if not rows:
        return
    sql = _insert_sql(conn.dialect, table, tuple(columns))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


@functools.cache
def _insert_sql(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> str:
    for name in columns:
        table.c[name]
    quote = dialect.identifier_preparer.quote
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote(name) for name in columns)
    values = ", ".join(marker for _ in columns)
    return f"INSERT INTO {quote(table.name)} ({names}) VALUES ({values})"
