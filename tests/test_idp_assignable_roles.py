"""IdPs see and assign Hub's roles (docs/rules.md#assignable-values; docs/okta.md and
docs/entra.md, "Roles the IdP can offer"), through the real app on both databases.

Okta Identity Governance reads ``/ResourceTypes``, then lists each Role and
Entitlement resource type's endpoint page by page, and assigns a value by
sending the resource's ``id`` in the User's ``roles`` or ``entitlements``.
Entra sends app roles as ``roles``, each ``{"primary": false, "type":
"WindowsAzureActiveDirectoryRole", "value": ...}``.
"""

from __future__ import annotations

from typing import Any

import pytest

from scim.published import IETF_ROLE_SCHEMA, OKTA_ENTITLEMENT_SCHEMA, OKTA_ROLE_SCHEMA
from tests.fixtures_app import ScimClient
from tests.scenarios import (
    PSA_CREATE,
    PSA_READ,
    Hub,
    Idp,
    Rule,
    assertive_roles,
    mapping,
    replace_roles,
)

APP_ROLES = mapping(
    Rule(scim_role="Hub.Admin", role="admin"),
    Rule(
        scim_role="Hub.Technician",
        product="psa",
        product_roles=("technician",),
        permissions=(PSA_READ, PSA_CREATE),
        name="PSA technician",
    ),
    map_scim_roles=True,
)
"""IT reads SCIM roles: two mapped values besides Hub's own role names."""

VALID = "'Owner', 'Admin', 'Member', 'Viewer', 'Hub.Admin', 'Hub.Technician'"


@pytest.fixture
def hub(hub: Hub) -> Hub:
    hub.apply(APP_ROLES)
    return hub


def values(listed: dict[str, Any]) -> list[str]:
    return [resource["value"] for resource in listed["Resources"]]


def okta_discovers(scim: ScimClient, page_size: int = 2) -> dict[str, list[dict[str, Any]]]:
    """What Okta Governance reads: the resource types with its URNs, then every page of each."""
    types = scim.get("/ResourceTypes").get_json()["Resources"]
    endpoints = {
        resource["id"]: resource["endpoint"]
        for resource in types
        if resource["schema"] in (OKTA_ROLE_SCHEMA, OKTA_ENTITLEMENT_SCHEMA)
    }
    found: dict[str, list[dict[str, Any]]] = {}
    for type_id, endpoint in endpoints.items():
        found[type_id], start = [], 1
        while True:
            page = scim.get(f"{endpoint}?startIndex={start}&count={page_size}").get_json()
            found[type_id].extend(page["Resources"])
            start += page["itemsPerPage"]
            if not page["Resources"] or start > page["totalResults"]:
                break
    return found


def test_okta_discovers_the_roles_and_entitlements_page_by_page(scim: ScimClient, hub: Hub) -> None:
    hub.product("psa", "active")
    found = okta_discovers(scim)

    roles = {role["id"]: role for role in found["Role"]}
    assert list(roles) == ["Owner", "Admin", "Member", "Viewer", "Hub.Admin", "Hub.Technician"]
    assert roles["Owner"]["displayName"] == "Owner"
    assert roles["Owner"]["limitedAssignmentsPermitted"] is True
    assert roles["Owner"]["totalAssignmentsPermitted"] == 2
    assert roles["Viewer"]["description"] == "Read-only access across assigned products"
    assert roles["Hub.Technician"]["displayName"] == "PSA technician"
    assert "psa (technician; 2 permissions)" in roles["Hub.Technician"]["description"]
    assert {role["supported"] for role in roles.values()} == {True}

    [technician] = found["Entitlement"]
    assert technician["id"] == "Hub.Technician"
    assert technician["type"] == "Product access"
    assert technician["displayName"] == "PSA: PSA technician"
    assert technician["supported"] is True


def test_a_role_is_found_by_value_or_name_and_fetched_by_id(scim: ScimClient, hub: Hub) -> None:
    by_value = scim.get("/Roles", query_string={"filter": 'value eq "hub.admin"'}).get_json()
    assert values(by_value) == ["Hub.Admin"]
    by_name = scim.get("/Roles", query_string={"filter": 'displayName eq "Viewer"'}).get_json()
    assert values(by_name) == ["Viewer"]
    assert (
        scim.get("/Roles/Hub.Admin")
        .get_json()["meta"]["location"]
        .endswith("/scim/v2/Roles/Hub.Admin")
    )
    assert scim.get("/Roles/Boss").status_code == 404
    assert scim.delete("/Roles/Admin").status_code == 405


def test_an_unsubscribed_product_s_entitlement_is_not_supported(scim: ScimClient, hub: Hub) -> None:
    [technician] = scim.get("/Entitlements").get_json()["Resources"]
    assert technician["supported"] is False


def test_without_role_mapping_the_roles_are_listed_as_unsupported(
    scim: ScimClient, hub: Hub, idp: Idp
) -> None:
    hub.apply(mapping())
    listed = scim.get("/Roles").get_json()
    assert values(listed) == ["Owner", "Admin", "Member", "Viewer"]
    assert {role["supported"] for role in listed["Resources"]} == {False}
    assert scim.get("/Entitlements").get_json()["totalResults"] == 0
    # Hub does not read roles then: any value is stored as sent.
    ada = idp.user("ada@msp.example", roles=assertive_roles("Anything"))
    assert hub.role(ada) == "member"


