"""Products' webhooks: add, list, remove, rotate a secret, replay events (docs/webhooks.md).

One function per IT action, used by ``hub-scim webhook``/``hub-scim events``
and the console alike. Each runs in the caller's transaction and appends an
audit entry (docs/rules.md, audit) naming the endpoint, never its secret.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.errors import InvalidInput, NotFound
from connector.trail.cause import Cause
from connector.trail.egress import IPNetwork, resolve_destination
from connector.trail.events import Event, EventDelivery, EventEndpoint
from connector.trail.journal import Journal

DEFAULT_ROTATION_GRACE = timedelta(hours=24)
# Events replayed by one command; a longer range is replayed in parts.
MAX_REPLAY_EVENTS = 10_000


class WebhookNotFound(NotFound):
    """No webhook of this organization has that id."""

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(f"no webhook {endpoint_id!r} in this organization")
        self.endpoint_id = endpoint_id


@dataclass(frozen=True)
class WebhookSummary:
    """A webhook as IT sees it: never its secret."""

    id: str
    url: str
    created_at: datetime
    rotation_ends_at: datetime | None
    pending: int
    dead_lettered: int
    last_error: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "created_at": _iso(self.created_at),
            "rotation_ends_at": _iso(self.rotation_ends_at),
            "pending": self.pending,
            "dead_lettered": self.dead_lettered,
            "last_error": self.last_error,
        }


def _audit(
    session: Session,
    org_id: int,
    actor: str,
    action: str,
    target: str,
    *,
    before: Any = None,
    after: Any = None,
) -> None:
    """One audit entry for an IT action on webhooks, written through the journal."""
    journal = Journal()
    journal.audit(Cause(actor, ""), action, target, before, after)
    journal.write(session, org_id)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def add_webhook(
    session: Session,
    org_id: int,
    url: str,
    *,
    actor: str,
    allowed_networks: Iterable[IPNetwork] = (),
) -> tuple[str, str]:
    """Register ``url`` (checked: egress rules) and return its id and secret (shown once).

    Raises :class:`connector.trail.egress.ForbiddenDestination` for a URL
    that is malformed, does not resolve, or resolves to a refused address.
    """
    resolve_destination(url, allowed_networks)
    endpoint = EventEndpoint(id=str(uuid.uuid4()), org_id=org_id, url=url, secret=_new_secret())
    session.add(endpoint)
    session.flush()
    _audit(session, org_id, actor, "webhook.added", endpoint.id, after={"url": url})
    return endpoint.id, endpoint.secret


def _endpoint(session: Session, org_id: int, endpoint_id: str) -> EventEndpoint:
    endpoint = session.get(EventEndpoint, endpoint_id)
    if endpoint is None or endpoint.org_id != org_id:
        raise WebhookNotFound(endpoint_id)
    return endpoint


def remove_webhook(session: Session, org_id: int, endpoint_id: str, *, actor: str) -> None:
    """Remove the webhook and its pending deliveries; the events stay for pollers."""
    endpoint = _endpoint(session, org_id, endpoint_id)
    url = endpoint.url
    session.delete(endpoint)
    session.flush()
    _audit(session, org_id, actor, "webhook.removed", endpoint_id, before={"url": url})


def rotate_secret(
    session: Session,
    org_id: int,
    endpoint_id: str,
    *,
    actor: str,
    grace: timedelta = DEFAULT_ROTATION_GRACE,
    now: datetime | None = None,
) -> str:
    """A new secret; the old one keeps signing beside it for ``grace``. Returns the new one."""
    endpoint = _endpoint(session, org_id, endpoint_id)
    moment = now or utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = moment + grace
    endpoint.secret = _new_secret()
    session.flush()
    _audit(
        session,
        org_id,
        actor,
        "webhook.secret_rotated",
        endpoint_id,
        after={"url": endpoint.url, "previous_secret_valid_until": _iso(moment + grace)},
    )
    return endpoint.secret


def list_webhooks(
    session: Session, org_id: int, *, now: datetime | None = None
) -> list[WebhookSummary]:
    """The organization's webhooks with their backlog and dead letters."""
    moment = now or utcnow()
    pending = (
        select(EventDelivery.endpoint_id, func.count().label("n"))
        .where(EventDelivery.delivered_at.is_(None), EventDelivery.dead_at.is_(None))
        .group_by(EventDelivery.endpoint_id)
        .subquery()
    )
    dead = (
        select(EventDelivery.endpoint_id, func.count().label("n"))
        .where(EventDelivery.dead_at.is_not(None))
        .group_by(EventDelivery.endpoint_id)
        .subquery()
    )
    rows = session.execute(
        select(EventEndpoint, pending.c.n, dead.c.n)
        .outerjoin(pending, pending.c.endpoint_id == EventEndpoint.id)
        .outerjoin(dead, dead.c.endpoint_id == EventEndpoint.id)
        .where(EventEndpoint.org_id == org_id)
        .order_by(EventEndpoint.created_at, EventEndpoint.id)
    ).all()
    summaries = []
    for endpoint, pending_count, dead_count in rows:
        last_error = session.scalar(
            select(EventDelivery.last_error)
            .where(EventDelivery.endpoint_id == endpoint.id, EventDelivery.last_error != "")
            .order_by(EventDelivery.event_id.desc())
            .limit(1)
        )
        rotating = len(endpoint.signing_secrets(moment)) > 1
        summaries.append(
            WebhookSummary(
                id=endpoint.id,
                url=endpoint.url,
                created_at=endpoint.created_at,
                rotation_ends_at=endpoint.previous_secret_expires_at if rotating else None,
                pending=pending_count or 0,
                dead_lettered=dead_count or 0,
                last_error=last_error or "",
            )
        )
    return summaries


