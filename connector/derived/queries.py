"""What products and IT read: a user's effective access, and may this user do X.

Access is read from the snapshot the last change stored, in the same
transaction as that change (docs/rules.md#immediacy-and-events), so a read costs a couple of
primary-key lookups. A user provisioned before access derivation was
switched on has no snapshot yet: its access is derived on the fly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from connector.access.authorize import Decision, authorize
from connector.access.derive import DerivedAccess, Grant, derive_access
from connector.access.onboarding import onboarding_status
from connector.access.owners import OwnerSeats
from connector.derived.facts import (
    find_user,
    load_onboarded_of,
    load_rules,
    load_seats,
    load_snapshots,
    load_users,
)


def current_access(session: Session, org_id: int, user_id: str) -> DerivedAccess:
    """The user's derived access: its snapshot, else derived now (without storing it)."""
    return current_accesses(session, org_id, [user_id])[user_id]


def current_accesses(
    session: Session, org_id: int, user_ids: Collection[str]
) -> dict[str, DerivedAccess]:
    """:func:`current_access` of each of ``user_ids``: a fixed number of queries for the batch.

    A user without a snapshot is derived now, and one no longer in the
    directory has no access.
    """
    found = load_snapshots(session, org_id, user_ids)
    missing = sorted(set(user_ids) - found.keys())
    if not missing:
        return found
    rules = load_rules(session, org_id)
    users = load_users(session, org_id, missing, rules)
    seats = load_seats(session, org_id).seats if users else OwnerSeats()
    for user_id in missing:
        user = users.get(user_id)
        found[user_id] = (
            derive_access(user.facts, rules.context, seats.standing(user_id))
            if user is not None
            else DerivedAccess(user_id, active=False, role=None)
        )
    return found


def user_access(session: Session, org_id: int, user_ref: str) -> dict[str, Any]:
    """The access JSON for the user ``user_ref`` names (id or userName, any case).

    ``active``, ``role`` (null when inactive), ``held``, ``products`` and
    ``dormant`` (each product's ``roles``, ``permissions``, ``onboarding``
    and ``sources``), ``sources`` of the role, plus ``id`` and ``userName``.
    Raises :class:`~connector.derived.facts.UserNotFound`.
    """
    user_id, user_name = find_user(session, org_id, user_ref)
    access = current_access(session, org_id, user_id)
    onboarded = load_onboarded_of(session, org_id, [user_id]).get(user_id, frozenset())
    return access_json(user_name, access, onboarded)


def access_json(user_name: str, access: DerivedAccess, onboarded: frozenset[str]) -> dict[str, Any]:
    """One user's access JSON, as :func:`user_access` answers it, from what was read."""
    user_id = access.user_id
    data = access.to_json()
    data["products"] = _with_onboarding(access.products, onboarded)
    data["dormant"] = _with_onboarding(access.dormant, onboarded)
    return {
        "id": user_id,
        "userName": user_name,
        **data,
        "sources": data["role_sources"],
    }


def _with_onboarding(grants: dict[str, Grant] | Any, onboarded: frozenset[str]) -> dict[str, Any]:
    result = {}
    for name in sorted(grants):
        grant = replace(grants[name], onboarding=onboarding_status(name, onboarded))
        result[name] = grant.to_json()
    return result


def authorize_user(session: Session, org_id: int, user_ref: str, permission: str) -> Decision:
    """May the user use ``permission`` (``psa.tickets.create``): allow or deny, with the reason."""
    user_id, _user_name = find_user(session, org_id, user_ref)
    return authorize(current_access(session, org_id, user_id), permission)
