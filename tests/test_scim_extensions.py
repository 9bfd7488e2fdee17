"""Custom User schema extensions an organization declares (RFC 7643 sections 3.3, 6 and 7).

Entra ID sends attributes an admin added to its mapping under
``urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User``.
Undeclared, such an extension is dropped from a POST or PUT and a PATCH
path naming it is refused; declared, it is that organization's own: served
in discovery, stored, filterable, patchable and usable in mapping conditions,
while another organization does not see it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from scim2_models import InvalidValueException
from sqlalchemy import Engine

from connector.access.mapping import MappingError
from connector.admin.extensions import declare_extension, list_extensions
from connector.cli.main import cli
from connector.db.engine import make_session_factory
from connector.errors import ANSWERS, InvalidInput
from connector.tenancy.tables import Organization
from scim.extensions import parse_extension_schema
from tests.fixtures_app import ScimClient
from tests.scenarios import IT_ACTOR, PATCH_SCHEMA, USER_SCHEMA, Hub, Idp, Rule, mapping

CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"

CUSTOM_SCHEMA: dict[str, Any] = {
    "id": CUSTOM,
    "name": "CustomExtensionName",
    "description": "What Contoso's Entra tenant adds to its users",
    "attributes": [
        {"name": "costCenterCode", "type": "string", "multiValued": False},
        {"name": "badgeNumber", "type": "integer", "multiValued": False},
        {"name": "contractor", "type": "boolean", "multiValued": False},
        {"name": "hourlyRate", "type": "decimal", "multiValued": False},
        {"name": "contractEnds", "type": "dateTime", "multiValued": False},
        {"name": "profilePage", "type": "reference", "referenceTypes": ["external"]},
        {"name": "skills", "type": "string", "multiValued": True},
    ],
}


def entra_user(user_name: str, **custom: Any) -> dict[str, Any]:
    """A user as Entra ID posts it with a custom extension in its attribute mapping."""
    return {
        "schemas": [USER_SCHEMA, CUSTOM],
        "externalId": user_name.split("@")[0],
        "userName": user_name,
        "active": True,
        "displayName": user_name,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "name": {"formatted": user_name, "familyName": "L", "givenName": "A"},
        CUSTOM: custom,
    }


def declare(hub: Hub, document: dict[str, Any] = CUSTOM_SCHEMA) -> None:
    hub.run(lambda s: declare_extension(s, hub.org_id, document, actor=IT_ACTOR))


def post(scim: ScimClient, body: dict[str, Any]) -> dict[str, Any]:
    response = scim.post("/Users", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    created: dict[str, Any] = response.get_json()
    return created


def entra_patch(scim: ScimClient, user: str, *operations: dict[str, Any]) -> Any:
    body = {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}
    return scim.patch(f"/Users/{user}", json=body)


def user_names(scim: ScimClient, scim_filter: str) -> list[str]:
    response = scim.get("/Users", query_string={"filter": scim_filter})
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(user["userName"] for user in response.get_json()["Resources"])


def schema_ids(scim: ScimClient) -> list[str]:
    return [schema["id"] for schema in scim.get("/Schemas").get_json()["Resources"]]


def user_extensions(scim: ScimClient) -> list[str]:
    user_type = scim.get("/ResourceTypes/User").get_json()
    return [item["schema"] for item in user_type["schemaExtensions"]]


# -- undeclared: what happens today --------------------------------------------------


def test_an_undeclared_extension_is_dropped_and_its_patch_path_refused(
    scim: ScimClient,
) -> None:
    created = post(scim, entra_user("ada@contoso.example", costCenterCode="CC-7"))

    assert CUSTOM not in created
    assert CUSTOM not in created["schemas"]
    refused = entra_patch(
        scim,
        created["id"],
        {"op": "Replace", "path": f"{CUSTOM}:costCenterCode", "value": "CC-8"},
    )
    assert refused.status_code == 400
    assert refused.get_json()["scimType"] == "invalidPath"
    assert CUSTOM not in schema_ids(scim)


# -- declared ------------------------------------------------------------------------


def test_a_declared_extension_is_discovered_by_its_organization_only(
    scim: ScimClient, other_org_scim: ScimClient, hub: Hub
) -> None:
    declare(hub)

    assert CUSTOM in schema_ids(scim)
    published = scim.get(f"/Schemas/{CUSTOM}").get_json()
    assert [attribute["name"] for attribute in published["attributes"]][:2] == [
        "costCenterCode",
        "badgeNumber",
    ]
    assert published["meta"]["location"].endswith(f"/Schemas/{CUSTOM}")
    assert CUSTOM in user_extensions(scim)
    assert CUSTOM not in schema_ids(other_org_scim)
    assert CUSTOM not in user_extensions(other_org_scim)
    assert other_org_scim.get(f"/Schemas/{CUSTOM}").status_code == 404


def test_an_entra_post_with_the_extension_is_stored_and_filtered(
    scim: ScimClient, other_org_scim: ScimClient, hub: Hub
) -> None:
    declare(hub)

    created = post(
        scim,
        entra_user(
            "ada@contoso.example",
            costCenterCode="CC-7",
            badgeNumber="1042",  # Entra sends numbers as strings too
            contractor="True",
            hourlyRate=92.5,
            contractEnds="2027-06-30T00:00:00Z",
            skills=["psa", "rmm"],
        ),
    )
    post(scim, entra_user("grace@contoso.example", costCenterCode="CC-9", badgeNumber=7))

    assert created[CUSTOM]["badgeNumber"] == 1042
    assert created[CUSTOM]["contractor"] is True
    assert CUSTOM in created["schemas"]
    assert scim.get(f"/Users/{created['id']}").get_json()[CUSTOM]["costCenterCode"] == "CC-7"
    assert user_names(scim, f'{CUSTOM}:costCenterCode eq "cc-7"') == ["ada@contoso.example"]
    assert user_names(scim, f"{CUSTOM}:badgeNumber gt 100") == ["ada@contoso.example"]
    assert user_names(scim, f"{CUSTOM}:contractor eq true") == ["ada@contoso.example"]
    assert user_names(scim, f'{CUSTOM}:skills eq "RMM"') == ["ada@contoso.example"]
    assert user_names(scim, f'{CUSTOM}:contractEnds gt "2027-01-01T00:00:00Z"') == [
        "ada@contoso.example"
    ]
    # For another organization, which never declared it, the filter matches nothing.
    other_org = Idp(other_org_scim)
    other_org.expect(
        other_org_scim.post(
            "/Users", json=entra_user("ada@contoso.example", costCenterCode="CC-7")
        ),
        201,
    )
    assert user_names(other_org_scim, f'{CUSTOM}:costCenterCode eq "CC-7"') == []


def test_an_entra_patch_with_the_extension_urn_path(scim: ScimClient, hub: Hub) -> None:
    declare(hub)
    ada = post(scim, entra_user("ada@contoso.example", costCenterCode="CC-7"))["id"]

    patched = entra_patch(
        scim,
        ada,
        {"op": "Replace", "path": f"{CUSTOM}:costCenterCode", "value": "CC-8"},
        {"op": "Add", "path": f"{CUSTOM}:badgeNumber", "value": "77"},
    )

    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert patched.get_json()[CUSTOM] == {"costCenterCode": "CC-8", "badgeNumber": 77}
    assert user_names(scim, f'{CUSTOM}:costCenterCode eq "CC-8"') == ["ada@contoso.example"]
    assert user_names(scim, f'{CUSTOM}:costCenterCode eq "CC-7"') == []
    bad = entra_patch(scim, ada, {"op": "Replace", "path": f"{CUSTOM}:badgeNumber", "value": "x"})
    assert bad.status_code == 400


def test_a_condition_rule_on_a_declared_attribute(idp: Idp, scim: ScimClient, hub: Hub) -> None:
    declare(hub)
    hub.apply(mapping(Rule(when=f"{CUSTOM}:contractor eq true", role="viewer")))
    ada = post(scim, entra_user("ada@contoso.example", contractor="False"))["id"]
    assert hub.role(ada) == "member"

    idp.patch(
        f"/Users/{ada}",
        {"op": "Replace", "path": f"{CUSTOM}:contractor", "value": "True"},
        status=200,
    )

    assert hub.role(ada) == "viewer"
    assert hub.audit("access.changed")[-1].reason.endswith(f"(when {CUSTOM}:contractor eq true)")


def test_a_condition_on_an_undeclared_extension_is_refused(hub: Hub) -> None:
    with pytest.raises(MappingError, match=r"rule 1: when .*costCenterCode"):
        hub.apply(mapping(Rule(when=f'{CUSTOM}:costCenterCode eq "CC-7"', role="viewer")))


def test_declaring_again_may_add_attributes_but_not_retype_or_remove(hub: Hub) -> None:
    declare(hub)
    more = {
        **CUSTOM_SCHEMA,
        "attributes": [*CUSTOM_SCHEMA["attributes"], {"name": "site", "type": "string"}],
    }
    declare(hub, more)
    [declared] = hub.run(lambda s: list_extensions(s, hub.org_id))
    assert declared.attributes[-1] == ("site", "string", False)

    retyped = {
        **CUSTOM_SCHEMA,
        "attributes": [
            {"name": "costCenterCode", "type": "integer"},
            *CUSTOM_SCHEMA["attributes"][1:],
        ],
    }
    with pytest.raises(InvalidInput, match="'costCenterCode' cannot change its type"):
        declare(hub, retyped)
    with pytest.raises(InvalidInput, match="'site' was declared"):
        declare(hub, CUSTOM_SCHEMA)
    assert [entry.action for entry in hub.audit("extension.declared")] == [
        "extension.declared",
        "extension.declared",
    ]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (
            {**CUSTOM_SCHEMA, "id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
            "served already",
        ),
        ({**CUSTOM_SCHEMA, "id": "CustomExtensionName"}, "not a SCIM schema: id:"),
        ({**CUSTOM_SCHEMA, "id": "https://contoso.example/schema"}, "must be a URN"),
        ({**CUSTOM_SCHEMA, "attributes": [{"name": "address", "type": "complex"}]}, "'complex'"),
        ({**CUSTOM_SCHEMA, "attributes": []}, "declares no attribute"),
        ({**CUSTOM_SCHEMA, "name": "Custom Extension"}, "single word"),
        ({"id": CUSTOM}, "needs a name of a single word"),
        ({**CUSTOM_SCHEMA, "name": "Emails"}, "the User resource has that name"),
        ({**CUSTOM_SCHEMA, "name": "EnterpriseUser"}, "the User resource has that name"),
        ([], "JSON object"),
    ],
)
def test_a_bad_extension_schema_is_refused_saying_why(document: Any, reason: str) -> None:
    with pytest.raises(InvalidValueException) as refused:
        parse_extension_schema(document)
    assert reason in str(refused.value.detail)


# -- the command line --------------------------------------------------------------


def test_hub_scim_extension_add_and_list(
    runner: CliRunner,
    cli_database_url: str,
    engine: Engine,
    org_id: int,
    tmp_path: Path,
    scim: ScimClient,
) -> None:
    with make_session_factory(engine)() as session:
        organization = session.get(Organization, org_id)
        assert organization is not None
        org = organization.name

    def hub_scim(*args: str) -> Result:
        return runner.invoke(cli, [*args, "--database-url", cli_database_url])

    schema_file = tmp_path / "custom.json"
    schema_file.write_text(json.dumps(CUSTOM_SCHEMA), encoding="utf-8")
    added = hub_scim("extension", "add", "--org", org, str(schema_file))
    assert added.exit_code == 0, added.output
    assert added.output.startswith(
        f"Declared {CUSTOM} for organization {org!r}: costCenterCode (string)"
    )

    listed = hub_scim("extension", "list", "--org", org, "--json")
    assert [item["urn"] for item in json.loads(listed.output)] == [CUSTOM]
    assert CUSTOM in schema_ids(scim)

    broken = tmp_path / "broken.json"
    broken.write_text('{"id": \n', encoding="utf-8")
    refused = hub_scim("extension", "add", "--org", org, str(broken))
    assert refused.exit_code == ANSWERS[InvalidInput].exit_code, refused.output
    assert "broken.json:2: not JSON" in refused.output
    assert "Traceback" not in refused.output


def test_discovery_without_declarations_is_unchanged(scim: ScimClient) -> None:
    assert user_extensions(scim) == ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]


@pytest.mark.parametrize("rate", ["NaN", "Infinity", "1e400"])
def test_a_decimal_that_is_not_a_finite_number_is_refused_not_stored_as_null(
    scim: ScimClient, hub: Hub, rate: str
) -> None:
    declare(hub)
    refused = scim.post("/Users", json=entra_user("ada@contoso.example", hourlyRate=rate))
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert refused.get_json()["scimType"] == "invalidValue"

    ada = post(scim, entra_user("ada@contoso.example", hourlyRate=92.5))["id"]
    patched = entra_patch(
        scim, ada, {"op": "Replace", "path": f"{CUSTOM}:hourlyRate", "value": rate}
    )
    assert patched.status_code == 400, patched.get_data(as_text=True)
    assert scim.get(f"/Users/{ada}").get_json()[CUSTOM]["hourlyRate"] == 92.5


def test_an_extension_urn_too_long_to_keep_is_refused_saying_why(hub: Hub) -> None:
    urn = "urn:ietf:params:scim:schemas:extension:" + "A" * 300 + ":2.0:User"
    with pytest.raises(InvalidInput, match="over 300 characters"):
        declare(hub, dict(CUSTOM_SCHEMA, id=urn))
