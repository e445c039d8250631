"""Alembic migrations, applied on server start and by ``rolodex db upgrade``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent
_REVISION = re.compile(
    r"""^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(None|"[^"\n]*"|'[^'\n]*')\s*$""", re.M
)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    # Every command opens the store, and importing Alembic costs about half a second: a
    # database already at the one head of the scripts is left alone without it.
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def _script_head() -> str | None:
    """The one head of the version scripts, read from their text; None when unsure."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (HERE / "versions").glob("*.py"):
        found = {m.group(1): m.group(2) for m in _REVISION.finditer(path.read_text())}
        if "revision" not in found or "down_revision" not in found:
            return None
        revisions.add(found["revision"].strip("\"'"))
        if found["down_revision"] != "None":
            downs.add(found["down_revision"].strip("\"'"))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """Whether the database's schema is at the one head of the version scripts."""
    return _at_head(engine)


def _at_head(engine: Engine) -> bool:
    head = _script_head()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except SQLAlchemyError:
        return False  # no version table yet
    return versions == [head]


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
