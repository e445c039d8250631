"""The only place with SQL: one schema on SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from rolodex.store.accounts import AccountRepository, AuthCodeRepository, SettingsRepository
from rolodex.store.changes import ChangeRepository, OutboxRepository
from rolodex.store.contacts import ContactRepository
from rolodex.store.database import (
    create_store_engine,
    is_sqlite,
    normalize_url,
    read_connection,
    write_connection,
)
from rolodex.store.groups import GroupRepository
from rolodex.store.pictures import PictureRepository
from rolodex.store.remotes import RemoteRepository


class Tx:
    """The repositories, bound to one connection and so to one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.accounts = AccountRepository(conn)
        self.settings = SettingsRepository(conn)
        self.contacts = ContactRepository(conn)
        self.groups = GroupRepository(conn)
        self.pictures = PictureRepository(conn)
        self.changes = ChangeRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.remotes = RemoteRepository(conn)
        self.auth_codes = AuthCodeRepository(conn)


class Store:
    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = normalize_url(url)
        self.engine: Engine = create_store_engine(self.url, pool_size=pool_size)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with write_connection(self.engine) as conn:
            yield Tx(conn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with read_connection(self.engine) as conn:
            yield Tx(conn)

    def migrate(self) -> None:
        from rolodex.store.migrations import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Store", "Tx"]
