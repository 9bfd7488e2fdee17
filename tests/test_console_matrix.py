"""The role matrix over HTTP, row by row, both ways: what each role may do in the console.

Owner, Admin, Member and Viewer each sign in with the IdP and try every
console route. An allowed route answers; a refused one answers 403 with the
rule, changes nothing and is audited (docs/rules.md, roles and permission matrix).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from connector.access.roles import ItAction, Role, may
from connector.console.guard import view_action
from connector.db.engine import make_session_factory
from connector.derived.tables import ManualGrant, MappingDocument, ProductStateRow
from connector.tenancy.tables import Credential
from connector.trail.audit import AuditEntry
from tests.fixtures_console import MAPPING, ConsoleOrg, csrf_of, sign_in


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    action: ItAction
    form: dict[str, str] = field(default_factory=dict)


def routes(org: ConsoleOrg) -> list[Route]:
    carol = org.users["carol@acme.example"]
    ada = org.users["ada@acme.example"]
    return [
        Route("GET", "/people", ItAction.MANAGE_USERS),
        Route("GET", f"/people/{ada}", ItAction.MANAGE_USERS),
        Route("GET", "/owners", ItAction.MANAGE_USERS),
        Route(
            "POST",
            f"/people/{carol}/grant",
            ItAction.GRANT_PRODUCT_ACCESS,
            {"product": "psa", "permissions": "psa.tickets.read"},
        ),
        Route("POST", f"/people/{carol}/revoke", ItAction.GRANT_PRODUCT_ACCESS, {"product": "psa"}),
        Route("GET", "/mapping", ItAction.VIEW_MAPPING),
        Route("POST", "/mapping/preview", ItAction.MANAGE_ROLES, {"source": MAPPING}),
        Route(
            "POST", "/mapping/apply", ItAction.MANAGE_ROLES, {"source": MAPPING, "fingerprint": "0"}
        ),
        Route("GET", "/products", ItAction.VIEW_PRODUCTS),
        Route("POST", "/products/psa", ItAction.ENABLE_PRODUCTS, {"state": "trial"}),
        Route("GET", "/connection", ItAction.VIEW_CONNECTION),
        Route("POST", "/connection/credentials", ItAction.MANAGE_CONNECTION, {"scope": "scim"}),
        Route("POST", "/connection/clients", ItAction.MANAGE_CONNECTION, {"label": "entra"}),
        Route("GET", "/audit", ItAction.VIEW_AUDIT),
        Route("GET", "/log", ItAction.VIEW_HEALTH),
        Route("GET", "/audit/export.csv", ItAction.EXPORT_AUDIT),
        Route("GET", "/audit/export.jsonl", ItAction.EXPORT_AUDIT),
    ]


def state_of(engine: Engine, org_id: int) -> tuple[int, ...]:
    """What a refused action must leave alone."""
    with make_session_factory(engine)() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table).where(table.org_id == org_id))
            or 0
            for table in (Credential, ManualGrant, ProductStateRow, MappingDocument)
        )


def refusals(engine: Engine, org_id: int, actor: str) -> int:
    with make_session_factory(engine)() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(
                    AuditEntry.org_id == org_id,
                    AuditEntry.actor == actor,
                    AuditEntry.action == "console.refused",
                )
            )
            or 0
        )


def send(client: FlaskClient, org: ConsoleOrg, route: Route) -> int:
    if route.method == "GET":
        return client.get(org.path(route.path)).status_code
    data = {**route.form, "csrf_token": csrf_of(client, org)}
    return client.post(org.path(route.path), data=data).status_code


@pytest.mark.parametrize(
    ("login", "role"),
    [
        ("ada@acme.example", Role.OWNER),
        ("bob@acme.example", Role.ADMIN),
        ("carol@acme.example", Role.MEMBER),
        ("dave@acme.example", Role.VIEWER),
    ],
)
def test_each_role_may_do_exactly_its_rows_of_the_matrix(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine, login: str, role: Role
) -> None:
    client = console_app.test_client()
    assert sign_in(client, console_org, login).status_code == 302
    actor = f"console:{login}"
    for route in routes(console_org):
        before_state = state_of(engine, console_org.org_id)
        before_refusals = refusals(engine, console_org.org_id, actor)
        status = send(client, console_org, route)
        if may(role, route.action):
            assert status != 403, (role, route)
            assert status < 500, (role, route)
        else:
            assert status == 403, (role, route)
            assert state_of(engine, console_org.org_id) == before_state, (role, route)
            assert refusals(engine, console_org.org_id, actor) == before_refusals + 1


def test_a_refusal_names_the_rule(console_app: Flask, console_org: ConsoleOrg) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "bob@acme.example")
    answer = client.get(console_org.path("/audit/export.csv"))
    assert answer.status_code == 403
    assert "Admin may not export audit: only Owners may" in answer.get_data(as_text=True)


def test_members_and_viewers_see_their_own_access_only(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "carol@acme.example")
    overview = client.get(console_org.path("/"))
    assert overview.status_code == 302
    assert overview.headers["Location"].endswith("/me")
    mine = client.get(console_org.path("/me"))
    assert "carol@acme.example" in mine.get_data(as_text=True)
    own = client.get(console_org.path(f"/people/{console_org.users['carol@acme.example']}"))
    assert own.status_code == 200
    other = client.get(console_org.path(f"/people/{console_org.users['ada@acme.example']}"))
    assert other.status_code == 403


def test_every_console_route_declares_its_rule_or_is_open_to_every_signed_in_role(
    console_app: Flask,
) -> None:
    # Routes any signed-in role may reach, each checking what it shows itself.
    open_to_all = {
        "console.overview",  # Members and Viewers are sent to their own access
        "console.me",
        "console.person",  # one's own page, else MANAGE_USERS
        "console.logout",
        "console.login",
        "console.callback",
        "console.link",
        "console.link_use",
        "console.static",
    }
    for rule in console_app.url_map.iter_rules():
        if not rule.endpoint.startswith("console."):
            continue
        view = console_app.view_functions[rule.endpoint]
        assert view_action(view) is not None or rule.endpoint in open_to_all, rule.endpoint
