"""IT sets how long its organization keeps the trail (docs/personal-data.md#retention).

Used by ``hub-scim retention set`` and ``show``. A change is one row of
``retention_settings`` and one audit entry, ``retention.changed``, with the
periods in force before and after, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.admin.auditing import audit_action
from connector.db.base import utcnow
from connector.errors import InvalidInput
from connector.trail.retention import (
    COLUMNS,
    KINDS,
    OrgRetention,
    RetentionPeriods,
    RetentionSetting,
    check_days,
    org_retention,
)


def set_retention(
    session: Session,
    org_id: int,
    days: Mapping[str, int],
    *,
    actor: str,
    defaults: RetentionPeriods,
    reset: Iterable[str] = (),
) -> OrgRetention:
    """Set ``days`` per kind (``audit``, ``events``, ``request_log``); ``reset`` kinds to default.

    Refuses a period out of its kind's bounds (InvalidInput) and changes
    nothing then. A change that changes nothing is not audited.
    """
    reset = set(reset)
    for kind in (*days, *reset):
        if kind not in KINDS:
            raise InvalidInput(f"unknown kind of record {kind!r}: one of {', '.join(KINDS)}")
    if reset & set(days):
        raise InvalidInput("a kind cannot be both set and reset")
    for kind, value in days.items():
        try:
            check_days(kind, value)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
    before = org_retention(session, org_id, defaults)
    row = session.scalar(select(RetentionSetting).where(RetentionSetting.org_id == org_id))
    if row is None:
        row = RetentionSetting(org_id=org_id, updated_by=actor)
        session.add(row)
    for kind, value in days.items():
        setattr(row, COLUMNS[kind], value)
    for kind in reset:
        setattr(row, COLUMNS[kind], None)
    row.updated_at, row.updated_by = utcnow(), actor
    session.flush()
    if all(getattr(row, column) is None for column in COLUMNS.values()):
        session.delete(row)
        session.flush()
    after = org_retention(session, org_id, defaults)
    if after != before:
        audit_action(
            session,
            org_id,
            actor=actor,
            action="retention.changed",
            target="retention",
            before=before.to_json(),
            after=after.to_json(),
            reason="retention periods set",
        )
    return after
