"""Console sessions follow the directory: a leaver's dies at once, a role change shows at once."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import Engine, select

from connector.db.engine import make_session_factory
from connector.tenancy.console import ConsoleSession
from connector.tenancy.credentials import find_credential
from tests.fixtures_app import ScimClient
from tests.fixtures_console import ConsoleOrg, add_user, csrf_of, sign_in

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_a_leavers_session_dies_on_the_very_next_request(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "bob@acme.example")
    assert client.get(console_org.path("/people")).status_code == 200
    okta = console_org.scim.patch(
        f"/Users/{console_org.users['bob@acme.example']}",
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert okta.status_code == 200
    after = client.get(console_org.path("/people"))
    assert after.status_code == 302
    assert "/login" in after.headers["Location"]
    assert "deactivated" in after.headers["Location"]
    # Reactivated by the IdP, the old session stays dead: a new sign-in is needed.
    console_org.scim.patch(
        f"/Users/{console_org.users['bob@acme.example']}",
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": True}}]},
    )
    assert client.get(console_org.path("/people")).status_code == 302


def test_a_deleted_users_session_dies_too(console_app: Flask, console_org: ConsoleOrg) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "carol@acme.example")
    assert client.get(console_org.path("/me")).status_code == 200
    deleted = console_org.scim.delete(f"/Users/{console_org.users['carol@acme.example']}")
    assert deleted.status_code == 204
    assert client.get(console_org.path("/me")).status_code == 302


def test_a_role_change_applies_on_the_next_page(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "carol@acme.example")
    assert client.get(console_org.path("/people")).status_code == 403
    joined = console_org.scim.patch(
        f"/Groups/{console_org.groups['Hub Admins']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {
                    "op": "add",
                    "path": "members",
                    "value": [{"value": console_org.users["carol@acme.example"]}],
                }
            ],
        },
    )
    assert joined.status_code in (200, 204)
    assert client.get(console_org.path("/people")).status_code == 200
    page = client.get(console_org.path("/me")).get_data(as_text=True)
    assert "<strong>Admin</strong>" in page


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    for token in (None, "forged"):
        data = {"state": "active"} if token is None else {"state": "active", "csrf_token": token}
        answer = client.post(console_org.path("/products/psa"), data=data)
        assert answer.status_code == 400
    products = client.get(console_org.path("/products")).get_data(as_text=True)
    assert "<strong>not_subscribed</strong>" in products
    # Another browser's token does not work in this one.
    other = console_app.test_client()
    sign_in(other, console_org, "ada@acme.example")
    foreign = csrf_of(other, console_org)
    refused = client.post(
        console_org.path("/products/psa"), data={"state": "active", "csrf_token": foreign}
    )
    assert refused.status_code == 400


def test_security_headers_on_every_page(console_app: Flask, console_org: ConsoleOrg) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    for path in ("/", "/people", "/login?signed_out=1"):
        answer = client.get(console_org.path(path))
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "same-origin"
        assert answer.headers["Cache-Control"] == "no-store"


def test_another_organizations_ids_answer_404(
    console_app: Flask, console_org: ConsoleOrg, other_org_scim: ScimClient, engine: Engine
) -> None:
    stranger = add_user(other_org_scim, "olga@other.example")
    assert other_org_scim.token is not None
    with make_session_factory(engine)() as session:
        found = find_credential(session, other_org_scim.token)
        assert found is not None
        other_credential = found.id
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    assert client.get(console_org.path(f"/people/{stranger}")).status_code == 404
    token = csrf_of(client, console_org)
    grant = client.post(
        console_org.path(f"/people/{stranger}/grant"),
        data={"product": "psa", "permissions": "psa.tickets.read", "csrf_token": token},
    )
    assert grant.status_code == 404
    for action in ("rotate", "revoke"):
        answer = client.post(
            console_org.path(f"/connection/credentials/{other_credential}/{action}"),
            data={"csrf_token": token},
        )
        assert answer.status_code == 404
    assert other_org_scim.get("/Users").status_code == 200  # still usable
    assert client.get("/admin/no-such-org/").status_code == 404


def test_a_session_of_one_organization_opens_no_other(
    console_app: Flask, console_org: ConsoleOrg, engine: object, other_org_id: int
) -> None:
    from sqlalchemy import Engine

    from connector.db.engine import make_session_factory
    from connector.tenancy.tables import Organization

    assert isinstance(engine, Engine)
    with make_session_factory(engine)() as session:
        other_name = session.get_one(Organization, other_org_id).name
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    answer = client.get(f"/admin/{other_name}/people")
    assert answer.status_code == 302
    assert f"/admin/{other_name}/login" in answer.headers["Location"]


def test_the_cookie_is_secure_over_https(console_app: Flask, console_org: ConsoleOrg) -> None:
    client = console_app.test_client()
    started = client.get(console_org.path("/login"), base_url="https://localhost")
    assert "Secure" in started.headers["Set-Cookie"]
    plain = console_app.test_client().get(console_org.path("/login"))
    assert "Secure" not in plain.headers["Set-Cookie"]


def _age_sessions(engine: Engine, org_id: int, **moved_back: timedelta) -> None:
    """Move the organization's open sessions back in time, as if the clock had run on."""
    with make_session_factory(engine)() as db:
        for record in db.scalars(
            select(ConsoleSession).where(
                ConsoleSession.org_id == org_id, ConsoleSession.ended_at.is_(None)
            )
        ):
            for column, delta in moved_back.items():
                setattr(record, column, getattr(record, column) - delta)
        db.commit()


def test_a_session_left_idle_too_long_ends(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "bob@acme.example")
    assert client.get(console_org.path("/people")).status_code == 200

    _age_sessions(engine, console_org.org_id, last_seen_at=timedelta(hours=2))
    after = client.get(console_org.path("/people"))

    assert after.status_code == 302
    assert "/login" in after.headers["Location"]
    assert client.get(console_org.path("/people")).status_code == 302


def test_a_session_ends_at_its_lifetime_however_busy(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "bob@acme.example")
    assert client.get(console_org.path("/people")).status_code == 200

    # Used a moment ago, but begun past its lifetime.
    _age_sessions(engine, console_org.org_id, expires_at=timedelta(hours=9))
    after = client.get(console_org.path("/people"))

    assert after.status_code == 302
    assert "/login" in after.headers["Location"]
