"""``hub-scim`` commands for Hub access: mapping, products, grants, access, audit, health, events.

IT maps IdP groups to roles and grants (``mapping apply``, with a
``--dry-run`` preview), sets product states, gives manual grants, and sees
the result (``access``, ``audit``, ``health``); products' webhooks are
registered and delivered from here. Built with :mod:`connector.cli.common`
like every command: one session per command, committed only on success, and
expected failures as an ``Error:`` line with a non-zero exit, never a
traceback. :data:`ACCESS_COMMANDS` are added to ``hub-scim`` by
:mod:`connector.cli.main`.
"""

from __future__ import annotations

import getpass
import json
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from connector.access.assignable import entra_app_roles
from connector.access.catalog import HUB_CATALOG, ProductState
from connector.access.mapping import MappingError
from connector.admin.extensions import declare_extension, list_extensions, read_schema_file
from connector.admin.grants import grant_manual, revoke_manual, set_product_state
from connector.admin.health import health_report
from connector.admin.mappings import apply_mapping, current_mapping, describe_change
from connector.admin.webhooks import (
    DEFAULT_ROTATION_GRACE,
    add_webhook,
    list_webhooks,
    remove_webhook,
    replay_events,
    rotate_secret,
)
from connector.cli.common import (
    command_session,
    command_settings,
    database_url_option,
    handle_errors,
)
from connector.db.engine import make_engine
from connector.derived.facts import load_rules, load_user_names
from connector.derived.queries import user_access
from connector.derived.tables import ProductStateRow
from connector.tenancy.organizations import get_organization
from connector.trail.audit import AuditRecord, iter_entries
from connector.trail.delivery import (
    DeliveryPolicy,
    claim_due,
    post_deliveries,
    record_outcomes,
)
from connector.trail.retention import AUDIT, EVENTS_KIND, REQUEST_LOG, prune, retention_defaults

P = ParamSpec("P")
R = TypeVar("R")

# `hub-scim health` exits with this status when IT must look at something, so
# that monitoring can run it as a check (1 and 2 are click's errors).
HEALTH_ATTENTION_EXIT_CODE = 3
STATE_NAMES = tuple(state.value for state in ProductState)

org_option = click.option("--org", "org_name", required=True, help="Organization name.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _access_errors(command: Callable[P, R]) -> Callable[P, R]:
    """:func:`connector.cli.common.handle_errors`: every refusal as one ``Error:`` line."""
    return handle_errors(command)


def _actor() -> str:
    """Who the audit trail names for a command: the operator's login, when known."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _org_id(session: Session, org_name: str) -> int:
    return get_organization(session, org_name).id


# -- mapping -------------------------------------------------------------------


@click.group()
def mapping() -> None:
    """IT's mapping of IdP groups to Hub roles and product grants (a TOML file)."""


@mapping.command("apply")
@org_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@json_option
@database_url_option
@_access_errors
def mapping_apply(
    org_name: str, file: Path, dry_run: bool, as_json: bool, database_url: str | None
) -> None:
    """Apply the mapping FILE to the organization, in one transaction, and print what changed.

    A file with any problem is refused whole: every problem is printed with
    its line (FILE:LINE: message), nothing changes, and the exit status is 1.
    """
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"cannot read {file}: {error}") from None
    with command_session(database_url) as session:
        org_id = _org_id(session, org_name)
        try:
            preview = apply_mapping(
                session, org_id, source, actor=_actor(), dry_run=dry_run, source_name=str(file)
            )
        except MappingError as error:
            session.rollback()
            if as_json:
                _echo_json({"applied": False, **error.to_json()})
            raise click.ClickException(str(error)) from None
        if dry_run:
            # A preview never writes, whatever the service flushed to compute it.
            session.rollback()
    if as_json:
        _echo_json(preview.to_json())
    else:
        click.echo(preview.to_text())


