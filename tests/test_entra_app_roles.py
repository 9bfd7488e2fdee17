"""Entra app roles as Hub roles, through the real SCIM endpoint (docs/entra.md, "App roles
instead of groups"; docs/rules.md#platform-role).

What Entra sends, per Microsoft's "Customize application attributes", section
"Provisioning a role to a SCIM app":

- ``AssertiveAppRoleAssignmentsComplex([appRoleAssignments])`` (the expression
  docs/entra.md recommends) sends, on every change of a user's app roles, a
  ``PATCH /Users/{id}`` whose operation replaces ``roles`` with the user's
  complete list: ``{"op": "replace", "path": "roles", "value": [{"primary":
  false, "type": "WindowsAzureActiveDirectoryRole", "display": "Admin",
  "value": "Admin"}, ...]}``. Every role is ``primary: false``; Microsoft's
  sample spells the operation ``replace`` while Entra capitalizes its
  other operations (``Replace``, docs/entra.md), so both are sent here. The page does not show
  what is sent when the last role goes; a replace with an empty list and a
  ``Remove`` of ``roles`` are both tested.
- ``AppRoleAssignmentsComplex([appRoleAssignments])`` sends only ``Add``
  operations, each role's ``value`` holding the role as a JSON string
  (``{"value": "{\\"id\\":\\"...\\",\\"value\\":\\"Admin\\",\\"displayName\\":
  \\"Admin\\"}"}``), and Microsoft documents that it never removes a role in
  the target: that is why docs/entra.md says to switch.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.admin.health import HealthReport, health_report
from tests.scenarios import (
    Hub,
    Idp,
    Rule,
    add_roles,
    assertive_roles,
    mapping,
    replace_roles,
)

APP_ROLES = mapping(
    Rule(scim_role="Hub.Admin", role="admin"),
    Rule(scim_role="Hub.Viewer", role="viewer"),
    map_scim_roles=True,
)
"""IT maps two Entra app roles; everyone else gets the default role, member."""


@pytest.fixture
def hub(hub: Hub) -> Hub:
    hub.apply(APP_ROLES)
    return hub


@pytest.fixture
def ada(idp: Idp, hub: Hub) -> str:
    """An Entra user assigned the Hub.Admin app role when provisioned."""
    user = idp.user("ada@msp.example", roles=assertive_roles("Hub.Admin"))
    assert hub.role(user) == "admin"
    return user


def role_values(document: dict[str, Any]) -> list[str]:
    return sorted(role["value"] for role in document.get("roles", []))


@pytest.mark.parametrize("op", ["Replace", "replace"])
def test_a_replace_that_drops_the_last_role_takes_it_away_at_once(
    idp: Idp, hub: Hub, ada: str, op: str
) -> None:
    answered = idp.patch(f"/Users/{ada}", replace_roles(op=op), status=200)

    assert role_values(answered) == []
    access = hub.access(ada)
    assert access["role"] == "member"
    assert access["sources"][0]["type"] == "default_role"
    assert [entry.target for entry in hub.audit("access.changed")][-1] == f"user:{ada}"


def test_a_remove_of_roles_takes_the_last_role_away(idp: Idp, hub: Hub, ada: str) -> None:
    idp.patch(f"/Users/{ada}", {"op": "Remove", "path": "roles"}, status=200)

    assert hub.role(ada) == "member"


def test_a_remove_naming_the_role_takes_it_away(idp: Idp, hub: Hub, ada: str) -> None:
    idp.patch(f"/Users/{ada}", {"op": "Remove", "path": 'roles[value eq "Hub.Admin"]'}, status=200)

    assert hub.role(ada) == "member"


def test_a_replace_that_changes_the_role_changes_it(idp: Idp, hub: Hub, ada: str) -> None:
    answered = idp.patch(f"/Users/{ada}", replace_roles("Hub.Viewer"), status=200)

    assert role_values(answered) == ["Hub.Viewer"]
    assert answered["roles"][0]["primary"] is False
    assert hub.role(ada) == "viewer"


def test_a_replace_with_the_complete_list_keeps_only_what_it_lists(
    idp: Idp, hub: Hub, ada: str
) -> None:
    idp.patch(f"/Users/{ada}", replace_roles("Hub.Admin", "Hub.Viewer"), status=200)
    assert hub.role(ada) == "admin"

    idp.patch(f"/Users/{ada}", replace_roles("Hub.Viewer"), status=200)

    assert hub.role(ada) == "viewer"


def test_add_only_roles_are_never_taken_away(idp: Idp, hub: Hub) -> None:
    """AppRoleAssignmentsComplex: a role removed in Entra stays in Hub, access included."""
    bob = idp.user("bob@msp.example", roles=assertive_roles("Hub.Viewer"))
    assert hub.role(bob) == "viewer"

    # Entra assigns Hub.Admin too: an Add of the user's roles.
    idp.patch(f"/Users/{bob}", add_roles("Hub.Viewer", "Hub.Admin"), status=200)
    assert hub.role(bob) == "admin"

    # Hub.Admin is unassigned in Entra: the add-only expression can only send
    # an Add of what is left, which takes nothing away.
    answered = idp.patch(f"/Users/{bob}", add_roles("Hub.Viewer"), status=200)

    assert set(role_values(answered)) == {"Hub.Admin", "Hub.Viewer"}
    assert hub.role(bob) == "admin"


# -- the health report: roles that were only ever added ---------------------------


def health(hub: Hub) -> HealthReport:
    return hub.run(lambda s: health_report(s, hub.org_id))


def warns_only_added(report: HealthReport) -> bool:
    return any("only ever added roles" in problem for problem in report.problems)


def test_health_warns_when_roles_were_only_ever_added(idp: Idp, hub: Hub) -> None:
    bob = idp.user("bob@msp.example", roles=assertive_roles("Hub.Viewer"))
    assert not warns_only_added(health(hub))

    idp.patch(f"/Users/{bob}", add_roles("Hub.Viewer", "Hub.Admin"), status=200)
    idp.patch(f"/Users/{bob}", add_roles("Hub.Viewer"), status=200)

    report = health(hub)
    assert warns_only_added(report)
    assert "AssertiveAppRoleAssignmentsComplex" in " ".join(report.problems)
    assert report.roles_only_added is not None
    assert report.roles_only_added.user_id == bob
    assert report.to_json()["roles_only_added"]["userName"] == "bob@msp.example"
    assert "SCIM roles only ever added" in report.to_text()


def test_health_stops_warning_once_a_replace_takes_a_role_away(
    idp: Idp, hub: Hub, ada: str
) -> None:
    idp.patch(f"/Users/{ada}", replace_roles("Hub.Admin", "Hub.Viewer"), status=200)
    # A replace that only adds reads as an addition: the write path sees the
    # user before and after, not the operations.
    assert warns_only_added(health(hub))

    idp.patch(f"/Users/{ada}", replace_roles("Hub.Viewer"), status=200)

    report = health(hub)
    assert not warns_only_added(report)
    assert report.roles_only_added is None
    assert report.to_json()["roles_only_added"] is None
    # Later additions do not bring the warning back: this IdP takes roles away.
    idp.patch(f"/Users/{ada}", add_roles("Hub.Viewer", "Hub.Admin"), status=200)
    assert not warns_only_added(health(hub))


def test_health_does_not_warn_when_scim_roles_are_not_mapped(idp: Idp, hub: Hub) -> None:
    hub.apply(mapping(Rule(group="Hub Admins", role="admin")))
    bob = idp.user("bob@msp.example", roles=assertive_roles("Hub.Viewer"))

    idp.patch(f"/Users/{bob}", add_roles("Hub.Viewer", "Hub.Admin"), status=200)

    assert not warns_only_added(health(hub))
    assert health(hub).roles_only_added is None
    # What was noted meanwhile counts as soon as IT maps SCIM roles.
    hub.apply(APP_ROLES)
    assert warns_only_added(health(hub))


def test_health_does_not_warn_for_roles_sent_only_at_creation(idp: Idp, hub: Hub) -> None:
    idp.user("bob@msp.example", roles=assertive_roles("Hub.Viewer", "Hub.Admin"))

    assert not warns_only_added(health(hub))
