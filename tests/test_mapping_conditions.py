"""Mapping rules on the user's attributes: ``when`` conditions (docs/rules.md#mapping-rules).

A company that gives roles by department or employee type rather than by
group writes the condition in the SCIM filter grammar; the profile the IdP
pushes decides, and a profile change that moves a user across a condition
moves their access in the same request.
"""

from __future__ import annotations

import textwrap

import pytest
from sqlalchemy import Engine

from connector.access.derive import AccessContext, UserFacts, derive_access
from connector.access.mapping import MappingError, parse_mapping
from connector.access.roles import Role
from connector.admin.mappings import apply_mapping, current_mapping
from connector.derived.facts import satisfied_conditions
from tests.scenarios import (
    ENTERPRISE_SCHEMA,
    PSA_CREATE,
    PSA_READ,
    USER_SCHEMA,
    Hub,
    Idp,
    Rule,
    mapping,
)

CONTRACTORS = Rule(when='userType eq "Contractor"', role="viewer", name="Contractors")
SALES = Rule(
    when=f'{ENTERPRISE_SCHEMA}:department eq "Sales"',
    product="psa",
    product_roles=("technician",),
    permissions=(PSA_READ,),
)
SALES_ADMINS = Rule(when=f'{ENTERPRISE_SCHEMA}:department eq "Sales"', role="admin")
PSA_TECHNICIANS = Rule(
    group="PSA Technicians",
    product="psa",
    product_roles=("technician",),
    permissions=(PSA_CREATE,),
)
HUB_ADMINS = Rule(group="Hub Admins", role="admin")


def okta_user(user_name: str, **profile: object) -> dict[str, object]:
    """A user as Okta's default SCIM 2.0 attribute mapping pushes it (POST /Users)."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Ada Lovelace",
        "active": True,
        **profile,
    }


def entra_department(department: str) -> dict[str, object]:
    """The operation Entra ID sends when a user's department changes."""
    return {"op": "Replace", "path": f"{ENTERPRISE_SCHEMA}:department", "value": department}


def problems_of(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(textwrap.dedent(text))
    return [(problem.line, problem.message) for problem in caught.value.problems]


# -- the file ------------------------------------------------------------------------


def test_a_condition_is_read_against_the_user_schema() -> None:
    config = parse_mapping(mapping(CONTRACTORS, SALES))

    assert [(number, condition.text) for number, condition in config.conditions] == [
        (1, 'userType eq "Contractor"'),
        (2, f'{ENTERPRISE_SCHEMA}:department eq "Sales"'),
    ]
    assert config.rules[0].describe() == 'rule 1 "Contractors" (when userType eq "Contractor")'
    assert config.to_json()["rules"][0]["when"] == 'userType eq "Contractor"'


def test_a_misspelt_attribute_is_refused_naming_the_rule_and_line() -> None:
    text = """\
        [[rules]]
        group = "Hub Admins"
        role = "admin"

        [[rules]]
        when = 'departmnt eq "Sales"'
        role = "viewer"
        """
    [(line, message)] = problems_of(text)
    assert line == 6
    assert message.startswith('rule 2: when "departmnt eq \\"Sales\\"" is not a valid SCIM')
    assert "departmnt" in message


def test_an_attribute_the_enterprise_extension_does_not_declare_is_refused() -> None:
    # employeeType is no attribute of RFC 7643 section 4.3: a condition on it
    # would never hold, so it is refused rather than silently false.
    text = f"""\
        [[rules]]
        when = '{ENTERPRISE_SCHEMA}:employeeType eq "Contractor"'
        role = "viewer"
        """
    [(line, message)] = problems_of(text)
    assert (line, "employeeType" in message) == (2, True)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('userType eq "Contractor" and', "is not a valid SCIM filter"),
        ('active eq "maybe"', "is not a valid SCIM filter"),
        ('groups[display eq "Sales"]', "group membership is matched by a group rule"),
    ],
)
def test_an_invalid_condition_is_refused(condition: str, expected: str) -> None:
    text = f"[[rules]]\nwhen = '{condition}'\nrole = \"viewer\"\n"
    [(line, message)] = problems_of(text)
    assert line == 2
    assert message.startswith("rule 1: when ")
    assert expected in message


