"""The provisioning service: what the SCIM app, the access API and the CLI call (issue 3).

Every function takes the session first, may flush, never commits: the caller
commits once (STYLE.md rule 3). Every function that can change derived
access takes the organization's write lock first (:func:`lock_org_for_write`).

- :class:`AccessListener`: follows every SCIM write inside its transaction.
- :func:`apply_mapping`, :func:`current_mapping`: IT's mapping file, with a preview.
- :func:`set_product_state`, :func:`grant_manual`, :func:`revoke_manual`.
- :func:`user_access`, :func:`authorize_user`, :func:`complete_onboarding`: for products.
- :func:`health_report`: held Owners, no-Owner orgs, dormant grants, unbound rules.
"""

from __future__ import annotations

from connector.access.authorize import Decision
from connector.access.changes import AccessChange
from connector.provisioning.context import Cause, caused_by, current_cause, reset_cause, set_cause
from connector.provisioning.directory import UserNotFound
from connector.provisioning.engine import Recomputed, UserChange, recompute
from connector.provisioning.grants import (
    complete_onboarding,
    grant_manual,
    revoke_manual,
    set_product_state,
)
from connector.provisioning.health import DormantGrant, HealthReport, health_report
from connector.provisioning.listener import AccessListener
from connector.provisioning.locking import lock_org_for_write
from connector.provisioning.mappings import MappingPreview, apply_mapping, current_mapping
from connector.provisioning.reads import authorize_user, current_access, user_access

__all__ = [
    "AccessChange",
    "AccessListener",
    "Cause",
    "Decision",
    "DormantGrant",
    "HealthReport",
    "MappingPreview",
    "Recomputed",
    "UserChange",
    "UserNotFound",
    "apply_mapping",
    "authorize_user",
    "caused_by",
    "complete_onboarding",
    "current_access",
    "current_cause",
    "current_mapping",
    "grant_manual",
    "health_report",
    "lock_org_for_write",
    "recompute",
    "reset_cause",
    "revoke_manual",
    "set_cause",
    "set_product_state",
    "user_access",
]
