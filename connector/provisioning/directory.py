"""Reading what derivation needs from the database, a batch of users at a time.

Every loader takes the ids it is asked about and answers in a fixed number of
queries whatever the size of the organization or of the groups involved, so
that a membership change of k users costs O(k) (issue 3 "Consistency").
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.access.catalog import ProductState
from connector.access.derive import AccessContext, DerivedAccess, ManualGrant, UserFacts
from connector.access.mapping import MappingConfig, MappingError, ProductGrant, parse_mapping
from connector.access.owners import HeldOwner, OwnerSeats, Seat
from connector.provisioning.tables import (
    AccessSnapshot,
    GroupBinding,
    MappingDocument,
    OnboardingDone,
    OwnerHold,
    OwnerSeat,
    ProductStateRow,
)
from connector.provisioning.tables import (
    ManualGrant as ManualGrantRow,
)
from connector.store import dialect as sql
from connector.store.tables import GroupMember, ScimResource
from scim.backend import ResourceKind

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Users read and derived per round trip by org-wide recomputations (mapping, product state)."""


class UserNotFound(LookupError):
    """No user of this organization has this id or userName."""

    def __init__(self, user_ref: str) -> None:
        super().__init__(f"no user {user_ref!r} in this organization")
        self.user_ref = user_ref


# -- documents -------------------------------------------------------------------


def attribute(document: Mapping[str, Any], name: str) -> Any:
    """A top-level attribute, its name compared case-insensitively (RFC 7643 section 2.1)."""
    wanted = name.lower()
    for key, value in document.items():
        if key.lower() == wanted:
            return value
    return None


def is_active(document: Mapping[str, Any] | None) -> bool:
    """A user is active unless ``active`` is false; a user sent without it is active."""
    if document is None:
        return False
    return attribute(document, "active") is not False


def scim_role_values(document: Mapping[str, Any] | None) -> frozenset[str]:
    """The values of the SCIM ``roles`` attribute (Entra's app role assignments)."""
    roles = attribute(document, "roles") if document is not None else None
    if not isinstance(roles, list):
        return frozenset()
    values = set()
    for role in roles:
        value = attribute(role, "value") if isinstance(role, Mapping) else role
        if isinstance(value, str) and value.strip():
            values.add(value)
    return frozenset(values)


def email_addresses(document: Mapping[str, Any]) -> tuple[str, ...]:
    """Every address a user document carries: its emails, and its userName if it is one."""
    found: list[str] = []
    user_name = attribute(document, "userName")
    if isinstance(user_name, str) and "@" in user_name:
        found.append(user_name)
    emails = attribute(document, "emails")
    if isinstance(emails, list):
        for email in emails:
            value = attribute(email, "value") if isinstance(email, Mapping) else None
            if isinstance(value, str):
                found.append(value)
    return tuple(dict.fromkeys(found))


# -- the organization's rules ---------------------------------------------------------


@dataclass(frozen=True)
class OrgRules:
    """An organization's mapping in force, rule bindings and product states."""

    context: AccessContext
    source: str | None
    broken: str | None = None  # why the stored mapping no longer parses, if it does not

    @property
    def config(self) -> MappingConfig:
        return self.context.config

    @property
    def bound_group_ids(self) -> frozenset[str]:
        return frozenset(self.context.bindings.values())


@functools.lru_cache(maxsize=256)
def parsed_mapping(source: str) -> MappingConfig:
    """The stored mapping text parsed once per process (it was validated when applied)."""
    return parse_mapping(source)


def load_config(session: Session, org_id: int) -> tuple[MappingConfig, str | None, str | None]:
    """The mapping in force (defaults without one), its text, and why it no longer parses if so."""
    source = session.scalar(select(MappingDocument.source).where(MappingDocument.org_id == org_id))
    if source is None:
        return MappingConfig(), None, None
    try:
        return parsed_mapping(source), source, None
    except MappingError as error:
        # Valid when applied; the catalog has since changed under it. The
        # IdP must not fail for it (DESIGN.md rule 1): derive with the
        # defaults, and let the health report say so loudly.
        logger.error("organization %s: the mapping in force no longer parses: %s", org_id, error)
        return MappingConfig(), source, str(error)


