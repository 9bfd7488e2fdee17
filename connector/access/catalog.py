"""Hub's products, their permissions and roles, and each product's state per organization.

docs/rules.md#words and #grants-and-product-states: a product is enabled
per organization (active, trial or not subscribed); a user's grant to a
product names product roles and permissions. Each permission is marked
read-only or not, which is what the Viewer ceiling keeps (docs/rules.md#role-as-ceiling).

The catalog is data: adding a product is adding one :class:`Product` to
:data:`HUB_CATALOG` (or building another :class:`Catalog`); no rule below
names a product.

Product roles are labels a product interprets (a PSA dispatcher sees the
dispatch board); they never imply permissions. What a user may do is decided
by permissions alone, so a grant reads exactly as IT wrote it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.access._text import quote
from connector.errors import InvalidInput


class ProductState(enum.Enum):
    """A product's state for one organization (docs/rules.md#grants-and-product-states)."""

    ACTIVE = "active"
    TRIAL = "trial"
    NOT_SUBSCRIBED = "not_subscribed"

    @classmethod
    def parse(cls, text: str) -> ProductState:
        key = text.strip().lower().replace("-", "_").replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(state.value for state in cls)
            raise InvalidInput(
                f"unknown product state {quote(text)} (expected one of {known})"
            ) from None


def counts(state: ProductState) -> bool:
    """Whether grants of a product in ``state`` count: active or trial.

    Grants of a not-subscribed product are kept dormant, not deleted
    (docs/rules.md#grants-and-product-states).
    """
    return state is not ProductState.NOT_SUBSCRIBED


class AccessMode(enum.Enum):
    """Who a product role serves: staff or client (docs/rules.md#client-identities).

    Client access belongs to Portal's own user system; Hub, and so every mapping
    rule and manual grant, gives staff access only.
    """

    STAFF = "staff"
    CLIENT = "client"