@mapping.command("show")
@org_option
@database_url_option
@_access_errors
def mapping_show(org_name: str, database_url: str | None) -> None:
    """Print the mapping file in force, as it was applied."""
    with command_session(database_url) as session:
        source = current_mapping(session, _org_id(session, org_name))
    if source is None:
        click.echo(
            f"Organization {org_name!r} has no mapping: every active user has the "
            "default role (member) and no grants but manual ones.",
            err=True,
        )
        return
    click.echo(source, nl=not source.endswith("\n"))


@mapping.command("app-roles")
@org_option
@database_url_option
@_access_errors
def mapping_app_roles(org_name: str, database_url: str | None) -> None:
    """Print the Entra app roles for the role values Hub accepts, as manifest JSON.

    Paste the list as the ``appRoles`` of the app registration's manifest
    (docs/entra.md, "Roles the IdP can offer"); the ids are stable.
    """
    with command_session(database_url) as session:
        config = load_rules(session, _org_id(session, org_name)).config
    if not config.map_scim_roles:
        click.echo(
            f"Organization {org_name!r} does not read SCIM roles: set map_scim_roles = true "
            "in its mapping for these app roles to take effect.",
            err=True,
        )
    click.echo(json.dumps(entra_app_roles(config), indent=2))


# -- products and grants -------------------------------------------------------


@click.group()
def product() -> None:
    """Products (PSA, CRM, Defend, RMM) and their state for an organization."""


@product.command("set")
@org_option
@click.argument("product_name", metavar="PRODUCT")
@click.argument("state", type=click.Choice(STATE_NAMES))
@json_option
@database_url_option
@_access_errors
def product_set(
    org_name: str, product_name: str, state: str, as_json: bool, database_url: str | None
) -> None:
    """Set PRODUCT to active, trial or not_subscribed; grants of a not-subscribed one go dormant."""
    with command_session(database_url) as session:
        org_id = _org_id(session, org_name)
        changes = set_product_state(session, org_id, product_name, state, actor=_actor())
        names = load_user_names(session, org_id, [change.user_id for change in changes])
    if as_json:
        _echo_json(
            {
                "product": product_name,
                "state": state,
                "changes": [change.to_json() for change in changes],
            }
        )
        return
    click.echo(f"{product_name} is {state} for organization {org_name!r}.")
    users = "user's" if len(changes) == 1 else "users'"
    click.echo(f"{len(changes)} {users} access changed.")
    for change in changes:
        who = names.get(change.user_id, change.user_id)
        click.echo(f"  {who}: {describe_change(change.before, change.after)}")


@product.command("list")
@org_option
@json_option
@database_url_option
@_access_errors
def product_list(org_name: str, as_json: bool, database_url: str | None) -> None:
    """Every product of the catalog and its state for the organization."""
    with command_session(database_url) as session:
        org_id = _org_id(session, org_name)
        stored = {
            row.product: row.state
            for row in session.execute(
                select(ProductStateRow.product, ProductStateRow.state).where(
                    ProductStateRow.org_id == org_id
                )
            )
        }
    # A product without a stored state is not subscribed (connector.derived.tables).
    states = {
        item.name: stored.get(item.name, ProductState.NOT_SUBSCRIBED.value) for item in HUB_CATALOG
    }
    if as_json:
        _echo_json(states)
        return
    click.echo(f"{'PRODUCT':8}  {'STATE':14}  TITLE")
    for item in HUB_CATALOG:
        click.echo(f"{item.name:8}  {states[item.name]:14}  {item.title}")


@click.command("grant")
@org_option
@click.argument("user")
@click.argument("product_name", metavar="PRODUCT")
@click.option("--role", "roles", multiple=True, help="A product role (repeatable).")
@click.option("--permission", "permissions", multiple=True, help="A permission (repeatable).")
@database_url_option
@_access_errors
def grant(
    org_name: str,
    user: str,
    product_name: str,
    roles: tuple[str, ...],
    permissions: tuple[str, ...],
    database_url: str | None,
) -> None:
    """Grant USER (id or userName) PRODUCT by hand, replacing their earlier manual grant of it."""
    with command_session(database_url) as session:
        org_id = _org_id(session, org_name)
        grant_manual(
            session, org_id, user, product_name, list(roles), list(permissions), actor=_actor()
        )
        dormant = product_name in user_access(session, org_id, user)["dormant"]
    click.echo(
        f"Granted {product_name} to {user} "
        f"(roles: {', '.join(roles) or '-'}; permissions: {', '.join(permissions) or '-'})."
    )
    if dormant:
        click.echo(
            f"The grant is dormant until {product_name} is enabled: "
            f"hub-scim product set --org {org_name} {product_name} active"
        )


