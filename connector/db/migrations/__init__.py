"""The database schema's history, as Alembic migrations shipped inside the package.

:func:`upgrade_database` is what ``hub-scim db upgrade``, ``hub-scim serve``
and the test fixtures call. Several instances may call it at once against one
PostgreSQL: a transaction-level advisory lock lets one migrate while the
others wait, then find nothing left to do. On SQLite every transaction already
takes the write lock first (``connector.db.engine``), which serializes them the same way.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select
from sqlalchemy.pool import NullPool

from connector.db.engine import make_engine
from connector.db.planner import seed_sqlite_planner_statistics
from connector.settings import sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().parent

# An arbitrary constant naming "the schema migration" among advisory locks.
_MIGRATION_LOCK_KEY = 0x48554253434D  # "HUBSCM"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the shipped migrations, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this version of the package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database behind ``connection`` is at (None when never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the directory of a SQLite file so that a first start on a new machine works."""
    path = sqlite_file(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def upgrade_database(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply every migration up to ``revision``; return the revisions before and after.

    On SQLite it also seeds the query planner's statistics, once
    (:mod:`connector.db.planner`).
    """
    ensure_sqlite_directory(database_url)
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            before = current_revision(connection)
            command.upgrade(alembic_config(connection), revision)
            seed_sqlite_planner_statistics(connection)
            after = current_revision(connection)
    finally:
        engine.dispose()
    return before, after
