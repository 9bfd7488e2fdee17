"""One staff user's effective Hub access, derived from the directory.

docs/rules.md#platform-role, #grants-and-product-states, #role-as-ceiling and
#leavers.

Inputs are plain values: the user's facts (:class:`UserFacts`), the org's
mapping, bindings and product states (:class:`AccessContext`) and the user's
standing with the Owner seats (from :func:`connector.access.owners.seat_owners`).
The result, :class:`DerivedAccess`, is what products read and what the access
API and CLI print; it round-trips through JSON so it can be stored as a snapshot.

Decisions made here:

- Only a seat makes an Owner. A user mapped to Owner without a seat acts with
  the higher of the org's fallback role and the best non-Owner role mapped.
- Owners have unrestricted access (docs/rules.md#role-as-ceiling):
  an Owner gets every product that is active or trial for the org with all of
  its permissions, whatever the grants say; their grants stay listed as sources.
- The Viewer ceiling applies to dormant grants too, so a dormant grant shows
  exactly what enabling the product would give.
- Product roles are labels the product interprets; the ceiling acts on permissions.
- Permissions and product roles unknown to the catalog (a product that dropped
  one), and client-access product roles, are ignored: grants are validated
  when written, and derivation never widens them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.access._text import quote
from connector.access.catalog import HUB_CATALOG, Catalog, ProductState, counts
from connector.access.mapping import MappingConfig, MappingRule, ProductGrant, group_ref_key
from connector.access.onboarding import Onboarding, onboarding_status
from connector.access.owners import OwnerOutcome, OwnerSeats, OwnerStanding, seat_owners
from connector.access.roles import Role


class SourceKind(enum.Enum):
    RULE = "rule"
    MANUAL = "manual"
    DEFAULT_ROLE = "default_role"
    OWNER_FALLBACK = "owner_fallback"
    LAST_OWNER = "last_owner"
    OWNER_SEAT = "owner_seat"
    OWNER = "owner"
    SCIM_ROLE = "scim_role"


HUB_ROLE_VALUE = 0
"""The rule number of :data:`HUB_ROLE_VALUES`: no rule of a mapping file has it."""

HUB_ROLE_VALUES: Mapping[str, MappingRule] = {
    role.value: MappingRule(HUB_ROLE_VALUE, scim_role=role.title, role=role)
    for role in sorted(Role, reverse=True)
}
"""A SCIM role value naming a platform role, as the rule it acts as.

docs/rules.md#assignable-values.
"""


@dataclass(frozen=True)
class Source:
    """Where a role or grant came from: a mapping rule, a manual grant, or a policy."""

    kind: SourceKind
    rule: int | None = None
    group: str | None = None
    scim_role: str | None = None
    granted_by: str | None = None
    when: str | None = None  # the condition of a rule on the user's attributes

    @classmethod
    def of_rule(cls, rule: MappingRule) -> Source:
        if rule.number == HUB_ROLE_VALUE:
            return cls(SourceKind.SCIM_ROLE, scim_role=rule.scim_role)
        when = None if rule.condition is None else rule.condition.text
        return cls(SourceKind.RULE, rule.number, rule.group, rule.scim_role, when=when)

    def describe(self) -> str:
        if self.kind is SourceKind.SCIM_ROLE:
            return f"SCIM role {quote(self.scim_role)}, a Hub role name"
        if self.kind is SourceKind.RULE:
            if self.group is not None:
                subject = f"group {quote(self.group)}"
            elif self.when is not None:
                subject = f"when {self.when}"
            else:
                subject = f"SCIM role {quote(self.scim_role)}"
            return f"rule {self.rule} ({subject})"
        if self.kind is SourceKind.MANUAL:
            return f"manual grant by {self.granted_by}"
        return {
            SourceKind.DEFAULT_ROLE: "the org's default role",
            SourceKind.OWNER_FALLBACK: "the org's Owner fallback role (held as a third Owner)",
            SourceKind.LAST_OWNER: "kept as the last Owner",
            SourceKind.OWNER_SEAT: "holds an Owner seat",
            SourceKind.OWNER: "Owner: every enabled product",
        }[self.kind]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind.value}
        for key in ("rule", "group", "scim_role", "when", "granted_by"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        data["description"] = self.describe()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Source:
        return cls(
            SourceKind(data["type"]),
            data.get("rule"),
            data.get("group"),
            data.get("scim_role"),
            data.get("granted_by"),
            data.get("when"),
        )


@dataclass(frozen=True)
class ManualGrant:
    """A product grant IT gave one user by hand."""

    grant: ProductGrant
    granted_by: str


@dataclass(frozen=True)
class UserFacts:
    """What the directory and IT's records say about one staff user."""

    user_id: str
    active: bool
    group_ids: frozenset[str] = frozenset()
    scim_roles: frozenset[str] = frozenset()  # values of the SCIM `roles` attribute
    manual_grants: tuple[ManualGrant, ...] = ()
    onboarded: frozenset[str] = frozenset()  # products whose onboarding the user completed
    conditions: frozenset[int] = frozenset()  # rules whose `when` the user's attributes satisfy


