"""Product onboarding: once per user per product, ever (docs/rules.md#onboarding).

PSA guides service board setup, CRM the import of contacts, Defend the first
agent, RMM the agent download links; each flow appears once per user per
product. A completion is keyed by
user and product only: revoking and re-granting access, or deactivating and
reactivating the user, never resets it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection

from connector.access.catalog import HUB_CATALOG, Catalog


class Onboarding(enum.Enum):
    PENDING = "pending"
    DONE = "done"


def onboarding_status(
    product: str, completed: Collection[str], catalog: Catalog = HUB_CATALOG
) -> Onboarding | None:
    """``completed``: the products this user has finished onboarding for, ever.

    ``None`` for a product without an onboarding flow.
    """
    found = catalog.product(product)
    if found is None or found.onboarding is None:
        return None
    return Onboarding.DONE if product in completed else Onboarding.PENDING


def complete_onboarding(
    completed: frozenset[tuple[str, str]], user_id: str, product: str
) -> tuple[frozenset[tuple[str, str]], bool]:
    """Mark (user, product) done; the flag says whether this changed anything (audit it then).

    Idempotent: a product may report completion more than once.
    """
    key = (user_id, product)
    if key in completed:
        return completed, False
    return completed | {key}, True
