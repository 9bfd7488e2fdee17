"""The provisioning log: every SCIM request an organization's IdP makes, as IT reads it later.

Okta and Entra push through the real app; the recorder's rows are flushed and
read back through the same query the CLI and the console use.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.pool import NullPool

from connector.cli.main import cli
from connector.db.base import utcnow
from connector.db.engine import make_engine, make_session_factory
from connector.settings import SettingsError, load_settings
from connector.tenancy.credentials import find_credential_state, revoke_credential
from connector.tenancy.tables import Organization
from connector.trail.request_log import (
    SCIM_REQUEST_LOG,
    LoggedRequest,
    RequestLogFilter,
    append,
    query_requests,
)
from connector.trail.request_recorder import RequestRecorder
from connector.web.app import SCIM_PREFIX, hub_scim
from connector.web.request_logging import install_request_log, request_recorder
from tests.fixtures_app import ScimClient

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SECRET_PASSWORD = "correct-horse-battery-staple"


def okta_user(user_name: str) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "password": SECRET_PASSWORD,
        "active": True,
    }


def deactivate() -> dict[str, Any]:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "value": {"active": False}}],
    }


def logged(
    app: Flask, engine: Engine, org_id: int, where: RequestLogFilter | None = None, **kw: Any
) -> list[LoggedRequest]:
    """The organization's log as the console would read it, after the recorder's flush."""
    recorder = request_recorder(app)
    assert recorder is not None
    recorder.flush()
    with make_session_factory(engine)() as session:
        return query_requests(session, org_id, where, **kw).requests


def credential_id(engine: Engine, token: str) -> str:
    with make_session_factory(engine)() as session:
        row = find_credential_state(session, token)
    assert row is not None
    return str(row.id)


def every_stored_value(engine: Engine, org_id: int | None = None) -> str:
    """Every value of the log's rows (of one organization, else of all), as one string."""
    query = select(SCIM_REQUEST_LOG)
    if org_id is not None:
        query = query.where(SCIM_REQUEST_LOG.c.org_id == org_id)
    with engine.connect() as connection:
        return json.dumps([list(row) for row in connection.execute(query)], default=str)


# -- what is recorded -----------------------------------------------------------------


def test_an_okta_push_is_recorded_request_by_request_without_body_or_token(
    app: Flask, engine: Engine, org_id: int, scim: ScimClient, scim_token: str
) -> None:
    okta = {"X-Okta-Request-Id": "okta-req-1"}
    lookup = scim.get(
        "/Users", query_string={"filter": 'userName eq "ada@example.com"'}, headers=okta
    )
    created = scim.post("/Users", json=okta_user("ada@example.com"), headers=okta)
    user_id = created.get_json()["id"]
    deactivated = scim.patch(f"/Users/{user_id}", json=deactivate(), headers=okta)
    assert (lookup.status_code, created.status_code, deactivated.status_code) == (200, 201, 200)

    newest_first = logged(app, engine, org_id)

    assert [(r.method, r.status) for r in newest_first] == [
        ("PATCH", 200),
        ("POST", 201),
        ("GET", 200),
    ]
    patch, post, get = newest_first
    assert patch.path == f"{SCIM_PREFIX}/Users/{user_id}"
    assert (patch.resource_kind, patch.resource_id) == ("User", user_id)
    assert (post.resource_kind, post.resource_id) == ("User", user_id)
    assert get.path.startswith(f"{SCIM_PREFIX}/Users?filter=")
    assert get.resource_id is None
    for row in newest_first:
        assert row.credential_id == credential_id(engine, scim_token)
        assert row.idp_request_id == "okta-req-1"
        assert row.scim_type is None
        assert row.detail is None
        assert row.duration_ms > 0
        assert not row.failed
    stored = every_stored_value(engine, org_id)
    assert SECRET_PASSWORD not in stored
    assert "Lovelace" not in stored
    assert scim_token not in stored


