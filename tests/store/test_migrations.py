"""The Alembic migrations produce exactly the schema the code declares
(rolodex.store.schema), on both databases: nothing missing, nothing extra, same types,
keys, indexes and constraints."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from rolodex.store import Store
from rolodex.store.database import ensure_database
from rolodex.store.schema import metadata


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = make_url(request.getfixturevalue("postgres_url"))
    url = base.set(database=f"rolodex_migrations_{uuid.uuid4().hex[:10]}").render_as_string(
        hide_password=False
    )
    ensure_database(url)
    yield url
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _defaults_differ(
    _context: object,
    _reflected_column: object,
    _column: object,
    reflected: str | None,
    _declared: object,
    rendered: str | None,
) -> bool | None:
    """Alembic's own comparison, except that it takes SQLite's reflected ``('')`` for
    another default than the declared empty string."""
    if reflected is not None and rendered is not None and _bare(reflected) == _bare(rendered):
        return False
    return None


def _bare(default: str) -> str:
    return default.strip("()'\"")


def test_migrations_produce_the_declared_schema(fresh_url: str) -> None:
    store = Store(fresh_url)
    try:
        store.migrate()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": _defaults_differ}
            )
            differences = compare_metadata(context, metadata)
            if store.engine.dialect.name == "postgresql":
                triggers = conn.execute(
                    text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
                ).scalars()
                assert list(triggers) == ["accounts_generation_notify"]
    finally:
        store.close()
    assert differences == []
