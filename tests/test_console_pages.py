"""The console's pages as IT uses them: people, grants, credentials, products, the audit trail."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from connector.db.base import utcnow
from connector.db.engine import make_session_factory
from connector.tenancy.credentials import Scope, authenticate, find_credential
from connector.trail.audit import AuditEntry
from connector.web.request_logging import request_recorder
from tests.fixtures_console import ConsoleOrg, add_user, csrf_of, sign_in


def owner(console_app: Flask, org: ConsoleOrg) -> FlaskClient:
    client = console_app.test_client()
    assert sign_in(client, org, "ada@acme.example").status_code == 302
    return client


def test_people_are_searched_and_paged(console_app: Flask, console_org: ConsoleOrg) -> None:
    for index in range(60):
        add_user(console_org.scim, f"tech{index:02d}@acme.example")
    client = owner(console_app, console_org)
    first = client.get(console_org.path("/people")).get_data(as_text=True)
    assert "65 user(s); page 1." in first
    assert "ada@acme.example" in first
    assert "Next" in first
    second = client.get(console_org.path("/people?page=2")).get_data(as_text=True)
    assert ">tech59@acme.example</a>" in second
    assert ">ada@acme.example</a>" not in second
    found = client.get(console_org.path("/people?q=TECH5")).get_data(as_text=True)
    assert "10 user(s)" in found
    assert "bob@acme.example" not in found
    inactive = client.get(console_org.path("/people?status=inactive")).get_data(as_text=True)
    assert "erin@acme.example" in inactive
    assert "1 user(s)" in inactive


def test_a_manual_grant_from_the_console_is_the_clis_service_with_the_console_actor(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "bob@acme.example")  # an Admin may grant
    carol = console_org.users["carol@acme.example"]
    answer = client.post(
        console_org.path(f"/people/{carol}/grant"),
        data={
            "product": "psa",
            "roles": "technician",
            "permissions": "psa.tickets.read, psa.tickets.create",
            "csrf_token": csrf_of(client, console_org),
        },
    )
    assert answer.status_code == 302
    page = client.get(console_org.path(f"/people/{carol}")).get_data(as_text=True)
    assert "Dormant (product not subscribed)" in page
    assert "psa.tickets.create, psa.tickets.read" in page
    assert "manual grant" in page
    assert "grant.manual_granted" in page  # the user's recent audit entries
    with make_session_factory(engine)() as session:
        actor = session.scalar(
            select(AuditEntry.actor).where(
                AuditEntry.org_id == console_org.org_id,
                AuditEntry.action == "grant.manual_granted",
            )
        )
    assert actor == "console:bob@acme.example"
    bad = client.post(
        console_org.path(f"/people/{carol}/grant"),
        data={
            "product": "psa",
            "permissions": "psa.tickets.teleport",
            "csrf_token": csrf_of(client, console_org),
        },
    )
    assert bad.status_code == 200
    assert "psa.tickets.teleport" in bad.get_data(as_text=True)


def test_a_new_token_is_shown_once_and_rotation_retires_the_old_within_a_day(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = owner(console_app, console_org)
    created = client.post(
        console_org.path("/connection/credentials"),
        data={"scope": "scim", "label": "okta", "csrf_token": csrf_of(client, console_org)},
    )
    page = created.get_data(as_text=True)
    secret = re.search(r'<pre id="secret">(hubscim_[^<]+)</pre>', page)
    assert secret is not None
    token = secret.group(1)
    assert token not in client.get(console_org.path("/connection")).get_data(as_text=True)
    with make_session_factory(engine)() as session:
        assert authenticate(session, token, Scope.SCIM) == console_org.org_id
        credential_id = session.scalar(
            select(AuditEntry.target)
            .where(
                AuditEntry.org_id == console_org.org_id, AuditEntry.action == "credential.created"
            )
            .order_by(AuditEntry.id.desc())
        )
    assert credential_id is not None
    rotated = client.post(
        console_org.path(f"/connection/credentials/{credential_id.split(':')[1]}/rotate"),
        data={"csrf_token": csrf_of(client, console_org)},
    ).get_data(as_text=True)
    fresh = re.search(r'<pre id="secret">(hubscim_[^<]+)</pre>', rotated)
    assert fresh is not None
    assert "keeps working until" in rotated
    with make_session_factory(engine)() as session:
        # The IdP keeps working on the old token while IT pastes the new one.
        assert authenticate(session, token, Scope.SCIM) == console_org.org_id
        assert authenticate(session, fresh.group(1), Scope.SCIM) == console_org.org_id
        old = find_credential(session, token)
        assert old is not None
        assert old.expires_at is not None
        assert old.expires_at - utcnow() <= timedelta(hours=24)


def test_products_are_set_by_the_owner(console_app: Flask, console_org: ConsoleOrg) -> None:
    client = owner(console_app, console_org)
    answer = client.post(
        console_org.path("/products/psa"),
        data={"state": "active", "csrf_token": csrf_of(client, console_org)},
    )
    text = answer.get_data(as_text=True)
    assert "psa is now active" in text
    assert "<strong>active</strong>" in text


def test_the_audit_trail_is_filtered_and_exported_by_owners(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = owner(console_app, console_org)
    page = client.get(
        console_org.path("/audit"), query_string={"actor": "console:ada@acme.example"}
    ).get_data(as_text=True)
    assert "console.signed_in" in page
    assert "user.created" not in page
    wildcard = client.get(
        console_org.path("/audit"), query_string={"action": "mapping.*"}
    ).get_data(as_text=True)
    assert "mapping.applied" in wildcard
    assert "console.signed_in" not in wildcard
    exported = client.get(console_org.path("/audit/export.csv"), query_string={"action": "user.*"})
    assert exported.status_code == 200
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert rows
    assert all(row["action"].startswith("user.") for row in rows)
    lines = client.get(console_org.path("/audit/export.jsonl")).get_data(as_text=True).splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries[0]["id"] < entries[-1]["id"]
    assert {"id", "at", "actor", "action", "target", "before", "after", "reason"} <= set(entries[0])
    later = client.get(console_org.path("/audit"), query_string={"action": "audit.exported"})
    assert "audit.exported" in later.get_data(as_text=True)


def test_the_overview_shows_health_and_the_connection(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    recorder = request_recorder(console_app)
    assert recorder is not None
    recorder.flush()
    client = owner(console_app, console_org)
    page = client.get(console_org.path("/")).get_data(as_text=True)
    assert "Healthy: nothing needs attention." in page
    assert 'id="idp-silent"' not in page  # the IdP wrote just now
    assert "Provisioning log</a>" in page
    assert "PATCH /scim/v2/Users/" in page  # the credential's last request, from the log


def test_the_provisioning_log_shows_failed_requests_by_user(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    duplicate = console_org.scim.post(
        "/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "carol@acme.example",
        },
    )
    assert duplicate.status_code == 409
    recorder = request_recorder(console_app)
    assert recorder is not None
    recorder.flush()
    client = owner(console_app, console_org)
    everything = client.get(console_org.path("/log")).get_data(as_text=True)
    assert "PATCH /scim/v2/Users/" in everything
    failed = client.get(console_org.path("/log"), query_string={"failed": "1"})
    text = failed.get_data(as_text=True)
    assert "uniqueness" in text
    assert "PATCH /scim/v2/Users/" not in text
    erin = client.get(
        console_org.path("/log"), query_string={"user": "ERIN@acme.example"}
    ).get_data(as_text=True)
    assert f"PATCH /scim/v2/Users/{console_org.users['erin@acme.example']}" in erin
    assert "/Groups" not in erin.split('id="requests"')[1]