def test_entra_s_client_request_id_is_kept(
    app: Flask, engine: Engine, org_id: int, scim: ScimClient
) -> None:
    request_id = str(uuid.uuid4())

    scim.get("/Users", query_string={"filter": f'userName eq "{uuid.uuid4()}"'},
             headers={"client-request-id": request_id})  # fmt: skip

    (row,) = logged(app, engine, org_id)
    assert row.idp_request_id == request_id


def test_failed_requests_carry_their_scim_type_and_detail(
    app: Flask, engine: Engine, org_id: int, scim: ScimClient
) -> None:
    scim.post("/Users", json=okta_user("grace@example.com"))
    duplicate = scim.post("/Users", json=okta_user("GRACE@example.com"))
    missing = scim.get(f"/Users/{uuid.uuid4()}")
    bad_patch = scim.patch(
        f"/Users/{uuid.uuid4()}",
        json={"schemas": [PATCH_SCHEMA], "Operations": [{"op": "teleport"}]},
    )
    assert (duplicate.status_code, missing.status_code) == (409, 404)
    assert bad_patch.status_code == 400

    failed = logged(app, engine, org_id, RequestLogFilter(failed=True))

    assert [row.status for row in failed] == [400, 404, 409]
    assert failed[2].scim_type == "uniqueness"
    assert failed[2].detail == duplicate.get_json()["detail"]
    assert failed[0].scim_type == bad_patch.get_json().get("scimType")
    assert failed[0].detail
    assert all(row.failed for row in failed)
    only_404 = logged(app, engine, org_id, RequestLogFilter(status=404))
    assert [row.path for row in only_404] == [failed[1].path]


def test_a_revoked_credential_of_a_known_organization_is_recorded(
    app: Flask, engine: Engine, org_id: int, scim: ScimClient, scim_token: str
) -> None:
    with make_session_factory(engine)() as session:
        revoke_credential(session, org_id, scim_token)
        session.commit()

    refused = scim.get("/Users")

    assert refused.status_code == 401
    (row,) = logged(app, engine, org_id)
    assert (row.status, row.credential_id) == (401, credential_id(engine, scim_token))
    assert row.detail == "The bearer token is invalid, expired or revoked"


def test_an_unknown_token_is_attributed_to_no_organization(
    app: Flask, client: FlaskClient, engine: Engine, org_id: int, scim: ScimClient
) -> None:
    probe = f"/Users/{uuid.uuid4()}"

    unknown = ScimClient(client, "hubscim_" + "x" * 43).get(probe)
    anonymous = ScimClient(client, None).get(probe)

    assert (unknown.status_code, anonymous.status_code) == (401, 401)
    assert logged(app, engine, org_id) == []
    assert probe not in every_stored_value(engine)


def test_a_rate_limited_request_is_recorded(
    app_factory: Callable[..., Flask], engine: Engine, org_id: int, scim_token: str
) -> None:
    app = app_factory(rate_limit_per_minute=1, rate_limit_burst=1)
    idp = ScimClient(app.test_client(), scim_token)

    statuses = [idp.get("/Users").status_code for _ in range(2)]

    assert statuses == [200, 429]
    assert [row.status for row in logged(app, engine, org_id)] == [429, 200]


def test_another_organization_sees_none_of_it(
    app: Flask, engine: Engine, org_id: int, other_org_id: int, scim: ScimClient
) -> None:
    scim.post("/Users", json=okta_user("linus@example.com"))

    assert len(logged(app, engine, org_id)) == 1
    assert logged(app, engine, other_org_id) == []


# -- finding requests -----------------------------------------------------------------