def test_a_condition_cannot_make_an_owner_nor_share_a_rule_with_a_group() -> None:
    text = """\
        [[rules]]
        when = 'userType eq "Founder"'
        role = "owner"

        [[rules]]
        group = "Hub Admins"
        when = 'userType eq "Employee"'
        role = "admin"
        """
    assert problems_of(text) == [
        (
            3,
            "rule 1: a when rule cannot map owner: Owners come only from mapped groups or "
            "SCIM roles, two at most (see docs/rules.md#owner-cap)",
        ),
        (7, "rule 2: give one of group, scim_role or when, not group and when"),
    ]


def test_the_same_condition_mapping_two_roles_is_a_duplicate() -> None:
    twice = mapping(CONTRACTORS, Rule(when='userType eq "Contractor"', role="member"))
    [(_, message)] = problems_of(twice)
    assert message.startswith("rule 2 duplicates rule 1")


# -- derivation, pure ----------------------------------------------------------------


def test_conditions_and_groups_combine_highest_role_wins_grants_are_a_union() -> None:
    config = parse_mapping(mapping(CONTRACTORS, SALES, HUB_ADMINS, PSA_TECHNICIANS))
    context = AccessContext(config, {"hub admins": "g-admins", "psa technicians": "g-psa"}, {})
    document = {
        "userName": "ada",
        "userType": "contractor",  # string values compare case-insensitively
        ENTERPRISE_SCHEMA: {"department": "Sales"},
    }
    conditions = satisfied_conditions(config, document)
    assert conditions == {1, 2}

    contractor = UserFacts("u1", True, conditions=conditions)
    assert derive_access(contractor, context).role is Role.VIEWER

    admin = UserFacts("u1", True, group_ids=frozenset({"g-admins", "g-psa"}), conditions=conditions)
    access = derive_access(admin, context)
    assert access.role is Role.ADMIN  # the group's admin over the condition's viewer
    assert sorted(access.dormant["psa"].permissions) == [PSA_CREATE, PSA_READ]
    assert [source.describe() for source in access.dormant["psa"].sources] == [
        f'rule 2 (when {ENTERPRISE_SCHEMA}:department eq "Sales")',
        'rule 4 (group "PSA Technicians")',
    ]


# -- through SCIM ------------------------------------------------------------------------


def test_an_okta_push_of_a_contractor_gets_viewer(idp: Idp, hub: Hub) -> None:
    hub.apply(mapping(CONTRACTORS))

    ada = idp.expect(
        idp.scim.post("/Users", json=okta_user("ada@msp.example", userType="Contractor")), 201
    )["id"]
    grace = idp.user("grace@msp.example", userType="Employee")

    assert hub.role(ada) == "viewer"
    assert hub.access(ada)["sources"][0]["when"] == 'userType eq "Contractor"'
    assert hub.role(grace) == "member"


def test_an_entra_department_change_moves_the_user_at_once(idp: Idp, hub: Hub) -> None:
    hub.apply(mapping(SALES_ADMINS))
    ada = idp.user("ada@msp.example", **{ENTERPRISE_SCHEMA: {"department": "Support"}})
    assert hub.role(ada) == "member"
    changes_before = len(hub.audit("access.changed"))

    idp.patch(f"/Users/{ada}", entra_department("Sales"), status=200)

    assert hub.role(ada) == "admin"
    moved = hub.audit("access.changed")[-1]
    assert len(hub.audit("access.changed")) == changes_before + 1
    assert (moved.target, moved.before["role"], moved.after["role"]) == (
        f"user:{ada}",
        "member",
        "admin",
    )
    assert moved.reason == (
        f'PATCH /scim/v2/Users/{ada}; via rule 1 (when {ENTERPRISE_SCHEMA}:department eq "Sales")'
    )
    replaced = hub.audit("user.replaced")[-1]
    assert replaced.after == {ENTERPRISE_SCHEMA: {"department": "Sales"}}
    event = hub.events("access.changed")[-1]
    assert (event.subject, event.payload["access"]["role"]) == (ada, "admin")

    idp.patch(f"/Users/{ada}", entra_department("Finance"), status=200)

    assert hub.role(ada) == "member"
    assert hub.events("access.changed")[-1].payload["changed"] == ["role"]


