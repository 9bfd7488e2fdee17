"""Database fixtures: every test runs on SQLite and on PostgreSQL, isolated by tenant.

``database_url`` is parametrized ("sqlite": a file in a temporary directory;
"postgresql": one database per pytest-xdist worker, created from the ``test``
database of ``HUB_SCIM_TEST_POSTGRESQL_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``). PostgreSQL is skipped when it
cannot be reached, unless ``CI=true``: then it fails loudly.

The PostgreSQL database name carries a hash of the schema, so a run never
meets tables left by an older schema, and concurrent runs of the same schema
share it safely (tests never truncate: each gets a fresh ``org_id``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable

from connector.db.engine import make_engine, make_session_factory
from connector.db.migrations import alembic_config, current_revision, head_revision
from connector.db.planner import seed_sqlite_planner_statistics
from connector.db.schema import metadata
from connector.tenancy.tables import Organization

POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/test"
_CREATION_LOCK = 727_274_001  # pg_advisory_lock key: one creator of test databases at a time
_MIGRATION_LOCK = 0x48554253434D  # the key connector.db.migrations serializes migrations on


def _schema_hash() -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    ddl = []
    for table in metadata().sorted_tables:
        ddl.append(str(CreateTable(table).compile(dialect=dialect)))
        ddl.extend(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:10]


def _postgresql_database(worker: str) -> str:
    """The URL of this worker's test database, created (with its tables) if missing."""
    admin_url = make_url(
        os.environ.get("HUB_SCIM_TEST_POSTGRESQL_URL", POSTGRESQL_URL).replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    )
    name = f"hub_scim_test_{worker}_{_schema_hash()}"
    admin = create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _CREATION_LOCK})
            try:
                exists = connection.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                )
                if not exists:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
                    engine = make_engine(admin_url.set(database=name).render_as_string(False))
                    try:
                        metadata().create_all(engine)
                    finally:
                        engine.dispose()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _CREATION_LOCK})
    except OperationalError as error:
        reason = f"PostgreSQL unreachable at {admin_url.render_as_string()}: {error.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'hub-scim.sqlite'}"
    return _postgresql_database(os.environ.get("PYTEST_XDIST_WORKER", "main"))


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The engine of ``database_url``, its tables created once per test session."""
    engine = make_engine(database_url)
    if database_url.startswith("sqlite"):
        metadata().create_all(engine)
        with engine.begin() as connection:
            seed_sqlite_planner_statistics(connection)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session of its own for one test; what the test did not commit is rolled back."""
    with make_session_factory(engine)() as session:
        yield session
        session.rollback()


@pytest.fixture
def org_id(engine: Engine) -> int:
    """A fresh committed organization: the unit of isolation between tests."""
    with make_session_factory(engine)() as session:
        organization = Organization(name=f"org-{os.urandom(8).hex()}")
        session.add(organization)
        session.commit()
        return organization.id


@pytest.fixture(scope="session")
def cli_database_url(database_url: str, engine: Engine) -> str:
    """The test database, marked as migrated for the commands' migration check.

    Its tables come from the models, which the migrations build exactly
    (``tests/test_migrations.py``), so stamping it at the head revision is
    true. ``purge`` forgets a revision this checkout does not know, which a
    checkout of another version sharing the database may have stamped.
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
        if current_revision(connection) != head_revision():
            command.stamp(alembic_config(connection), "head", purge=True)
    return database_url
