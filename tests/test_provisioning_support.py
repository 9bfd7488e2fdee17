"""An IdP pushing over the real SCIM endpoints, and IT reading the result: shared by the
``test_provisioning_*`` scenarios (this module holds no tests of its own).

``Idp`` speaks SCIM as Okta or Entra would and fails loudly on any unexpected
status; ``Hub`` calls the provisioning service the way the access API and the
CLI do, one committed transaction per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connector.admin.grants import set_product_state
from connector.admin.mappings import MappingPreview, apply_mapping
from connector.db.engine import make_session_factory
from connector.derived.queries import authorize_user, user_access
from connector.derived.tables import OwnerHold, OwnerSeat
from connector.trail.audit import AuditRecord, iter_entries
from connector.trail.events import Event
from tests.fixtures_app import ScimClient

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

T = TypeVar("T")

OWNERS_MAPPING = """\
default_role = "member"
owner_fallback_role = "admin"
client_domains = ["clients.example.com"]

[[rules]]
name = "Owners"
group = "Hub Owners"
role = "owner"

[[rules]]
name = "PSA technicians"
group = "PSA Technicians"
product = "psa"
product_roles = ["technician"]
permissions = ["psa.tickets.read", "psa.tickets.create"]

[[rules]]
group = "Auditors"
role = "viewer"
"""


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


class Hub:
    """IT and Hub's products, calling the provisioning service one transaction at a time."""

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
            lambda s: apply_mapping(s, self.org_id, text, actor="cli:it", dry_run=dry_run)
        )

    def access(self, user: str) -> dict[str, Any]:
        return self.run(lambda s: user_access(s, self.org_id, user))

    def role(self, user: str) -> str | None:
        role: str | None = self.access(user)["role"]
        return role

    def may(self, user: str, permission: str) -> bool:
        return self.run(lambda s: authorize_user(s, self.org_id, user, permission)).allowed

    def product(self, product: str, state: str) -> list[Any]:
        return self.run(lambda s: set_product_state(s, self.org_id, product, state, actor="cli:it"))

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
