"""The values an IdP may assign, as pure rules (docs/rules.md#assignable-values)."""

from __future__ import annotations

from connector.access.assignable import (
    assignable_entitlements,
    assignable_roles,
    entra_app_roles,
    known_values,
    unknown_values,
)
from connector.access.catalog import ProductState
from connector.access.derive import AccessContext, UserFacts, claim_role
from connector.access.mapping import parse_mapping
from connector.access.roles import Role
from tests.scenarios import PSA_READ, Rule, mapping

CONFIG = parse_mapping(
    mapping(
        Rule(scim_role="Hub.Auditor", role="viewer"),
        Rule(scim_role=" hub.psa ", product="psa", permissions=(PSA_READ,)),
        Rule(scim_role="Admin", product="crm", permissions=("crm.contacts.read",)),
        map_scim_roles=True,
    )
)


def test_known_values_are_hub_role_names_then_the_mapping_s() -> None:
    assert list(known_values(CONFIG).values()) == [
        "Owner",
        "Admin",
        "Member",
        "Viewer",
        "Hub.Auditor",
        "hub.psa",
    ]


def test_unknown_values_compare_trimmed_and_case_insensitively() -> None:
    assert unknown_values(CONFIG, ["ADMIN", " Hub.PSA", "hub.auditor", "Boss", "Boss"]) == ("Boss",)


def test_nothing_is_unknown_while_the_mapping_reads_no_scim_roles() -> None:
    assert unknown_values(parse_mapping(mapping()), ["Boss"]) == ()


def test_roles_list_each_value_once_with_what_it_gives() -> None:
    roles = assignable_roles(CONFIG, owners_seated=1)
    assert [role.value for role in roles] == [
        "Owner",
        "Admin",
        "Member",
        "Viewer",
        "Hub.Auditor",
        "hub.psa",
    ]
    owner = roles[0].to_scim()
    assert owner["limitedAssignmentsPermitted"] is True
    assert (owner["totalAssignmentsPermitted"], owner["totalAssignmentsUsed"]) == (2, 1)
    assert roles[4].description == "rule 1: role Viewer"
    assert "totalAssignmentsPermitted" not in roles[1].to_scim()


def test_entitlements_are_the_values_granting_a_product_supported_when_it_counts() -> None:
    listed = assignable_entitlements(CONFIG, {"psa": ProductState.TRIAL})
    assert [(item.value, item.display, item.supported) for item in listed] == [
        ("hub.psa", "PSA: hub.psa", True),
        ("Admin", "CRM: Admin", False),
    ]


def test_a_value_naming_a_hub_role_gives_it_only_when_roles_are_read() -> None:
    context = AccessContext(CONFIG, {}, {})
    facts = UserFacts("u1", active=True, scim_roles=frozenset({"admin", "Hub.Auditor"}))
    claim = claim_role(facts, context)
    assert claim.role is Role.ADMIN
    assert claim.sources[0].to_json()["type"] == "scim_role"
    unread = AccessContext(parse_mapping(mapping()), {}, {})
    assert claim_role(facts, unread).role is Role.MEMBER


def test_entra_app_roles_have_stable_distinct_ids() -> None:
    first, again = entra_app_roles(CONFIG), entra_app_roles(CONFIG)
    assert [role["id"] for role in first] == [role["id"] for role in again]
    assert len({role["id"] for role in first}) == len(first) == 6
    assert first[1]["value"] == "Admin"
