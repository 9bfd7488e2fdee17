"""``hub-scim sso`` and ``hub-scim console link``, and the credential commands' audit entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.pool import NullPool

from connector.admin.sso import open_client_secret
from connector.cli.main import cli
from connector.db.engine import make_engine, make_session_factory
from connector.tenancy.console import ConsoleSso
from connector.tenancy.sealing import SealingError
from connector.trail.audit import AuditEntry

KEY = "a-console-key-of-more-than-32-characters!"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in list(os.environ):
        if name.startswith("HUB_SCIM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_SCIM_SECRET_KEY", KEY)
    monkeypatch.setenv("HUB_SCIM_PUBLIC_BASE_URL", "https://scim.acme.example")
    return CliRunner()


@pytest.fixture
def url(runner: CliRunner, tmp_path: Path) -> str:
    database = f"sqlite:///{tmp_path / 'hub-scim.db'}"
    assert runner.invoke(cli, ["db", "upgrade", "--database-url", database]).exit_code == 0
    assert hub_scim(runner, database, "org", "create", "acme").exit_code == 0
    return database


def hub_scim(runner: CliRunner, url: str, *args: str) -> Result:
    return runner.invoke(cli, [*args, "--database-url", url])


def audit_actions(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with make_session_factory(engine)() as session:
            return [
                (row.actor, row.action)
                for row in session.execute(
                    select(AuditEntry.actor, AuditEntry.action).order_by(AuditEntry.id)
                )
            ]
    finally:
        engine.dispose()


def test_sso_set_prints_the_redirect_uri_and_seals_the_secret(runner: CliRunner, url: str) -> None:
    result = hub_scim(
        runner,
        url,
        "sso", "set", "--org", "acme",
        "--issuer", "https://acme.okta.com/",
        "--client-id", "0oa1console",
        "--client-secret", "the-client-secret",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "https://scim.acme.example/admin/acme/callback" in result.output
    assert "the-client-secret" not in result.output
    shown = hub_scim(runner, url, "sso", "show", "--org", "acme")
    assert shown.exit_code == 0
    assert "Issuer:        https://acme.okta.com" in shown.output
    assert "0oa1console" in shown.output
    assert "the-client-secret" not in shown.output
    engine = make_engine(url, poolclass=NullPool)
    try:
        with make_session_factory(engine)() as session:
            row = session.scalars(select(ConsoleSso)).one()
            assert "the-client-secret" not in row.client_secret_sealed
            assert open_client_secret(session, row.org_id, KEY) == "the-client-secret"
            with pytest.raises(SealingError):
                open_client_secret(session, row.org_id, "another-key-of-more-than-32-characters")
    finally:
        engine.dispose()
    assert audit_actions(url)[-1][1] == "console.sso_set"


def test_sso_set_needs_the_key_and_an_https_issuer(
    runner: CliRunner, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = hub_scim(
        runner, url, "sso", "set", "--org", "acme", "--issuer", "http://idp.example",
        "--client-id", "c", "--client-secret", "s",
    )  # fmt: skip
    assert plain.exit_code == 1
    assert "https://" in plain.output
    monkeypatch.delenv("HUB_SCIM_SECRET_KEY")
    keyless = hub_scim(
        runner, url, "sso", "set", "--org", "acme", "--issuer", "https://idp.example",
        "--client-id", "c", "--client-secret", "s",
    )  # fmt: skip
    assert keyless.exit_code == 1
    assert "HUB_SCIM_SECRET_KEY" in keyless.output
    assert hub_scim(runner, url, "sso", "show", "--org", "acme").exit_code == 1


def test_console_link_prints_a_one_time_url_and_is_audited(runner: CliRunner, url: str) -> None:
    result = hub_scim(runner, url, "console", "link", "--org", "acme")
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert link.startswith("https://scim.acme.example/admin/acme/link?token=")
    assert audit_actions(url)[-1][1] == "console.link_issued"


def test_credential_commands_are_audited_and_rotate_replaces_the_token(
    runner: CliRunner, url: str
) -> None:
    created = hub_scim(runner, url, "token", "create", "--org", "acme", "--label", "okta")
    assert created.exit_code == 0
    credential_id = created.output.split("credential ")[1].split(" ")[0]
    rotated = hub_scim(runner, url, "token", "rotate", "--org", "acme", credential_id)
    assert rotated.exit_code == 0, rotated.output
    new_token = rotated.output.strip().splitlines()[-1]
    assert new_token.startswith("hubscim_")
    listed = hub_scim(runner, url, "token", "list", "--org", "acme").output
    assert listed.count("okta") == 2
    client = hub_scim(runner, url, "client", "create", "--org", "acme")
    client_id = client.output.split("Client id:")[1].split()[0]
    assert hub_scim(runner, url, "client", "revoke", "--org", "acme", client_id).exit_code == 0
    actions = [action for _actor, action in audit_actions(url)]
    assert "keeps working until" in rotated.output
    assert actions == [
        "credential.created",
        "credential.created",
        "credential.rotated",
        "oauth_client.created",
        "oauth_client.revoked",
    ]
    assert all(actor.startswith("cli") for actor, _action in audit_actions(url))
