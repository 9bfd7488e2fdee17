"""The SCIM connection's credentials and OAuth clients: create, rotate, revoke (audited).

One function per action, used by ``hub-scim token``/``client`` and by the
console's Connection page alike: the same checks, the same transaction (the
caller's), the same audit entry, whoever the ``actor`` is. Tokens and client
secrets are returned once and stored only as hashes
(:mod:`connector.tenancy.credentials`); the audit trail never holds them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.admin.auditing import audit_action
from connector.db.base import utcnow
from connector.errors import InvalidInput
from connector.tenancy.credentials import (
    CredentialNotFoundError,
    Scope,
    create_credential,
    hash_token,
    is_usable,
    list_credentials,
    revoke_credential,
)
from connector.tenancy.oauth import create_client
from connector.tenancy.tables import Credential
from connector.trail.audit import AuditEntry
from connector.trail.request_log import SCIM_REQUEST_LOG, LoggedRequest, query_requests


@dataclass(frozen=True)
class Issued:
    """A credential or client just created: its id and its secret, shown this once."""

    id: str
    secret: str
    scope: str
    label: str
    expires_at: datetime | None = None
    replaces: str | None = None
    replaced_until: datetime | None = None  # when the credential it replaces stops working


def _describe(credential: Credential) -> dict[str, object]:
    return {
        "id": credential.id,
        "scope": credential.scope,
        "label": credential.label,
        "expires_at": None if credential.expires_at is None else credential.expires_at.isoformat(),
        "revoked": credential.revoked_at is not None,
    }


def issue_credential(
    session: Session,
    org_id: int,
    scope: Scope | str,
    *,
    actor: str,
    label: str = "",
    ttl: timedelta | None = None,
) -> Issued:
    """A new bearer credential of ``scope`` (``scim`` or ``access``); audited; token shown once."""
    scope = Scope(scope)
    if scope is Scope.CLIENT:
        raise ValueError("an OAuth client is created with create_oauth_client")
    credential_id, token = create_credential(session, org_id, scope, label=label, ttl=ttl)
    credential = session.get(Credential, credential_id)
    assert credential is not None
    audit_action(
        session,
        org_id,
        actor=actor,
        action="credential.created",
        target=f"credential:{credential_id}",
        after=_describe(credential),
        reason=f"{scope.value} credential created",
    )
    return Issued(credential_id, token, scope.value, label, credential.expires_at)


def revoke(session: Session, org_id: int, token_or_id: str, *, actor: str) -> Credential:
    """Revoke a credential or OAuth client of ``org_id`` (and a client's tokens); audited.

    Raises :class:`CredentialNotFoundError` for another organization's or an unknown one.
    """
    existing = _find(session, org_id, token_or_id)
    was_revoked = existing is not None and existing.revoked_at is not None
    credential = revoke_credential(session, org_id, token_or_id)
    if not was_revoked:
        kind = "oauth_client" if credential.scope == Scope.CLIENT else "credential"
        audit_action(
            session,
            org_id,
            actor=actor,
            action=f"{kind}.revoked",
            target=f"{kind.replace('oauth_', '')}:{credential.id}",
            before={**_describe(credential), "revoked": False},
            after=_describe(credential),
            reason=f"{credential.scope} {kind.replace('_', ' ')} revoked",
        )
    return credential


ROTATION_GRACE = timedelta(hours=24)
"""How long a rotated credential keeps working beside its replacement, by default."""


def rotate_credential(
    session: Session,
    org_id: int,
    credential_id: str,
    *,
    actor: str,
    grace: timedelta = ROTATION_GRACE,
) -> Issued:
    """Create a credential like ``credential_id`` (same scope, label, lifetime); retire the old.

    The old one keeps working for ``grace`` (it expires then, or sooner if it
    was to expire sooner), so the IdP never meets a 401 while IT pastes the
    new token: Entra ID quarantines an app whose requests keep failing, and
    Okta marks its pushes failed. Revoking it at once stays a separate action.
    """
    old = _find(session, org_id, credential_id)
    if old is None or old.scope == Scope.CLIENT or old.label.startswith("oauth:"):
        raise CredentialNotFoundError()
    if old.revoked_at is not None:
        raise InvalidInput("this credential is already revoked: create a new one instead")
    ttl = None if old.expires_at is None else old.expires_at - old.created_at
    issued = issue_credential(session, org_id, old.scope, actor=actor, label=old.label, ttl=ttl)
    before = _describe(old)
    retire_at = utcnow() + grace
    if old.expires_at is None or old.expires_at > retire_at:
        old.expires_at = retire_at
    session.flush()
    audit_action(
        session,
        org_id,
        actor=actor,
        action="credential.rotated",
        target=f"credential:{old.id}",
        before=before,
        after={**_describe(old), "replaced_by": issued.id},
        reason=f"{old.scope} credential rotated; it works until "
        f"{old.expires_at:%Y-%m-%d %H:%M} UTC",
    )
    return Issued(
        issued.id,
        issued.secret,
        issued.scope,
        issued.label,
        issued.expires_at,
        replaces=old.id,
        replaced_until=old.expires_at,
    )


def create_oauth_client(session: Session, org_id: int, *, actor: str, label: str = "") -> Issued:
    """An OAuth client (client-credentials grant); audited, secret returned once."""
    client_id, secret = create_client(session, org_id, label=label)
    audit_action(
        session,
        org_id,
        actor=actor,
        action="oauth_client.created",
        target=f"client:{client_id}",
        after={"id": client_id, "label": label},
        reason="OAuth client created",
    )
    return Issued(client_id, secret, Scope.CLIENT.value, label)


def _find(session: Session, org_id: int, token_or_id: str) -> Credential | None:
    try:
        uuid.UUID(token_or_id)
        condition = Credential.id == token_or_id
    except ValueError:
        condition = Credential.token_hash == hash_token(token_or_id)
    return session.scalars(
        select(Credential).where(Credential.org_id == org_id, condition)
    ).one_or_none()


@dataclass(frozen=True)
class CredentialStatus:
    """A credential as the Connection page lists it: never its token."""

    credential: Credential
    last_used_at: datetime | None
    last_request: LoggedRequest | None = None

    @property
    def usable(self) -> bool:
        return is_usable(self.credential)


# How far back the audit trail is searched for a credential's last write, so
# that the Connection page stays a bounded read on a long trail.
_LAST_USE_WINDOW = 200_000


def connection_status(session: Session, org_id: int) -> list[CredentialStatus]:
    """Credentials and OAuth clients (not their short-lived tokens), with their last SCIM write.

    The last use is the newest audit entry the credential caused (``scim:<id>``):
    SCIM writes are audited, reads are not, so it is the last *write*. An OAuth
    client's is that of the newest token it was issued.
    """
    credentials = list_credentials(session, org_id, include_issued=False)
    newest = session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.org_id == org_id)) or 0
    floor = max(0, newest - _LAST_USE_WINDOW)
    statuses = []
    for credential in credentials:
        actors = [f"scim:{credential.id}"]
        if credential.scope == Scope.CLIENT:
            actors.extend(
                f"scim:{issued}"
                for issued in session.scalars(
                    select(Credential.id).where(
                        Credential.org_id == org_id, Credential.label == f"oauth:{credential.id}"
                    )
                )
            )
        last = session.scalar(
            select(func.max(AuditEntry.at)).where(
                AuditEntry.org_id == org_id,
                AuditEntry.id > floor,
                AuditEntry.actor.in_(actors),
            )
        )
        credential_ids = [actor.removeprefix("scim:") for actor in actors]
        statuses.append(
            CredentialStatus(credential, last, _last_request(session, org_id, credential_ids))
        )
    return statuses


def _last_request(session: Session, org_id: int, credential_ids: list[str]) -> LoggedRequest | None:
    """The newest provisioning-log row of these credentials, if the log holds one."""
    table = SCIM_REQUEST_LOG
    row = session.execute(
        select(table)
        .where(table.c.org_id == org_id, table.c.credential_id.in_(credential_ids))
        .order_by(table.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return query_requests(session, org_id, before=row.id + 1, limit=1).requests[0]


# Statuses that mean provisioning is not getting through, unlike a 404 lookup
# miss or a 409 "user exists" that Okta and Entra expect and handle.
_BROKEN = frozenset({401, 403, 429})


def recent_failures(session: Session, org_id: int, window: int = 10) -> tuple[int, int]:
    """Of the last ``window`` SCIM requests of the organization: how many failed, of how many.

    Not getting through: refused credentials (401, 403), the rate limit (429), server errors (5xx).
    """
    requests = query_requests(session, org_id, limit=window).requests
    failed = sum(1 for item in requests if item.status >= 500 or item.status in _BROKEN)
    return failed, len(requests)