def dead_lettered_endpoints(session: Session, org_id: int) -> list[tuple[str, str, int]]:
    """(id, url, dead deliveries) of each endpoint with dead-lettered deliveries."""
    rows = session.execute(
        select(EventEndpoint.id, EventEndpoint.url, func.count())
        .join(EventDelivery, EventDelivery.endpoint_id == EventEndpoint.id)
        .where(EventEndpoint.org_id == org_id, EventDelivery.dead_at.is_not(None))
        .group_by(EventEndpoint.id, EventEndpoint.url)
        .order_by(EventEndpoint.url)
    )
    return [(row[0], row[1], int(row[2])) for row in rows]


@dataclass(frozen=True)
class ReplayReport:
    events: int
    queued: int


def replay_events(
    session: Session,
    org_id: int,
    first: int,
    last: int,
    *,
    actor: str,
    endpoint_id: str | None = None,
    now: datetime | None = None,
) -> ReplayReport:
    """Queue the organization's events ``first``..``last`` (sequences) again for its webhooks.

    Delivered and dead-lettered deliveries are due again with a fresh attempt
    count; an endpoint registered after an event gets it too. With
    ``endpoint_id``, only that webhook.
    """
    if first > last:
        raise InvalidInput(f"--from ({first}) must not be after --to ({last})")
    if last - first + 1 > MAX_REPLAY_EVENTS:
        raise InvalidInput(f"replay at most {MAX_REPLAY_EVENTS} events at a time")
    moment = now or utcnow()
    endpoints = select(EventEndpoint.id).where(EventEndpoint.org_id == org_id)
    if endpoint_id is not None:
        _endpoint(session, org_id, endpoint_id)
        endpoints = endpoints.where(EventEndpoint.id == endpoint_id)
    endpoint_ids = list(session.scalars(endpoints))
    event_ids = list(
        session.scalars(
            select(Event.id).where(
                Event.org_id == org_id, Event.sequence >= first, Event.sequence <= last
            )
        )
    )
    queued = 0
    if event_ids and endpoint_ids:
        existing: set[tuple[int, str]] = {
            (row[0], row[1])
            for row in session.execute(
                select(EventDelivery.event_id, EventDelivery.endpoint_id).where(
                    EventDelivery.event_id.in_(event_ids),
                    EventDelivery.endpoint_id.in_(endpoint_ids),
                )
            )
        }
        session.execute(
            update(EventDelivery)
            .where(
                and_(
                    EventDelivery.event_id.in_(event_ids),
                    EventDelivery.endpoint_id.in_(endpoint_ids),
                )
            )
            .values(
                delivered_at=None, dead_at=None, attempts=0, next_attempt_at=moment, last_error=""
            )
        )
        missing = [
            EventDelivery(
                event_id=event,
                endpoint_id=endpoint,
                attempts=0,
                next_attempt_at=moment,
                last_error="",
            )
            for event in event_ids
            for endpoint in endpoint_ids
            if (event, endpoint) not in existing
        ]
        session.add_all(missing)
        session.flush()
        queued = len(existing) + len(missing)
    _audit(
        session,
        org_id,
        actor,
        "events.replayed",
        endpoint_id or "all webhooks",
        after={"from": first, "to": last, "events": len(event_ids), "queued": queued},
    )
    return ReplayReport(events=len(event_ids), queued=queued)