def test_a_profile_change_no_condition_reads_does_not_recompute(idp: Idp, hub: Hub) -> None:
    hub.apply(mapping(SALES_ADMINS))
    ada = idp.user("ada@msp.example", **{ENTERPRISE_SCHEMA: {"department": "Sales"}})
    changes_before = len(hub.audit("access.changed"))

    idp.patch(f"/Users/{ada}", {"op": "replace", "path": "title", "value": "Lead"}, status=200)
    idp.patch(f"/Users/{ada}", entra_department("sales"), status=200)  # same, another case

    assert len(hub.audit("access.changed")) == changes_before
    assert hub.role(ada) == "admin"


def test_a_condition_grant_follows_the_product_state(idp: Idp, hub: Hub) -> None:
    hub.apply(mapping(SALES))
    ada = idp.user("ada@msp.example", **{ENTERPRISE_SCHEMA: {"department": "Sales"}})
    grace = idp.user("grace@msp.example")
    assert hub.access(ada)["products"] == {}

    changed = hub.product("psa", "active")

    assert [change.user_id for change in changed] == [ada]
    assert hub.may(ada, PSA_READ)
    assert not hub.may(grace, PSA_READ)


def test_the_preview_lists_users_moved_by_a_condition(idp: Idp, hub: Hub) -> None:
    hub.apply(mapping(HUB_ADMINS))
    ada = idp.user("ada@msp.example", userType="Contractor")
    grace = idp.user("grace@msp.example", userType="Employee")
    bob = idp.user("bob@msp.example", userType="Contractor")
    idp.group("Hub Admins", [bob])

    preview = hub.apply(mapping(HUB_ADMINS, CONTRACTORS), dry_run=True)

    assert [item.user_id for item in preview.condition_movers] == [ada]
    assert preview.to_json()["condition_movers"] == [
        {
            "userName": "ada@msp.example",
            "user_id": ada,
            "rules": ['rule 2 (when userType eq "Contractor")'],
        }
    ]
    assert (
        'ada@msp.example: role member -> viewer (moved by rule 2 (when userType eq "Contractor"))'
        in preview.to_text()
    )
    assert {hub.role(ada), hub.role(grace), hub.role(bob)} == {"member", "admin"}


def test_an_invalid_condition_is_refused_when_applied_and_nothing_changes(
    engine: Engine, org_id: int
) -> None:
    hub = Hub(engine, org_id)
    bad = mapping(Rule(when='department eq "Sales"', role="viewer"))

    with pytest.raises(
        MappingError, match=r"team.toml:5: rule 1: when .*Field not found: department"
    ):
        hub.run(
            lambda s: apply_mapping(
                s, org_id, bad, actor="cli:it", dry_run=False, source_name="team.toml"
            )
        )
    assert hub.run(lambda s: current_mapping(s, org_id)) is None


def test_an_okta_put_that_makes_a_user_a_contractor_moves_them(idp: Idp, hub: Hub) -> None:
    hub.apply(mapping(CONTRACTORS))
    body = okta_user("ada@msp.example", userType="Employee")
    ada = idp.expect(idp.scim.post("/Users", json=body), 201)["id"]
    assert hub.role(ada) == "member"

    idp.expect(idp.scim.put(f"/Users/{ada}", json={**body, "userType": "Contractor"}), 200)

    assert hub.role(ada) == "viewer"
    assert hub.events("access.changed")[-1].subject == ada