def test_discovery_lists_both_clients_schemas_and_needs_a_credential(
    scim: ScimClient, hub: Hub
) -> None:
    schemas = {schema["id"] for schema in scim.get("/Schemas").get_json()["Resources"]}
    assert {OKTA_ROLE_SCHEMA, OKTA_ENTITLEMENT_SCHEMA, IETF_ROLE_SCHEMA} <= schemas
    anonymous = scim.get("/Roles", headers={"Authorization": None})
    assert anonymous.status_code == 401
    assert scim.get("/Roles/Admin", headers={"Authorization": None}).status_code == 401


def test_each_organization_sees_its_own_values(
    scim: ScimClient, other_org_scim: ScimClient, hub: Hub
) -> None:
    assert "Hub.Admin" in values(scim.get("/Roles").get_json())
    assert values(other_org_scim.get("/Roles").get_json()) == ["Owner", "Admin", "Member", "Viewer"]


# -- assigning -------------------------------------------------------------------------


def test_entra_assigns_a_hub_role_by_its_name(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada@msp.example", roles=assertive_roles("Admin"))
    assert hub.role(ada) == "admin"
    assert hub.access(ada)["sources"][0]["type"] == "scim_role"
    idp.patch(f"/Users/{ada}", replace_roles("Viewer"), status=200)
    assert hub.role(ada) == "viewer"


def test_okta_assigns_a_role_and_an_entitlement_by_id(idp: Idp, hub: Hub) -> None:
    hub.product("psa", "active")
    ada = idp.user(
        "ada@msp.example",
        roles=[{"value": "Admin", "display": "Admin"}],
        entitlements=[{"value": "Hub.Technician", "display": "PSA technician", "type": "PSA"}],
    )
    access = hub.access(ada)
    assert access["role"] == "admin"
    assert sorted(access["products"]["psa"]["permissions"]) == [PSA_CREATE, PSA_READ]


def test_the_owner_cap_holds_for_the_owner_role_value(idp: Idp, hub: Hub) -> None:
    owners = [idp.user(f"o{n}@msp.example", roles=assertive_roles("Owner")) for n in range(3)]
    assert hub.seats() == owners[:2]
    assert hub.held() == owners[2:]


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(
            lambda idp: idp.scim.post(
                "/Users",
                json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "eve@msp.example",
                    "roles": assertive_roles("Hub.Boss"),
                },
            ),
            id="entra-post",
        ),
        pytest.param(
            lambda idp: idp.scim.patch(
                f"/Users/{idp.user('eve@msp.example')}",
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [replace_roles("Admin", "Hub.Boss")],
                },
            ),
            id="entra-assertive-patch",
        ),
        pytest.param(
            lambda idp: idp.scim.put(
                f"/Users/{idp.user('eve@msp.example')}",
                json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "eve@msp.example",
                    "roles": [{"value": "Hub.Boss"}],
                },
            ),
            id="okta-put",
        ),
        pytest.param(
            lambda idp: idp.scim.patch(
                f"/Users/{idp.user('eve@msp.example')}",
                json={
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [
                        {"op": "add", "path": "entitlements", "value": [{"value": "Hub.Boss"}]}
                    ],
                },
            ),
            id="okta-entitlement-patch",
        ),
    ],
)
def test_an_unknown_value_is_refused_with_the_valid_ones(idp: Idp, hub: Hub, send: Any) -> None:
    response = send(idp)
    assert response.status_code == 400, response.get_data(True)
    error = response.get_json()
    assert error["scimType"] == "invalidValue"
    assert "'Hub.Boss' is not a role or entitlement of this organization" in error["detail"]
    assert f"the valid values are {VALID}" in error["detail"]
    found = idp.scim.get('/Users?filter=userName eq "eve@msp.example"').get_json()
    for user in found["Resources"]:
        assert "roles" not in user
        assert "entitlements" not in user


def test_a_value_stored_before_the_mapping_dropped_it_is_kept(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada@msp.example", roles=assertive_roles("Hub.Admin"))
    hub.apply(mapping(map_scim_roles=True))
    assert hub.role(ada) == "member"
    # Entra updates another attribute: the stored value is not refused.
    idp.patch(f"/Users/{ada}", {"op": "Replace", "path": "title", "value": "Lead"}, status=200)
    # Entra's add-only form re-sends the old value with a new one: only the new one counts.
    response = idp.scim.patch(
        f"/Users/{ada}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [replace_roles("Hub.Admin", "Viewer")],
        },
    )
    assert response.status_code == 200
    assert hub.role(ada) == "viewer"


def test_a_leaver_with_an_unknown_value_is_never_refused(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada@msp.example", roles=assertive_roles("Admin"))
    left = idp.scim.put(
        f"/Users/{ada}",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@msp.example",
            "active": False,
            "roles": [{"value": "Hub.Boss"}],
        },
    )
    assert left.status_code == 200, left.get_data(True)
    assert hub.role(ada) is None