def load_rules(session: Session, org_id: int) -> OrgRules:
    """Mapping, bindings and product states of ``org_id``: three small queries."""
    config, source, broken = load_config(session, org_id)
    rows = session.execute(
        select(GroupBinding.ref_key, GroupBinding.group_id).where(GroupBinding.org_id == org_id)
    )
    bindings = {ref_key: group_id for ref_key, group_id in rows}
    return OrgRules(
        with_bindings(config, bindings, load_product_states(session, org_id)), source, broken
    )


def with_bindings(
    config: MappingConfig, bindings: Mapping[str, str], states: Mapping[str, ProductState]
) -> AccessContext:
    return AccessContext(config, dict(bindings), dict(states))


def load_product_states(session: Session, org_id: int) -> dict[str, ProductState]:
    rows = session.execute(
        select(ProductStateRow.product, ProductStateRow.state).where(
            ProductStateRow.org_id == org_id
        )
    )
    return {product: ProductState.parse(state) for product, state in rows}


# -- users ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryUser:
    """One user as derivation sees it, with what the audit trail names it by."""

    facts: UserFacts
    user_name: str
    created_at: datetime


def load_users(
    session: Session, org_id: int, user_ids: Collection[str], rules: OrgRules
) -> dict[str, DirectoryUser]:
    """The facts of the existing users among ``user_ids``: three queries for the whole batch.

    Only memberships of groups some rule is bound to count: no other
    membership changes anything.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    dialect = session.get_bind().dialect.name
    with_roles = rules.config.map_scim_roles
    columns: list[Any] = [
        ScimResource.id,
        ScimResource.name,
        ScimResource.active,
        ScimResource.created_at,
    ]
    if with_roles:
        columns.append(ScimResource.document)
    rows = session.execute(
        select(*columns).where(
            sql.in_ids(dialect, ScimResource.id, ids),
            ScimResource.org_id == org_id,
            ScimResource.kind == ResourceKind.USER.value,
        )
    ).all()
    found = [row.id for row in rows]
    groups: dict[str, set[str]] = {}
    bound = rules.bound_group_ids
    if found and bound:
        # By user only: a condition on the group too lets a planner walk the
        # whole group through the primary key, O(members) instead of O(k).
        memberships = session.execute(
            select(GroupMember.user_id, GroupMember.group_id).where(
                sql.in_ids(dialect, GroupMember.user_id, found)
            )
        )
        for user_id, group_id in memberships:
            if group_id in bound:
                groups.setdefault(user_id, set()).add(group_id)
    manual = load_manual_grants(session, org_id, found)
    users = {}
    for row in rows:
        facts = UserFacts(
            user_id=row.id,
            active=row.active is not False,
            group_ids=frozenset(groups.get(row.id, ())),
            scim_roles=scim_role_values(row.document) if with_roles else frozenset(),
            manual_grants=manual.get(row.id, ()),
        )
        users[row.id] = DirectoryUser(facts, row.name, row.created_at)
    return users


def load_manual_grants(
    session: Session, org_id: int, user_ids: Collection[str]
) -> dict[str, tuple[ManualGrant, ...]]:
    if not user_ids:
        return {}
    dialect = session.get_bind().dialect.name
    grants: dict[str, list[ManualGrant]] = {}
    rows = session.scalars(
        select(ManualGrantRow)
        .where(
            ManualGrantRow.org_id == org_id, sql.in_ids(dialect, ManualGrantRow.user_id, user_ids)
        )
        .order_by(ManualGrantRow.user_id, ManualGrantRow.product)
    )
    for row in rows:
        grant = ProductGrant(row.product, frozenset(row.product_roles), frozenset(row.permissions))
        grants.setdefault(row.user_id, []).append(ManualGrant(grant, row.granted_by))
    return {user_id: tuple(items) for user_id, items in grants.items()}


def iter_user_batches(session: Session, org_id: int, size: int = BATCH_SIZE) -> Iterator[list[str]]:
    """Every user id of the organization, oldest first, in keyset-paged batches."""
    after: tuple[datetime, str] | None = None
    while True:
        query = (
            select(ScimResource.id, ScimResource.created_at)
            .where(ScimResource.org_id == org_id, ScimResource.kind == ResourceKind.USER.value)
            .order_by(ScimResource.created_at, ScimResource.id)
            .limit(size)
        )
        if after is not None:
            moment, last = after
            query = query.where(
                (ScimResource.created_at > moment)
                | ((ScimResource.created_at == moment) & (ScimResource.id > last))
            )
        rows = session.execute(query).all()
        if not rows:
            return
        yield [row.id for row in rows]
        after = (rows[-1].created_at, rows[-1].id)


def find_user(session: Session, org_id: int, user_ref: str) -> tuple[str, str]:
    """The id and userName of the user ``user_ref`` names: its id, or its userName in any case."""
    if not isinstance(user_ref, str) or not user_ref.strip() or "\x00" in user_ref:
        raise UserNotFound(str(user_ref))
    scope = (ScimResource.org_id == org_id, ScimResource.kind == ResourceKind.USER.value)
    if len(user_ref) <= 36:
        row = session.execute(
            select(ScimResource.id, ScimResource.name).where(ScimResource.id == user_ref, *scope)
        ).first()
        if row is not None:
            return row.id, row.name
    row = session.execute(
        select(ScimResource.id, ScimResource.name).where(
            ScimResource.name_key == user_name_key(user_ref), *scope
        )
    ).first()
    if row is None:
        raise UserNotFound(user_ref)
    return row.id, row.name


@functools.cache
def _user_name_attribute() -> Any:
    from scim2_models import EnterpriseUser, User

    from scim.attributes import resolve_attribute

    return resolve_attribute(User[EnterpriseUser], "userName")


def user_name_key(user_name: str) -> str:
    """The store's unique key of a userName: how it compares, case-insensitively."""
    found = _user_name_attribute()
    return str(found.comparison_key(user_name)) if found is not None else user_name.lower()


