"""The console's sign-in settings and break-glass links: one service each, for CLI and console.

``hub-scim sso set`` registers an organization's OIDC web app (issuer, client
id, client secret sealed at rest: :mod:`connector.tenancy.sealing`);
``hub-scim console link`` issues a one-time sign-in URL for a brand-new
organization with nobody provisioned yet. Both are audited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.admin.auditing import audit_action
from connector.db.base import utcnow
from connector.derived.tables import OwnerSeat
from connector.tenancy.console import ConsoleLink, ConsoleSso
from connector.tenancy.sealing import seal, unseal

LINK_LIFETIME = timedelta(minutes=15)
LINK_TOKEN_BYTES = 32


class SsoNotConfigured(LookupError):
    """The organization has no OIDC settings for the console."""


@dataclass(frozen=True)
class SsoSettings:
    """What ``sso show`` prints and the console signs in with (the secret only when opened)."""

    org_id: int
    issuer: str
    client_id: str
    updated_at: datetime
    updated_by: str

    @property
    def discovery_url(self) -> str:
        """OpenID Connect Discovery 1.0 section 4: the issuer plus the well-known path."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _normalized_issuer(issuer: str) -> str:
    issuer = issuer.strip()
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"the issuer must be an https:// URL, got {issuer!r}")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError("the issuer must use https:// (http:// only for a loopback test IdP)")
    if parts.query or parts.fragment:
        raise ValueError("the issuer must have no query or fragment (OpenID Discovery section 2)")
    return issuer.rstrip("/")


def set_sso(
    session: Session,
    org_id: int,
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    secret_key: str | None,
    actor: str,
) -> SsoSettings:
    """Store the organization's OIDC web app; the secret sealed with ``secret_key``; audited.

    Raises ValueError for a bad issuer, an empty client id or secret, or no key.
    """
    if not secret_key:
        raise ValueError(
            "HUB_SCIM_SECRET_KEY is not set: the client secret is stored encrypted with it"
        )
    issuer = _normalized_issuer(issuer)
    client_id = client_id.strip()
    if not client_id:
        raise ValueError("the client id must not be empty")
    if not client_secret:
        raise ValueError("the client secret must not be empty")
    row = session.get(ConsoleSso, org_id)
    before = None if row is None else {"issuer": row.issuer, "client_id": row.client_id}
    if row is None:
        row = ConsoleSso(org_id=org_id)
        session.add(row)
    row.issuer = issuer
    row.client_id = client_id
    row.client_secret_sealed = seal(secret_key, client_secret)
    row.updated_at = utcnow()
    row.updated_by = actor
    session.flush()
    audit_action(
        session,
        org_id,
        actor=actor,
        action="console.sso_set",
        target="console:sso",
        before=before,
        # Never the secret: only that one was stored.
        after={"issuer": issuer, "client_id": client_id, "client_secret": "sealed"},
        reason="console sign-in settings",
    )
    return _settings(row)


def get_sso(session: Session, org_id: int) -> SsoSettings:
    """The organization's console sign-in settings; raises :class:`SsoNotConfigured`."""
    row = session.get(ConsoleSso, org_id)
    if row is None:
        raise SsoNotConfigured(org_id)
    return _settings(row)


def open_client_secret(session: Session, org_id: int, secret_key: str) -> str:
    """The client secret in clear, for the token exchange only."""
    row = session.get(ConsoleSso, org_id)
    if row is None:
        raise SsoNotConfigured(org_id)
    return unseal(secret_key, row.client_secret_sealed)


def _settings(row: ConsoleSso) -> SsoSettings:
    return SsoSettings(row.org_id, row.issuer, row.client_id, row.updated_at, row.updated_by)


def hash_link_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def has_seated_owner(session: Session, org_id: int) -> bool:
    """Whether the IdP has provisioned a real Owner (docs/rules.md#owner-cap)."""
    seat = select(OwnerSeat.seat).where(OwnerSeat.org_id == org_id).limit(1)
    return session.scalar(seat) is not None


def create_console_link(session: Session, org_id: int, *, actor: str) -> tuple[str, datetime]:
    """A one-time break-glass token valid :data:`LINK_LIFETIME`; audited. Returns it and its end.

    Refused (ValueError) once the organization has a seated Owner: from then
    on Owners sign in with the IdP.
    """
    if has_seated_owner(session, org_id):
        raise ValueError(
            "the organization already has an Owner provisioned by its IdP: "
            "Owners sign in with the IdP (hub-scim sso set), not with a link"
        )
    token = secrets.token_urlsafe(LINK_TOKEN_BYTES)
    now = utcnow()
    expires = now + LINK_LIFETIME
    session.add(
        ConsoleLink(
            token_hash=hash_link_token(token),
            org_id=org_id,
            created_at=now,
            created_by=actor,
            expires_at=expires,
        )
    )
    session.flush()
    audit_action(
        session,
        org_id,
        actor=actor,
        action="console.link_issued",
        target="console:bootstrap",
        after={"expires_at": expires.isoformat()},
        reason="break-glass sign-in link for the bootstrap Owner",
    )
    return token, expires


def redeem_console_link(session: Session, org_id: int, token: str) -> bool:
    """Use a break-glass token once: True when it was unused, unexpired and of ``org_id``.

    The use is audited whatever the outcome is for a known token.
    """
    token_hash = hash_link_token(token)
    row = session.get(ConsoleLink, token_hash)
    if row is None or row.org_id != org_id:
        return False
    now = utcnow()
    # One statement claims the link, so that two racing uses cannot both succeed.
    claim = session.execute(
        update(ConsoleLink)
        .where(
            ConsoleLink.token_hash == token_hash,
            ConsoleLink.used_at.is_(None),
            ConsoleLink.expires_at > now,
        )
        .values(used_at=now)
    )
    if getattr(claim, "rowcount", 0) != 1 or has_seated_owner(session, org_id):
        audit_action(
            session,
            org_id,
            actor="console:bootstrap",
            action="console.link_refused",
            target="console:bootstrap",
            reason="link already used or expired, or an Owner is provisioned",
        )
        return False
    audit_action(
        session,
        org_id,
        actor="console:bootstrap",
        action="console.link_used",
        target="console:bootstrap",
        reason=f"break-glass sign-in as the bootstrap Owner (link issued by {row.created_by})",
    )
    return True
