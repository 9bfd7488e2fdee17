"""May this user do X: allow or deny with a reason a product or an IT admin can read."""

from __future__ import annotations

import json

import pytest

from connector.access.authorize import Decision, authorize, authorize_action
from connector.access.catalog import ProductState
from connector.access.derive import (
    AccessContext,
    DerivedAccess,
    ManualGrant,
    UserFacts,
    derive_access,
)
from connector.access.mapping import GroupRef, ProductGrant, bind_rules, parse_mapping
from connector.access.owners import OwnerStanding
from connector.access.roles import ItAction, Role
from tests.scenarios import AUDITORS, HUB_ADMINS, HUB_OWNERS, PSA_TECHNICIANS, Rule, mapping

MAPPING = mapping(
    HUB_OWNERS,
    HUB_ADMINS,
    AUDITORS,
    PSA_TECHNICIANS,
    Rule(group="RMM Techs", product="rmm", permissions=("rmm.devices.read",)),
)
GROUPS = {
    name: f"g-{index}"
    for index, name in enumerate(
        ["Hub Owners", "Hub Admins", "Auditors", "PSA Technicians", "RMM Techs"]
    )
}
STATES = {
    "psa": ProductState.ACTIVE,
    "crm": ProductState.TRIAL,
    "rmm": ProductState.NOT_SUBSCRIBED,
}


def access_of(
    *groups: str,
    active: bool = True,
    standing: OwnerStanding = OwnerStanding.NONE,
    manual: tuple[ManualGrant, ...] = (),
) -> DerivedAccess:
    config = parse_mapping(MAPPING)
    refs = [GroupRef(group_id, None, name) for name, group_id in GROUPS.items()]
    context = AccessContext(config, bind_rules(config, refs).by_key, STATES)
    facts = UserFacts("u1", active, frozenset(GROUPS[g] for g in groups), manual_grants=manual)
    return derive_access(facts, context, standing)


def test_a_granted_permission_is_allowed_via_its_rule() -> None:
    decision = authorize(access_of("PSA Technicians"), "psa.tickets.create")
    assert decision.allowed
    assert decision.reason == 'allowed via rule 4 (group "PSA Technicians")'


def test_a_manual_grant_is_named_as_the_reason() -> None:
    manual = ManualGrant(ProductGrant("crm", permissions=frozenset({"crm.contacts.read"})), "it")
    decision = authorize(access_of(manual=(manual,)), "crm.contacts.read")
    assert decision == Decision(True, "allowed via manual grant by it", decision.sources)


def test_an_inactive_user_is_denied_everything() -> None:
    decision = authorize(access_of("PSA Technicians", active=False), "psa.tickets.read")
    assert not decision.allowed
    assert decision.reason.startswith("user is inactive")


def test_a_product_not_granted() -> None:
    decision = authorize(access_of("PSA Technicians"), "crm.contacts.read")
    assert decision == Decision(False, 'product "crm" is not granted to this user')


def test_a_dormant_grant_says_the_product_is_not_subscribed() -> None:
    decision = authorize(access_of("RMM Techs"), "rmm.devices.read")
    assert not decision.allowed
    assert 'product "rmm" is not subscribed' in decision.reason
    assert "dormant" in decision.reason


def test_a_viewer_is_denied_a_write_permission_it_was_granted() -> None:
    decision = authorize(access_of("Auditors", "PSA Technicians"), "psa.tickets.create")
    assert not decision.allowed
    assert "Viewer role is read-only" in decision.reason
    assert authorize(access_of("Auditors", "PSA Technicians"), "psa.tickets.read").allowed


def test_a_permission_of_a_granted_product_that_was_not_granted() -> None:
    decision = authorize(access_of("PSA Technicians"), "psa.tickets.delete")
    assert decision == Decision(False, 'psa.tickets.delete is not granted in "psa"')


def test_an_unknown_permission() -> None:
    decision = authorize(access_of("PSA Technicians"), "psa.tickets.teleport")
    assert decision == Decision(False, 'unknown permission "psa.tickets.teleport"')


def test_an_admin_still_needs_grants_for_product_actions() -> None:
    assert not authorize(access_of("Hub Admins"), "psa.tickets.read").allowed
    assert authorize(access_of("Hub Admins", "PSA Technicians"), "psa.tickets.read").allowed


def test_an_owner_may_do_anything_in_an_enabled_product() -> None:
    owner = access_of("Hub Owners", standing=OwnerStanding.SEATED)
    decision = authorize(owner, "crm.contacts.delete")
    assert decision.allowed
    assert decision.reason == "allowed via Owner: every enabled product"
    assert not authorize(owner, "rmm.devices.read").allowed  # rmm is not subscribed


def test_an_owners_own_rule_is_the_first_reason() -> None:
    owner = access_of("Hub Owners", "PSA Technicians", standing=OwnerStanding.SEATED)
    decision = authorize(owner, "psa.tickets.create")
    assert decision.reason == (
        'allowed via rule 4 (group "PSA Technicians"), Owner: every enabled product'
    )


@pytest.mark.parametrize(
    ("groups", "standing", "action", "allowed"),
    [
        (("Hub Owners",), OwnerStanding.SEATED, ItAction.EXPORT_AUDIT, True),
        (("Hub Admins",), OwnerStanding.NONE, ItAction.VIEW_AUDIT, True),
        (("Hub Admins",), OwnerStanding.NONE, ItAction.EXPORT_AUDIT, False),
        (("Hub Admins",), OwnerStanding.NONE, ItAction.GRANT_PRODUCT_ACCESS, True),
        (("Hub Admins",), OwnerStanding.NONE, ItAction.ENABLE_PRODUCTS, False),
        ((), OwnerStanding.NONE, ItAction.MANAGE_USERS, False),
        # A held third Owner acts as Admin: no billing.
        (("Hub Owners",), OwnerStanding.HELD, ItAction.VIEW_BILLING, False),
        (("Hub Owners",), OwnerStanding.HELD, ItAction.MANAGE_USERS, True),
    ],
)
def test_it_actions_follow_the_matrix(
    groups: tuple[str, ...], standing: OwnerStanding, action: ItAction, allowed: bool
) -> None:
    assert authorize_action(access_of(*groups, standing=standing), action).allowed is allowed


def test_an_it_action_denial_names_who_may() -> None:
    decision = authorize_action(access_of("Hub Admins"), ItAction.EXPORT_AUDIT)
    assert decision.reason == (
        "Admin may not Export Audit: only Owners may "
        "(see docs/rules.md#roles-and-permission-matrix)"
    )
    decision = authorize_action(access_of(), ItAction.GRANT_PRODUCT_ACCESS)
    assert decision.reason == (
        "Member may not Grant Product Access: only Owners and Admins may "
        "(see docs/rules.md#roles-and-permission-matrix)"
    )
    inactive = authorize_action(access_of("Hub Owners", active=False), ItAction.VIEW_AUDIT)
    assert not inactive.allowed


def test_a_decision_prints_as_json() -> None:
    printed = authorize(access_of("PSA Technicians"), "psa.tickets.read").to_json()
    assert json.loads(json.dumps(printed))["decision"] == "allow"
    assert printed["sources"][0]["rule"] == 4
    assert access_of("Hub Owners", standing=OwnerStanding.SEATED).role is Role.OWNER


def test_an_owner_is_told_a_product_is_not_enabled() -> None:
    owner = access_of("Hub Owners", standing=OwnerStanding.SEATED)
    decision = authorize(owner, "defend.alerts.read")
    assert decision.reason == (
        'product "defend" is not enabled for this organization (Owners have every enabled product)'
    )