@dataclass(frozen=True)
class Permission:
    """One product permission, such as ``psa.tickets.create``."""

    name: str
    read_only: bool
    description: str = ""

    @property
    def product(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class ProductRole:
    """A product role such as PSA's ``dispatcher``; a label the product interprets."""

    name: str
    description: str = ""
    access: AccessMode = AccessMode.STAFF


@dataclass(frozen=True)
class Product:
    """A Hub product with its permissions, roles, access modes and onboarding flow."""

    name: str
    title: str
    permissions: tuple[Permission, ...]
    roles: tuple[ProductRole, ...]
    onboarding: str | None = None
    _permissions_by_name: Mapping[str, Permission] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        for permission in self.permissions:
            if permission.product != self.name:
                raise ValueError(f"permission {permission.name} is not in product {self.name}")
        by_name = {permission.name: permission for permission in self.permissions}
        object.__setattr__(self, "_permissions_by_name", by_name)

    @property
    def access_modes(self) -> frozenset[AccessMode]:
        """Staff always; client too when some product role serves the MSP's clients."""
        return frozenset({AccessMode.STAFF} | {role.access for role in self.roles})

    @property
    def permission_names(self) -> frozenset[str]:
        return frozenset(self._permissions_by_name)

    @property
    def read_only_permissions(self) -> frozenset[str]:
        return frozenset(p.name for p in self.permissions if p.read_only)

    @property
    def staff_role_names(self) -> frozenset[str]:
        return frozenset(role.name for role in self.roles if role.access is AccessMode.STAFF)

    def permission(self, name: str) -> Permission | None:
        return self._permissions_by_name.get(name)

    def role(self, name: str) -> ProductRole | None:
        return next((role for role in self.roles if role.name == name), None)


@dataclass(frozen=True)
class GrantProblem:
    """Why a grant is invalid; ``field`` and ``value`` let the mapping parser name the line."""

    field: str
    value: str
    message: str


class Catalog:
    """The products Hub offers, keyed by name."""

    def __init__(self, products: Iterable[Product]) -> None:
        self._products: dict[str, Product] = {}
        for product in products:
            if product.name in self._products:
                raise ValueError(f"product {product.name} listed twice")
            self._products[product.name] = product

    def __iter__(self) -> Iterator[Product]:
        return iter(self._products.values())

    def __contains__(self, name: object) -> bool:
        return name in self._products

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._products)

    def product(self, name: str) -> Product | None:
        return self._products.get(name)

    def permission(self, name: str) -> Permission | None:
        """The permission called ``name`` in whichever product it belongs to."""
        product = self._products.get(name.split(".", 1)[0])
        return None if product is None else product.permission(name)

    def is_read_only(self, permission: str) -> bool:
        """Whether ``permission`` only reads; unknown permissions are never read-only."""
        found = self.permission(permission)
        return found is not None and found.read_only

    def grant_problems(
        self, product: str, product_roles: Iterable[str], permissions: Iterable[str]
    ) -> list[GrantProblem]:
        """Everything wrong with granting ``product_roles`` and ``permissions`` of ``product``.

        Used for mapping rules and manual grants alike. A product role that
        serves clients is refused: grants give staff access only
        (docs/rules.md#client-identities).
        """
        found = self._products.get(product)
        if found is None:
            return [
                GrantProblem(
                    "product",
                    product,
                    f"unknown product {quote(product)} (expected one of {', '.join(self.names)})",
                )
            ]
        problems: list[GrantProblem] = []
        for name in product_roles:
            role = found.role(name)
            if role is None:
                known = ", ".join(sorted(found.staff_role_names))
                problems.append(
                    GrantProblem(
                        "product_roles",
                        name,
                        f"unknown {product} role {quote(name)} (expected one of {known})",
                    )
                )
            elif role.access is AccessMode.CLIENT:
                problems.append(
                    GrantProblem(
                        "product_roles",
                        name,
                        f"{product} role {quote(name)} is client access, which Portal manages; "
                        "Hub grants staff access only",
                    )
                )
        for name in permissions:
            owner = self.permission(name)
            if owner is not None and owner.product != product:
                problems.append(
                    GrantProblem(
                        "permissions",
                        name,
                        f"permission {quote(name)} belongs to product {quote(owner.product)}, "
                        f"not {quote(product)}",
                    )
                )
            elif owner is None:
                problems.append(
                    GrantProblem(
                        "permissions",
                        name,
                        f"unknown permission {quote(name)} in product {quote(product)}",
                    )
                )
        return problems

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "name": product.name,
                "title": product.title,
                "onboarding": product.onboarding,
                "access_modes": sorted(mode.value for mode in product.access_modes),
                "roles": [
                    {
                        "name": role.name,
                        "access": role.access.value,
                        "description": role.description,
                    }
                    for role in product.roles
                ],
                "permissions": [
                    {"name": p.name, "read_only": p.read_only, "description": p.description}
                    for p in product.permissions
                ],
            }
            for product in self
        ]


def _permissions(product: str, rows: Iterable[tuple[str, bool, str]]) -> tuple[Permission, ...]:
    return tuple(Permission(f"{product}.{name}", read_only, text) for name, read_only, text in rows)


READ_ONLY = True
WRITES = False