@click.command("revoke")
@org_option
@click.argument("user")
@click.argument("product_name", metavar="PRODUCT")
@database_url_option
@_access_errors
def revoke(org_name: str, user: str, product_name: str, database_url: str | None) -> None:
    """Revoke USER's manual grant of PRODUCT (grants from mapping rules stay)."""
    with command_session(database_url) as session:
        revoked = revoke_manual(
            session, _org_id(session, org_name), user, product_name, actor=_actor()
        )
    if not revoked:
        raise click.ClickException(
            f"{user} has no manual grant of {product_name}; nothing changed "
            "(grants from mapping rules change with the mapping)"
        )
    click.echo(f"Revoked the manual {product_name} grant of {user}.")


# -- seeing the result ---------------------------------------------------------


@click.command("access")
@org_option
@click.argument("user")
@json_option
@database_url_option
@_access_errors
def access(org_name: str, user: str, as_json: bool, database_url: str | None) -> None:
    """USER's effective access (USER: id or userName); --json prints the access API's JSON."""
    with command_session(database_url) as session:
        data = user_access(session, _org_id(session, org_name), user)
    if as_json:
        _echo_json(data)
        return
    for line in access_lines(data):
        click.echo(line)


def access_lines(data: Mapping[str, Any]) -> list[str]:
    """The access JSON for people: role and where it came from, then each grant."""
    name = data.get("userName") or data.get("user_id") or "?"
    lines = [f"User:   {name} ({data.get('user_id', '?')})"]
    if not data.get("active"):
        lines.append("Active: no (all access suspended)")
        return lines
    role = data.get("role")
    notes = []
    if data.get("held"):
        notes.append(f"held as a third Owner, wants {data.get('wanted_role')}")
    if data.get("kept_as_last_owner"):
        notes.append("kept as the last Owner")
    lines.append("Active: yes")
    lines.append(f"Role:   {role}" + (f" ({'; '.join(notes)})" if notes else ""))
    lines.extend(f"        from {source}" for source in _descriptions(data.get("role_sources")))
    for title, key in (("Products", "products"), ("Dormant (not subscribed)", "dormant")):
        grants: Mapping[str, Any] = data.get(key) or {}
        lines.append(f"{title}:" + ("" if grants else " none"))
        for product_name, item in grants.items():
            onboarding = item.get("onboarding")
            lines.append(
                f"  {product_name}"
                + (f" (onboarding {onboarding})" if onboarding else "")
                + f": roles {', '.join(item.get('roles', [])) or '-'}"
            )
            lines.append(f"    permissions: {', '.join(item.get('permissions', [])) or '-'}")
            if item.get("withheld"):
                lines.append(f"    withheld by the role ceiling: {', '.join(item['withheld'])}")
            lines.extend(f"    from {source}" for source in _descriptions(item.get("sources")))
    return lines


def _descriptions(sources: Any) -> list[str]:
    return [str(source.get("description", source)) for source in sources or []]


@click.command("audit")
@org_option
@json_option
@click.option("--since", type=click.IntRange(min=0), default=0, help="Only entries after this id.")
@database_url_option
@_access_errors
def audit(org_name: str, as_json: bool, since: int, database_url: str | None) -> None:
    """The organization's audit trail, oldest first; --json: one JSON object per line."""
    with command_session(database_url) as session:
        for entry in iter_entries(session, _org_id(session, org_name), after_id=since):
            click.echo(_audit_json(entry) if as_json else _audit_text(entry))


