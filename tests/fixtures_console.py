"""The console's fixtures: a real OpenID provider on loopback, an organization's staff, sign-in.

``oidc_issuer`` runs ``oidc-provider-mock`` (Authlib's authorization server)
on a loopback port for the whole session. ``console_org`` provisions staff
over SCIM (an Owner, an Admin, a Member, a Viewer, a deactivated user),
applies a mapping, and registers the console's OIDC app for the organization;
``sign_in(client, login)`` walks the whole authorization code flow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from oidc_provider_mock import run_server_in_thread
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from connector.admin.mappings import apply_mapping
from connector.admin.sso import set_sso
from connector.db.engine import make_session_factory
from connector.tenancy.tables import Organization
from tests.fixtures_app import ScimClient, issue_token

SECRET_KEY = "console-test-key-" + "k" * 32
CLIENT_ID = "hub-console"
MAPPING = """\
default_role = "member"
client_domains = ["clients.example"]

[[rules]]
group = "Hub Owners"
role = "owner"

[[rules]]
group = "Hub Admins"
role = "admin"

[[rules]]
group = "Hub Viewers"
role = "viewer"
"""
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[str]:
    with run_server_in_thread(port=0) as server:
        yield f"http://localhost:{server.server_port}"


@dataclass
class ConsoleOrg:
    org_id: int
    name: str
    scim: ScimClient
    users: dict[str, str]  # userName -> id
    groups: dict[str, str]  # displayName -> id

    def path(self, rest: str = "/") -> str:
        return f"/admin/{self.name}{rest}"


def add_user(scim: ScimClient, user_name: str, **extra: Any) -> str:
    response = scim.post(
        "/Users",
        json={
            "schemas": [USER_SCHEMA],
            "userName": user_name,
            "active": True,
            "emails": [{"value": user_name, "type": "work", "primary": True}],
            **extra,
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    user_id: str = response.get_json()["id"]
    return user_id


def add_group(scim: ScimClient, name: str, members: list[str]) -> str:
    response = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": [{"value": member} for member in members],
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    group_id: str = response.get_json()["id"]
    return group_id


@pytest.fixture
def console_app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory(secret_key=SECRET_KEY)


@pytest.fixture
def console_org(console_app: Flask, engine: Engine, org_id: int, oidc_issuer: str) -> ConsoleOrg:
    """Acme's staff: ada (Owner), bob (Admin), carol (Member), dave (Viewer), erin (left)."""
    scim = ScimClient(console_app.test_client(), issue_token(engine, org_id))
    users = {
        name: add_user(scim, name)
        for name in (
            "ada@acme.example",
            "bob@acme.example",
            "carol@acme.example",
            "dave@acme.example",
            "erin@acme.example",
        )
    }
    groups = {
        "Hub Owners": add_group(scim, "Hub Owners", [users["ada@acme.example"]]),
        "Hub Admins": add_group(scim, "Hub Admins", [users["bob@acme.example"]]),
        "Hub Viewers": add_group(scim, "Hub Viewers", [users["dave@acme.example"]]),
        "PSA Technicians": add_group(scim, "PSA Technicians", [users["carol@acme.example"]]),
    }
    deactivate = scim.patch(
        f"/Users/{users['erin@acme.example']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    assert deactivate.status_code == 200
    with make_session_factory(engine)() as session:
        apply_mapping(session, org_id, MAPPING, actor="test", dry_run=False)
        set_sso(
            session,
            org_id,
            issuer=oidc_issuer,
            client_id=CLIENT_ID,
            client_secret="console-secret",
            secret_key=SECRET_KEY,
            actor="test",
        )
        name = session.get_one(Organization, org_id).name
        session.commit()
    return ConsoleOrg(org_id, name, scim, users, groups)


def at_idp(location: str, login: str, **claims: object) -> None:
    """The provider's record of ``login``: a verified email unless ``claims`` say otherwise."""
    issuer = f"{urlsplit(location).scheme}://{urlsplit(location).netloc}"
    record = {"email": login, "email_verified": True, **claims}
    answer = requests.put(f"{issuer}/users/{login}", json=record, timeout=10)
    assert answer.status_code == 204, answer.text


def authorize_at_idp(location: str, login: str, **claims: object) -> str:
    """The person ``login`` signs in at the provider; returns the callback path and query."""
    at_idp(location, login, **claims)
    answer = requests.post(location, data={"sub": login}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return f"{back.path}?{back.query}"


def sign_in(client: FlaskClient, org: ConsoleOrg, login: str) -> TestResponse:
    """The whole authorization code flow; returns the console's answer to the callback."""
    started = client.get(org.path("/login"))
    assert started.status_code == 302, started.get_data(as_text=True)
    return client.get(authorize_at_idp(started.headers["Location"], login))


def csrf_of(client: FlaskClient, org: ConsoleOrg, page: str = "/me") -> str:
    """The CSRF token of a form of ``page`` (as a browser would send it back)."""
    html = client.get(org.path(page)).get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
