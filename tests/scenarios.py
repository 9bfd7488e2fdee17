"""The cast of a scenario: the organization's IdP, IT, and a Hub product, plus IT's mapping.

- :class:`Idp` speaks SCIM as Okta or Entra would and fails loudly on any
  unexpected status (the ``idp`` fixture of ``tests/fixtures_app.py``);
- :class:`Hub` is IT and Hub's own services, calling the admin services the
  way the command line does, one committed transaction per call (``hub``);
- :class:`AccessApi` is a Hub product calling ``/api/v1`` with its ``access``
  credential (``product``);
- :func:`mapping` writes IT's mapping file from :class:`Rule` values, so a
  scenario states the rules it relies on (docs/rules.md#mapping-rules).

A scenario then reads as it happens::

    def test_a_leaver_loses_psa(idp, hub, product):
        hub.apply(mapping(PSA_TECHNICIANS))
        hub.product("psa", "active")
        ada = idp.user("ada@msp.example")
        idp.group("PSA Technicians", [ada])
        idp.deactivate(ada)
        assert product.effective_access(ada)["products"] == {}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from connector.admin.grants import set_product_state
from connector.admin.mappings import MappingPreview, apply_mapping
from connector.db.engine import make_session_factory
from connector.derived.queries import authorize_user, user_access
from connector.derived.tables import OwnerHold, OwnerSeat
from connector.trail.audit import AuditRecord, iter_entries
from connector.trail.events import Event

if TYPE_CHECKING:
    from tests.fixtures_app import ScimClient

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

IT_ACTOR = "cli:it"
"""Who the audit trail names for what :class:`Hub` does."""

T = TypeVar("T")


# -- IT's mapping ----------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One ``[[rules]]`` table of a mapping file."""

    group: str | None = None
    role: str | None = None
    product: str | None = None
    product_roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    name: str | None = None
    scim_role: str | None = None
    when: str | None = None  # a SCIM filter over the user's attributes

    def toml(self) -> str:
        lines = ["[[rules]]"]
        for key in ("name", "group", "scim_role", "when", "role", "product"):
            value = getattr(self, key)
            if value is not None:
                lines.append(f"{key} = {_toml(value)}")
        for key in ("product_roles", "permissions"):
            values = getattr(self, key)
            if values:
                lines.append(f"{key} = {_toml(list(values))}")
        return "\n".join(lines) + "\n"


def _toml(value: str | list[str]) -> str:
    # A JSON string or list of strings is also a valid TOML value.
    return json.dumps(value)


def mapping(
    *rules: Rule,
    default_role: str = "member",
    owner_fallback_role: str = "admin",
    client_domains: Iterable[str] = (),
    map_scim_roles: bool = False,
) -> str:
    """IT's mapping file with these settings and rules, in order (rule 1 first)."""
    head = [
        f"default_role = {_toml(default_role)}",
        f"owner_fallback_role = {_toml(owner_fallback_role)}",
    ]
    domains = list(client_domains)
    if domains:
        head.append(f"client_domains = {_toml(domains)}")
    if map_scim_roles:
        head.append("map_scim_roles = true")
    return "\n".join(["\n".join(head) + "\n", *(rule.toml() for rule in rules)])


PSA_READ, PSA_CREATE = "psa.tickets.read", "psa.tickets.create"

HUB_OWNERS = Rule(group="Hub Owners", role="owner")
PSA_TECHNICIANS = Rule(
    group="PSA Technicians",
    product="psa",
    product_roles=("technician",),
    permissions=(PSA_READ, PSA_CREATE),
)
HUB_ADMINS = Rule(group="Hub Admins", role="admin")
AUDITORS = Rule(group="Auditors", role="viewer")

OWNERS_MAPPING = mapping(
    Rule(group="Hub Owners", role="owner", name="Owners"),
    Rule(
        group="PSA Technicians",
        product="psa",
        product_roles=("technician",),
        permissions=(PSA_READ, PSA_CREATE),
        name="PSA technicians",
    ),
    AUDITORS,
    client_domains=["clients.example.com"],
)
"""Owners, PSA technicians and read-only auditors; ``clients.example.com`` is Portal's."""


# -- the IdP ---------------------------------------------------------------------


class Idp:
    """The organization's IdP: pushes users, groups and memberships over SCIM."""

    def __init__(self, scim: ScimClient) -> None:
        self.scim = scim

    def expect(self, response: Any, status: int) -> Any:
        assert response.status_code == status, (response.status_code, response.get_data(True))
        return response.get_json() if response.data else None

    def user(self, user_name: str, **attributes: Any) -> str:
        body = {"schemas": [USER_SCHEMA], "userName": user_name, "active": True, **attributes}
        created = self.expect(self.scim.post("/Users", json=body), 201)
        return str(created["id"])

    def group(self, display_name: str, members: Iterable[str] = (), **attributes: Any) -> str:
        body = {
            "schemas": [GROUP_SCHEMA],
            "displayName": display_name,
            "members": [{"value": member} for member in members],
            **attributes,
        }
        created = self.expect(self.scim.post("/Groups", json=body), 201)
        return str(created["id"])

    def patch(self, path: str, *operations: dict[str, Any], status: int = 204) -> Any:
        body = {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}
        return self.expect(self.scim.patch(path, json=body), status)

    def add(self, group: str, *users: str) -> None:
        self.patch(
            f"/Groups/{group}",
            {"op": "add", "path": "members", "value": [{"value": user} for user in users]},
        )

    def remove(self, group: str, *users: str) -> None:
        for user in users:
            self.patch(f"/Groups/{group}", {"op": "remove", "path": f'members[value eq "{user}"]'})

    def rename(self, group: str, display_name: str) -> None:
        self.patch(
            f"/Groups/{group}", {"op": "replace", "path": "displayName", "value": display_name}
        )

    def deactivate(self, user: str) -> None:
        self.patch(
            f"/Users/{user}", {"op": "replace", "path": "active", "value": False}, status=200
        )

    def reactivate(self, user: str) -> None:
        self.patch(f"/Users/{user}", {"op": "replace", "path": "active", "value": True}, status=200)

    def delete_user(self, user: str) -> None:
        self.expect(self.scim.delete(f"/Users/{user}"), 204)

    def delete_group(self, group: str) -> None:
        self.expect(self.scim.delete(f"/Groups/{group}"), 204)