@dataclass(frozen=True)
class AccessContext:
    """The org-wide inputs of derivation: mapping, bindings, product states, catalog."""

    config: MappingConfig
    bindings: Mapping[str, str]  # group reference key to group id (mapping.bind_rules)
    product_states: Mapping[str, ProductState]  # absent means not_subscribed
    catalog: Catalog = HUB_CATALOG
    _rules_by_group: Mapping[str, tuple[MappingRule, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_group: dict[str, list[MappingRule]] = {}
        for rule in self.config.rules:
            group_id = self.bindings.get(rule.group_key) if rule.group_key else None
            if group_id is not None:
                by_group.setdefault(group_id, []).append(rule)
        object.__setattr__(
            self, "_rules_by_group", {key: tuple(rules) for key, rules in by_group.items()}
        )

    def state(self, product: str) -> ProductState:
        return self.product_states.get(product, ProductState.NOT_SUBSCRIBED)

    def matched_rules(self, facts: UserFacts) -> tuple[MappingRule, ...]:
        """The rules that apply to the user, in file order (docs/rules.md#platform-role)."""
        matched = {
            rule.number: rule
            for group_id in facts.group_ids
            for rule in self._rules_by_group.get(group_id, ())
        }
        if facts.conditions:
            for rule in self.config.rules:
                if rule.condition is not None and rule.number in facts.conditions:
                    matched[rule.number] = rule
        named: list[MappingRule] = []
        if self.config.map_scim_roles:
            values = {group_ref_key(value) for value in facts.scim_roles}
            for rule in self.config.rules:
                if rule.scim_role is not None and group_ref_key(rule.scim_role) in values:
                    matched[rule.number] = rule
            # A value naming a platform role gives it (docs/rules.md#assignable-values).
            named = [rule for key, rule in HUB_ROLE_VALUES.items() if key in values]
        return (*(matched[number] for number in sorted(matched)), *named)


@dataclass(frozen=True)
class RoleClaim:
    """The role the mapping wants for a user, with the rules (or default) behind it."""

    role: Role
    sources: tuple[Source, ...]


def claim_role(facts: UserFacts, context: AccessContext) -> RoleClaim:
    """The highest mapped role, else the org's default role (docs/rules.md#platform-role)."""
    return _best_claim(context.matched_rules(facts), context.config.default_role, below=None)


def qualifies_as_owner(facts: UserFacts, context: AccessContext) -> bool:
    """Active and mapped to Owner: a seat candidate (docs/rules.md#owner-cap)."""
    return facts.active and claim_role(facts, context).role is Role.OWNER


def _best_claim(rules: Iterable[MappingRule], default: Role, below: Role | None) -> RoleClaim:
    by_role: dict[Role, list[Source]] = {}
    for rule in rules:
        if rule.role is not None and (below is None or rule.role < below):
            by_role.setdefault(rule.role, []).append(Source.of_rule(rule))
    if not by_role:
        return RoleClaim(default, (Source(SourceKind.DEFAULT_ROLE),))
    best = max(by_role)
    return RoleClaim(best, tuple(by_role[best]))


@dataclass(frozen=True)
class Grant:
    """A user's access to one product, with every source it came from."""

    product: str
    roles: frozenset[str]
    permissions: Mapping[str, tuple[Source, ...]]  # permission to its sources
    sources: tuple[Source, ...]
    withheld: frozenset[str] = frozenset()  # granted but above the role's ceiling
    onboarding: Onboarding | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "roles": sorted(self.roles),
            "permissions": sorted(self.permissions),
            "withheld": sorted(self.withheld),
            "onboarding": None if self.onboarding is None else self.onboarding.value,
            "sources": [source.to_json() for source in self.sources],
            "permission_sources": {
                name: [source.to_json() for source in self.permissions[name]]
                for name in sorted(self.permissions)
            },
        }

    @classmethod
    def from_json(cls, product: str, data: Mapping[str, Any]) -> Grant:
        sources = data.get("permission_sources", {})
        return cls(
            product,
            frozenset(data["roles"]),
            {
                name: tuple(Source.from_json(item) for item in sources.get(name, []))
                for name in data["permissions"]
            },
            tuple(Source.from_json(item) for item in data["sources"]),
            frozenset(data.get("withheld", [])),
            None if data.get("onboarding") is None else Onboarding(data["onboarding"]),
        )


@dataclass(frozen=True)
class DerivedAccess:
    """A user's effective access, as the access API and ``hub-scim access --json`` show it."""

    user_id: str
    active: bool
    role: Role | None  # None when inactive
    role_sources: tuple[Source, ...] = ()
    wanted_role: Role | None = None  # what the mapping gives before the two-Owner cap
    held: bool = False  # a held third Owner, acting with the fallback role
    kept_as_last_owner: bool = False
    products: Mapping[str, Grant] = field(default_factory=dict)
    dormant: Mapping[str, Grant] = field(default_factory=dict)  # not-subscribed products

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "active": self.active,
            "role": None if self.role is None else self.role.value,
            "role_sources": [source.to_json() for source in self.role_sources],
            "wanted_role": None if self.wanted_role is None else self.wanted_role.value,
            "held": self.held,
            "kept_as_last_owner": self.kept_as_last_owner,
            "products": {name: self.products[name].to_json() for name in sorted(self.products)},
            "dormant": {name: self.dormant[name].to_json() for name in sorted(self.dormant)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DerivedAccess:
        wanted = data.get("wanted_role")
        return cls(
            user_id=data["user_id"],
            active=data["active"],
            role=None if data["role"] is None else Role(data["role"]),
            role_sources=tuple(Source.from_json(item) for item in data["role_sources"]),
            wanted_role=None if wanted is None else Role(wanted),
            held=data["held"],
            kept_as_last_owner=data["kept_as_last_owner"],
            products={name: Grant.from_json(name, item) for name, item in data["products"].items()},
            dormant={name: Grant.from_json(name, item) for name, item in data["dormant"].items()},
        )


def derive_access(
    facts: UserFacts, context: AccessContext, standing: OwnerStanding = OwnerStanding.NONE
) -> DerivedAccess:
    """The user's effective role and grants (docs/rules.md, platform role to leavers).

    ``standing`` comes from :func:`connector.access.owners.seat_owners`.
    """
    if not facts.active:
        # Suspended, not forgotten: memberships and manual grants stay in the
        # directory, so reactivation derives the same access again
        # (docs/rules.md#leavers).
        return DerivedAccess(facts.user_id, active=False, role=None)
    matched = context.matched_rules(facts)
    claim = _best_claim(matched, context.config.default_role, below=None)
    held = False
    role_sources: tuple[Source, ...]
    if standing is OwnerStanding.KEPT_AS_LAST:
        role, role_sources = Role.OWNER, (Source(SourceKind.LAST_OWNER),)
    elif standing is OwnerStanding.SEATED:
        seat_source = (Source(SourceKind.OWNER_SEAT),)
        role = Role.OWNER
        role_sources = claim.sources if claim.role is Role.OWNER else seat_source
    elif claim.role is Role.OWNER:
        held = standing is OwnerStanding.HELD
        role, role_sources = _fallback(matched, context.config.owner_fallback_role)
    else:
        role, role_sources = claim.role, claim.sources
    products, dormant = _grants(facts, context, matched, role)
    return DerivedAccess(
        facts.user_id,
        active=True,
        role=role,
        role_sources=role_sources,
        wanted_role=claim.role,
        held=held,
        kept_as_last_owner=standing is OwnerStanding.KEPT_AS_LAST,
        products=products,
        dormant=dormant,
    )


def _fallback(matched: Iterable[MappingRule], fallback: Role) -> tuple[Role, tuple[Source, ...]]:
    """A would-be Owner without a seat: the fallback role, or a higher non-Owner mapped role."""
    below_owner = _best_claim(matched, fallback, below=Role.OWNER)
    fallback_source = Source(SourceKind.OWNER_FALLBACK)
    if below_owner.sources == (Source(SourceKind.DEFAULT_ROLE),) or below_owner.role < fallback:
        return fallback, (fallback_source,)
    if below_owner.role == fallback:
        return fallback, (fallback_source, *below_owner.sources)
    return below_owner.role, below_owner.sources


@dataclass
class _Collected:
    roles: set[str] = field(default_factory=set)
    permissions: dict[str, list[Source]] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)

    def add(self, grant: ProductGrant, source: Source) -> None:
        self.roles |= grant.product_roles
        for name in grant.permissions:
            self.permissions.setdefault(name, []).append(source)
        self.sources.append(source)


def _grants(
    facts: UserFacts, context: AccessContext, matched: Iterable[MappingRule], role: Role
) -> tuple[dict[str, Grant], dict[str, Grant]]:
    """Union of mapped and manual grants, split into counted and dormant.

    docs/rules.md#grants-and-product-states and #role-as-ceiling.
    """
    collected: dict[str, _Collected] = {}
    for rule in matched:
        if rule.grant is not None:
            collected.setdefault(rule.grant.product, _Collected()).add(
                rule.grant, Source.of_rule(rule)
            )
    for manual in facts.manual_grants:
        collected.setdefault(manual.grant.product, _Collected()).add(
            manual.grant, Source(SourceKind.MANUAL, granted_by=manual.granted_by)
        )
    if role is Role.OWNER:
        owner = Source(SourceKind.OWNER)
        for product in context.catalog:
            if counts(context.state(product.name)):
                every = ProductGrant(product.name, permissions=product.permission_names)
                collected.setdefault(product.name, _Collected()).add(every, owner)
    products: dict[str, Grant] = {}
    dormant: dict[str, Grant] = {}
    for name in sorted(collected):
        if context.catalog.product(name) is None:
            continue
        grant = _capped(name, collected[name], role, facts, context.catalog)
        target = products if counts(context.state(name)) else dormant
        target[name] = grant
    return products, dormant


def _capped(
    product: str, collected: _Collected, role: Role, facts: UserFacts, catalog: Catalog
) -> Grant:
    """The role as a ceiling (docs/rules.md#role-as-ceiling): a Viewer keeps read-only only."""
    in_product = catalog.product(product)
    staff_roles = frozenset() if in_product is None else in_product.staff_role_names
    known = {
        name: tuple(sources)
        for name, sources in collected.permissions.items()
        if in_product is not None and in_product.permission(name) is not None
    }
    withheld: frozenset[str] = frozenset()
    if role is Role.VIEWER:
        withheld = frozenset(name for name in known if not catalog.is_read_only(name))
        known = {name: sources for name, sources in known.items() if name not in withheld}
    return Grant(
        product,
        frozenset(collected.roles) & staff_roles,
        known,
        tuple(dict.fromkeys(collected.sources)),
        withheld,
        onboarding_status(product, facts.onboarded, catalog),
    )


@dataclass(frozen=True)
class OrgAccess:
    """Access derived for a set of users after one change, with the Owner seating it caused."""

    owners: OwnerOutcome
    access: Mapping[str, DerivedAccess]


def derive_org(
    users: Iterable[UserFacts],
    context: AccessContext,
    seats: OwnerSeats,
    *,
    left: Iterable[str] = (),
    now: datetime,
) -> OrgAccess:
    """Seat Owners and derive access for ``users`` in one step (a change, or a mapping preview).

    ``users`` must include every user who may qualify as Owner (members of
    Owner-mapped groups and holders of Owner-mapped SCIM roles), in arrival
    order, plus everyone the change touched. Access is derived for each user
    given, so users whose standing changed must be among them
    (:attr:`OwnerOutcome.affected_users` tells which).
    """
    facts = list(users)
    qualifying = [user.user_id for user in facts if qualifies_as_owner(user, context)]
    outcome = seat_owners(seats, qualifying, left, now=now)
    access = {
        user.user_id: derive_access(user, context, outcome.after.standing(user.user_id))
        for user in facts
    }
    return OrgAccess(outcome, access)
