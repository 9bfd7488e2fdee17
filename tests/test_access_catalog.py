"""The product catalog: PSA, CRM, Defend and RMM, their permissions, roles, modes and states."""

from __future__ import annotations

import json

import pytest

from connector.access.catalog import (
    HUB_CATALOG,
    AccessMode,
    Catalog,
    Permission,
    Product,
    ProductRole,
    ProductState,
    counts,
)


def test_hub_offers_psa_crm_defend_and_rmm() -> None:
    assert HUB_CATALOG.names == ("psa", "crm", "defend", "rmm")


def test_each_product_has_its_documented_onboarding_flow() -> None:
    flows = {product.name: product.onboarding for product in HUB_CATALOG}
    assert flows == {
        "psa": "Service board setup",
        "crm": "Import contacts",
        "defend": "Deploy your first agent",
        "rmm": "Agent download links",
    }


def test_permissions_are_named_after_their_product() -> None:
    for product in HUB_CATALOG:
        for permission in product.permissions:
            assert permission.name.startswith(f"{product.name}.")
            assert HUB_CATALOG.permission(permission.name) == permission


def test_reading_is_read_only_and_everything_else_writes() -> None:
    for product in HUB_CATALOG:
        for permission in product.permissions:
            assert permission.read_only is permission.name.endswith(".read"), permission.name


def test_the_examples_of_the_brief_are_in_the_catalog() -> None:
    for name in [
        "psa.tickets.read",
        "psa.tickets.create",
        "psa.tickets.update",
        "psa.tickets.delete",
        "psa.boards.manage",
        "crm.contacts.import",
        "defend.alerts.read",
        "defend.agents.deploy",
        "rmm.devices.read",
        "rmm.scripts.run",
        "rmm.agents.download",
    ]:
        assert HUB_CATALOG.permission(name) is not None, name
    assert HUB_CATALOG.is_read_only("psa.tickets.read")
    assert not HUB_CATALOG.is_read_only("rmm.agents.download")
    assert not HUB_CATALOG.is_read_only("psa.nothing.read")


def test_every_product_has_staff_roles() -> None:
    product = HUB_CATALOG.product("psa")
    assert product is not None
    assert {"technician", "dispatcher", "manager"} <= product.staff_role_names
    crm = HUB_CATALOG.product("crm")
    assert crm is not None
    assert {"sales", "marketing"} <= crm.staff_role_names


def test_some_products_also_serve_clients_through_portal() -> None:
    modes = {product.name: product.access_modes for product in HUB_CATALOG}
    assert modes["psa"] == {AccessMode.STAFF, AccessMode.CLIENT}
    assert modes["crm"] == {AccessMode.STAFF}


@pytest.mark.parametrize(
    ("state", "counted"),
    [
        (ProductState.ACTIVE, True),
        (ProductState.TRIAL, True),
        (ProductState.NOT_SUBSCRIBED, False),
    ],
)
def test_grants_count_while_the_product_is_active_or_on_trial(
    state: ProductState, counted: bool
) -> None:
    assert counts(state) is counted


def test_product_states_parse_as_the_cli_writes_them() -> None:
    assert ProductState.parse("not_subscribed") is ProductState.NOT_SUBSCRIBED
    assert ProductState.parse("Not Subscribed") is ProductState.NOT_SUBSCRIBED
    assert ProductState.parse("TRIAL") is ProductState.TRIAL
    with pytest.raises(ValueError, match="expected one of active, trial, not_subscribed"):
        ProductState.parse("paused")


def test_a_valid_grant_has_no_problems() -> None:
    problems = HUB_CATALOG.grant_problems(
        "psa", ["technician"], ["psa.tickets.read", "psa.tickets.create"]
    )
    assert problems == []


def test_a_grant_of_an_unknown_product() -> None:
    [problem] = HUB_CATALOG.grant_problems("backup", [], ["backup.jobs.read"])
    assert problem.field == "product"
    assert problem.message == 'unknown product "backup" (expected one of psa, crm, defend, rmm)'


def test_a_grant_mixing_products_and_unknowns() -> None:
    problems = HUB_CATALOG.grant_problems(
        "psa", ["wizard"], ["crm.contacts.read", "psa.tickets.fly"]
    )
    assert [(p.field, p.value) for p in problems] == [
        ("product_roles", "wizard"),
        ("permissions", "crm.contacts.read"),
        ("permissions", "psa.tickets.fly"),
    ]
    assert 'belongs to product "crm", not "psa"' in problems[1].message


def test_a_grant_never_gives_client_access() -> None:
    [problem] = HUB_CATALOG.grant_problems("psa", ["portal_contact"], [])
    assert "client access" in problem.message
    assert "staff access only" in problem.message


def test_the_catalog_is_data_a_new_product_is_one_more_entry() -> None:
    backup = Product(
        name="backup",
        title="Backup",
        permissions=(
            Permission("backup.jobs.read", read_only=True),
            Permission("backup.jobs.restore", read_only=False),
        ),
        roles=(ProductRole("operator"),),
    )
    catalog = Catalog([*HUB_CATALOG, backup])
    assert "backup" in catalog
    assert catalog.grant_problems("backup", ["operator"], ["backup.jobs.restore"]) == []
    assert catalog.product("backup") is not None
    assert backup.read_only_permissions == {"backup.jobs.read"}


def test_a_product_refuses_another_products_permission() -> None:
    with pytest.raises(ValueError, match="not in product"):
        Product("backup", "Backup", (Permission("psa.tickets.read", True),), ())


def test_a_catalog_refuses_a_product_twice() -> None:
    psa = HUB_CATALOG.product("psa")
    assert psa is not None
    with pytest.raises(ValueError, match="listed twice"):
        Catalog([psa, psa])


def test_the_catalog_prints_as_json() -> None:
    printed = HUB_CATALOG.to_json()
    json.dumps(printed)
    psa = printed[0]
    assert psa["name"] == "psa"
    assert psa["access_modes"] == ["client", "staff"]
    assert {"name": "psa.tickets.read", "read_only": True, "description": "See tickets"} in psa[
        "permissions"
    ]
