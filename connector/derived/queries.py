"""What products and IT read: a user's effective access, and may this user do X.

Access is read from the snapshot the last change stored, in the same
transaction as that change (docs/rules.md#immediacy-and-events), so a read costs a couple of
primary-key lookups. A user provisioned before access derivation was
switched on has no snapshot yet: its access is derived on the fly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from connector.access.authorize import Decision, authorize
from connector.access.derive import DerivedAccess, Grant, derive_access
from connector.access.onboarding import onboarding_status
from connector.derived.facts import (
    find_user,
    load_onboarded,
    load_rules,
    load_seats,
    load_snapshots,
    load_users,
)


def current_access(session: Session, org_id: int, user_id: str) -> DerivedAccess:
    """The user's derived access: its snapshot, else derived now (without storing it)."""
    snapshot = load_snapshots(session, org_id, [user_id]).get(user_id)
    if snapshot is not None:
        return snapshot
    rules = load_rules(session, org_id)
    users = load_users(session, org_id, [user_id], rules)
    if user_id not in users:
        return DerivedAccess(user_id, active=False, role=None)
    standing = load_seats(session, org_id).seats.standing(user_id)
    return derive_access(users[user_id].facts, rules.context, standing)


def user_access(session: Session, org_id: int, user_ref: str) -> dict[str, Any]:
    """The access JSON for the user ``user_ref`` names (id or userName, any case).

    ``active``, ``role`` (null when inactive), ``held``, ``products`` and
    ``dormant`` (each product's ``roles``, ``permissions``, ``onboarding``
    and ``sources``), ``sources`` of the role, plus ``id`` and ``userName``.
    Raises :class:`~connector.derived.facts.UserNotFound`.
    """
    user_id, user_name = find_user(session, org_id, user_ref)
    access = current_access(session, org_id, user_id)
    onboarded = load_onboarded(session, user_id)
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