def _audit_json(entry: AuditRecord) -> str:
    return json.dumps(entry.to_json(), ensure_ascii=False, separators=(",", ":"))


def _audit_text(entry: AuditRecord) -> str:
    at = entry.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{entry.id:>6}  {at}  {entry.actor}  {entry.action}  {entry.target}"
    return line + (f"  ({entry.reason})" if entry.reason else "")


@click.command("health")
@org_option
@json_option
@database_url_option
@_access_errors
def health(org_name: str, as_json: bool, database_url: str | None) -> None:
    """What IT must look at; exits 3 when something needs attention (for monitoring)."""
    with command_session(database_url) as session:
        report = health_report(session, _org_id(session, org_name))
    if as_json:
        _echo_json(report.to_json())
    else:
        click.echo(report.to_text())
    if not report.healthy:
        raise SystemExit(HEALTH_ATTENTION_EXIT_CODE)


# -- events --------------------------------------------------------------------


@click.group()
def webhook() -> None:
    """Products' webhooks: where access-change events are delivered (docs/webhooks.md)."""


def _delivery_policy(database_url: str | None) -> DeliveryPolicy:
    settings = command_settings(database_url=database_url)
    return DeliveryPolicy(
        allowed_networks=settings.webhook_networks,
        timeout_seconds=float(settings.webhook_timeout_seconds),
        max_attempts=settings.webhook_max_attempts,
        max_age=timedelta(hours=settings.webhook_max_age_hours),
    )


@webhook.command("add")
@org_option
@click.argument("url")
@database_url_option
@_access_errors
def webhook_add(org_name: str, url: str, database_url: str | None) -> None:
    """Register URL for the organization's events; the signing secret is printed once, last.

    The URL's host must resolve to public addresses only, unless
    HUB_SCIM_WEBHOOK_ALLOWED_NETWORKS names its network.
    """
    policy = _delivery_policy(database_url)
    with command_session(database_url) as session:
        endpoint_id, secret = add_webhook(
            session,
            _org_id(session, org_name),
            url,
            actor=_actor(),
            allowed_networks=policy.allowed_networks,
        )
    click.echo(f"Added webhook {endpoint_id} for organization {org_name!r}: {url}")
    click.echo("Its signing secret (Hub-Signature header) is shown only this once:")
    click.echo(secret)


@webhook.command("list")
@org_option
@json_option
@database_url_option
@_access_errors
def webhook_list(org_name: str, as_json: bool, database_url: str | None) -> None:
    """The organization's webhooks, their backlog and dead letters; never their secrets."""
    with command_session(database_url) as session:
        hooks = list_webhooks(session, _org_id(session, org_name))
    if as_json:
        _echo_json([hook.to_json() for hook in hooks])
        return
    if not hooks:
        click.echo(f"Organization {org_name!r} has no webhook.")
    for hook in hooks:
        rotation = (
            f", previous secret valid until {hook.rotation_ends_at.isoformat(timespec='seconds')}"
            if hook.rotation_ends_at
            else ""
        )
        click.echo(
            f"{hook.id}  {hook.url}  pending {hook.pending}, dead-lettered "
            f"{hook.dead_lettered}{rotation}"
        )
        if hook.last_error:
            click.echo(f"    last error: {hook.last_error}")


@webhook.command("remove")
@org_option
@click.argument("endpoint_id", metavar="WEBHOOK_ID")
@database_url_option
@_access_errors
def webhook_remove(org_name: str, endpoint_id: str, database_url: str | None) -> None:
    """Remove a webhook and its undelivered deliveries (the events stay readable by polling)."""
    with command_session(database_url) as session:
        remove_webhook(session, _org_id(session, org_name), endpoint_id, actor=_actor())
    click.echo(f"Removed webhook {endpoint_id}.")


