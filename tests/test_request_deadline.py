"""Every request has a deadline, and no statement holds a thread past it.

A statement still running at the deadline is stopped (SQLite's progress
handler, PostgreSQL's ``statement_timeout``); the request answers a SCIM
Error 503 with ``Retry-After`` and writes nothing (deploy/README.md,
"Timeouts").
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from connector.db.engine import BUSY_TIMEOUT_MS, make_engine
from connector.web.app import create_app, hub_scim
from scim.limits import Deadline
from tests.fixtures_app import ScimClient, issue_token

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"

# Counts far past any deadline here: only an interruption ends it early.
ENDLESS_SQLITE = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 2000000000) "
    "SELECT count(*) FROM n"
)


def test_sqlite_stops_a_statement_at_the_deadline_of_its_request(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/deadline.sqlite")
    try:
        started = time.monotonic()
        with (
            engine.connect() as connection,
            Deadline.running(0.2),
            pytest.raises(OperationalError, match="interrupted"),
        ):
            connection.execute(text(ENDLESS_SQLITE))
        assert time.monotonic() - started < 10
    finally:
        engine.dispose()


def test_without_a_deadline_sqlite_runs_statements_to_the_end(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/deadline.sqlite")
    try:
        with engine.connect() as connection:
            counted = connection.execute(
                text(ENDLESS_SQLITE.replace("2000000000", "200000"))
            ).scalar()
        assert counted == 200000
    finally:
        engine.dispose()


def test_sqlite_waits_for_the_write_lock_until_the_deadline_and_no_longer(
    tmp_path: object,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/deadline.sqlite", pool_size=1, max_overflow=0)
    try:
        with Deadline.running(2), engine.begin() as connection:
            during_a_request = connection.execute(text("PRAGMA busy_timeout")).scalar()
        with engine.begin() as connection:
            afterwards = connection.execute(text("PRAGMA busy_timeout")).scalar()
        assert 1 <= during_a_request <= 2001
        assert afterwards == BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


@pytest.fixture
def deadline_app(database_url: str) -> Iterator[Flask]:
    """The service with a one-second deadline, building its own engine as in production."""
    app = create_app(database_url=database_url, request_timeout_seconds=1, rate_limit_per_minute=0)
    yield app
    hub_scim(app).close()


def test_a_request_stuck_behind_a_lock_answers_503_with_retry_after_and_writes_nothing(
    deadline_app: Flask, engine: Engine, org_id: int
) -> None:
    scim = ScimClient(deadline_app.test_client(), issue_token(engine, org_id))
    with engine.connect() as blocker:
        # Another writer, busy for longer than the deadline: on SQLite it holds
        # the database's write lock, on PostgreSQL a table every write reads.
        if engine.dialect.name == "sqlite":
            blocker.execute(text("DELETE FROM organizations WHERE id = -1"))
        else:
            blocker.execute(text("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()

        response = scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": "late"})

        elapsed = time.monotonic() - started
        blocker.rollback()
    # The deadline is one second; the margin is for a shared, loaded machine.
    assert elapsed < 3
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json(force=True)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "time limit" in body["detail"]
    listed = scim.get("/Users", query_string={"filter": 'userName eq "late"'})
    assert listed.status_code == 200
    assert listed.get_json()["totalResults"] == 0


def test_postgresql_cancels_a_statement_past_the_engines_timeout(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's")
    engine = make_engine(database_url, statement_timeout_seconds=0.2)
    try:
        started = time.monotonic()
        with engine.connect() as connection, pytest.raises(OperationalError, match="statement"):
            connection.execute(text("SELECT pg_sleep(30)"))
        assert time.monotonic() - started < 10
    finally:
        engine.dispose()
