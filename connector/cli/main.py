"""The ``hub-scim`` command line: serve, organizations, credentials, database.

Every command takes ``--database-url`` (else ``HUB_SCIM_DATABASE_URL``, else
the SQLite default of :mod:`connector.settings`). A failure prints one line
starting with ``Error:`` and exits non-zero, without a traceback
(:mod:`connector.cli.common`). Other parts of Hub define their command groups
in their own modules, with :mod:`connector.cli.common`, and are added to
:data:`cli` at the end of this file.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click
from sqlalchemy.pool import NullPool

from connector.admin.credentials import (
    create_oauth_client,
    issue_credential,
    revoke,
    rotate_credential,
)
from connector.cli.access import ACCESS_COMMANDS, _actor
from connector.cli.common import (
    command_session,
    command_settings,
    database_url_option,
    handle_errors,
    public_origin,
    redacted,
)
from connector.cli.console import CONSOLE_COMMANDS
from connector.cli.lifecycle import LIFECYCLE_COMMANDS
from connector.cli.request_log import LOG_COMMANDS
from connector.db.engine import make_engine, make_session_factory
from connector.db.migrations import upgrade_database
from connector.settings import Settings, data_directory
from connector.tenancy.credentials import Scope, list_credentials
from connector.tenancy.oauth import TOKEN_PATH
from connector.tenancy.organizations import (
    Bootstrap,
    bootstrap_first_start,
    create_organization,
    get_organization,
    list_organizations,
)
from connector.web.server import HubScimServer

SCIM_PATH = "/scim/v2"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hub-scim", prog_name="hub-scim")
def cli() -> None:
    """Hub's SCIM 2.0 connector for Okta and Microsoft Entra ID."""


# -- serve -----------------------------------------------------------------


def scim_base_url(settings: Settings) -> str:
    """The SCIM base URL for the IdP (Okta's "SCIM connector base URL", Entra's "Tenant URL")."""
    return public_origin(settings) + SCIM_PATH


FIRST_START_TOKEN_FILE = "first-start-token"  # noqa: S105 - a file name, not a secret
"""The file of the data directory where ``serve`` leaves the first token without a terminal."""


def print_bootstrap(bootstrap: Bootstrap, base_url: str, token_dir: Path) -> None:
    """Show the first token on an interactive terminal only; else write it to a 0600 file.

    A service's output goes to its log (journald, ``docker logs``), which more
    people and systems read than should hold a SCIM token.
    """
    click.echo("")
    click.echo(f"First start: created organization {bootstrap.organization!r} and its SCIM token.")
    click.echo(f"  SCIM base URL: {base_url}")
    if sys.stdout.isatty():
        click.echo(
            "Paste these into Okta or Microsoft Entra ID (the token is shown only this once):"
        )
        click.echo(f"  SCIM token:    {bootstrap.token}")
    else:
        path = write_private_file(token_dir / FIRST_START_TOKEN_FILE, bootstrap.token + "\n")
        click.echo(
            f"  SCIM token:    written to {path} (readable by this user only; the log never "
            "holds it). Paste it into Okta or Microsoft Entra ID, then delete the file."
        )
    click.echo(
        f"Revoke it with: hub-scim token revoke --org {bootstrap.organization} "
        f"{bootstrap.credential_id}"
    )
    click.echo("")


def write_private_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, created readable and writable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return path


def prepare_to_serve(settings: Settings) -> Bootstrap | None:
    """Migrate the database, then on an empty one create ``default`` and its token."""
    before, after = upgrade_database(settings.database_url)
    if before != after:
        click.echo(f"Database migrated from {before or 'empty'} to {after}.")
    engine = make_engine(settings.database_url, poolclass=NullPool)
    try:
        with make_session_factory(engine)() as session:
            return bootstrap_first_start(session, settings.scim_token_ttl)
    finally:
        engine.dispose()


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@database_url_option
@click.option("--workers", type=int, default=None, help="Worker processes (default 2).")
@click.option("--threads", type=int, default=None, help="Threads per worker (default 4).")
@handle_errors
def serve(
    host: str | None,
    port: int | None,
    database_url: str | None,
    workers: int | None,
    threads: int | None,
) -> None:
    """Migrate the database and serve SCIM with gunicorn (production server)."""
    settings = command_settings(
        host=host, port=port, database_url=database_url, workers=workers, threads=threads
    )
    click.echo(f"Database: {redacted(settings.database_url)}")
    bootstrap = prepare_to_serve(settings)
    base_url = scim_base_url(settings)
    if bootstrap is not None:
        print_bootstrap(bootstrap, base_url, data_directory())
    click.echo(f"Serving SCIM 2.0 at {base_url} (health: /healthz, readiness: /readyz)")
    if settings.public_base_url is None and settings.host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            "IdPs in the cloud need an https address: set HUB_SCIM_PUBLIC_BASE_URL "
            "to the address your TLS proxy serves (deploy/README.md)."
        )
    HubScimServer(settings).run()


# -- org -------------------------------------------------------------------


@cli.group()
def org() -> None:
    """Organizations (tenants)."""


@org.command("create")
@click.argument("name")
@database_url_option
@handle_errors
def org_create(name: str, database_url: str | None) -> None:
    """Create the organization NAME."""
    with command_session(database_url) as session:
        organization = create_organization(session, name)
        click.echo(f"Created organization {organization.name!r}.")


@org.command("list")
@database_url_option
@handle_errors
def org_list(database_url: str | None) -> None:
    """List organizations."""
    with command_session(database_url) as session:
        for organization in list_organizations(session):
            click.echo(organization.name)


# -- token -----------------------------------------------------------------