# -- Entra app roles ---------------------------------------------------------------
# As Microsoft's "Customize application attributes", section "Provisioning a
# role to a SCIM app", shows them (tests/test_entra_app_roles.py says more).

WINDOWS_ROLE = "WindowsAzureActiveDirectoryRole"


def assertive_roles(*values: str) -> list[dict[str, Any]]:
    """``roles`` as AssertiveAppRoleAssignmentsComplex writes them, in a POST or a replace."""
    return [
        {"primary": False, "type": WINDOWS_ROLE, "display": value, "value": value}
        for value in values
    ]


def replace_roles(*values: str, op: str = "Replace") -> dict[str, Any]:
    """The PATCH operation AssertiveAppRoleAssignmentsComplex sends: the complete list."""
    return {"op": op, "path": "roles", "value": assertive_roles(*values)}


def add_roles(*values: str) -> dict[str, Any]:
    """The PATCH operation AppRoleAssignmentsComplex sends: an ``Add``, roles as JSON strings."""
    return {
        "op": "Add",
        "path": "roles",
        "value": [
            {
                "value": json.dumps(
                    {
                        "id": f"00000000-0000-0000-0000-{n:012d}",
                        "value": value,
                        "displayName": value,
                    }
                )
            }
            for n, value in enumerate(values)
        ],
    }


# -- IT and Hub ------------------------------------------------------------------


class Hub:
    """IT and Hub's products, calling the admin services one transaction at a time."""

    def __init__(self, engine: Engine, org_id: int) -> None:
        self.sessions = make_session_factory(engine)
        self.org_id = org_id

    def run(self, action: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            result = action(session)
            session.commit()
            return result

    def apply(self, text: str, *, dry_run: bool = False) -> MappingPreview:
        return self.run(
            lambda s: apply_mapping(s, self.org_id, text, actor=IT_ACTOR, dry_run=dry_run)
        )

    def access(self, user: str) -> dict[str, Any]:
        return self.run(lambda s: user_access(s, self.org_id, user))

    def role(self, user: str) -> str | None:
        role: str | None = self.access(user)["role"]
        return role

    def may(self, user: str, permission: str) -> bool:
        return self.run(lambda s: authorize_user(s, self.org_id, user, permission)).allowed

    def product(self, product: str, state: str) -> list[Any]:
        return self.run(lambda s: set_product_state(s, self.org_id, product, state, actor=IT_ACTOR))

    def seats(self) -> list[str]:
        """Seated Owners' user ids, by seat number."""
        return self.run(
            lambda s: list(
                s.scalars(
                    select(OwnerSeat.user_id)
                    .where(OwnerSeat.org_id == self.org_id)
                    .order_by(OwnerSeat.seat)
                )
            )
        )

    def held(self) -> list[str]:
        """Held would-be Owners' user ids, in queue order."""
        return self.run(
            lambda s: list(
                s.scalars(
                    select(OwnerHold.user_id)
                    .where(OwnerHold.org_id == self.org_id)
                    .order_by(OwnerHold.position)
                )
            )
        )

    def audit(self, action: str | None = None) -> list[AuditRecord]:
        entries = self.run(lambda s: list(iter_entries(s, self.org_id)))
        return [entry for entry in entries if action is None or entry.action == action]

    def events(self, kind: str | None = None) -> list[Event]:
        found = self.run(
            lambda s: list(
                s.scalars(select(Event).where(Event.org_id == self.org_id).order_by(Event.id))
            )
        )
        return [event for event in found if kind is None or event.type == kind]


# -- a Hub product ---------------------------------------------------------------


class AccessApi:
    """A Hub product calling ``/api/v1`` with a bearer credential."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client = client
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def access(self, user: str) -> TestResponse:
        return self.client.get(f"/api/v1/access/{user}", headers=self.headers())

    def snapshot(self, **query: Any) -> TestResponse:
        """One page of every user's access (``cursor=``, ``limit=``)."""
        return self.client.get("/api/v1/access", query_string=query, headers=self.headers())

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """GET ``/api/v1<path>`` as docs/reconcile_client.py does: its JSON, or the test fails."""
        response = self.client.get(f"/api/v1{path}", query_string=params, headers=self.headers())
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def effective_access(self, user: str) -> dict[str, Any]:
        """The user's access JSON; any answer but 200 fails the scenario."""
        response = self.access(user)
        assert response.status_code == 200, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body

    def authorize(self, user: str, permission: Any) -> TestResponse:
        return self.client.post(
            f"/api/v1/access/{user}/authorize",
            json={"permission": permission},
            headers=self.headers(),
        )

    def onboarded(self, user: str, product: str) -> TestResponse:
        return self.client.post(
            f"/api/v1/access/{user}/onboarding/{product}", headers=self.headers()
        )

    def events(self, **query: Any) -> TestResponse:
        return self.client.get("/api/v1/events", query_string=query, headers=self.headers())