@webhook.command("rotate")
@org_option
@click.argument("endpoint_id", metavar="WEBHOOK_ID")
@click.option(
    "--grace-hours",
    type=click.FloatRange(min=0),
    default=DEFAULT_ROTATION_GRACE.total_seconds() / 3600,
    show_default=True,
    help="Hours the previous secret keeps signing beside the new one.",
)
@database_url_option
@_access_errors
def webhook_rotate(
    org_name: str, endpoint_id: str, grace_hours: float, database_url: str | None
) -> None:
    """A new signing secret, printed once, last; both sign deliveries during the grace period."""
    with command_session(database_url) as session:
        secret = rotate_secret(
            session,
            _org_id(session, org_name),
            endpoint_id,
            actor=_actor(),
            grace=timedelta(hours=grace_hours),
        )
    click.echo(
        f"Rotated the secret of webhook {endpoint_id}: for {grace_hours:g} h deliveries carry "
        "two v1= signatures, by the new and the previous secret."
    )
    click.echo("The new signing secret is shown only this once:")
    click.echo(secret)


@click.group()
def events() -> None:
    """Access-change events for Hub's products."""


class _StopSignal:
    """Set by SIGTERM or SIGINT: the deliverer finishes its round, records it, and exits."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __enter__(self) -> _StopSignal:
        self._previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, _signum: int, _frame: object) -> None:
        self.event.set()


@events.command("deliver")
@click.option("--once", is_flag=True, help="One round of due deliveries, then exit.")
@click.option("--forever", is_flag=True, help="Rounds until SIGTERM or Ctrl-C (the default).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between rounds.",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=0),
    default=0,
    help="Stop after this many rounds (default: until stopped).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1, max=1000),
    default=100,
    show_default=True,
    help="Deliveries attempted per round.",
)
@click.option("--org", "org_name", default=None, help="Only this organization's webhooks.")
@click.option(
    "--prune-interval",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds between prunes of what is past its retention (hub-scim prune); 0: never.",
)
@database_url_option
@_access_errors
def events_deliver(
    once: bool,
    forever: bool,
    interval: float,
    rounds: int,
    batch: int,
    org_name: str | None,
    prune_interval: float,
    database_url: str | None,
) -> None:
    """POST due events to every organization's webhooks, signed; retried with backoff.

    Each POST has an overall deadline (HUB_SCIM_WEBHOOK_TIMEOUT_SECONDS),
    endpoints are posted to concurrently, and a delivery failing
    HUB_SCIM_WEBHOOK_MAX_ATTEMPTS times or older than
    HUB_SCIM_WEBHOOK_MAX_AGE_HOURS is dead-lettered. SIGTERM ends the loop
    after the round in progress is recorded. Looping, it also prunes every
    organization's trail past its retention every --prune-interval seconds
    (docs/personal-data.md#retention), between rounds.
    """
    if once and (forever or rounds):
        raise click.UsageError("--once goes with neither --forever nor --rounds")
    policy = _delivery_policy(database_url)
    org_id = None
    if org_name is not None:
        with command_session(database_url) as session:
            org_id = _org_id(session, org_name)
    limit = 1 if once else rounds
    done = 0
    pruner = None if once or not prune_interval else _Pruner(database_url, prune_interval)
    with _StopSignal() as stop:
        while not stop.event.is_set():
            if pruner is not None:
                pruner.run_if_due(stop.event)
            # Claim, post, record: no database lock is held while posting.
            with command_session(database_url) as session:
                claimed = claim_due(session, limit=batch, org_id=org_id)
            outcomes = post_deliveries(claimed, policy)
            with command_session(database_url) as session:
                report = record_outcomes(session, outcomes, policy)
            if once or report.attempted:
                click.echo(
                    f"Delivered {report.delivered}, failed {report.failed}, "
                    f"dead-lettered {report.dead_lettered}."
                )
            done += 1
            if limit and done >= limit:
                return
            # A full batch means more are due: go on without waiting.
            if report.attempted + report.skipped < batch:
                stop.event.wait(interval)
    click.echo("Stopped.")


class _Pruner:
    """Prunes the trail between delivery rounds, at most every ``interval`` seconds."""

    def __init__(self, database_url: str | None, interval: float) -> None:
        self.settings = command_settings(database_url=database_url)
        self.interval = interval
        self.last: float | None = None

    def run_if_due(self, stop: threading.Event) -> None:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        engine = make_engine(self.settings.database_url, poolclass=NullPool)
        try:
            report = prune(engine, retention_defaults(self.settings), stop=stop)
        except SQLAlchemyError as error:  # the deliverer outlives a failed prune
            click.echo(f"Pruning failed: {error}", err=True)
            return
        finally:
            engine.dispose()
        if report.total():
            click.echo(
                f"Pruned {report.total(AUDIT)} audit entries, {report.total(EVENTS_KIND)} "
                f"events, {report.total(REQUEST_LOG)} provisioning-log rows."
            )


@events.command("replay")
@org_option
@click.option("--from", "first", type=click.IntRange(min=1), required=True, help="First sequence.")
@click.option("--to", "last", type=click.IntRange(min=1), required=True, help="Last sequence.")
@click.option("--webhook", "endpoint_id", default=None, help="Only this webhook (its id).")
@database_url_option
@_access_errors
def events_replay(
    org_name: str, first: int, last: int, endpoint_id: str | None, database_url: str | None
) -> None:
    """Queue the organization's events FROM..TO (their ``sequence``) again for its webhooks.

    Delivered and dead-lettered deliveries are sent again at the next round;
    a webhook's dead-letter flag in ``health`` clears once they are queued.
    """
    with command_session(database_url) as session:
        report = replay_events(
            session,
            _org_id(session, org_name),
            first,
            last,
            actor=_actor(),
            endpoint_id=endpoint_id,
        )
    click.echo(f"Queued {report.queued} delivery(ies) of {report.events} event(s) again.")


# -- SCIM schema extensions ----------------------------------------------------------


@click.group()
def extension() -> None:
    """Custom User schema extensions the organization's IdP sends (RFC 7643 section 3.3)."""


@extension.command("add")
@org_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@database_url_option
@_access_errors
def extension_add(org_name: str, file: Path, as_json: bool, database_url: str | None) -> None:
    """Declare the User extension of the Schema resource in FILE (JSON, RFC 7643 section 7).

    From the next request on, the organization's SCIM endpoint stores, filters
    and patches its attributes, and publishes it in /Schemas and /ResourceTypes.
    Declaring it again may add attributes, never remove or retype one.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"cannot read {file}: {error}") from None
    document = read_schema_file(text, str(file))
    with command_session(database_url) as session:
        declared = declare_extension(session, _org_id(session, org_name), document, actor=_actor())
    if as_json:
        _echo_json(declared.to_json())
        return
    click.echo(
        f"Declared {declared.urn} for organization {org_name!r}: "
        + ", ".join(_attribute_text(attribute) for attribute in declared.attributes)
    )


@extension.command("list")
@org_option
@json_option
@database_url_option
@_access_errors
def extension_list(org_name: str, as_json: bool, database_url: str | None) -> None:
    """The User extensions the organization declared, with their attributes."""
    with command_session(database_url) as session:
        declared = list_extensions(session, _org_id(session, org_name))
    if as_json:
        _echo_json([item.to_json() for item in declared])
        return
    if not declared:
        click.echo(
            f"Organization {org_name!r} declared no extension: only the enterprise one is served."
        )
    for item in declared:
        click.echo(f"{item.urn} ({item.name}), declared by {item.declared_by}")
        for attribute in item.attributes:
            click.echo(f"    {_attribute_text(attribute)}")


def _attribute_text(attribute: tuple[str, str, bool]) -> str:
    name, kind, multi = attribute
    return f"{name} ({kind}{', multi-valued' if multi else ''})"


ACCESS_COMMANDS: tuple[click.Command, ...] = (
    mapping,
    extension,
    product,
    grant,
    revoke,
    access,
    audit,
    health,
    webhook,
    events,
)
"""The commands :mod:`connector.cli.main` adds to ``hub-scim``."""
