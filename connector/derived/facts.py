"""Reading what derivation needs from the database, a batch of users at a time.

Every loader takes the ids it is asked about and answers in a fixed number of
queries whatever the size of the organization or of the groups involved, so
that a membership change of k users costs O(k).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    Text,
    and_,
    bindparam,
    cast,
    false,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from connector.access.catalog import ProductState
from connector.access.conditions import satisfied
from connector.access.derive import AccessContext, DerivedAccess, ManualGrant, UserFacts
from connector.access.mapping import MappingConfig, MappingError, ProductGrant, parse_mapping
from connector.access.owners import HeldOwner, OwnerSeats, Seat
from connector.db import dialect as sql
from connector.db.base import utcnow
from connector.derived.memo import forget, recall, remember
from connector.derived.tables import (
    ACCESS_SNAPSHOTS,
    GROUP_BINDINGS,
    MANUAL_GRANTS,
    MAPPINGS,
    ONBOARDING,
    OWNER_HOLDS,
    OWNER_SEATS,
    PRODUCT_STATES,
)
from connector.directory.tables import EXTENSIONS, GROUP_MEMBERS, RESOURCES, ScimResource
from connector.errors import NotFound
from scim.backend import ResourceKind
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas, served_schemas

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
"""Users read and derived per round trip by org-wide recomputations (mapping, product state)."""


class UserNotFound(NotFound):
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


SCIM_ROLE_ATTRIBUTES = ("roles", "entitlements")
"""The User attributes whose values map through ``scim_role`` rules: Entra's app roles come as
``roles``, Okta Identity Governance assigns ``roles`` and ``entitlements``
(docs/rules.md#assignable-values)."""

SCIM_ROLE_PATHS = tuple(f"{name}.value" for name in SCIM_ROLE_ATTRIBUTES)
"""Where the attribute index keeps those values."""


def scim_role_values(document: Mapping[str, Any] | None) -> frozenset[str]:
    """The values of the SCIM ``roles`` and ``entitlements`` attributes."""
    values = set()
    for name in SCIM_ROLE_ATTRIBUTES:
        entries = attribute(document, name) if document is not None else None
        if not isinstance(entries, list):
            continue
        for entry in entries:
            value = attribute(entry, "value") if isinstance(entry, Mapping) else entry
            if isinstance(value, str) and value.strip():
                values.add(value)
    return frozenset(values)


def satisfied_conditions(
    config: MappingConfig, document: Mapping[str, Any] | None
) -> frozenset[int]:
    """The rules whose ``when`` the user document satisfies (docs/rules.md#mapping-rules)."""
    if document is None or not config.conditions:
        return frozenset()
    return satisfied(config.conditions, document)


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

_MAPPINGS = MAPPINGS
_BINDINGS = GROUP_BINDINGS
_PRODUCT_STATES = PRODUCT_STATES
_MANUAL_GRANTS = MANUAL_GRANTS
_SNAPSHOTS = ACCESS_SNAPSHOTS
_SEATS = OWNER_SEATS
_HOLDS = OWNER_HOLDS

# The mapping, its bindings, the product states and the declared SCIM
# extensions in one round trip: rows ("mapping", source, NULL), ("binding",
# ref_key, group_id), ("product", product, state), ("extension", urn, schema).
_RULES = union_all(
    select(
        literal_column("'mapping'").label("part"),
        _MAPPINGS.c.source.label("name"),
        null().label("value"),
    ).where(_MAPPINGS.c.org_id == bindparam("org_id")),
    select(literal_column("'binding'"), _BINDINGS.c.ref_key, _BINDINGS.c.group_id).where(
        _BINDINGS.c.org_id == bindparam("org_id")
    ),
    select(literal_column("'product'"), _PRODUCT_STATES.c.product, _PRODUCT_STATES.c.state).where(
        _PRODUCT_STATES.c.org_id == bindparam("org_id")
    ),
    select(
        literal_column("'extension'"), EXTENSIONS.c.urn_key, cast(EXTENSIONS.c.document, Text)
    ).where(EXTENSIONS.c.org_id == bindparam("org_id")),
)


@dataclass(frozen=True)
class OrgRules:
    """An organization's mapping in force, rule bindings and product states."""

    context: AccessContext
    source: str | None
    broken: str | None = None  # why the stored mapping no longer parses, if it does not
    served: ServedSchemas = DEFAULT_SCHEMAS  # the SCIM schemas conditions are read against

    @property
    def config(self) -> MappingConfig:
        return self.context.config

    @property
    def bound_group_ids(self) -> frozenset[str]:
        return frozenset(self.context.bindings.values())


@functools.lru_cache(maxsize=256)
def parsed_mapping(source: str, served: ServedSchemas = DEFAULT_SCHEMAS) -> MappingConfig:
    """The stored mapping text parsed once per process (it was validated when applied).

    ``when`` conditions are read against the organization's User schema.
    """
    return parse_mapping(source, user_model=served.model(ResourceKind.USER))


def load_rules(session: Session, org_id: int) -> OrgRules:
    """Mapping, bindings and product states of ``org_id``: one query per transaction.

    What it read is kept until the transaction ends (:mod:`.memo`); whoever
    writes the mapping, a binding or a product state calls :func:`forget_rules`.
    """
    found = recall(session, ("rules", org_id))
    if isinstance(found, OrgRules):
        return found
    source: str | None = None
    bindings: dict[str, str] = {}
    states: dict[str, ProductState] = {}
    extensions: list[dict[str, Any]] = []
    for part, name, value in session.execute(_RULES, {"org_id": org_id}):
        if part == "mapping":
            source = name
        elif part == "binding":
            bindings[name] = value
        elif part == "extension":
            extensions.append(json.loads(value))
        else:
            states[name] = ProductState.parse(value)
    served = served_schemas(extensions)
    config, broken = _config(org_id, source, served)
    rules = OrgRules(with_bindings(config, bindings, states), source, broken, served)
    remember(session, ("rules", org_id), rules)
    return rules


def forget_rules(session: Session, org_id: int) -> None:
    """The mapping, a binding or a product state of ``org_id`` is being written: read it again."""
    forget(session, ("rules", org_id))


def _config(
    org_id: int, source: str | None, served: ServedSchemas
) -> tuple[MappingConfig, str | None]:
    """The mapping in force (defaults without one), and why it no longer parses if so."""
    if source is None:
        return MappingConfig(), None
    try:
        return parsed_mapping(source, served), None
    except MappingError as error:
        # Valid when applied; the catalog (or a declared extension) has since changed. The
        # IdP must not fail for it (docs/rules.md#directory-mirrors-the-idp): derive with the
        # defaults, and let the health report say so loudly.
        logger.error("organization %s: the mapping in force no longer parses: %s", org_id, error)
        return MappingConfig(), str(error)


def with_bindings(
    config: MappingConfig, bindings: Mapping[str, str], states: Mapping[str, ProductState]
) -> AccessContext:
    return AccessContext(config, dict(bindings), dict(states))


# -- users ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryUser:
    """One user as derivation sees it, with what the audit trail names it by."""

    facts: UserFacts
    user_name: str
    created_at: datetime


@dataclass(frozen=True)
class _Queries:
    """The batched reads of one dialect, built once: ids travel as one bound parameter."""

    users: Mapping[tuple[bool, bool], Select[Any]]
    """Users with their manual grants, by (with their document, with their snapshot)."""
    memberships: Select[Any]
    user_names: Select[Any]
    snapshots: Select[Any]


@functools.cache
def _queries(dialect: str) -> _Queries:
    resource = RESOURCES.c
    user_columns = (resource.id, resource.name, resource.active, resource.created_at)
    users_scope = (
        sql.in_bound_ids(dialect, resource.id, "ids"),
        resource.org_id == bindparam("org_id"),
        resource.kind == ResourceKind.USER.value,
    )
    grant = _MANUAL_GRANTS.c
    # Each user once per manual grant (once with NULLs when none), its grants by product.
    with_grants = RESOURCES.outerjoin(
        _MANUAL_GRANTS, and_(grant.org_id == resource.org_id, grant.user_id == resource.id)
    )
    grant_columns = (grant.product, grant.product_roles, grant.permissions, grant.granted_by)
    snapshot = _SNAPSHOTS.c
    with_snapshots = with_grants.outerjoin(
        _SNAPSHOTS, and_(snapshot.org_id == resource.org_id, snapshot.user_id == resource.id)
    )

    def users(with_document: bool, with_snapshot: bool) -> Select[Any]:
        document = (resource.document,) if with_document else ()
        access = (snapshot.access.label("snapshot"),) if with_snapshot else ()
        return (
            select(*user_columns, *document, *grant_columns, *access)
            .select_from(with_snapshots if with_snapshot else with_grants)
            .where(*users_scope)
            .order_by(resource.id, grant.product)
        )

    return _Queries(
        users={
            (document, access): users(document, access)
            for document in (False, True)
            for access in (False, True)
        },
        memberships=select(GROUP_MEMBERS.c.user_id, GROUP_MEMBERS.c.group_id).where(
            sql.in_bound_ids(dialect, GROUP_MEMBERS.c.user_id, "ids")
        ),
        user_names=select(resource.id, resource.name).where(
            sql.in_bound_ids(dialect, resource.id, "ids"), resource.org_id == bindparam("org_id")
        ),
        snapshots=select(_SNAPSHOTS.c.user_id, _SNAPSHOTS.c.access).where(
            _SNAPSHOTS.c.org_id == bindparam("org_id"),
            sql.in_bound_ids(dialect, _SNAPSHOTS.c.user_id, "ids"),
        ),
    )


def _ids(session: Session, org_id: int, ids: Collection[str]) -> tuple[_Queries, dict[str, Any]]:
    """This session's prebuilt queries, and the parameters naming ``ids`` of ``org_id``."""
    dialect = session.get_bind().dialect.name
    return _queries(dialect), {"org_id": org_id, "ids": sql.bound_ids(dialect, ids)}


def load_users(
    session: Session, org_id: int, user_ids: Collection[str], rules: OrgRules
) -> dict[str, DirectoryUser]:
    """The facts of the existing users among ``user_ids``, for the whole batch at once.

    One query reads the users with their manual grants; a second, only when
    some rule is bound to a group, their memberships: no other membership
    changes anything.
    """
    users, _ = _load_users(session, org_id, user_ids, rules, with_snapshots=False)
    return users


def load_users_and_snapshots(
    session: Session, org_id: int, user_ids: Collection[str], rules: OrgRules
) -> tuple[dict[str, DirectoryUser], dict[str, DerivedAccess]]:
    """:func:`load_users`, and the access last derived for those that have one.

    The snapshots come with the users' own query: a recomputation that reads
    its users' facts needs no round trip more for what they had before.
    """
    return _load_users(session, org_id, user_ids, rules, with_snapshots=True)


def _load_users(
    session: Session,
    org_id: int,
    user_ids: Collection[str],
    rules: OrgRules,
    *,
    with_snapshots: bool,
) -> tuple[dict[str, DirectoryUser], dict[str, DerivedAccess]]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}, {}
    queries, params = _ids(session, org_id, ids)
    config = rules.config
    with_roles = config.map_scim_roles
    with_document = with_roles or bool(config.conditions)
    rows = session.execute(queries.users[with_document, with_snapshots], params).all()
    found: dict[str, Any] = {}
    manual: dict[str, list[ManualGrant]] = {}
    for row in rows:
        found.setdefault(row.id, row)
        if row.product is not None:
            grant = ProductGrant(
                row.product, frozenset(row.product_roles), frozenset(row.permissions)
            )
            manual.setdefault(row.id, []).append(ManualGrant(grant, row.granted_by))
    groups: dict[str, set[str]] = {}
    bound = rules.bound_group_ids
    if found and bound:
        # By user only: a condition on the group too lets a planner walk the
        # whole group through the primary key, O(members) instead of O(k).
        memberships = session.execute(queries.memberships, params)
        for user_id, group_id in memberships:
            if group_id in bound:
                groups.setdefault(user_id, set()).add(group_id)
    users = {}
    snapshots = {}
    for row in found.values():
        facts = UserFacts(
            user_id=row.id,
            active=row.active is not False,
            group_ids=frozenset(groups.get(row.id, ())),
            scim_roles=scim_role_values(row.document) if with_roles else frozenset(),
            conditions=satisfied_conditions(config, row.document) if with_document else frozenset(),
            manual_grants=tuple(manual.get(row.id, ())),
        )
        users[row.id] = DirectoryUser(facts, row.name, row.created_at)
        if with_snapshots and row.snapshot is not None:
            snapshots[row.id] = DerivedAccess.from_json(row.snapshot)
    return users, snapshots


