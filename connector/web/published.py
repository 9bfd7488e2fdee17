"""Hub's roles and entitlements as the SCIM layer publishes them (``/Roles``, ``/Entitlements``).

:mod:`scim.published` serves the resource types; this module gives it, per
request, the values the authenticated organization accepts
(:mod:`connector.access.assignable`, docs/rules.md#assignable-values), read
in the request's own transaction, which only reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from connector.access.assignable import assignable_entitlements, assignable_roles
from connector.derived.facts import load_rules, load_seats
from scim.published import ENTITLEMENTS, ROLES, Publication


def hub_publications(
    session: Callable[[], Session], org_id: Callable[[], int]
) -> tuple[Publication, ...]:
    """``/Roles`` and ``/Entitlements`` of the organization whose credential is in use."""

    def roles() -> list[dict[str, Any]]:
        db, org = session(), org_id()
        config = load_rules(db, org).config
        seated = len(load_seats(db, org).seats.seats)
        return [item.to_scim() for item in assignable_roles(config, seated)]

    def entitlements() -> list[dict[str, Any]]:
        rules = load_rules(session(), org_id())
        return [
            item.to_scim()
            for item in assignable_entitlements(rules.config, rules.context.product_states)
        ]

    return (Publication(ROLES, roles), Publication(ENTITLEMENTS, entitlements))
