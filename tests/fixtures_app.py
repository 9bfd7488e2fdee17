"""The application, its credentials and a SCIM test client, built on ``tests/fixtures_db.py``.

``app`` shares the session-wide ``engine`` of the parametrized ``database_url``;
``scim_token`` is a fresh SCIM credential of the per-test ``org_id``; ``scim``
talks SCIM to the app as that organization's IdP would::

    def test_okta_creates_a_user(scim):
        response = scim.post("/Users", json={"schemas": [...], "userName": "ada"})
        assert response.status_code == 201

On top of them, the cast of ``tests/scenarios.py``: ``idp`` (the IdP, built on
``scim``), ``hub`` (IT, on the same organization) and ``product`` (a Hub
product with an ``access`` credential)::

    def test_a_leaver_loses_psa(idp, hub, product): ...
"""

from __future__ import annotations

import json as jsonlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from connector.cli.main import cli
from connector.db.engine import make_session_factory
from connector.tenancy.credentials import Scope, create_credential
from connector.tenancy.organizations import create_organization
from connector.tenancy.tables import Organization
from connector.web.app import SCIM_PREFIX
from connector.web.app import create_app as _create_app
from connector.web.app import hub_scim as app_state
from connector.web.request_logging import request_recorder
from tests.scenarios import AccessApi, Hub, Idp

SCIM_CONTENT_TYPE = "application/scim+json"


class ScimClient:
    """Sends SCIM requests under ``/scim/v2`` with a bearer token; returns Flask's test response.

    ``json=`` bodies are sent as ``application/scim+json``; ``headers=`` adds
    or overrides headers (``{"Authorization": None}`` sends none at all);
    other keyword arguments go to Flask's test client (``query_string=``,
    ``data=``, ``content_type=``...).
    """

    def __init__(self, client: FlaskClient, token: str | None, prefix: str = SCIM_PREFIX) -> None:
        self.client = client
        self.token = token
        self.prefix = prefix

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str | None] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        sent: dict[str, str | None] = {"Accept": SCIM_CONTENT_TYPE}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        if json is not None:
            kwargs["data"] = jsonlib.dumps(json)
            kwargs.setdefault("content_type", SCIM_CONTENT_TYPE)
        return self.client.open(
            self.prefix + path,
            method=method,
            headers={name: value for name, value in sent.items() if value is not None},
            **kwargs,
        )

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)


def issue_token(engine: Engine, org_id: int, scope: Scope = Scope.SCIM) -> str:
    """A new committed credential of ``org_id``; returns the token."""
    with make_session_factory(engine)() as session:
        _credential_id, token = create_credential(session, org_id, scope)
        session.commit()
    return token


def new_organization(engine: Engine) -> int:
    """A new committed organization with a unique name; returns its id."""
    with make_session_factory(engine)() as session:
        organization = create_organization(session, f"org-{uuid.uuid4().hex[:12]}")
        session.commit()
        return organization.id


@pytest.fixture
def app_factory(database_url: str, engine: Engine) -> Iterator[Callable[..., Flask]]:
    """Builds apps on the test database with setting overrides: ``app_factory(max_page_size=5)``.

    Rate limiting is off unless a test sets it: scenario tests send bursts.
    """
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        overrides.setdefault("rate_limit_per_minute", 0)
        built = _create_app(database_url=database_url, engine=engine, **overrides)
        built.config["TESTING"] = True
        apps.append(built)
        return built

    yield build
    for built in apps:
        recorder = request_recorder(built)
        if recorder is not None:
            recorder.close()
        app_state(built).close()


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def scim_token(engine: Engine, org_id: int) -> str:
    """A SCIM credential of this test's organization."""
    return issue_token(engine, org_id)


@pytest.fixture
def scim(client: FlaskClient, scim_token: str) -> ScimClient:
    """This test's organization's IdP, speaking SCIM."""
    return ScimClient(client, scim_token)


@pytest.fixture
def other_org_id(engine: Engine) -> int:
    """A second fresh organization, for tenant-isolation scenarios."""
    return new_organization(engine)


@pytest.fixture
def other_org_scim(client: FlaskClient, engine: Engine, other_org_id: int) -> ScimClient:
    """The IdP of another organization, on the same app."""
    return ScimClient(client, issue_token(engine, other_org_id))


@pytest.fixture
def idp(scim: ScimClient) -> Idp:
    """This test's organization's IdP, pushing users, groups and memberships."""
    return Idp(scim)


@pytest.fixture
def hub(engine: Engine, org_id: int) -> Hub:
    """IT of this test's organization (no mapping applied yet)."""
    return Hub(engine, org_id)


@pytest.fixture
def access_token(engine: Engine, org_id: int) -> str:
    """An ``access`` credential of this test's organization, as a Hub product holds."""
    return issue_token(engine, org_id, Scope.ACCESS)


@pytest.fixture
def product(client: FlaskClient, access_token: str) -> AccessApi:
    """PSA (or any Hub product) of this test's organization, calling ``/api/v1``."""
    return AccessApi(client, access_token)


@pytest.fixture
def other_org_idp(other_org_scim: ScimClient) -> Idp:
    """The IdP of another organization, pushing into the same app."""
    return Idp(other_org_scim)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Runs ``hub-scim`` commands in-process, with no ``HUB_SCIM_*`` variable of the caller."""
    for name in list(os.environ):
        if name.startswith("HUB_SCIM_"):
            monkeypatch.delenv(name)
    return CliRunner()


@pytest.fixture
def org_name(engine: Engine, org_id: int) -> str:
    """The name of this test's organization, for ``--org``."""
    with make_session_factory(engine)() as session:
        organization = session.get(Organization, org_id)
        assert organization is not None
        return organization.name


@pytest.fixture
def hub_scim(runner: CliRunner, cli_database_url: str) -> Callable[..., Result]:
    """``hub-scim ARGS...`` against the test database."""

    def run(*args: str) -> Result:
        return runner.invoke(cli, [*args, "--database-url", cli_database_url])

    return run
