"""Signed access-change events for Hub's products, delivered at least once.

docs/rules.md#immediacy-and-events.

An event is written to an outbox table in the same transaction as the change
it announces, so no committed change goes unannounced and no rolled-back one
is announced. A deliverer (:mod:`connector.trail.delivery`) later POSTs each
event to every endpoint the organization registered, signed at send time with
that endpoint's secret, and retries with exponential backoff until the
endpoint answers 2xx or the delivery is dead-lettered. Products must therefore
accept duplicates: every event carries a stable ``id``, and a ``sequence``
that counts the organization's own events (never another's).

Products that cannot receive webhooks may also read the same events in order
from the access API (``GET /api/v1/events?after=ID``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Insert,
    Integer,
    String,
    Text,
    bindparam,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.db import dialect as sql
from connector.db.base import Base, UTCDateTime, table_of, utcnow

SIGNATURE_HEADER = "Hub-Signature"
EVENT_ID_HEADER = "Hub-Event-Id"


class EventEndpoint(Base):
    """A product's webhook. The secret signs deliveries, so it is kept, unlike tokens.

    During a rotation the previous secret keeps signing, beside the new one,
    until ``previous_secret_expires_at``.
    """

    __tablename__ = "event_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    previous_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True
    )

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The current secret, then the previous one while its grace period lasts."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > now:
            return (self.secret, self.previous_secret)
        return (self.secret,)


class Event(Base):
    """One announced change; ``sequence`` counts the organization's own events only."""

    __tablename__ = "events"
    __table_args__ = (Index("ux_events_org_id_sequence", "org_id", "sequence", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventCounter(Base):
    """The last event sequence number of one organization.

    Bumped in the transaction that writes the events: the row is locked
    until that transaction ends, so an organization's events are numbered
    and committed in the same order (a poller reading ``after=N`` never
    misses one committed late), and organizations never wait on each other.
    Every write bumps it last, just before its commit, after every other lock
    it takes (:mod:`connector.derived.locks`), so that holding it never waits.
    """

    __tablename__ = "event_counters"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    last_sequence: Mapped[int] = mapped_column(Integer)


class EventDelivery(Base):
    """One event to one endpoint: pending, delivered, or dead-lettered after too many tries."""

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
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


EVENT_ENDPOINTS = table_of(EventEndpoint)
EVENTS = table_of(Event)
EVENT_COUNTERS = table_of(EventCounter)
EVENT_DELIVERIES = table_of(EventDelivery)


@dataclass(frozen=True)
class Announcement:
    """One event for products: its type, subject (a user id, a product) and payload."""

    type: str
    subject: str
    payload: dict[str, Any]


_INSERT_EVENTS = insert(EVENTS)


def dialect_insert(dialect: str) -> Any:
    """The dialect's ``insert`` (both have ``on_conflict_do_update``)."""
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


def bump_counter(dialect: str, org_id: Any, count: Any) -> Any:
    """``INSERT .. ON CONFLICT DO UPDATE`` adding ``count`` to the counter, returning the last.

    ``org_id`` and ``count`` are SQL expressions (bound parameters); nothing
    is written when ``count`` is 0.
    """
    statement = dialect_insert(dialect)(EVENT_COUNTERS).from_select(
        ["org_id", "last_sequence"], select(org_id, count).where(count > 0)
    )
    return statement.on_conflict_do_update(
        index_elements=[EVENT_COUNTERS.c.org_id],
        set_={"last_sequence": EVENT_COUNTERS.c.last_sequence + statement.excluded.last_sequence},
    ).returning(EVENT_COUNTERS.c.last_sequence)


@functools.cache
def _bump_counter(dialect: str) -> Any:
    return bump_counter(
        dialect, bindparam("org_id", type_=Integer()), bindparam("count", type_=Integer())
    )


def next_sequences(session: Session, org_id: int, count: int) -> range:
    """Reserve ``count`` sequence numbers of ``org_id``, locking its counter until commit."""
    dialect = session.get_bind().dialect.name
    last = session.execute(_bump_counter(dialect), {"org_id": org_id, "count": count}).scalar_one()
    return range(last - count + 1, last + 1)


@functools.cache
def _insert_deliveries(dialect: str) -> Insert:
    """A pending delivery of each new event (by ``uids``) to each endpoint of ``org_id``."""
    event, endpoint = EVENTS.c, EVENT_ENDPOINTS.c
    return insert(EVENT_DELIVERIES).from_select(
        ["event_id", "endpoint_id", "attempts", "next_attempt_at", "last_error"],
        select(
            event.id,
            endpoint.id,
            literal(0),
            bindparam("now", type_=UTCDateTime()),
            literal(""),
        )
        .select_from(EVENT_ENDPOINTS.join(EVENTS, event.org_id == endpoint.org_id))
        .where(
            endpoint.org_id == bindparam("org_id"), sql.in_bound_ids(dialect, event.uid, "uids")
        ),
    )


def write_events(session: Session, org_id: int, announcements: Sequence[Announcement]) -> None:
    """Write ``announcements`` in order, each with a pending delivery per registered endpoint.

    Three statements whatever their number, inside the caller's transaction:
    the organization's counter, the events, then their deliveries to the
    endpoints registered now (none is written for an organization without
    endpoints), so no lookup of the endpoints comes first.
    """
    if not announcements:
        return
    now = utcnow()
    sequences = next_sequences(session, org_id, len(announcements))
    rows: list[dict[str, Any]] = [
        {
            "uid": str(uuid.uuid4()),
            "org_id": org_id,
            "sequence": sequence,
            "type": item.type,
            "subject": item.subject,
            "payload": item.payload,
            "created_at": now,
        }
        for sequence, item in zip(sequences, announcements, strict=True)
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


def event_body(event: Event) -> dict[str, Any]:
    """The JSON products receive; ``sequence`` is the organization's own count."""
    return {
        "id": event.uid,
        "sequence": event.sequence,
        "type": event.type,
        "subject": event.subject,
        "occurred_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>``: binds the body to a time."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def sign_all(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    """One ``v1=`` per secret (``t=..,v1=<new>,v1=<previous>`` during a rotation)."""
    return ",".join([f"t={timestamp}", *(f"v1={_mac(s, timestamp, body)}" for s in secrets_)])


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a product does on receipt: check the signature and reject stale replays.

    Any ``v1=`` of the header may match: during a rotation the header carries
    one per secret, so a product holding either secret accepts the delivery.
    """
    try:
        parts = [item.split("=", 1) for item in header.split(",")]
        timestamps = [int(value) for key, value in parts if key == "t"]
        candidates = [value for key, value in parts if key == "v1"]
    except ValueError:
        return False
    if len(timestamps) != 1 or abs(now - timestamps[0]) > tolerance:
        return False
    expected = _mac(secret, timestamps[0], body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def events_after(session: Session, org_id: int, after: int, limit: int = 100) -> list[Event]:
    """Events of one organization in order, for products that poll instead of receiving."""
    return list(
        session.scalars(
            select(Event)
            .where(Event.org_id == org_id, Event.sequence > after)
            .order_by(Event.sequence)
            .limit(limit)
        )
    )
