"""Product events of one change, written to the outbox in two statements (DESIGN.md rule 12).

:func:`connector.events.emit` writes one event per call, with a flush and an
endpoint lookup each; a membership batch of k users announces k access
changes, so they are written here together: one lookup of the org's
endpoints, one multi-row INSERT of events and one of their deliveries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from connector.db import utcnow
from connector.events import Event, EventDelivery, EventEndpoint


@dataclass(frozen=True)
class Announcement:
    """One event for products: its type, subject (a user id, a product) and payload."""

    type: str
    subject: str
    payload: dict[str, Any]


def announce(session: Session, org_id: int, announcements: Sequence[Announcement]) -> None:
    """Write ``announcements`` in order, each with a pending delivery per registered endpoint."""
    if not announcements:
        return
    now = utcnow()
    rows = [
        {
            "uid": str(uuid.uuid4()),
            "org_id": org_id,
            "type": item.type,
            "subject": item.subject,
            "payload": item.payload,
            "created_at": now,
        }
        for item in announcements
    ]
    endpoints = list(
        session.scalars(select(EventEndpoint.id).where(EventEndpoint.org_id == org_id))
    )
    if not endpoints:
        session.execute(insert(Event), rows)
        return
    event_ids = session.scalars(
        insert(Event).returning(Event.id, sort_by_parameter_order=True), rows
    )
    deliveries = [
        {
            "event_id": event_id,
            "endpoint_id": endpoint,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
        }
        for event_id in list(event_ids)
        for endpoint in endpoints
    ]
    session.execute(insert(EventDelivery), deliveries)
