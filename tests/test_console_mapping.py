"""The console's Mapping page: the CLI's preview, applied as previewed, refused when stale."""

from __future__ import annotations

import html
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select

from connector.admin.mappings import apply_mapping
from connector.db.engine import make_session_factory
from connector.derived.queries import user_access
from connector.trail.audit import AuditEntry
from tests.fixtures_console import MAPPING, ConsoleOrg, csrf_of, sign_in

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TECHNICIANS_ADMIN = (
    MAPPING
    + """
[[rules]]
group = "PSA Technicians"
role = "admin"
"""
)


def preview(client: FlaskClient, org: ConsoleOrg, source: str) -> tuple[int, str]:
    token = csrf_of(client, org, "/mapping")
    answer = client.post(org.path("/mapping/preview"), data={"source": source, "csrf_token": token})
    return answer.status_code, answer.get_data(as_text=True)


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, name
    return html.unescape(found.group(1))


def role_of(engine: Engine, org: ConsoleOrg, login: str) -> str | None:
    with make_session_factory(engine)() as session:
        role: str | None = user_access(session, org.org_id, org.users[login])["role"]
        return role


def test_the_preview_is_exactly_the_clis_dry_run(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    status, page = preview(client, console_org, TECHNICIANS_ADMIN)
    assert status == 200
    shown = re.search(r'<pre id="preview-text">(.*?)</pre>', page, re.S)
    assert shown is not None
    # What `hub-scim mapping apply --dry-run` prints: the service's preview text.
    with make_session_factory(engine)() as session:
        printed = apply_mapping(
            session, console_org.org_id, TECHNICIANS_ADMIN, actor="cli:it", dry_run=True
        ).to_text()
        session.rollback()
    assert html.unescape(shown.group(1)) == printed
    assert "carol@acme.example: role member -> admin" in printed


def test_the_owner_applies_the_preview_and_the_audit_trail_names_them(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    _status, page = preview(client, console_org, TECHNICIANS_ADMIN)
    assert (
        role_of(engine, console_org, "carol@acme.example") == "member"
    )  # a preview writes nothing
    applied = client.post(
        console_org.path("/mapping/apply"),
        data={
            "source": TECHNICIANS_ADMIN,
            "fingerprint": hidden(page, "fingerprint"),
            "csrf_token": hidden(page, "csrf_token"),
        },
    )
    assert applied.status_code == 200
    assert "Mapping applied." in applied.get_data(as_text=True)
    assert role_of(engine, console_org, "carol@acme.example") == "admin"
    with make_session_factory(engine)() as session:
        actors = session.scalars(
            select(AuditEntry.actor).where(
                AuditEntry.org_id == console_org.org_id, AuditEntry.action == "mapping.applied"
            )
        ).all()
    assert actors[-1] == "console:ada@acme.example"


def test_apply_is_refused_when_the_directory_changed_since_the_preview(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    _status, page = preview(client, console_org, TECHNICIANS_ADMIN)
    # Meanwhile Okta adds dave to the technicians: applying now would do more than shown.
    console_org.scim.patch(
        f"/Groups/{console_org.groups['PSA Technicians']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {
                    "op": "add",
                    "path": "members",
                    "value": [{"value": console_org.users["dave@acme.example"]}],
                }
            ],
        },
    )
    refused = client.post(
        console_org.path("/mapping/apply"),
        data={
            "source": TECHNICIANS_ADMIN,
            "fingerprint": hidden(page, "fingerprint"),
            "csrf_token": hidden(page, "csrf_token"),
        },
    )
    text = refused.get_data(as_text=True)
    assert 'id="outdated"' in text
    assert "dave@acme.example: role viewer -&gt; admin" in text  # the new preview
    assert role_of(engine, console_org, "carol@acme.example") == "member"
    assert role_of(engine, console_org, "dave@acme.example") == "viewer"


def test_a_bad_file_shows_each_problem_at_its_line_and_changes_nothing(
    console_app: Flask, console_org: ConsoleOrg, engine: Engine
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    bad = 'default_role = "member"\n\n[[rules]]\ngroup = "Hub Owners"\nrole = "emperor"\n'
    status, page = preview(client, console_org, bad)
    assert status == 422
    assert "line 5: rule 1: unknown role &#34;emperor&#34;" in page or "line 5:" in page
    assert 'class="bad-line" value="5"' in page
    assert role_of(engine, console_org, "ada@acme.example") == "owner"


def test_an_admin_sees_the_mapping_but_no_editor(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "bob@acme.example")
    page = client.get(console_org.path("/mapping")).get_data(as_text=True)
    assert "Hub Owners" in page
    assert 'id="preview"' not in page
    token = csrf_of(client, console_org, "/mapping")
    assert (
        client.post(
            console_org.path("/mapping/apply"),
            data={"source": TECHNICIANS_ADMIN, "fingerprint": "x", "csrf_token": token},
        ).status_code
        == 403
    )


def test_the_preview_shows_who_a_condition_moves(
    console_app: Flask, console_org: ConsoleOrg
) -> None:
    client = console_app.test_client()
    sign_in(client, console_org, "ada@acme.example")
    by_profile = (
        MAPPING + '\n[[rules]]\nwhen = \'userName eq "carol@acme.example"\'\nrole = "admin"\n'
    )

    status, page = preview(client, console_org, by_profile)

    assert status == 200
    row = re.search(r"<tr><td>carol@acme.example</td>.*?</tr>", page, re.S)
    assert row is not None
    assert 'class="condition">rule ' in row.group(0)
    assert "when userName eq &#34;carol@acme.example&#34;" in row.group(0)
    assert "(moved by rule" in html.unescape(page)
