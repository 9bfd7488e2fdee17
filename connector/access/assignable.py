"""The values an IdP may assign in a User's ``roles`` (and ``entitlements``), and what each gives.

docs/rules.md#assignable-values. When the mapping sets ``map_scim_roles =
true``, Hub reads the values of the SCIM ``roles`` and ``entitlements``
attributes, and knows exactly these:

- the names of Hub's four platform roles (``Owner``, ``Admin``, ``Member``,
  ``Viewer``, compared case-insensitively), each giving that role;
- every ``scim_role`` of the mapping's rules, giving what its rules map.

Hub publishes them so that an IdP can offer them as choices (``/Roles``:
every known value; ``/Entitlements``: the values whose rules grant a
product), and refuses a write that adds any other value while it reads them
(:func:`unknown_values`). Without ``map_scim_roles`` Hub reads neither
attribute: the values are stored as sent and none is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.access.catalog import HUB_CATALOG, Catalog, ProductState, counts
from connector.access.mapping import MappingConfig, MappingRule, group_ref_key
from connector.access.owners import SEAT_NUMBERS
from connector.access.roles import Role

OWNER_SEATS = len(SEAT_NUMBERS)
"""docs/rules.md#owner-cap: an organization has at most two Owners."""

PLATFORM_ROLE = "Platform role"
MAPPED_VALUE = "Mapping rule"
PRODUCT_ACCESS = "Product access"

ROLE_SCOPES: Mapping[Role, str] = {
    Role.OWNER: "Unrestricted: full control over all settings and products (two at most)",
    Role.ADMIN: "User management and product access, no billing or role definitions",
    Role.MEMBER: "Access to assigned products only, with product-specific permissions",
    Role.VIEWER: "Read-only access across assigned products",
}
"""The Scope column of docs/rules.md#roles-and-permission-matrix."""


@dataclass(frozen=True)
class Assignable:
    """One value an IdP may assign, as the published resource describes it."""

    value: str
    display: str
    description: str
    type: str
    supported: bool
    limit: int | None = None
    used: int | None = None

    def to_scim(self) -> dict[str, Any]:
        """The resource in the wire form of ``scim.published`` (Okta's and the IETF draft's)."""
        document: dict[str, Any] = {
            "id": self.value,
            "value": self.value,
            "displayName": self.display,
            "display": self.display,
            "description": self.description,
            "type": self.type,
            "supported": self.supported,
            "limitedAssignmentsPermitted": self.limit is not None,
        }
        if self.limit is not None:
            document["totalAssignmentsPermitted"] = self.limit
        if self.used is not None:
            document["totalAssignmentsUsed"] = self.used
        return document


def known_values(config: MappingConfig) -> dict[str, str]:
    """Every value Hub knows, by comparison key (:func:`group_ref_key`), as it is published."""
    known = {role.value: role.title for role in sorted(Role, reverse=True)}
    for rule in config.rules:
        if rule.scim_role is not None:
            known.setdefault(group_ref_key(rule.scim_role), rule.scim_role.strip())
    return known


def unknown_values(config: MappingConfig, values: Iterable[str]) -> tuple[str, ...]:
    """The values Hub does not know, in the order given; none when Hub reads no SCIM roles."""
    if not config.map_scim_roles:
        return ()
    known = known_values(config)
    return tuple(dict.fromkeys(value for value in values if group_ref_key(value) not in known))


def assignable_roles(config: MappingConfig, owners_seated: int = 0) -> tuple[Assignable, ...]:
    """``/Roles``: Hub's four roles, then each ``scim_role`` of the mapping, in file order."""
    supported = config.map_scim_roles
    found = [
        Assignable(
            value=role.title,
            display=role.title,
            description=ROLE_SCOPES[role],
            type=PLATFORM_ROLE,
            supported=supported,
            limit=OWNER_SEATS if role is Role.OWNER else None,
            used=owners_seated if role is Role.OWNER else None,
        )
        for role in sorted(Role, reverse=True)
    ]
    seen = {role.value for role in Role}
    for key, rules in _rules_by_value(config).items():
        if key in seen:
            continue
        seen.add(key)
        value = rules[0].scim_role or ""
        found.append(
            Assignable(
                value=value.strip(),
                display=_label(rules),
                description="; ".join(_gives(rule) for rule in rules),
                type=MAPPED_VALUE,
                supported=supported,
            )
        )
    return tuple(found)


def assignable_entitlements(
    config: MappingConfig,
    product_states: Mapping[str, ProductState],
    catalog: Catalog = HUB_CATALOG,
) -> tuple[Assignable, ...]:
    """``/Entitlements``: each ``scim_role`` whose rules grant product access.

    ``supported`` is false while none of its products is subscribed: the
    grants would be dormant (docs/rules.md#grants-and-product-states).
    """
    found: list[Assignable] = []
    for rules in _rules_by_value(config).values():
        granting = [rule for rule in rules if rule.grant is not None]
        if not granting:
            continue
        titles, subscribed = [], False
        for rule in granting:
            assert rule.grant is not None
            product = catalog.product(rule.grant.product)
            titles.append(product.title if product is not None else rule.grant.product)
            state = product_states.get(rule.grant.product, ProductState.NOT_SUBSCRIBED)
            subscribed = subscribed or counts(state)
        value = (granting[0].scim_role or "").strip()
        found.append(
            Assignable(
                value=value,
                display=f"{', '.join(titles)}: {_label(rules)}",
                description="; ".join(_gives(rule) for rule in granting),
                type=PRODUCT_ACCESS,
                supported=config.map_scim_roles and subscribed,
            )
        )
    return tuple(found)


APP_ROLE_NAMESPACE = uuid.UUID("5d0b8f57-3c1e-4a53-9a0e-1f6a2f0c9b7e")
"""Namespace of the app role ids :func:`entra_app_roles` derives from each value."""


def entra_app_roles(config: MappingConfig) -> list[dict[str, Any]]:
    """The ``appRoles`` of an Entra app registration's manifest, one per value Hub knows.

    Entra ID reads no SCIM discovery: IT defines the app roles on the app
    registration (docs/entra.md). Each id is derived from the value, so that
    printing the list again gives the same ids and Entra keeps assignments.
    """
    return [
        {
            "allowedMemberTypes": ["User"],
            "description": item.description,
            "displayName": item.display,
            "id": str(uuid.uuid5(APP_ROLE_NAMESPACE, group_ref_key(item.value))),
            "isEnabled": True,
            "value": item.value,
        }
        for item in assignable_roles(config)
    ]


def _rules_by_value(config: MappingConfig) -> dict[str, list[MappingRule]]:
    by_value: dict[str, list[MappingRule]] = {}
    for rule in config.rules:
        if rule.scim_role is not None:
            by_value.setdefault(group_ref_key(rule.scim_role), []).append(rule)
    return by_value


def _label(rules: list[MappingRule]) -> str:
    named = next((rule.name for rule in rules if rule.name), None)
    return named or (rules[0].scim_role or "").strip()


def _gives(rule: MappingRule) -> str:
    """What one rule gives: ``rule 3: role Admin, PSA (technician; 2 permissions)``."""
    parts = []
    if rule.role is not None:
        parts.append(f"role {rule.role.title}")
    if rule.grant is not None:
        details = [*sorted(rule.grant.product_roles)]
        count = len(rule.grant.permissions)
        details.append(f"{count} permission{'s' if count != 1 else ''}")
        parts.append(f"{rule.grant.product} ({'; '.join(details)})")
    return f"rule {rule.number}: {', '.join(parts)}"
