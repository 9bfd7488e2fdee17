"""``hub-scim sso`` and ``hub-scim console``: the IT console's sign-in, from the server.

``sso set`` registers the organization's OIDC web app (Okta or Entra) and
prints the redirect URI to paste into it; ``sso show`` prints the settings,
never the secret; ``console link`` prints a one-time break-glass URL for a
new organization whose IdP has not provisioned an Owner yet. Each is the
service of :mod:`connector.admin.sso`, as the console uses it.
"""

from __future__ import annotations

import click

from connector.admin.sso import SsoNotConfigured, create_console_link, get_sso, set_sso
from connector.cli.access import _actor
from connector.cli.common import (
    command_session,
    command_settings,
    database_url_option,
    handle_errors,
    public_origin,
)
from connector.settings import Settings
from connector.tenancy.organizations import get_organization

CONSOLE_PREFIX = "/admin"

org_option = click.option("--org", "org_name", required=True, help="Organization name.")


def console_url(settings: Settings, org_name: str, path: str = "/") -> str:
    """An absolute console URL of ``org_name`` at the service's public origin."""
    return f"{public_origin(settings)}{CONSOLE_PREFIX}/{org_name}{path}"


@click.group()
def sso() -> None:
    """The IT console's sign-in with the organization's own IdP (OpenID Connect)."""


@sso.command("set")
@org_option
@click.option("--issuer", required=True, help="The IdP's issuer URL (https://...).")
@click.option("--client-id", required=True, help="The console app's client id in the IdP.")
@click.option(
    "--client-secret",
    required=True,
    prompt=True,
    hide_input=True,
    help="Its client secret (prompted when left out; stored encrypted).",
)
@database_url_option
@handle_errors
def sso_set(
    org_name: str, issuer: str, client_id: str, client_secret: str, database_url: str | None
) -> None:
    """Register the organization's OIDC web app; prints the redirect URI to paste into the IdP."""
    settings = command_settings(database_url=database_url)
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        try:
            stored = set_sso(
                session,
                organization.id,
                issuer=issuer,
                client_id=client_id,
                client_secret=client_secret,
                secret_key=settings.secret_key,
                actor=_actor(),
            )
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"Console sign-in for organization {org_name!r} uses {stored.issuer}.")
    click.echo("Register this redirect URI (sign-in redirect URI) in the IdP's app:")
    click.echo(f"  {console_url(settings, org_name, '/callback')}")
    click.echo(f"Console: {console_url(settings, org_name)}")


@sso.command("show")
@org_option
@database_url_option
@handle_errors
def sso_show(org_name: str, database_url: str | None) -> None:
    """The organization's console sign-in settings (never the client secret)."""
    settings = command_settings(database_url=database_url)
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        try:
            stored = get_sso(session, organization.id)
        except SsoNotConfigured:
            raise click.ClickException(
                f"organization {org_name!r} has no console sign-in: run `hub-scim sso set`"
            ) from None
    click.echo(f"Issuer:        {stored.issuer}")
    click.echo(f"Discovery:     {stored.discovery_url}")
    click.echo(f"Client id:     {stored.client_id}")
    click.echo("Client secret: (stored encrypted; never shown)")
    click.echo(f"Redirect URI:  {console_url(settings, org_name, '/callback')}")
    click.echo("Scopes:        openid email profile")
    at = stored.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    click.echo(f"Updated:       {at} by {stored.updated_by}")


@click.group()
def console() -> None:
    """The IT admin console."""


@console.command("link")
@org_option
@database_url_option
@handle_errors
def console_link(org_name: str, database_url: str | None) -> None:
    """A one-time sign-in URL (15 minutes) for the bootstrap Owner of a new organization."""
    settings = command_settings(database_url=database_url)
    with command_session(database_url) as session:
        organization = get_organization(session, org_name)
        try:
            token, expires = create_console_link(session, organization.id, actor=_actor())
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    at = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    click.echo(f"One-time console sign-in for {org_name!r}, valid until {at} (used once):")
    click.echo(console_url(settings, org_name, f"/link?token={token}"))


CONSOLE_COMMANDS: tuple[click.Command, ...] = (sso, console)
"""The commands :mod:`connector.cli.main` adds to ``hub-scim``."""
