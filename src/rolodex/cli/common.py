"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer

from rolodex.config import Settings
from rolodex.store import Store

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="ROLODEX_DATABASE_URL",
        help="SQLite file (sqlite:///path.db, the default is rolodex.db here) or "
        "postgresql://user@host/db.",
        show_default=False,
    ),
]


def settings_for(database_url: str | None) -> Settings:
    settings = Settings()
    if database_url:
        settings = Settings(**{**settings.__dict__, "database_url": database_url})
    return settings


def open_store(settings: Settings, *, mmap: bool = True) -> Store:
    """The store, migrated to the current schema (``mmap``: ``Store``)."""
    store = Store(settings.database_url, mmap=mmap)
    store.migrate()
    return store


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
