"""Onboarding: pending until the product completes it, once per user per product, ever."""

from __future__ import annotations

from connector.access.catalog import HUB_CATALOG, Catalog, Permission, Product
from connector.access.onboarding import Onboarding, complete_onboarding, onboarding_status


def test_every_hub_product_starts_pending() -> None:
    for name in HUB_CATALOG.names:
        assert onboarding_status(name, set()) is Onboarding.PENDING


def test_a_completed_product_is_done_for_good() -> None:
    completed, changed = complete_onboarding(frozenset(), "u1", "psa")
    assert changed
    assert completed == {("u1", "psa")}
    done_products = {product for user, product in completed if user == "u1"}
    assert onboarding_status("psa", done_products) is Onboarding.DONE
    assert onboarding_status("crm", done_products) is Onboarding.PENDING


def test_completing_twice_changes_nothing() -> None:
    completed, _ = complete_onboarding(frozenset(), "u1", "defend")
    again, changed = complete_onboarding(completed, "u1", "defend")
    assert again is completed
    assert not changed


def test_completion_is_per_user() -> None:
    completed, _ = complete_onboarding(frozenset(), "u1", "rmm")
    _, changed = complete_onboarding(completed, "u2", "rmm")
    assert changed


def test_a_product_without_a_flow_has_no_onboarding() -> None:
    backup = Product("backup", "Backup", (Permission("backup.jobs.read", True),), ())
    catalog = Catalog([*HUB_CATALOG, backup])
    assert onboarding_status("backup", set(), catalog) is None
    assert onboarding_status("nonexistent", set()) is None
