"""Published roles and entitlements, read-only (scim/published.py): what Okta Identity
Governance and draft-ietf-scim-roles-entitlements clients read, over the protocol layer alone."""

from typing import Any

import pytest

from scim.published import (
    ENTITLEMENTS,
    IETF_ENTITLEMENT_SCHEMA,
    IETF_ROLE_SCHEMA,
    OKTA_ENTITLEMENT_SCHEMA,
    OKTA_ROLE_SCHEMA,
    ROLES,
    Publication,
)
from scim.settings import ScimSettings
from tests.fake_backend import ScimClient, make_scim_app

ROLE_DOCUMENTS = [
    {
        "id": name,
        "value": name,
        "displayName": name,
        "display": name,
        "type": "Platform role",
        "supported": True,
        "limitedAssignmentsPermitted": name == "Owner",
    }
    for name in ("Owner", "Admin", "Member", "Viewer")
]

ENTITLEMENT_DOCUMENTS = [
    {"id": "Hub.PSA", "value": "Hub.PSA", "displayName": "PSA technician", "type": "PSA"},
]


@pytest.fixture
def api() -> ScimClient:
    app, _ = make_scim_app(
        ScimSettings(default_page_size=3, max_page_size=10),
        publications=[
            Publication(ROLES, lambda: ROLE_DOCUMENTS),
            Publication(ENTITLEMENTS, lambda: ENTITLEMENT_DOCUMENTS),
        ],
    )
    return ScimClient(app)


def values(listed: dict[str, Any]) -> list[str]:
    return [resource["value"] for resource in listed["Resources"]]


def test_resource_types_name_okta_s_schema_and_the_ietf_one(api: ScimClient) -> None:
    listed = api.get("/ResourceTypes").json
    by_id = {resource["id"]: resource for resource in listed["Resources"]}
    assert set(by_id) == {"User", "Group", "Role", "Entitlement"}
    assert by_id["Role"]["endpoint"] == "/Roles"
    assert by_id["Role"]["schema"] == OKTA_ROLE_SCHEMA
    assert by_id["Role"]["schemaExtensions"] == [{"schema": IETF_ROLE_SCHEMA, "required": False}]
    assert by_id["Entitlement"]["schema"] == OKTA_ENTITLEMENT_SCHEMA
    assert api.get("/ResourceTypes/role").json["endpoint"] == "/Roles"


def test_schemas_describe_each_urn_with_its_own_attributes(api: ScimClient) -> None:
    ids = {schema["id"] for schema in api.get("/Schemas").json["Resources"]}
    assert {OKTA_ROLE_SCHEMA, IETF_ROLE_SCHEMA, OKTA_ENTITLEMENT_SCHEMA} <= ids
    ietf = api.get(f"/Schemas/{IETF_ENTITLEMENT_SCHEMA}").json
    names = {attribute["name"]: attribute for attribute in ietf["attributes"]}
    assert {"value", "display", "type", "supported", "limitedAssignmentsPermitted"} <= set(names)
    assert {attribute["mutability"] for attribute in names.values()} == {"readOnly"}
    okta = api.get(f"/Schemas/{OKTA_ROLE_SCHEMA}").json
    assert {attribute["name"] for attribute in okta["attributes"]} == {
        "displayName",
        "description",
    }


def test_service_provider_config_stays_as_rfc_7643_defines_it(api: ScimClient) -> None:
    # Strict clients refuse an attribute RFC 7643 does not define in it.
    assert "RolesAndEntitlements" not in api.get("/ServiceProviderConfig").json


def test_without_publications_nothing_is_added() -> None:
    app, _ = make_scim_app()
    client = ScimClient(app)
    assert client.get("/ResourceTypes").json["totalResults"] == 2
    assert client.get("/Roles").status_code == 404


def test_a_listed_role_carries_both_schemas_and_its_location(api: ScimClient) -> None:
    listed = api.get("/Roles?count=10").json
    assert listed["totalResults"] == 4
    owner = listed["Resources"][0]
    assert owner["schemas"] == [OKTA_ROLE_SCHEMA, IETF_ROLE_SCHEMA]
    assert owner["id"] == owner["value"] == "Owner"
    assert owner["meta"] == {
        "resourceType": "Role",
        "location": "http://localhost/scim/v2/Roles/Owner",
    }
    assert owner["limitedAssignmentsPermitted"] is True


def test_paging_by_start_index_and_count(api: ScimClient) -> None:
    first = api.get("/Roles").json
    assert (first["totalResults"], first["startIndex"], first["itemsPerPage"]) == (4, 1, 3)
    assert values(first) == ["Owner", "Admin", "Member"]
    second = api.get("/Roles?startIndex=4&count=3").json
    assert (second["startIndex"], values(second)) == (4, ["Viewer"])
    assert values(api.get("/Roles?startIndex=9").json) == []
    assert api.get("/Roles?count=0").json["totalResults"] == 4
    # RFC 7644 section 3.4.2.4: a startIndex below 1 is taken as 1.
    assert api.get("/Roles?startIndex=0").json["startIndex"] == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('value eq "admin"', ["Admin"]),
        ('displayName eq "Viewer"', ["Viewer"]),
        ('value sw "M" or value eq "Owner"', ["Owner", "Member"]),
        ("limitedAssignmentsPermitted eq true", ["Owner"]),
    ],
)
def test_filters(api: ScimClient, query: str, expected: list[str]) -> None:
    response = api.get("/Roles", query_string={"filter": query, "count": "10"})
    assert response.status_code == 200
    assert values(response.json) == expected


def test_a_bad_filter_is_invalid_filter(api: ScimClient) -> None:
    response = api.get("/Roles", query_string={"filter": 'value eq "Admin'})
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidFilter"


def test_sort_and_projection(api: ScimClient) -> None:
    listed = api.get("/Roles?sortBy=value&sortOrder=descending&attributes=value").json
    assert values(listed) == ["Viewer", "Owner", "Member"]
    assert "displayName" not in listed["Resources"][0]
    assert listed["Resources"][0]["id"] == "Viewer"


def test_get_by_id_and_404(api: ScimClient) -> None:
    admin = api.get("/Roles/Admin")
    assert admin.status_code == 200
    assert admin.json["displayName"] == "Admin"
    assert api.get("/Roles/Admin?excludedAttributes=display").json.get("display") is None
    assert api.get("/Entitlements/Hub.PSA").json["type"] == "PSA"
    missing = api.get("/Roles/Boss")
    assert missing.status_code == 404
    assert missing.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/Roles"),
        ("PUT", "/Roles/Admin"),
        ("PATCH", "/Roles/Admin"),
        ("DELETE", "/Roles/Admin"),
        ("DELETE", "/Entitlements/Hub.PSA"),
    ],
)
def test_published_types_are_read_only(api: ScimClient, method: str, path: str) -> None:
    response = api.open(method, path, json={"displayName": "Boss"})
    assert response.status_code == 405
    assert response.json["status"] == "405"
    assert "GET" in response.headers["Allow"]
    assert api.get("/Roles/Admin").json["displayName"] == "Admin"
