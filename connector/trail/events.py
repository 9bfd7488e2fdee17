"""Signed access-change events for Hub's products, delivered at least once.

docs/rules.md#immediacy-and-events.

An event is written to an outbox table in the same transaction as the change
it announces, so no committed change goes unannounced and no rolled-back one
is announced. A deliverer later POSTs each event to every endpoint the
organization registered, signed with that endpoint's secret, and retries with
exponential backoff until the endpoint answers 2xx. Products must therefore
accept duplicates: every event carries a stable ``id``.

Products that cannot receive webhooks may also read the same events in order
from the access API (``GET /api/v1/events?after=ID``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Insert,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.db import dialect as sql
from connector.db.base import Base, UTCDateTime, utcnow
from connector.errors import InvalidInput

SIGNATURE_HEADER = "Hub-Signature"
EVENT_ID_HEADER = "Hub-Event-Id"
MAX_BACKOFF = timedelta(hours=1)


class EventEndpoint(Base):
    """A product's webhook. The secret signs deliveries, so it is kept, unlike tokens."""

    __tablename__ = "event_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_org_id_id", "org_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventDelivery(Base):
    __tablename__ = "event_deliveries"
    __table_args__ = (Index("ix_event_deliveries_due", "delivered_at", "next_attempt_at"),)

    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("event_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class Transport(Protocol):
    """The part of ``requests.Session`` the deliverer uses; tests pass a fake."""

    def post(self, url: str, *, data: bytes, headers: Mapping[str, str], timeout: float) -> Any: ...


@dataclass(frozen=True)
class Announcement:
    """One event for products: its type, subject (a user id, a product) and payload."""

    type: str
    subject: str
    payload: dict[str, Any]


_EVENTS = cast(Table, Event.__table__)
_DELIVERIES = cast(Table, EventDelivery.__table__)
_ENDPOINTS = cast(Table, EventEndpoint.__table__)
_INSERT_EVENTS = insert(_EVENTS)


@functools.cache
def _insert_deliveries(dialect: str) -> Insert:
    """A pending delivery of each new event (by ``uids``) to each endpoint of ``org_id``."""
    event, endpoint = _EVENTS.c, _ENDPOINTS.c
    return insert(_DELIVERIES).from_select(
        ["event_id", "endpoint_id", "attempts", "next_attempt_at", "last_error"],
        select(
            event.id,
            endpoint.id,
            literal(0),
            bindparam("now", type_=UTCDateTime()),
            literal(""),
        )
        .select_from(_ENDPOINTS.join(_EVENTS, event.org_id == endpoint.org_id))
        .where(
            endpoint.org_id == bindparam("org_id"), sql.in_bound_ids(dialect, event.uid, "uids")
        ),
    )


def write_events(session: Session, org_id: int, announcements: Sequence[Announcement]) -> None:
    """Write ``announcements`` in order, each with a pending delivery per registered endpoint.

    Two statements whatever their number, inside the caller's transaction:
    the events, then their deliveries to the endpoints registered now (none
    is written for an organization without endpoints), so no lookup of the
    endpoints comes first.
    """
    if not announcements:
        return
    now = utcnow()
    rows: list[dict[str, Any]] = [
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
    session.execute(_INSERT_EVENTS, rows)
    dialect = session.get_bind().dialect.name
    session.execute(
        _insert_deliveries(dialect),
        {
            "org_id": org_id,
            "now": now,
            "uids": sql.bound_ids(dialect, [row["uid"] for row in rows]),
        },
    )


def emit(
    session: Session, org_id: int, event_type: str, subject: str, payload: dict[str, Any]
) -> None:
    """Write one event and a pending delivery per endpoint, inside the caller's transaction."""
    write_events(session, org_id, [Announcement(event_type, subject, payload)])


def add_endpoint(session: Session, org_id: int, url: str) -> tuple[str, str]:
    """Register a webhook; returns its id and the signing secret (shown once)."""
    if not url.startswith(("https://", "http://")):
        raise InvalidInput("an event endpoint must be an http(s) URL")
    endpoint = EventEndpoint(
        id=str(uuid.uuid4()), org_id=org_id, url=url, secret=secrets.token_urlsafe(32)
    )
    session.add(endpoint)
    session.flush()
    return endpoint.id, endpoint.secret


def event_body(event: Event) -> dict[str, Any]:
    return {
        "id": event.uid,
        "sequence": event.id,
        "type": event.type,
        "subject": event.subject,
        "occurred_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>``: binds the body to a time."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a product does on receipt: check the signature and reject stale replays."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


@dataclass(frozen=True)
class DeliveryReport:
    delivered: int
    failed: int


@dataclass(frozen=True)
class PendingDelivery:
    """A claimed delivery, detached from the database to be posted outside a transaction."""

    event_id: int
    endpoint_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    attempts: int


@dataclass(frozen=True)
class DeliveryOutcome:
    pending: PendingDelivery
    status: int
    error: str

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


CLAIM_LEASE = timedelta(minutes=5)


def claim_due(
    session: Session, *, now: datetime | None = None, limit: int = 100
) -> list[PendingDelivery]:
    """Claim due deliveries for one round; the caller commits before posting.

    A claim pushes ``next_attempt_at`` a lease ahead, so a deliverer that dies
    mid-round only delays its deliveries. Rows are taken with ``FOR UPDATE
    SKIP LOCKED`` on PostgreSQL so several instances deliver side by side.
    Committing the claim before any HTTP call keeps a slow webhook from holding
    database locks that the IdP's writes wait on (SQLite has one writer).
    """
    moment = now or utcnow()
    due = session.execute(
        select(EventDelivery, Event, EventEndpoint)
        .join(Event, Event.id == EventDelivery.event_id)
        .join(EventEndpoint, EventEndpoint.id == EventDelivery.endpoint_id)
        .where(EventDelivery.delivered_at.is_(None), EventDelivery.next_attempt_at <= moment)
        .order_by(EventDelivery.event_id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=EventDelivery)
    ).all()
    claimed = []
    for delivery, event, endpoint in due:
        body = json.dumps(event_body(event), separators=(",", ":")).encode()
        delivery.attempts += 1
        delivery.next_attempt_at = moment + CLAIM_LEASE
        claimed.append(
            PendingDelivery(
                event_id=delivery.event_id,
                endpoint_id=delivery.endpoint_id,
                url=endpoint.url,
                headers={
                    "Content-Type": "application/json",
                    EVENT_ID_HEADER: event.uid,
                    SIGNATURE_HEADER: sign(endpoint.secret, int(moment.timestamp()), body),
                },
                body=body,
                attempts=delivery.attempts,
            )
        )
    session.flush()
    return claimed


def post_deliveries(
    pending: list[PendingDelivery], transport: Transport, *, timeout: float = 10.0
) -> list[DeliveryOutcome]:
    """POST each claimed delivery; touches no database."""
    outcomes = []
    for item in pending:
        try:
            response = transport.post(
                item.url, data=item.body, headers=item.headers, timeout=timeout
            )
            status = int(response.status_code)
        except Exception as exc:  # any transport failure is retried later
            outcomes.append(DeliveryOutcome(item, 0, f"{type(exc).__name__}: {exc}"))
        else:
            outcomes.append(DeliveryOutcome(item, status, "" if status < 300 else f"HTTP {status}"))
    return outcomes


def record_outcomes(
    session: Session, outcomes: list[DeliveryOutcome], *, now: datetime | None = None
) -> DeliveryReport:
    """Mark delivered rows, schedule retries with exponential backoff; the caller commits."""
    moment = now or utcnow()
    delivered = failed = 0
    for outcome in outcomes:
        delivery = session.get(
            EventDelivery, (outcome.pending.event_id, outcome.pending.endpoint_id)
        )
        if delivery is None:  # the endpoint was removed meanwhile
            continue
        if outcome.delivered:
            delivery.delivered_at = moment
            delivery.last_error = ""
            delivered += 1
        else:
            backoff = min(timedelta(seconds=2**outcome.pending.attempts), MAX_BACKOFF)
            delivery.next_attempt_at = moment + backoff
            delivery.last_error = outcome.error[:1000]
            failed += 1
    session.flush()
    return DeliveryReport(delivered=delivered, failed=failed)


def events_after(session: Session, org_id: int, after: int, limit: int = 100) -> list[Event]:
    """Events of one organization in order, for products that poll instead of receiving."""
    return list(
        session.scalars(
            select(Event)
            .where(Event.org_id == org_id, Event.id > after)
            .order_by(Event.id)
            .limit(limit)
        )
    )
