"""``hub-scim log``: an organization's provisioning log, newest first.

Reads through :func:`connector.trail.request_log.query_requests`, the same
query the console uses, with the conventions of :mod:`connector.cli.common`.
:data:`LOG_COMMANDS` are added to ``hub-scim`` by :mod:`connector.cli.main`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from connector.cli.common import command_session, database_url_option, handle_errors
from connector.tenancy.organizations import get_organization
from connector.trail.request_log import (
    MAX_PAGE,
    LoggedRequest,
    RequestLogFilter,
    RequestLogPage,
    query_requests,
)


def _moment(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date or time; UTC when it names no zone."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or time", param=param
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@click.command("log")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option("--failed", is_flag=True, help="Only failed requests (status 400 and above).")
@click.option("--user", metavar="ID_OR_USERNAME", help="Only requests that touched this user.")
@click.option("--status", type=click.IntRange(100, 599), help="Only requests with this status.")
@click.option(
    "--since", metavar="TIME", callback=_moment, help="Only requests at or after this time (UTC)."
)
@click.option(
    "--until", metavar="TIME", callback=_moment, help="Only requests before this time (UTC)."
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    default=50,
    show_default=True,
    help="Requests per page.",
)
@click.option("--before", type=click.IntRange(min=1), help="The page older than this id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@database_url_option
@handle_errors
def log(
    org_name: str,
    failed: bool,
    user: str | None,
    status: int | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    before: int | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """The SCIM requests the organization's IdP made, newest first (never bodies or tokens)."""
    where = RequestLogFilter(failed=failed, status=status, user=user, since=since, until=until)
    with command_session(database_url) as session:
        org_id = get_organization(session, org_name).id
        page = query_requests(session, org_id, where, before=before, limit=limit)
    if as_json:
        click.echo(json.dumps(_page_json(page), indent=2, ensure_ascii=False))
        return
    if not page.requests:
        click.echo("No requests.")
    for logged in page.requests:
        click.echo(_line(logged))
    if page.next_before is not None:
        click.echo(f"Older: --before {page.next_before}")


def _page_json(page: RequestLogPage) -> dict[str, object]:
    return {
        "requests": [logged.to_json() for logged in page.requests],
        "next_before": page.next_before,
    }


def _line(logged: LoggedRequest) -> str:
    at = logged.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    line = (
        f"{logged.id:>7}  {at}  {logged.status}  {logged.method:<6} {logged.path}"
        f"  {logged.duration_ms:.1f} ms"
    )
    if logged.resource_id:
        line += f"  {logged.resource_kind or 'resource'} {logged.resource_id}"
    if logged.scim_type or logged.detail:
        line += f"  [{logged.scim_type or '-'}] {logged.detail or ''}".rstrip()
    if logged.idp_request_id:
        line += f"  request-id {logged.idp_request_id}"
    line += f"  credential {logged.credential_id or '-'}"
    return line


LOG_COMMANDS: tuple[click.Command, ...] = (log,)
"""The commands :mod:`connector.cli.main` adds to ``hub-scim``."""
