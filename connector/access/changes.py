"""What changed in a user's access: the before and after the audit trail and mapping preview show.

docs/rules.md#audit (a change of derived access is audited with the rule
that caused it, before and after) and the ``mapping apply --dry-run``
preview (every user whose role or grants would change, before and after). Only
effective access counts as a change: a rule renumbered by an edit to the file,
or onboarding completed, is not a change of access.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.access.derive import DerivedAccess, Grant, Source


@dataclass(frozen=True)
class AccessChange:
    """The keys of effective access that changed, before and after, and the sources behind them."""

    user_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    causes: tuple[Source, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "before": self.before,
            "after": self.after,
            "because": [source.to_json() for source in self.causes],
        }


def effective(access: DerivedAccess | None) -> dict[str, Any]:
    """The part of the access that decides what the user may do; ``None`` is no user."""
    if access is None:
        return {
            "active": False,
            "role": None,
            "held": False,
            "kept_as_last_owner": False,
            "products": {},
            "dormant": {},
        }
    return {
        "active": access.active,
        "role": None if access.role is None else access.role.value,
        "held": access.held,
        "kept_as_last_owner": access.kept_as_last_owner,
        "products": {name: _grant(access.products[name]) for name in sorted(access.products)},
        "dormant": {name: _grant(access.dormant[name]) for name in sorted(access.dormant)},
    }


def _grant(grant: Grant) -> dict[str, Any]:
    return {
        "roles": sorted(grant.roles),
        "permissions": sorted(grant.permissions),
        "withheld": sorted(grant.withheld),
    }


def _grants(access: DerivedAccess | None, kind: str) -> Mapping[str, Grant]:
    if access is None:
        return {}
    return access.products if kind == "products" else access.dormant


def access_change(before: DerivedAccess | None, after: DerivedAccess) -> AccessChange | None:
    """The change from ``before`` (None for a new user) to ``after``, or None if nothing changed."""
    old, new = effective(before), effective(after)
    keys = [key for key in new if old[key] != new[key]]
    if not keys:
        return None
    causes: list[Source] = []
    if old["role"] != new["role"] or old["held"] != new["held"]:
        causes.extend(after.role_sources)
    for kind in ("products", "dormant"):
        for name in sorted(set(old[kind]) | set(new[kind])):
            if old[kind].get(name) != new[kind].get(name):
                # A grant gained or changed names its rule; a grant lost names the one it had.
                grant = _grants(after, kind).get(name) or _grants(before, kind).get(name)
                causes.extend(grant.sources if grant is not None else ())
    return AccessChange(
        after.user_id,
        {key: old[key] for key in keys},
        {key: new[key] for key in keys},
        tuple(dict.fromkeys(causes)),
    )
