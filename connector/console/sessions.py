"""Console sessions: a server-side record per signed-in browser, revocable at any time.

The browser holds only a random id, inside Flask's signed, ``HttpOnly``,
``SameSite=Lax`` cookie (``Secure`` over HTTPS); the table keeps its SHA-256
hash. Every request re-reads the record and the user's directory entry, so a
revoked session, a leaver (deactivated or deleted by SCIM) or an expired
session ends on the very next request, and a role change shows on the next page.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from connector.access.roles import Role
from connector.admin.sso import has_seated_owner
from connector.console.identity import current_role
from connector.db.base import utcnow
from connector.tenancy.console import ConsoleSession

SESSION_ID_BYTES = 32
# last_seen_at is written at most this often, so that reading pages does not
# turn every request into a write.
_TOUCH_EVERY = timedelta(seconds=60)
BOOTSTRAP_NAME = "bootstrap"


@dataclass(frozen=True)
class Principal:
    """Who is signed in to this request, with their role as of now."""

    org_id: int
    org_name: str
    user_id: str | None
    user_name: str
    role: Role
    bootstrap: bool = False

    @property
    def actor(self) -> str:
        """How the audit trail names console actions (``console:<userName>``)."""
        return f"console:{self.user_name}"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def start_session(
    db: Session,
    org_id: int,
    *,
    user_id: str | None,
    user_name: str,
    lifetime: timedelta,
    bootstrap: bool = False,
) -> str:
    """Record a new session; return its id for the cookie (a fresh one: no fixation)."""
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    now = utcnow()
    db.add(
        ConsoleSession(
            id_hash=_hash(session_id),
            org_id=org_id,
            user_id=user_id,
            user_name=user_name,
            bootstrap=bootstrap,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    db.flush()
    return session_id


def end_session(db: Session, session_id: str, reason: str) -> None:
    db.execute(
        update(ConsoleSession)
        .where(ConsoleSession.id_hash == _hash(session_id), ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )


def end_user_sessions(db: Session, org_id: int, user_id: str, reason: str) -> None:
    """End every open session of one user (a leaver, an operator's revocation)."""
    db.execute(
        update(ConsoleSession)
        .where(
            ConsoleSession.org_id == org_id,
            ConsoleSession.user_id == user_id,
            ConsoleSession.ended_at.is_(None),
        )
        .values(ended_at=utcnow(), end_reason=reason)
    )


@dataclass(frozen=True)
class Resolved:
    principal: Principal | None
    ended: str | None = None  # why the session just ended, to tell the person


def resolve(
    db: Session, session_id: str, org_id: int, org_name: str, idle_timeout: timedelta
) -> Resolved:
    """The principal of a live session of ``org_id``, or why there is none.

    Ends the session (in ``db``; the caller commits) when it expired, went
    idle, or its user left, and a bootstrap session once a real Owner is seated.
    """
    record = db.get(ConsoleSession, _hash(session_id))
    if record is None or record.org_id != org_id or record.ended_at is not None:
        return Resolved(None)
    now = utcnow()
    reason: str | None = None
    role: Role | None = Role.OWNER
    if record.expires_at <= now:
        reason = "the session expired"
    elif record.last_seen_at + idle_timeout <= now:
        reason = "the session was idle too long"
    elif record.bootstrap:
        if has_seated_owner(db, org_id):
            reason = "an Owner is now provisioned by the IdP: sign in with the IdP"
    else:
        assert record.user_id is not None
        role = current_role(db, org_id, record.user_id)
        if role is None:
            reason = f"{record.user_name} was deactivated or removed by the identity provider"
    if reason is not None or role is None:
        record.ended_at = now
        record.end_reason = reason
        return Resolved(None, reason)
    if now - record.last_seen_at >= _TOUCH_EVERY:
        record.last_seen_at = now
    return Resolved(
        Principal(
            org_id=org_id,
            org_name=org_name,
            user_id=record.user_id,
            user_name=record.user_name,
            role=role,
            bootstrap=record.bootstrap,
        )
    )