HUB_CATALOG = Catalog(
    [
        Product(
            name="psa",
            title="PSA",
            onboarding="Service board setup",
            permissions=_permissions(
                "psa",
                [
                    ("tickets.read", READ_ONLY, "See tickets"),
                    ("tickets.create", WRITES, "Open tickets"),
                    ("tickets.update", WRITES, "Edit, assign and close tickets"),
                    ("tickets.delete", WRITES, "Delete tickets"),
                    ("time.read", READ_ONLY, "See time entries"),
                    ("time.log", WRITES, "Log time against tickets"),
                    ("boards.read", READ_ONLY, "See service boards"),
                    ("boards.manage", WRITES, "Create and configure service boards"),
                    ("contracts.read", READ_ONLY, "See agreements and contracts"),
                    ("contracts.manage", WRITES, "Create and change agreements"),
                    ("reports.read", READ_ONLY, "Run service reports"),
                ],
            ),
            roles=(
                ProductRole("technician", "Works tickets and logs time"),
                ProductRole("dispatcher", "Assigns and schedules tickets"),
                ProductRole("manager", "Runs service boards and agreements"),
                ProductRole(
                    "portal_contact",
                    "A client's contact opening tickets in Portal",
                    AccessMode.CLIENT,
                ),
            ),
        ),
        Product(
            name="crm",
            title="CRM",
            onboarding="Import contacts",
            permissions=_permissions(
                "crm",
                [
                    ("contacts.read", READ_ONLY, "See contacts and companies"),
                    ("contacts.create", WRITES, "Add contacts"),
                    ("contacts.update", WRITES, "Edit contacts"),
                    ("contacts.delete", WRITES, "Delete contacts"),
                    ("contacts.import", WRITES, "Import contacts in bulk"),
                    ("opportunities.read", READ_ONLY, "See the pipeline"),
                    ("opportunities.manage", WRITES, "Create and move opportunities"),
                    ("campaigns.read", READ_ONLY, "See campaigns"),
                    ("campaigns.manage", WRITES, "Create and send campaigns"),
                    ("reports.read", READ_ONLY, "Run sales reports"),
                ],
            ),
            roles=(
                ProductRole("sales", "Works the pipeline"),
                ProductRole("marketing", "Runs campaigns"),
                ProductRole("account_manager", "Owns client relationships"),
            ),
        ),
        Product(
            name="defend",
            title="Defend",
            onboarding="Deploy your first agent",
            permissions=_permissions(
                "defend",
                [
                    ("alerts.read", READ_ONLY, "See security alerts"),
                    ("alerts.resolve", WRITES, "Acknowledge and resolve alerts"),
                    ("incidents.read", READ_ONLY, "See incidents"),
                    ("incidents.respond", WRITES, "Isolate hosts and run responses"),
                    ("agents.read", READ_ONLY, "See protected endpoints"),
                    ("agents.deploy", WRITES, "Deploy and remove agents"),
                    ("policies.read", READ_ONLY, "See protection policies"),
                    ("policies.manage", WRITES, "Change protection policies"),
                ],
            ),
            roles=(
                ProductRole("analyst", "Triages alerts"),
                ProductRole("responder", "Handles incidents"),
                ProductRole("security_admin", "Owns agents and policies"),
                ProductRole(
                    "client_report_viewer",
                    "A client reading its security reports in Portal",
                    AccessMode.CLIENT,
                ),
            ),
        ),
        Product(
            name="rmm",
            title="RMM",
            onboarding="Agent download links",
            permissions=_permissions(
                "rmm",
                [
                    ("devices.read", READ_ONLY, "See managed devices"),
                    ("devices.manage", WRITES, "Change device settings, reboot, retire"),
                    ("remote.connect", WRITES, "Open a remote session"),
                    ("scripts.read", READ_ONLY, "See scripts and their results"),
                    ("scripts.run", WRITES, "Run scripts on devices"),
                    ("scripts.manage", WRITES, "Write and change scripts"),
                    ("patches.read", READ_ONLY, "See patch status"),
                    ("patches.approve", WRITES, "Approve and schedule patches"),
                    # An installer enrols new devices: it creates records, so it is not read-only.
                    ("agents.download", WRITES, "Download agent installers"),
                ],
            ),
            roles=(
                ProductRole("technician", "Supports devices"),
                ProductRole("patch_manager", "Approves and schedules patches"),
                ProductRole("automation_engineer", "Writes and runs scripts"),
            ),
        ),
    ]
)
"""Hub's products: PSA, CRM, Defend and RMM (docs/rules.md#words)."""