def user_from_document(user_id: str, document: Mapping[str, Any], rules: OrgRules) -> DirectoryUser:
    """A user as derivation sees them from their document alone: in no group, no manual grant.

    Exactly what :func:`load_users` would read back for a user the store has
    just created: a fresh id is in no group yet (memberships are written
    through groups, RFC 7643 section 4.1.2) and has no manual grant. Enough,
    too, for a leaver, whose access is none whatever their groups.
    """
    user_name = attribute(document, "userName")
    meta = attribute(document, "meta")
    created = attribute(meta, "created") if isinstance(meta, Mapping) else None
    facts = UserFacts(
        user_id=user_id,
        active=is_active(document),
        scim_roles=scim_role_values(document) if rules.config.map_scim_roles else frozenset(),
        conditions=satisfied_conditions(rules.config, document),
    )
    return DirectoryUser(
        facts,
        user_name if isinstance(user_name, str) else "",
        datetime.fromisoformat(created) if isinstance(created, str) else utcnow(),
    )


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
    queries, params = _ids(session, org_id, ids)
    return {user_id: name for user_id, name in session.execute(queries.user_names, params)}


def load_onboarded_of(
    session: Session, org_id: int, user_ids: Collection[str]
) -> dict[str, frozenset[str]]:
    """The products whose onboarding each of ``user_ids`` finished, in one query; a user with
    none is absent."""
    if not user_ids:
        return {}
    dialect = session.get_bind().dialect.name
    done = ONBOARDING.c
    rows = session.execute(
        select(done.user_id, done.product).where(
            done.org_id == org_id, sql.in_ids(dialect, done.user_id, sorted(set(user_ids)))
        )
    )
    found: dict[str, set[str]] = {}
    for user_id, product in rows:
        found.setdefault(user_id, set()).add(product)
    return {user_id: frozenset(products) for user_id, products in found.items()}


