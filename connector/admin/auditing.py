"""One audit entry for an IT action that changes no derived access, through the journal.

Credential, sign-in and console actions append a single entry; they go
through :class:`connector.trail.journal.Journal` like every audit writer, in
the caller's transaction (docs/rules.md#audit).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from connector.trail.cause import Cause
from connector.trail.journal import Journal


def audit_action(
    session: Session,
    org_id: int,
    *,
    actor: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> None:
    """Append one entry (who, what, on which target, before and after, why)."""
    journal = Journal()
    journal.audit(Cause(actor, reason), action, target, before, after)
    journal.write(session, org_id)