@cli.group()
def token() -> None:
    """Bearer credentials of an organization."""


@token.command("create")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option(
    "--scope",
    type=click.Choice([Scope.SCIM.value, Scope.ACCESS.value]),
    default=Scope.SCIM.value,
    show_default=True,
    help="scim: for the IdP's provisioning; access: for Hub's products.",
)
@click.option("--label", default="", help="A note to tell credentials apart.")
@click.option(
    "--expires-in-days",
    type=click.IntRange(min=1),
    default=None,
    help="Default: never (scim tokens: HUB_SCIM_SCIM_TOKEN_TTL_SECONDS when set).",
)
@database_url_option
@handle_errors
def token_create(
    org_name: str,
    scope: str,
    label: str,
    expires_in_days: int | None,
    database_url: str | None,
) -> None:
    """Create a credential; the token is printed once, alone on the last line."""
    settings = command_settings(database_url=database_url)
    ttl = timedelta(days=expires_in_days) if expires_in_days else None
    if ttl is None and scope == Scope.SCIM:
        ttl = settings.scim_token_ttl
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        issued = issue_credential(
            session, organization.id, Scope(scope), actor=_actor(), label=label, ttl=ttl
        )
    click.echo(f"Created {scope} credential {issued.id} for organization {org_name!r}.")
    click.echo("The token is shown only this once:")
    click.echo(issued.secret)


@token.command("rotate")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.argument("credential_id")
@database_url_option
@handle_errors
def token_rotate(org_name: str, credential_id: str, database_url: str | None) -> None:
    """Create a token like CREDENTIAL_ID (same scope, label, lifetime); the old one stops in 24 h.

    The new token is printed once, alone on the last line. The old token keeps
    working for 24 hours, so the IdP meets no 401 while it is replaced there;
    revoke it sooner with `hub-scim token revoke` once the IdP uses the new one.
    """
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        issued = rotate_credential(session, organization.id, credential_id, actor=_actor())
    until = issued.replaced_until
    click.echo(
        f"Created {issued.scope} credential {issued.id} for organization {org_name!r}; "
        f"{issued.replaces} keeps working until "
        f"{until:%Y-%m-%d %H:%M} UTC."
        if until
        else f"Created {issued.scope} credential {issued.id} for organization {org_name!r}."
    )
    click.echo("The new token is shown only this once:")
    click.echo(issued.secret)


@token.command("revoke")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.argument("token_or_id")
@database_url_option
@handle_errors
def token_revoke(org_name: str, token_or_id: str, database_url: str | None) -> None:
    """Revoke a credential, named by its token or its id."""
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        credential = revoke(session, organization.id, token_or_id, actor=_actor())
        click.echo(f"Revoked credential {credential.id} of organization {org_name!r}.")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


@token.command("list")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option(
    "--all", "include_issued", is_flag=True, help="Also the short-lived tokens of OAuth clients."
)
@database_url_option
@handle_errors
def token_list(org_name: str, include_issued: bool, database_url: str | None) -> None:
    """List an organization's credentials and OAuth clients (never the tokens)."""
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        credentials = list_credentials(session, organization.id, include_issued=include_issued)
    click.echo(f"{'ID':36}  {'SCOPE':6}  {'CREATED':20}  {'EXPIRES':20}  {'REVOKED':20}  LABEL")
    for credential in credentials:
        click.echo(
            f"{credential.id:36}  {credential.scope:6}  {_when(credential.created_at):20}  "
            f"{_when(credential.expires_at):20}  {_when(credential.revoked_at):20}  "
            f"{credential.label}"
        )


# -- client ----------------------------------------------------------------


@cli.group()
def client() -> None:
    """OAuth 2.0 clients (client-credentials grant, for Microsoft Entra ID)."""


@client.command("create")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option("--label", default="", help="A note to tell clients apart.")
@database_url_option
@handle_errors
def client_create(org_name: str, label: str, database_url: str | None) -> None:
    """Create an OAuth client; its secret is printed once, alone on the last line."""
    settings = command_settings(database_url=database_url)
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        issued = create_oauth_client(session, organization.id, actor=_actor(), label=label)
    click.echo(f"Created OAuth client for organization {org_name!r}.")
    click.echo(f"  Tenant URL:     {scim_base_url(settings)}")
    click.echo(f"  Token endpoint: {public_origin(settings)}{TOKEN_PATH}")
    click.echo(f"  Client id:      {issued.id}")
    click.echo("The client secret is shown only this once:")
    click.echo(issued.secret)


@client.command("revoke")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.argument("client_id")
@database_url_option
@handle_errors
def client_revoke(org_name: str, client_id: str, database_url: str | None) -> None:
    """Revoke an OAuth client and every token it was issued."""
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        revoke(session, organization.id, client_id, actor=_actor())
        click.echo(f"Revoked OAuth client {client_id} of organization {org_name!r}.")


# -- db --------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@database_url_option
@handle_errors
def db_upgrade(database_url: str | None) -> None:
    """Apply every pending migration (safe to run from several instances at once)."""
    settings = command_settings(database_url=database_url)
    before, after = upgrade_database(settings.database_url)
    where = redacted(settings.database_url)
    if before == after:
        click.echo(f"{where} is up to date (revision {after}).")
    else:
        click.echo(f"Migrated {where} from {before or 'empty'} to {after}.")


# -- commands of other parts of Hub ------------------------------------------

for _command in (*ACCESS_COMMANDS, *CONSOLE_COMMANDS, *LIFECYCLE_COMMANDS):
    cli.add_command(_command)

for _command in LOG_COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """The ``hub-scim`` console script."""
    cli(prog_name="hub-scim")


if __name__ == "__main__":
    main()