# -- derived state ---------------------------------------------------------------------


def load_snapshots(
    session: Session, org_id: int, user_ids: Collection[str]
) -> dict[str, DerivedAccess]:
    """The access last derived for each of ``user_ids`` that has one."""
    if not user_ids:
        return {}
    queries, params = _ids(session, org_id, sorted(set(user_ids)))
    rows = session.execute(queries.snapshots, params)
    return {user_id: DerivedAccess.from_json(access) for user_id, access in rows}


@dataclass(frozen=True)
class StoredSeats:
    """The seats and queue as stored, and the users among them no longer in the directory."""

    seats: OwnerSeats
    vanished: frozenset[str]

    @property
    def known(self) -> tuple[str, ...]:
        return self.seats.owner_ids + self.seats.held_ids


# Seats (place = seat number) and holds (place = queue position) in one round
# trip, each with its user's id if the user is still in the directory.
_SEATS_AND_HOLDS = union_all(
    select(
        false().label("held"),
        _SEATS.c.seat.label("place"),
        _SEATS.c.user_id,
        _SEATS.c.seated_at.label("since"),
        _SEATS.c.kept_as_last,
        RESOURCES.c.id.label("present"),
    )
    .select_from(_SEATS.outerjoin(RESOURCES, RESOURCES.c.id == _SEATS.c.user_id))
    .where(_SEATS.c.org_id == bindparam("org_id")),
    select(
        literal_column("true", type_=_SEATS.c.kept_as_last.type),
        _HOLDS.c.position,
        _HOLDS.c.user_id,
        _HOLDS.c.held_at,
        false(),
        RESOURCES.c.id,
    )
    .select_from(_HOLDS.outerjoin(RESOURCES, RESOURCES.c.id == _HOLDS.c.user_id))
    .where(_HOLDS.c.org_id == bindparam("org_id")),
)


def load_seats(session: Session, org_id: int) -> StoredSeats:
    """The organization's Owner seats and hold queue: one query."""
    seats: list[Seat] = []
    queue: list[tuple[int, HeldOwner]] = []
    vanished: set[str] = set()
    for row in session.execute(_SEATS_AND_HOLDS, {"org_id": org_id}):
        if row.held:
            queue.append((row.place, HeldOwner(row.user_id, row.since)))
        else:
            seats.append(Seat(row.place, row.user_id, row.since, bool(row.kept_as_last)))
        if row.present is None:
            vanished.add(row.user_id)
    seats.sort(key=lambda seat: seat.number)
    queue.sort(key=lambda item: item[0])
    return StoredSeats(
        OwnerSeats(tuple(seats), tuple(held for _, held in queue)), frozenset(vanished)
    )