def load_user_names(session: Session, org_id: int, user_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        select(ScimResource.id, ScimResource.name).where(
            sql.in_ids(dialect, ScimResource.id, ids), ScimResource.org_id == org_id
        )
    )
    return {user_id: name for user_id, name in rows}


def load_onboarded(session: Session, user_id: str) -> frozenset[str]:
    return frozenset(
        session.scalars(select(OnboardingDone.product).where(OnboardingDone.user_id == user_id))
    )


# -- derived state ---------------------------------------------------------------------


def load_snapshots(
    session: Session, org_id: int, user_ids: Collection[str]
) -> dict[str, DerivedAccess]:
    """The access last derived for each of ``user_ids`` that has one."""
    if not user_ids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        select(AccessSnapshot.user_id, AccessSnapshot.access).where(
            AccessSnapshot.org_id == org_id,
            sql.in_ids(dialect, AccessSnapshot.user_id, sorted(set(user_ids))),
        )
    )
    return {user_id: DerivedAccess.from_json(access) for user_id, access in rows}


@dataclass(frozen=True)
class StoredSeats:
    """The seats and queue as stored, and the users among them no longer in the directory."""

    seats: OwnerSeats
    vanished: frozenset[str]

    @property
    def known(self) -> tuple[str, ...]:
        return self.seats.owner_ids + self.seats.held_ids


def load_seats(session: Session, org_id: int) -> StoredSeats:
    """The organization's Owner seats and hold queue: two queries."""
    seat_rows = session.execute(
        select(OwnerSeat, ScimResource.id)
        .outerjoin(ScimResource, ScimResource.id == OwnerSeat.user_id)
        .where(OwnerSeat.org_id == org_id)
        .order_by(OwnerSeat.seat)
    )
    hold_rows = session.execute(
        select(OwnerHold, ScimResource.id)
        .outerjoin(ScimResource, ScimResource.id == OwnerHold.user_id)
        .where(OwnerHold.org_id == org_id)
        .order_by(OwnerHold.position)
    )
    seats: list[Seat] = []
    queue: list[HeldOwner] = []
    vanished: set[str] = set()
    for row, present in seat_rows:
        seats.append(Seat(row.seat, row.user_id, row.seated_at, row.kept_as_last))
        if present is None:
            vanished.add(row.user_id)
    for hold, present in hold_rows:
        queue.append(HeldOwner(hold.user_id, hold.held_at))
        if present is None:
            vanished.add(hold.user_id)
    return StoredSeats(OwnerSeats(tuple(seats), tuple(queue)), frozenset(vanished))