def test_one_user_s_requests_by_user_name_or_id_paged_newest_first(
    app: Flask, engine: Engine, org_id: int, scim: ScimClient
) -> None:
    ada = scim.post("/Users", json=okta_user("ada@example.com")).get_json()["id"]
    bob = scim.post("/Users", json=okta_user("bob@example.com")).get_json()["id"]
    for _ in range(2):
        scim.patch(f"/Users/{ada}", json=deactivate())
        scim.patch(f"/Users/{bob}", json=deactivate())

    by_name = logged(app, engine, org_id, RequestLogFilter(user="ADA@example.com"))
    by_id = logged(app, engine, org_id, RequestLogFilter(user=ada))
    first = logged(app, engine, org_id, RequestLogFilter(user=ada), limit=2)
    rest = logged(app, engine, org_id, RequestLogFilter(user=ada), limit=2, before=first[-1].id)

    assert [row.method for row in by_name] == ["PATCH", "PATCH", "POST"]
    assert by_id == by_name
    assert first + rest == by_name
    assert {row.resource_id for row in by_name} == {ada}


def test_a_time_range(app: Flask, engine: Engine, org_id: int, scim: ScimClient) -> None:
    scim.get("/Users")
    now = utcnow()

    assert len(logged(app, engine, org_id, RequestLogFilter(since=now - timedelta(minutes=1)))) == 1
    assert logged(app, engine, org_id, RequestLogFilter(until=now - timedelta(minutes=1))) == []


# -- retention --------------------------------------------------------------------------


def _request(org_id: int, age: timedelta) -> LoggedRequest:
    return LoggedRequest(
        org_id=org_id,
        at=utcnow() - age,
        credential_id=None,
        method="GET",
        path=f"{SCIM_PREFIX}/Users",
        status=200,
        duration_ms=1.0,
    )


def test_retention_prunes_old_requests_in_small_batches(engine: Engine, org_id: int) -> None:
    with engine.begin() as connection:
        append(connection, [_request(org_id, timedelta(days=31)) for _ in range(2500)])
        append(connection, [_request(org_id, timedelta(days=29))])
    recorder = RequestRecorder(engine, timedelta(days=30))
    # Each call prunes a bounded number of batches over every organization of
    # the shared test database (other tests leave old rows, and other apps'
    # recorders may prune these too): call until there is nothing left.
    pruned = [recorder.prune() for _ in range(50)]
    assert pruned[-1] == 0

    with make_session_factory(engine)() as session:
        (kept,) = query_requests(session, org_id).requests
    assert kept.at > utcnow() - timedelta(days=30)


def test_the_retention_is_configurable() -> None:
    assert load_settings({}).request_log_retention_days == 30
    settings = load_settings(
        {"HUB_SCIM_REQUEST_LOG_RETENTION_DAYS": "7", "HUB_SCIM_REQUEST_LOG": "off"}
    )
    assert (settings.request_log_retention_days, settings.request_log) == (7, False)
    with pytest.raises(SettingsError, match="HUB_SCIM_REQUEST_LOG_RETENTION_DAYS"):
        load_settings({"HUB_SCIM_REQUEST_LOG_RETENTION_DAYS": "0"})
    with pytest.raises(SettingsError, match="HUB_SCIM_REQUEST_LOG must be on or off"):
        load_settings({"HUB_SCIM_REQUEST_LOG": "maybe"})


def test_with_the_log_off_nothing_is_recorded(
    app_factory: Callable[..., Flask], engine: Engine, org_id: int, scim_token: str
) -> None:
    app = app_factory(request_log=False)

    assert ScimClient(app.test_client(), scim_token).get("/Users").status_code == 200
    assert request_recorder(app) is None
    with make_session_factory(engine)() as session:
        assert query_requests(session, org_id).requests == []


# -- the log never costs a request -------------------------------------------------------


