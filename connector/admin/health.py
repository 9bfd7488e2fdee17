"""The health report IT reads when something is held, dormant or missing.

Held Owners and their queue positions, an organization without an Owner, a
last Owner kept after leaving the Owners group (docs/rules.md#last-owner),
grants kept dormant because their product is not subscribed
(docs/rules.md#grants-and-product-states),
rules whose group the IdP never pushed, and mapped SCIM roles that the IdP
has only ever added, never taken away (an add-only expression in Entra:
docs/entra.md, "App roles instead of groups"). Each finding is a few
queries over rules, seats and per-organization notes, never a scan of every
user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.access.catalog import counts
from connector.access.derive import AccessContext
from connector.access.mapping import group_ref_key
from connector.access.owners import OwnerSeats
from connector.admin.webhooks import dead_lettered_endpoints
from connector.derived.facts import SCIM_ROLE_PATHS, load_rules, load_seats, load_user_names
from connector.derived.tables import ManualGrant
from connector.directory.filters import matching_users
from connector.directory.tables import GroupMember, ScimAttributeValue, ScimResource
from connector.trail.role_changes import FirstSeen, RoleChange, role_changes_seen
from scim.backend import ResourceKind


@dataclass(frozen=True)
class DormantGrant:
    """A rule or the manual grants giving a product the organization does not subscribe to."""

    product: str
    state: str
    source: str
    users: int

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "state": self.state,
            "source": self.source,
            "users": self.users,
        }


@dataclass(frozen=True)
class HealthReport:
    org_id: int
    owners: OwnerSeats
    names: dict[str, str]
    users: int
    dormant: tuple[DormantGrant, ...] = ()
    unbound_rules: tuple[dict[str, Any], ...] = ()
    mapping_applied: bool = False
    mapping_problem: str | None = None
    problems: tuple[str, ...] = field(default=())
    # (id, url, dead-lettered deliveries) of webhooks that gave up on events.
    dead_webhooks: tuple[tuple[str, str, int], ...] = ()
    # With SCIM roles mapped: the first write that added a role, when no write
    # ever took one away.
    roles_only_added: FirstSeen | None = None

    @property
    def without_owner(self) -> bool:
        return not self.owners.has_owner

    @property
    def kept_as_last(self) -> tuple[str, ...]:
        return tuple(seat.user_id for seat in self.owners.seats if seat.kept_as_last)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "problems": list(self.problems),
            "users": self.users,
            "mapping_applied": self.mapping_applied,
            "mapping_problem": self.mapping_problem,
            "without_owner": self.without_owner,
            "owners": [
                {**seat.to_json(), "userName": self.names.get(seat.user_id)}
                for seat in self.owners.seats
            ],
            "held": [
                {**held.to_json(), "position": position, "userName": self.names.get(held.user_id)}
                for position, held in enumerate(self.owners.queue, start=1)
            ],
            "kept_as_last_owner": [
                {"user_id": user, "userName": self.names.get(user)} for user in self.kept_as_last
            ],
            "dormant_grants": [grant.to_json() for grant in self.dormant],
            "unbound_rules": list(self.unbound_rules),
            "dead_lettered_webhooks": [
                {"id": id_, "url": url, "dead_lettered": count}
                for id_, url, count in self.dead_webhooks
            ],
            "roles_only_added": None
            if self.roles_only_added is None
            else {
                "since": self.roles_only_added.at.isoformat(timespec="seconds"),
                "user_id": self.roles_only_added.user_id,
                "userName": self.names.get(self.roles_only_added.user_id),
            },
        }

    def to_text(self) -> str:
        lines = ["Healthy." if self.healthy else "Needs attention:"]
        lines.extend(f"  ! {problem}" for problem in self.problems)
        lines.append(f"Users: {self.users}")
        if self.owners.seats:
            for seat in self.owners.seats:
                flag = " (kept as the last Owner)" if seat.kept_as_last else ""
                lines.append(f"Owner seat {seat.number}: {self._name(seat.user_id)}{flag}")
        else:
            lines.append("Owner seats: none")
        for position, held in enumerate(self.owners.queue, start=1):
            lines.append(
                f"Held third Owner #{position}: {self._name(held.user_id)} "
                f"since {held.since.isoformat(timespec='seconds')}"
            )
        for grant in self.dormant:
            lines.append(
                f"Dormant: {grant.source} grants {grant.product} ({grant.state}) "
                f"to {grant.users} user(s)"
            )
        for rule in self.unbound_rules:
            lines.append(
                f"Rule {rule['rule']} (line {rule.get('line')}): "
                f"group {rule['group']!r} never pushed"
            )
        for id_, url, count in self.dead_webhooks:
            lines.append(f"Webhook {id_} ({url}): {count} event(s) dead-lettered")
        if self.roles_only_added is not None:
            first = self.roles_only_added
            lines.append(
                f"SCIM roles only ever added, since {first.at.isoformat(timespec='seconds')} "
                f"(first to {self._name(first.user_id)}); none ever taken away"
            )
        return "\n".join(lines)

    def _name(self, user_id: str) -> str:
        name = self.names.get(user_id)
        return f"{name} ({user_id})" if name else user_id


def health_report(session: Session, org_id: int) -> HealthReport:
    """What IT should look at in ``org_id``; see the module docstring."""
    rules = load_rules(session, org_id)
    owners = load_seats(session, org_id).seats
    roles_only_added = _roles_only_added(session, org_id) if rules.config.map_scim_roles else None
    named = owners.owner_ids + owners.held_ids
    if roles_only_added is not None:
        named = (*named, roles_only_added.user_id)
    names = load_user_names(session, org_id, named)
    users = (
        session.scalar(
            select(func.count())
            .select_from(ScimResource)
            .where(ScimResource.org_id == org_id, ScimResource.kind == ResourceKind.USER.value)
        )
        or 0
    )
    dormant = _dormant(session, org_id, rules.context)
    unbound = tuple(
        {"rule": rule.number, "line": rule.line, "group": rule.group}
        for rule in rules.config.rules
        if rule.group_key is not None and rule.group_key not in rules.context.bindings
    )
    problems: list[str] = []
    if rules.broken:
        problems.append(
            f"the mapping in force no longer parses; deriving with defaults: {rules.broken}"
        )
    if not owners.has_owner:
        problems.append("the organization has no Owner (see docs/rules.md#last-owner)")
    for seat in owners.seats:
        if seat.kept_as_last:
            problems.append(
                f"{names.get(seat.user_id, seat.user_id)} left the Owners mapping and is kept as "
                "the last Owner until another Owner is seated"
            )
    if owners.queue:
        problems.append(
            f"{len(owners.queue)} would-be third Owner(s) held, acting with the fallback role"
        )
    if unbound:
        problems.append(f"{len(unbound)} rule(s) name a group the IdP has not pushed")
    dead_webhooks = tuple(dead_lettered_endpoints(session, org_id))
    for _id, url, count in dead_webhooks:
        problems.append(
            f"webhook {url} gave up on {count} event(s): fix it, then "
            "`hub-scim events replay` (docs/webhooks.md)"
        )
    if roles_only_added is not None:
        problems.append(
            "SCIM roles are mapped, but the IdP has only ever added roles, never taken one "
            "away: an add-only expression (Entra's AppRoleAssignmentsComplex) leaves a role "
            "removed in the IdP, and its access, in Hub; use "
            "AssertiveAppRoleAssignmentsComplex (docs/entra.md)"
        )
    return HealthReport(
        org_id=org_id,
        owners=owners,
        names=names,
        users=users,
        dormant=dormant,
        unbound_rules=unbound,
        mapping_applied=rules.source is not None,
        mapping_problem=rules.broken,
        problems=tuple(problems),
        dead_webhooks=dead_webhooks,
        roles_only_added=roles_only_added,
    )


def _roles_only_added(session: Session, org_id: int) -> FirstSeen | None:
    """The first write that added a SCIM role, when no write ever took one away."""
    seen = role_changes_seen(session, org_id)
    if RoleChange.TAKEN_AWAY in seen:
        return None
    return seen.get(RoleChange.ADDED)


def _dormant(session: Session, org_id: int, context: AccessContext) -> tuple[DormantGrant, ...]:
    found: list[DormantGrant] = []
    for rule in context.config.rules:
        if rule.grant is None or counts(context.state(rule.grant.product)):
            continue
        if rule.group_key is not None:
            group_id = context.bindings.get(rule.group_key)
            if group_id is None:
                continue  # reported as a rule whose group was never pushed
            holders = select(func.count()).where(GroupMember.group_id == group_id)
        elif rule.condition is not None:
            dialect = session.get_bind().dialect.name
            reached = matching_users(
                rule.condition.model, org_id, dialect, rule.condition.compiled.ast
            ).subquery()
            holders = select(func.count()).select_from(reached)
        else:
            holders = select(func.count(ScimAttributeValue.resource_id.distinct())).where(
                ScimAttributeValue.org_id == org_id,
                ScimAttributeValue.path.in_(SCIM_ROLE_PATHS),
                ScimAttributeValue.value_key == group_ref_key(rule.scim_role or ""),
            )
        product = rule.grant.product
        users = session.scalar(holders) or 0
        found.append(DormantGrant(product, context.state(product).value, rule.describe(), users))
    manual = session.execute(
        select(ManualGrant.product, func.count())
        .where(ManualGrant.org_id == org_id)
        .group_by(ManualGrant.product)
        .order_by(ManualGrant.product)
    )
    for product, number in manual:
        if not counts(context.state(product)):
            found.append(
                DormantGrant(product, context.state(product).value, "manual grants", number)
            )
    return tuple(found)
