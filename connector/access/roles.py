"""The four platform roles and the IT-facing permission matrix.

docs/rules.md#roles-and-permission-matrix. Hub's role table, row for row::

    | Role   | Manage Users | Manage Roles | View Billing | View Audit |
    | Owner  | Yes          | Yes          | Yes          | Yes        |
    | Admin  | Yes          | No           | No           | Yes        |
    | Member | No           | No           | No           | No         |
    | Viewer | No           | No           | No           | No         |

and three actions Hub's role descriptions state in prose:

- Export Audit: Owners only. Admins may view the audit log but not export it
  (docs/rules.md#audit).
- Enable Products: Owners only: only Owners add or remove products from the
  organization's subscription.
- Grant Product Access: Owners and Admins grant product access to users.

and the IT console's reading rows (docs/rules.md#roles-and-permission-matrix):
Owners and Admins view the mapping, the product states, the SCIM connection's
status and the health findings; changing the connection (credentials, OAuth
clients) is the Owner's, like the subscription.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

from connector.access._text import quote
from connector.errors import InvalidInput


@functools.total_ordering
class Role(enum.Enum):
    """A platform role; roles compare by power: Owner > Admin > Member > Viewer."""

    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank

    @property
    def title(self) -> str:
        """The name as Hub writes it: "Owner", "Viewer"."""
        return self.value.capitalize()

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named ``text``, case-insensitively ("Owner", "owner", " OWNER ").

        Raises ValueError naming the known roles.
        """
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise InvalidInput(
                f"unknown role {quote(text)} (expected one of {ROLE_NAMES})"
            ) from None


_RANKS = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}
ROLE_NAMES = ", ".join(role.value for role in sorted(Role, reverse=True))


class ItAction(enum.Enum):
    """An IT-facing action guarded by the permission matrix."""

    MANAGE_USERS = "manage_users"
    MANAGE_ROLES = "manage_roles"
    VIEW_BILLING = "view_billing"
    VIEW_AUDIT = "view_audit"
    EXPORT_AUDIT = "export_audit"
    ENABLE_PRODUCTS = "enable_products"
    GRANT_PRODUCT_ACCESS = "grant_product_access"
    VIEW_MAPPING = "view_mapping"
    VIEW_PRODUCTS = "view_products"
    VIEW_CONNECTION = "view_connection"
    MANAGE_CONNECTION = "manage_connection"
    VIEW_HEALTH = "view_health"

    @property
    def title(self) -> str:
        return self.value.replace("_", " ").title()

    @classmethod
    def parse(cls, text: str) -> ItAction:
        """The action named ``text``: "manage_users", "Manage Users" or "manage-users"."""
        key = text.strip().lower().replace(" ", "_").replace("-", "_")
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(action.value for action in cls)
            raise InvalidInput(f"unknown action {quote(text)} (expected one of {known})") from None


PERMISSION_MATRIX: dict[Role, frozenset[ItAction]] = {
    Role.OWNER: frozenset(ItAction),
    Role.ADMIN: frozenset(
        {
            ItAction.MANAGE_USERS,
            ItAction.VIEW_AUDIT,
            ItAction.GRANT_PRODUCT_ACCESS,
            ItAction.VIEW_MAPPING,
            ItAction.VIEW_PRODUCTS,
            ItAction.VIEW_CONNECTION,
            ItAction.VIEW_HEALTH,
        }
    ),
    Role.MEMBER: frozenset(),
    Role.VIEWER: frozenset(),
}
"""Which role may take which IT-facing action; the module docstring shows the table."""


def may(role: Role | None, action: ItAction) -> bool:
    """Whether a user with platform ``role`` may take ``action``.

    ``None`` is the role of an inactive user (docs/rules.md#leavers):
    it may do nothing.
    """
    return role is not None and action in PERMISSION_MATRIX[role]


def matrix_to_json() -> dict[str, Any]:
    """The matrix as the IT API and CLI print it: role name to the actions it may take."""
    return {
        role.value: sorted(action.value for action in PERMISSION_MATRIX[role])
        for role in sorted(Role, reverse=True)
    }