def test_a_database_that_refuses_the_rows_never_fails_a_request(
    app_factory: Callable[..., Flask],
    org_id: int,
    scim_token: str,
    tmp_path: Path,
) -> None:
    # A database without the log's table refuses every row.
    refusing = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}", poolclass=NullPool)
    recorder = RequestRecorder(refusing, timedelta(days=30), max_attempts=2)
    app = app_factory(request_log=False)
    state = hub_scim(app)
    install_request_log(app, state.settings, state.session_factory, SCIM_PREFIX, recorder=recorder)
    idp = ScimClient(app.test_client(), scim_token)

    statuses = [
        idp.post("/Users", json=okta_user(f"u{i}@example.com")).status_code for i in range(3)
    ]
    recorder.flush()  # refused: kept for another try
    recorder.flush()  # refused again: dropped
    recorder.close()
    refusing.dispose()

    assert statuses == [201, 201, 201]
    assert recorder.dropped == 3


def test_a_refused_row_does_not_take_its_batch_with_it(engine: Engine, org_id: int) -> None:
    recorder = RequestRecorder(engine, timedelta(days=30))
    with make_session_factory(engine)() as session:
        no_such_org = (session.scalar(select(func.max(Organization.id))) or 0) + 1000

    recorder.record(_request(org_id, timedelta(0)))
    recorder.record(_request(no_such_org, timedelta(0)))
    recorder.record(_request(org_id, timedelta(0)))
    written = recorder.flush()
    recorder.close()

    assert (written, recorder.dropped) == (2, 1)
    with make_session_factory(engine)() as session:
        assert len(query_requests(session, org_id).requests) == 2


# -- hub-scim log ---------------------------------------------------------------------------


def org_name(engine: Engine, org_id: int) -> str:
    with make_session_factory(engine)() as session:
        organization = session.get(Organization, org_id)
        assert organization is not None
        return organization.name


def test_hub_scim_log_filters_and_prints_json(
    app: Flask,
    engine: Engine,
    org_id: int,
    scim: ScimClient,
    runner: CliRunner,
    cli_database_url: str,
) -> None:
    ada = scim.post("/Users", json=okta_user("ada@example.com")).get_json()["id"]
    scim.post("/Users", json=okta_user("ada@example.com"))  # 409
    scim.patch(f"/Users/{ada}", json=deactivate())
    scim.get(f"/Users/{uuid.uuid4()}")  # 404
    recorder = request_recorder(app)
    assert recorder is not None
    recorder.flush()
    name = org_name(engine, org_id)

    def hub_scim_log(*args: str) -> str:
        result = runner.invoke(
            cli, ["log", "--org", name, *args, "--database-url", cli_database_url]
        )
        assert result.exit_code == 0, result.output
        return result.output

    failed = json.loads(hub_scim_log("--failed", "--json"))
    conflict = json.loads(hub_scim_log("--status", "409", "--json"))
    ada_only = json.loads(hub_scim_log("--user", "ada@example.com", "--json"))
    first_page = json.loads(hub_scim_log("--limit", "3", "--json"))
    text = hub_scim_log()

    assert [row["status"] for row in failed["requests"]] == [404, 409]
    assert conflict["requests"][0]["scim_type"] == "uniqueness"
    assert [row["method"] for row in ada_only["requests"]] == ["PATCH", "POST"]
    assert ada_only["requests"][0]["resource"] == {"kind": "User", "id": ada}
    assert len(first_page["requests"]) == 3
    assert first_page["next_before"] == first_page["requests"][-1]["id"]
    lines = text.splitlines()
    assert len(lines) == 4
    assert "404  GET" in lines[0]
    assert "not found" in lines[0]
    assert "200  PATCH" in lines[1]
    assert f"User {ada}" in lines[1]
    assert "[uniqueness]" in lines[2]
    assert SECRET_PASSWORD not in text


def test_hub_scim_log_of_an_unknown_organization_is_a_clean_error(
    runner: CliRunner, cli_database_url: str
) -> None:
    result = runner.invoke(cli, ["log", "--org", "nobody", "--database-url", cli_database_url])

    assert result.exit_code not in (0, 1, 2)  # a refusal's own status, not a crash or misuse
    assert "Error:" in result.output
    assert "nobody" in result.output
    assert "Traceback" not in result.output
