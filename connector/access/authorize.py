"""May this user do X: product permissions and IT-facing actions, with a reason a person can read.

Products ask with a permission (``psa.tickets.create``); the IT API asks with
an :class:`~connector.access.roles.ItAction`. Both answer a :class:`Decision`
whose reason names the rule behind an allow, or the section of docs/rules.md
behind a deny.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.access._text import quote
from connector.access.catalog import HUB_CATALOG, Catalog
from connector.access.derive import DerivedAccess, Source, SourceKind
from connector.access.roles import PERMISSION_MATRIX, ItAction, Role, may

INACTIVE = "user is inactive: all access is suspended (see docs/rules.md#leavers)"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    sources: tuple[Source, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "reason": self.reason,
            "sources": [source.to_json() for source in self.sources],
        }


def authorize(access: DerivedAccess, permission: str, catalog: Catalog = HUB_CATALOG) -> Decision:
    """Whether the user holding ``access`` may use ``permission``.

    docs/rules.md#grants-and-product-states, #role-as-ceiling and #leavers.
    """
    if not access.active:
        return Decision(False, INACTIVE)
    found = catalog.permission(permission)
    if found is None:
        return Decision(False, f"unknown permission {quote(permission)}")
    product = found.product
    grant = access.products.get(product)
    if grant is None:
        if product in access.dormant:
            return Decision(
                False,
                f"product {quote(product)} is not subscribed for this organization: "
                "the user's grant is dormant until it is enabled "
                "(see docs/rules.md#grants-and-product-states)",
                access.dormant[product].sources,
            )
        if access.role is Role.OWNER:
            return Decision(
                False,
                f"product {quote(product)} is not enabled for this organization "
                "(Owners have every enabled product)",
            )
        return Decision(False, f"product {quote(product)} is not granted to this user")
    if permission in grant.withheld:
        return Decision(
            False,
            f"{permission} is granted but the Viewer role is read-only "
            "(see docs/rules.md#role-as-ceiling)",
        )
    sources = grant.permissions.get(permission)
    if sources is None:
        return Decision(False, f"{permission} is not granted in {quote(product)}")
    return Decision(True, "allowed via " + _describe(sources), sources)


def authorize_action(access: DerivedAccess, action: ItAction) -> Decision:
    """Whether the user may take an IT-facing action (docs/rules.md#roles-and-permission-matrix)."""
    role = access.role
    if role is None:
        return Decision(False, INACTIVE)
    if may(role, action):
        return Decision(True, f"allowed: {role.title} may {action.title}", access.role_sources)
    allowed = sorted((r for r in Role if action in PERMISSION_MATRIX[r]), reverse=True)
    who = " and ".join(f"{r.title}s" for r in allowed)
    return Decision(
        False,
        f"{role.title} may not {action.title}: only {who} may "
        "(see docs/rules.md#roles-and-permission-matrix)",
        access.role_sources,
    )


def _describe(sources: tuple[Source, ...]) -> str:
    # The Owner policy is listed last: a rule that grants it too is the more telling source.
    ordered = sorted(sources, key=lambda source: source.kind is SourceKind.OWNER)
    return ", ".join(source.describe() for source in ordered)
