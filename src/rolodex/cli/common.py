"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import sys
from typing import Annotated, Any, NoReturn

import orjson
import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

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
    """The store, migrated to the current schema (``mmap``: ``Store``). A URL Rolodex does
    not take, or a database that does not answer, ends the command with one line that
    says so (not SQLAlchemy's traceback)."""
    url = settings.database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
        backend: str | None = make_url(url).get_backend_name()
    except ArgumentError:
        shown, backend = url, None
    if backend not in ("sqlite", "postgresql", "postgres"):
        _cannot_open(shown, "Rolodex takes sqlite:///path.db or postgresql://user@host/db")
    try:
        store = Store(url, mmap=mmap)
        store.migrate()
    except (OperationalError, InterfaceError) as error:
        _cannot_open(shown, " ".join(str(error.orig).split()))
    except OSError as error:  # the SQLite file's folder cannot be made, or the file
        _cannot_open(shown, f"{error.strerror}: {error.filename}")
    return store


def _cannot_open(shown: str, why: str) -> NoReturn:
    sys.stderr.write(f"error: cannot open the database {shown}: {why}\n")
    raise typer.Exit(1)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
