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


def command_group(help: str, **options: Any) -> typer.Typer:
    """A group of subcommands, its help in click's plain layout: rich's option tables cut
    long option names at 80 columns (``--microsoft-client-secret-e...``) and keep the
    docstrings' line breaks, so an 80-column help was ragged and its flags unreadable."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **options)


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
