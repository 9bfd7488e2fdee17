"""What an IdP sees when the database is busy, and statistics kept fresh during a load."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from connector.db.engine import make_engine
from connector.db.statistics import StatisticsKeeper
from connector.directory.store import DirectoryStore
from connector.web.app import hub_scim


def test_a_locked_database_answers_503_with_retry_after_not_500(
    scim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(DirectoryStore, "list", locked)
    response = scim.get('/Users?filter=userName eq "ada@example.com"')
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.content_type.startswith("application/scim+json")
    body = response.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert "locked" not in body["detail"]


def test_an_okta_initial_load_refreshes_stale_planner_statistics(
    app: Flask, scim: Any, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    keeper = StatisticsKeeper(engine, interval=0.0)
    object.__setattr__(hub_scim(app), "statistics", keeper)
    calls: list[list[str]] = []
    original = keeper.refresh

    def counting_refresh() -> list[str]:
        analyzed = original()
        calls.append(analyzed)
        return analyzed

    keeper.refresh = counting_refresh  # type: ignore[method-assign]
    for number in range(3):
        created = scim.post(
            "/Users",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": f"load{number}@example.com",
            },
        )
        assert created.status_code == 201
    assert len(calls) == 3
    # A keeper that checked a moment ago waits for its interval.
    keeper.interval = 3600
    keeper.write_committed()
    assert len(calls) == 3


def test_the_keeper_does_nothing_on_sqlite(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    keeper = StatisticsKeeper(engine, interval=0.0)
    keeper.write_committed()
    assert keeper.refresh() == []


def test_a_product_asking_while_the_database_is_locked_gets_503(
    client: Any, engine: Engine, org_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.tenancy.credentials import Scope
    from connector.web import access_api
    from tests.fixtures_app import issue_token

    def locked(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(access_api, "user_access", locked)
    token = issue_token(engine, org_id, Scope.ACCESS)
    response = client.get("/api/v1/access/ada", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"] == "unavailable"


def test_okta_reads_while_another_request_holds_the_sqlite_write_lock(
    scim: Any, client: Any, engine: Engine, org_id: int
) -> None:
    """Reads begin deferred: under WAL they see the last commit and never queue for the lock."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    from connector.tenancy.credentials import Scope
    from tests.fixtures_app import issue_token

    created = scim.post(
        "/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@example.com",
        },
    )
    assert created.status_code == 201
    access_token = issue_token(engine, org_id, Scope.ACCESS)
    with engine.connect() as writer, writer.begin():  # BEGIN IMMEDIATE: the write lock
        found = scim.get('/Users?filter=userName eq "ada@example.com"')
        assert found.status_code == 200
        assert found.get_json()["totalResults"] == 1
        searched = scim.post("/Users/.search", json={"filter": 'userName eq "ada@example.com"'})
        assert searched.status_code == 200
        assert scim.get(f"/Users/{created.get_json()['id']}").status_code == 200
        asked = client.post(
            "/api/v1/access/ada@example.com/authorize",
            json={"permission": "psa.tickets.read"},
            headers={"Authorization": f"Bearer {access_token}"},
        )
        assert asked.status_code == 200


@pytest.mark.parametrize(("setting", "pragma"), [("full", 2), ("normal", 1)])
def test_sqlite_commits_are_durable_unless_normal_is_chosen(
    tmp_path: object, setting: str, pragma: int
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/sync.sqlite", sqlite_synchronous=setting)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA synchronous")).scalar() == pragma
    finally:
        engine.dispose()
