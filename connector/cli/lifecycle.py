"""``hub-scim retention``, ``prune`` and ``erase``: the lifecycle of personal data.

docs/personal-data.md. ``retention set``/``show`` are an organization's
periods (audited); ``prune`` deletes what is past them, in small batches of
their own transactions (the webhook deliverer also does it periodically);
``erase`` replaces a former user's personal data in the trail by a pseudonym,
in one transaction. :data:`LIFECYCLE_COMMANDS` are added to ``hub-scim`` by
:mod:`connector.cli.main`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.pool import NullPool

from connector.admin.erasure import erase_user
from connector.admin.retention import set_retention
from connector.cli.access import _actor
from connector.cli.common import (
    command_session,
    command_settings,
    database_url_option,
    handle_errors,
)
from connector.db.engine import make_engine
from connector.tenancy.organizations import get_organization
from connector.trail.retention import (
    AUDIT,
    EVENTS_KIND,
    KINDS,
    MAXIMUM_DAYS,
    MINIMUM_DAYS,
    PRUNE_BATCH,
    REQUEST_LOG,
    OrgRetention,
    org_retention,
    prune,
    retention_defaults,
)

org_option = click.option("--org", "org_name", required=True, help="Organization name.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


FC = TypeVar("FC", bound=Callable[..., Any])


def _days_option(flag: str, dest: str, kind: str, what: str) -> Callable[[FC], FC]:
    return click.option(
        flag,
        dest,
        type=click.IntRange(MINIMUM_DAYS[kind], MAXIMUM_DAYS),
        default=None,
        help=f"Days {what} (at least {MINIMUM_DAYS[kind]}).",
    )


def _retention_lines(org_name: str, retention: OrgRetention) -> list[str]:
    labels = {
        AUDIT: "audit trail",
        EVENTS_KIND: "events (after delivery)",
        REQUEST_LOG: "provisioning log",
    }
    lines = [f"Retention of organization {org_name!r}:"]
    for kind in KINDS:
        origin = "set for the organization" if kind in retention.own else "default"
        lines.append(f"  {labels[kind]:25} {retention.periods.days(kind):>6} days  ({origin})")
    return lines


@click.group()
def retention() -> None:
    """How long an organization keeps its audit trail, events and provisioning log."""


@retention.command("set")
@org_option
@_days_option("--audit-days", "audit_days", AUDIT, "an audit entry is kept")
@_days_option(
    "--events-days", "events_days", EVENTS_KIND, "an event is kept after its last delivery"
)
@_days_option(
    "--request-log-days", "request_log_days", REQUEST_LOG, "the provisioning log keeps a request"
)
@click.option(
    "--default",
    "reset",
    multiple=True,
    type=click.Choice(KINDS),
    help="Go back to the service's default for this kind (repeatable).",
)
@database_url_option
@handle_errors
def retention_set(
    org_name: str,
    audit_days: int | None,
    events_days: int | None,
    request_log_days: int | None,
    reset: tuple[str, ...],
    database_url: str | None,
) -> None:
    """Set the organization's retention periods; the change is audited."""
    days = {
        kind: value
        for kind, value in (
            (AUDIT, audit_days),
            (EVENTS_KIND, events_days),
            (REQUEST_LOG, request_log_days),
        )
        if value is not None
    }
    if not days and not reset:
        raise click.UsageError(
            "give at least one of --audit-days, --events-days, --request-log-days or --default"
        )
    defaults = retention_defaults(command_settings(database_url=database_url))
    with command_session(database_url) as session:
        org_id = get_organization(session, org_name).id
        after = set_retention(session, org_id, days, actor=_actor(), defaults=defaults, reset=reset)
    for line in _retention_lines(org_name, after):
        click.echo(line)


@retention.command("show")
@org_option
@json_option
@database_url_option
@handle_errors
def retention_show(org_name: str, as_json: bool, database_url: str | None) -> None:
    """The organization's retention periods in force, and whether each is its own."""
    defaults = retention_defaults(command_settings(database_url=database_url))
    with command_session(database_url) as session:
        current = org_retention(session, get_organization(session, org_name).id, defaults)
    if as_json:
        _echo_json(current.to_json())
        return
    for line in _retention_lines(org_name, current):
        click.echo(line)


@click.command("prune")
@click.option("--org", "org_name", default=None, help="Only this organization (default: all).")
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=PRUNE_BATCH,
    show_default=True,
    help="Rows deleted per transaction.",
)
@json_option
@database_url_option
@handle_errors
def prune_command(
    org_name: str | None, batch: int, as_json: bool, database_url: str | None
) -> None:
    """Delete audit entries, delivered events and provisioning-log rows past their retention.

    Each batch is a short transaction of its own, so SCIM writes go on
    meanwhile. Events with a delivery pending or dead-lettered are never
    pruned. The webhook deliverer (``events deliver``) runs this periodically.
    """
    settings = command_settings(database_url=database_url)
    org_ids = None
    with command_session(database_url) as session:
        if org_name is not None:
            org_ids = [get_organization(session, org_name).id]
    engine = make_engine(settings.database_url, poolclass=NullPool)
    try:
        report = prune(engine, retention_defaults(settings), org_ids=org_ids, batch=batch)
    finally:
        engine.dispose()
    totals = {kind: report.total(kind) for kind in KINDS}
    if as_json:
        _echo_json({"pruned": totals, "batches": report.batches})
        return
    click.echo(
        f"Pruned {totals[AUDIT]} audit entries, {totals[EVENTS_KIND]} events and "
        f"{totals[REQUEST_LOG]} provisioning-log rows in {report.batches} batches."
    )


@click.command("erase")
@org_option
@click.argument("user")
@json_option
@database_url_option
@handle_errors
def erase(org_name: str, user: str, as_json: bool, database_url: str | None) -> None:
    """Erase a former user's personal data from the trail (GDPR article 17).

    USER is the former user's SCIM id, or their former userName. Only a user
    the identity provider has deleted can be erased (exit status 6 while they
    are in the directory). Their userName, names, emails, phone numbers,
    addresses and externalId are replaced everywhere in the organization's
    trail by one pseudonym, in one transaction; ids, order, times, actions,
    roles and grants stay. The erase is audited, without the erased data.
    """
    with command_session(database_url) as session:
        org_id = get_organization(session, org_name).id
        report = erase_user(session, org_id, user, actor=_actor())
    if as_json:
        _echo_json(report.to_json())
        return
    rewritten = sum(report.rewritten.values())
    click.echo(
        f"Erased user {report.user_id} of organization {org_name!r}: now {report.pseudonym} "
        f"in {rewritten} row(s) of the trail."
    )
    for table, count in sorted(report.rewritten.items()):
        click.echo(f"  {table}: {count}")
    if report.shared:
        click.echo(
            f"Another user (in the directory or former) has the same {', '.join(report.shared)}: "
            "it was replaced only in the erased user's own rows."
        )


LIFECYCLE_COMMANDS: tuple[click.Command, ...] = (retention, prune_command, erase)
"""The commands :mod:`connector.cli.main` adds to ``hub-scim``."""
