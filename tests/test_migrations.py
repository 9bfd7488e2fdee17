"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

Each test gets an empty database of its own: a SQLite file, or a PostgreSQL
database created for it and dropped afterwards (skipped when no PostgreSQL
answers on 127.0.0.1:5432, unless CI=true).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

import connector
from connector.db import schema
from connector.db.base import Base
from connector.db.engine import make_engine
from connector.db.migrations import alembic_config, head_revision, upgrade_database

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _fresh_postgres_database() -> Iterator[str]:
    admin = make_engine(POSTGRES_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    name = f"hub_scim_migrations_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        yield from _fresh_postgres_database()


def schema_differences(database_url: str) -> list[object]:
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, schema.metadata()))
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_models_schema(empty_database_url: str) -> None:
    before, after = upgrade_database(empty_database_url)

    assert before is None
    assert after == head_revision()
    assert schema_differences(empty_database_url) == []


def test_upgrading_twice_does_nothing_the_second_time(empty_database_url: str) -> None:
    upgrade_database(empty_database_url)

    assert upgrade_database(empty_database_url) == (head_revision(), head_revision())


def test_the_migrations_go_down_to_nothing_and_up_again(empty_database_url: str) -> None:
    upgrade_database(empty_database_url)
    engine = make_engine(empty_database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()

    upgrade_database(empty_database_url)
    assert schema_differences(empty_database_url) == []


def test_instances_starting_together_migrate_once(empty_database_url: str) -> None:
    """Several ``hub-scim serve`` against one empty database: one migrates, the others wait."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(upgrade_database, [empty_database_url] * 3))

    head = head_revision()
    assert sorted(results, key=str) == sorted([(None, head), (head, head), (head, head)], key=str)
    assert schema_differences(empty_database_url) == []


def _table_modules() -> set[str]:
    """Every module of the package that maps a table, found by importing them all."""
    skipped = ("connector.web.wsgi", "connector.db.migrations.")
    for module in pkgutil.walk_packages(connector.__path__, "connector."):
        if not module.name.startswith(skipped):
            importlib.import_module(module.name)
    return {mapper.class_.__module__ for mapper in Base.registry.mappers}


def test_every_table_module_is_listed_in_connector_schema() -> None:
    listed = {module.__name__ for module in schema.TABLE_MODULES}

    assert _table_modules() <= listed, "add the module to connector/db/schema.py and migrate"


def test_upgrading_sqlite_seeds_the_planner_statistics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'planner.db'}"

    upgrade_database(url)

    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            tables = set(connection.scalars(text("SELECT tbl FROM sqlite_stat1")))
    finally:
        engine.dispose()
    assert {"scim_resources", "scim_attribute_values", "group_members"} <= tables
