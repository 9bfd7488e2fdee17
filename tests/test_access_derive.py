"""A staff user's derived Hub access, section by section of docs/rules.md."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.access.catalog import HUB_CATALOG, ProductState, counts
from connector.access.derive import (
    AccessContext,
    DerivedAccess,
    ManualGrant,
    Source,
    SourceKind,
    UserFacts,
    claim_role,
    derive_access,
    derive_org,
    qualifies_as_owner,
)
from connector.access.mapping import (
    GroupRef,
    MappingConfig,
    MappingRule,
    ProductGrant,
    bind_rules,
    parse_mapping,
)
from connector.access.onboarding import Onboarding
from connector.access.owners import OwnerSeats, OwnerStanding
from connector.access.roles import Role
from tests.scenarios import (
    AUDITORS,
    HUB_ADMINS,
    HUB_OWNERS,
    PSA_READ,
    PSA_TECHNICIANS,
    Rule,
    mapping,
)

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)

MAPPING = mapping(
    HUB_OWNERS,
    HUB_ADMINS,
    AUDITORS,
    PSA_TECHNICIANS,
    Rule(
        group="PSA Dispatch",
        product="psa",
        product_roles=("dispatcher",),
        permissions=(PSA_READ, "psa.tickets.update"),
    ),
    Rule(group="RMM Techs", product="rmm", permissions=("rmm.devices.read", "rmm.scripts.run")),
    Rule(scim_role="hub-owner", role="owner"),
    Rule(scim_role="hub-admin", role="admin"),
    map_scim_roles=True,
)

GROUPS = [
    GroupRef("g-own", "00g-owners", "Hub Owners"),
    GroupRef("g-adm", None, "Hub Admins"),
    GroupRef("g-aud", None, "Auditors"),
    GroupRef("g-psa", None, "PSA Technicians"),
    GroupRef("g-dsp", None, "PSA Dispatch"),
    GroupRef("g-rmm", None, "RMM Techs"),
]
GROUP_IDS = {group.display_name: group.id for group in GROUPS}
EVERYTHING_ACTIVE = {name: ProductState.ACTIVE for name in HUB_CATALOG.names}


def context(
    states: dict[str, ProductState] | None = None, config: MappingConfig | None = None
) -> AccessContext:
    config = config or parse_mapping(MAPPING)
    bindings = bind_rules(config, GROUPS).by_key
    return AccessContext(config, bindings, EVERYTHING_ACTIVE if states is None else states)


def user(
    user_id: str,
    *groups: str,
    active: bool = True,
    app_roles: tuple[str, ...] = (),
    manual: tuple[ManualGrant, ...] = (),
    onboarded: tuple[str, ...] = (),
) -> UserFacts:
    return UserFacts(
        user_id,
        active,
        frozenset(GROUP_IDS[group] for group in groups),
        frozenset(app_roles),
        manual,
        frozenset(onboarded),
    )


def rule_source(number: int) -> Source:
    rule = parse_mapping(MAPPING).rules[number - 1]
    return Source.of_rule(rule)


def permissions(access: DerivedAccess, product: str) -> set[str]:
    return set(access.products[product].permissions)


# Rule 2: the platform role


def test_a_user_in_no_role_mapped_group_has_the_default_role() -> None:
    access = derive_access(user("u1", "PSA Technicians"), context())
    assert access.role is Role.MEMBER
    assert access.role_sources == (Source(SourceKind.DEFAULT_ROLE),)


def test_it_may_set_another_default_role() -> None:
    config = dataclasses.replace(parse_mapping(MAPPING), default_role=Role.VIEWER)
    assert derive_access(user("u1"), context(config=config)).role is Role.VIEWER


def test_the_highest_mapped_role_wins_and_names_its_rule() -> None:
    access = derive_access(user("u1", "Auditors", "Hub Admins"), context())
    assert access.role is Role.ADMIN
    assert access.role_sources == (rule_source(2),)


def test_an_entra_app_role_maps_like_a_group_case_insensitively() -> None:
    access = derive_access(user("u1", "Auditors", app_roles=("Hub-Admin",)), context())
    assert access.role is Role.ADMIN
    assert access.role_sources[0].describe() == 'rule 8 (SCIM role "hub-admin")'


def test_app_roles_are_ignored_unless_the_org_enables_them() -> None:
    config = dataclasses.replace(parse_mapping(MAPPING), map_scim_roles=False)
    access = derive_access(user("u1", app_roles=("hub-admin",)), context(config=config))
    assert access.role is Role.MEMBER


def test_a_group_bound_before_a_rename_still_maps() -> None:
    config = parse_mapping(MAPPING)
    bound = bind_rules(config, GROUPS).by_key
    renamed = [dataclasses.replace(GROUPS[1], display_name="Platform Admins")]
    bindings = bind_rules(config, renamed, existing=bound).by_key
    assert bindings["hub admins"] == "g-adm"
    access = derive_access(user("u1", "Hub Admins"), AccessContext(config, bindings, {}))
    assert access.role is Role.ADMIN


def test_a_rule_whose_group_was_never_pushed_maps_nobody() -> None:
    config = parse_mapping(MAPPING)
    ctx = AccessContext(config, {}, EVERYTHING_ACTIVE)
    assert claim_role(user("u1", "Hub Admins"), ctx).role is Role.MEMBER


# Rule 3: the two-Owner cap, through derive_org


def test_three_pushed_owners_two_seated_the_third_held_as_admin() -> None:
    users = [user(name, "Hub Owners", "PSA Technicians") for name in ("ann", "bob", "cat")]
    result = derive_org(users, context(), OwnerSeats(), now=NOW)
    assert [result.access[name].role for name in ("ann", "bob", "cat")] == [
        Role.OWNER,
        Role.OWNER,
        Role.ADMIN,
    ]
    cat = result.access["cat"]
    assert cat.held
    assert cat.role_sources == (Source(SourceKind.OWNER_FALLBACK),)
    assert result.access["ann"].role_sources == (rule_source(1),)
    # Held, Cat acts as an Admin: grants only, no product beyond them.
    assert set(cat.products) == {"psa"}


def test_entra_app_roles_count_toward_the_cap() -> None:
    users = [
        user("ann", "Hub Owners"),
        user("bob", app_roles=("hub-owner",)),
        user("cat", app_roles=("HUB-OWNER",)),
    ]
    result = derive_org(users, context(), OwnerSeats(), now=NOW)
    assert result.owners.after.owner_ids == ("ann", "bob")
    assert result.access["cat"].held


def test_a_disabled_owner_frees_a_seat_for_the_held_one() -> None:
    users = [user(name, "Hub Owners") for name in ("ann", "bob", "cat")]
    first = derive_org(users, context(), OwnerSeats(), now=NOW)
    users[0] = dataclasses.replace(users[0], active=False)
    second = derive_org(users, context(), first.owners.after, left=["ann"], now=NOW)
    assert second.access["ann"].role is None
    assert second.access["cat"].role is Role.OWNER
    assert not second.access["cat"].held
    assert second.owners.affected_users == {"ann", "cat"}


def test_a_held_owner_keeps_a_higher_non_owner_mapping_over_the_fallback() -> None:
    config = dataclasses.replace(parse_mapping(MAPPING), owner_fallback_role=Role.MEMBER)
    ctx = context(config=config)
    held = derive_access(user("cat", "Hub Owners", "Hub Admins"), ctx, OwnerStanding.HELD)
    assert (held.role, held.role_sources) == (Role.ADMIN, (rule_source(2),))
    plain = derive_access(user("dan", "Hub Owners"), ctx, OwnerStanding.HELD)
    assert (plain.role, plain.role_sources) == (Role.MEMBER, (Source(SourceKind.OWNER_FALLBACK),))


def test_a_held_owner_whose_fallback_is_viewer_is_read_only() -> None:
    config = dataclasses.replace(parse_mapping(MAPPING), owner_fallback_role=Role.VIEWER)
    held = derive_access(
        user("cat", "Hub Owners", "PSA Technicians"), context(config=config), OwnerStanding.HELD
    )
    assert held.role is Role.VIEWER
    assert permissions(held, "psa") == {"psa.tickets.read"}


def test_only_a_seat_makes_an_owner() -> None:
    # Without a standing from the seating policy, a would-be Owner acts with the fallback.
    access = derive_access(user("ann", "Hub Owners"), context())
    assert access.role is Role.ADMIN
    assert not access.held
    assert qualifies_as_owner(user("ann", "Hub Owners"), context())
    assert not qualifies_as_owner(user("ann", "Hub Owners", active=False), context())


# Rule 4: the last Owner


def test_the_last_owner_kept_after_leaving_the_group_stays_owner_flagged() -> None:
    ann = user("ann", "Hub Owners")
    first = derive_org([ann], context(), OwnerSeats(), now=NOW)
    left_group = user("ann", "PSA Technicians")
    second = derive_org([left_group], context(), first.owners.after, now=NOW)
    access = second.access["ann"]
    assert access.role is Role.OWNER
    assert access.kept_as_last_owner
    assert access.role_sources == (Source(SourceKind.LAST_OWNER),)
    # Pushing Bob into Owners ends it: Ann is back to what her groups give.
    third = derive_org(
        [left_group, user("bob", "Hub Owners")], context(), second.owners.after, now=NOW
    )
    assert third.access["ann"].role is Role.MEMBER
    assert third.access["bob"].role is Role.OWNER


# Rule 5: product grants


def test_grants_are_the_union_of_mapped_groups_and_manual_grants_with_sources() -> None:
    manual = ManualGrant(
        ProductGrant("psa", frozenset({"manager"}), frozenset({"psa.time.log"})), "it@msp.example"
    )
    access = derive_access(
        user("u1", "PSA Technicians", "PSA Dispatch", manual=(manual,)), context()
    )
    psa = access.products["psa"]
    assert psa.roles == {"technician", "dispatcher", "manager"}
    assert set(psa.permissions) == {
        "psa.tickets.read",
        "psa.tickets.create",
        "psa.tickets.update",
        "psa.time.log",
    }
    assert psa.permissions["psa.tickets.read"] == (rule_source(4), rule_source(5))
    assert psa.permissions["psa.time.log"] == (
        Source(SourceKind.MANUAL, granted_by="it@msp.example"),
    )
    assert psa.sources == (
        rule_source(4),
        rule_source(5),
        Source(SourceKind.MANUAL, granted_by="it@msp.example"),
    )


def test_a_grant_of_a_not_subscribed_product_is_dormant_and_comes_back() -> None:
    facts = user("u1", "PSA Technicians", "RMM Techs")
    states = {"psa": ProductState.ACTIVE, "rmm": ProductState.NOT_SUBSCRIBED}
    access = derive_access(facts, context(states))
    assert set(access.products) == {"psa"}
    assert set(access.dormant) == {"rmm"}
    assert set(access.dormant["rmm"].permissions) == {"rmm.devices.read", "rmm.scripts.run"}
    enabled = derive_access(facts, context({**states, "rmm": ProductState.TRIAL}))
    assert set(enabled.products) == {"psa", "rmm"}
    assert enabled.dormant == {}


def test_a_product_with_no_recorded_state_is_not_subscribed() -> None:
    access = derive_access(user("u1", "PSA Technicians"), context({}))
    assert access.products == {}
    assert set(access.dormant) == {"psa"}


# Rule 6: the role is a ceiling


def test_a_viewer_keeps_only_read_only_permissions_whatever_the_grants_say() -> None:
    access = derive_access(user("u1", "Auditors", "PSA Technicians", "RMM Techs"), context())
    assert access.role is Role.VIEWER
    assert permissions(access, "psa") == {"psa.tickets.read"}
    assert access.products["psa"].withheld == {"psa.tickets.create"}
    assert permissions(access, "rmm") == {"rmm.devices.read"}
    assert access.products["rmm"].withheld == {"rmm.scripts.run"}


def test_the_ceiling_applies_to_dormant_grants_too() -> None:
    access = derive_access(user("u1", "Auditors", "RMM Techs"), context({}))
    assert set(access.dormant["rmm"].permissions) == {"rmm.devices.read"}


def test_members_and_admins_reach_products_only_through_grants() -> None:
    assert derive_access(user("u1"), context()).products == {}
    admin = derive_access(user("u2", "Hub Admins"), context())
    assert admin.role is Role.ADMIN
    assert admin.products == {}
    admin_tech = derive_access(user("u3", "Hub Admins", "PSA Technicians"), context())
    assert permissions(admin_tech, "psa") == {"psa.tickets.read", "psa.tickets.create"}


def test_an_owner_has_every_enabled_product_with_every_permission() -> None:
    states = {
        "psa": ProductState.ACTIVE,
        "crm": ProductState.TRIAL,
        "defend": ProductState.NOT_SUBSCRIBED,
    }
    access = derive_access(
        user("ann", "Hub Owners", "PSA Technicians"), context(states), OwnerStanding.SEATED
    )
    assert set(access.products) == {"psa", "crm"}
    crm = HUB_CATALOG.product("crm")
    assert crm is not None
    assert set(access.products["crm"].permissions) == crm.permission_names
    assert access.products["crm"].sources == (Source(SourceKind.OWNER),)
    psa = access.products["psa"]
    assert psa.roles == {"technician"}
    assert psa.sources == (rule_source(4), Source(SourceKind.OWNER))
    assert psa.permissions["psa.tickets.create"] == (rule_source(4), Source(SourceKind.OWNER))
    assert psa.permissions["psa.boards.manage"] == (Source(SourceKind.OWNER),)
    assert access.dormant == {}


# Rule 8: deprovisioning


def test_a_deactivated_user_has_no_role_and_no_products() -> None:
    facts = user("u1", "Hub Admins", "PSA Technicians", "RMM Techs", active=False)
    access = derive_access(facts, context({}), OwnerStanding.SEATED)
    assert access == DerivedAccess("u1", active=False, role=None)
    assert access.to_json()["role"] is None


def test_reactivation_rebuilds_access_from_the_current_groups() -> None:
    before = derive_access(user("u1", "Hub Admins", "PSA Technicians"), context())
    assert before.role is Role.ADMIN
    # Removed from Hub Admins while disabled, then enabled again.
    after = derive_access(user("u1", "PSA Technicians"), context())
    assert after.role is Role.MEMBER
    assert set(after.products) == {"psa"}


# Rule 10: onboarding


def test_onboarding_is_pending_until_done_and_survives_a_regrant() -> None:
    access = derive_access(user("u1", "PSA Technicians", "RMM Techs"), context())
    assert access.products["psa"].onboarding is Onboarding.PENDING
    done = derive_access(user("u1", "PSA Technicians", onboarded=("psa",)), context())
    assert done.products["psa"].onboarding is Onboarding.DONE
    # Revoked (out of the group), then granted again: still done.
    regranted = derive_access(user("u1", "PSA Dispatch", onboarded=("psa",)), context())
    assert regranted.products["psa"].onboarding is Onboarding.DONE


# The access JSON (what the access API and `hub-scim access --json` print)


def test_the_access_json_has_its_documented_shape() -> None:
    access = derive_access(
        user("u1", "Auditors", "PSA Technicians", "RMM Techs"),
        context({"psa": ProductState.ACTIVE}),
    )
    printed = json.loads(json.dumps(access.to_json()))
    assert printed["active"] is True
    assert printed["role"] == "viewer"
    assert printed["held"] is False
    assert printed["role_sources"] == [
        {"type": "rule", "rule": 3, "group": "Auditors", "description": 'rule 3 (group "Auditors")'}
    ]
    psa = printed["products"]["psa"]
    assert psa["roles"] == ["technician"]
    assert psa["permissions"] == ["psa.tickets.read"]
    assert psa["withheld"] == ["psa.tickets.create"]
    assert psa["onboarding"] == "pending"
    assert psa["sources"][0]["rule"] == 4
    assert list(printed["dormant"]) == ["rmm"]
    assert DerivedAccess.from_json(printed) == access


# Properties

PERMISSIONS = [p.name for product in HUB_CATALOG for p in product.permissions]
GROUP_POOL = [f"g{i}" for i in range(5)]


def grants_of(product: str) -> st.SearchStrategy[ProductGrant]:
    found = HUB_CATALOG.product(product)
    assert found is not None
    return st.builds(
        ProductGrant,
        st.just(product),
        st.frozensets(st.sampled_from(sorted(found.staff_role_names)), max_size=2),
        st.frozensets(st.sampled_from(sorted(found.permission_names))),
    )


# Built once: strategies are cheap to draw from, not to build.
product_grants = st.one_of([grants_of(name) for name in HUB_CATALOG.names])
roles = st.sampled_from(list(Role))
below_owner = st.sampled_from([Role.VIEWER, Role.MEMBER, Role.ADMIN])
rule_parts = st.tuples(st.sampled_from(GROUP_POOL), st.none() | roles, st.none() | product_grants)
states = st.dictionaries(st.sampled_from(HUB_CATALOG.names), st.sampled_from(list(ProductState)))
manual_grants = st.lists(st.builds(ManualGrant, product_grants, st.just("it")), max_size=2)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[UserFacts, AccessContext, OwnerStanding]:
    rules = tuple(
        MappingRule(number, group=group, role=role, grant=grant)
        for number, (group, role, grant) in enumerate(
            draw(st.lists(rule_parts, max_size=8)), start=1
        )
    )
    config = MappingConfig(
        default_role=draw(below_owner), owner_fallback_role=draw(below_owner), rules=rules
    )
    bindings = {group: group for group in GROUP_POOL}
    facts = UserFacts(
        "u1",
        draw(st.booleans()),
        draw(st.frozensets(st.sampled_from(GROUP_POOL))),
        frozenset(),
        tuple(draw(manual_grants)),
        draw(st.frozensets(st.sampled_from(HUB_CATALOG.names))),
    )
    standing = draw(st.sampled_from(list(OwnerStanding)))
    return facts, AccessContext(config, bindings, draw(states)), standing


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_a_viewer_never_ends_with_a_permission_that_writes(
    scenario: tuple[UserFacts, AccessContext, OwnerStanding],
) -> None:
    facts, ctx, _ = scenario
    # Whatever the grants, make every role the mapping can give Viewer.
    config = dataclasses.replace(
        ctx.config,
        default_role=Role.VIEWER,
        owner_fallback_role=Role.VIEWER,
        rules=tuple(
            dataclasses.replace(rule, role=None if rule.role is None else Role.VIEWER)
            for rule in ctx.config.rules
        ),
    )
    viewer_ctx = AccessContext(config, ctx.bindings, ctx.product_states)
    access = derive_access(dataclasses.replace(facts, active=True), viewer_ctx)
    assert access.role is Role.VIEWER
    for grant in [*access.products.values(), *access.dormant.values()]:
        assert all(HUB_CATALOG.is_read_only(name) for name in grant.permissions)
        assert not any(HUB_CATALOG.is_read_only(name) for name in grant.withheld)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_an_inactive_user_has_no_access(
    scenario: tuple[UserFacts, AccessContext, OwnerStanding],
) -> None:
    facts, ctx, standing = scenario
    access = derive_access(dataclasses.replace(facts, active=False), ctx, standing)
    assert access.role is None
    assert access.products == {}
    assert access.dormant == {}
    assert not access.held


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_derived_access_keeps_the_rules(
    scenario: tuple[UserFacts, AccessContext, OwnerStanding],
) -> None:
    facts, ctx, standing = scenario
    access = derive_access(facts, ctx, standing)
    if not facts.active:
        return
    # Only a seat makes an Owner.
    is_seated = standing in (OwnerStanding.SEATED, OwnerStanding.KEPT_AS_LAST)
    assert (access.role is Role.OWNER) is is_seated
    # Counted grants only for active or trial products, dormant ones only for the others.
    assert all(counts(ctx.state(name)) for name in access.products)
    assert not any(counts(ctx.state(name)) for name in access.dormant)
    for name, grant in [*access.products.items(), *access.dormant.items()]:
        found = HUB_CATALOG.product(name)
        assert found is not None
        assert set(grant.permissions) <= found.permission_names
        assert all(grant.permissions[p] for p in grant.permissions)  # every one has a source
    if access.role is not Role.OWNER:
        granted = {
            p
            for rule in ctx.matched_rules(facts)
            if rule.grant is not None
            for p in rule.grant.permissions
        } | {p for manual in facts.manual_grants for p in manual.grant.permissions}
        for grant in access.products.values():
            assert set(grant.permissions) <= granted
    assert DerivedAccess.from_json(json.loads(json.dumps(access.to_json()))) == access


def test_the_wanted_role_shows_what_the_cap_withheld() -> None:
    held = derive_access(user("cat", "Hub Owners"), context(), OwnerStanding.HELD)
    assert (held.role, held.wanted_role) == (Role.ADMIN, Role.OWNER)
    assert held.to_json()["wanted_role"] == "owner"
    assert derive_access(user("cat", "Hub Owners", active=False), context()).wanted_role is None


def test_a_seat_without_an_owner_mapping_still_names_its_source() -> None:
    # A stale seat (the caller has not re-seated yet) never shows a misleading rule.
    access = derive_access(user("ann", "Auditors"), context(), OwnerStanding.SEATED)
    assert access.role is Role.OWNER
    assert access.role_sources == (Source(SourceKind.OWNER_SEAT),)


def test_derivation_never_widens_a_grant_written_badly() -> None:
    stale = ManualGrant(
        ProductGrant(
            "psa",
            frozenset({"technician", "portal_contact", "retired_role"}),
            frozenset({"psa.tickets.read", "psa.retired.permission", "crm.contacts.read"}),
        ),
        "it",
    )
    gone = ManualGrant(ProductGrant("fax", permissions=frozenset({"fax.send"})), "it")
    access = derive_access(user("u1", manual=(stale, gone)), context())
    assert access.products["psa"].roles == {"technician"}
    assert set(access.products["psa"].permissions) == {"psa.tickets.read"}
    assert "fax" not in access.products
    assert "fax" not in access.dormant
