"""Bearer credentials of an organization: issue, revoke, check (RFC 6750).

A token is 256 random bits behind a recognizable prefix, shown once when
created and stored only as its SHA-256 hash (``Credential.token_hash``), so a
leaked database gives no usable token. Each credential belongs to exactly one
organization and has one scope: ``scim`` (the IdP's provisioning service) or
``access`` (Hub's products); one is refused where the other belongs.

Requests are checked with Authlib's resource-protection machinery. Every
check reads the database, with no cache, so a revocation takes effect on the
very next request, on every instance sharing the database.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc6749 import JsonRequest
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Request
from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.errors import NotFound
from connector.tenancy.tables import CREDENTIALS, ORGANIZATIONS, Credential

TOKEN_PREFIX = "hubscim_"  # noqa: S105 - a public marker, not a secret
# secrets.token_urlsafe(32) is 256 bits of entropy (RFC 6750 section 5.2 wants
# tokens that cannot be guessed).
TOKEN_BYTES = 32


class Scope(StrEnum):
    """What a credential may be used for."""

    SCIM = "scim"
    ACCESS = "access"
    # An OAuth client (connector.tenancy.oauth): its secret buys short-lived SCIM tokens.
    CLIENT = "client"


# The label of a token issued to an OAuth client names the client, so that
# revoking the client revokes its tokens (connector.tenancy.oauth).
ISSUED_LABEL_PREFIX = "oauth:"


class CredentialNotFoundError(NotFound):
    """No credential of this organization matches the given token or id."""

    def __init__(self) -> None:
        # Never echo what was given: it may be a token.
        super().__init__("no credential of this organization matches that token or id")


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def create_credential(
    session: Session,
    org_id: int,
    scope: Scope | str,
    *,
    label: str = "",
    ttl: timedelta | None = None,
) -> tuple[str, str]:
    """Issue a credential; return its id and the token, which is never retrievable again."""
    scope = Scope(scope)
    token = new_token()
    now = utcnow()
    credential = Credential(
        id=str(uuid.uuid4()),
        org_id=org_id,
        scope=scope.value,
        token_hash=hash_token(token),
        label=label,
        created_at=now,
        expires_at=now + ttl if ttl else None,
    )
    session.add(credential)
    session.flush()
    return credential.id, token


def find_credential(session: Session, token: str) -> Credential | None:
    """The credential a token stands for, whatever its state (revoked, expired)."""
    return session.scalars(
        select(Credential).where(Credential.token_hash == hash_token(token))
    ).one_or_none()


def _is_credential_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def revoke_credential(session: Session, org_id: int, token_or_id: str) -> Credential:
    """Revoke a credential of ``org_id``, named by its token or its id; idempotent.

    Revoking an OAuth client also revokes every token it was issued.

    Raises :class:`CredentialNotFoundError` when ``org_id`` has no such
    credential: another organization's credential is never touched.
    """
    condition = (
        Credential.id == token_or_id
        if _is_credential_id(token_or_id)
        else Credential.token_hash == hash_token(token_or_id)
    )
    credential = session.scalars(
        select(Credential).where(condition, Credential.org_id == org_id)
    ).one_or_none()
    if credential is None:
        raise CredentialNotFoundError()
    now = utcnow()
    if credential.revoked_at is None:
        credential.revoked_at = now
    if credential.scope == Scope.CLIENT:
        session.execute(
            update(Credential)
            .where(
                Credential.org_id == org_id,
                Credential.label == ISSUED_LABEL_PREFIX + credential.id,
                Credential.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
    session.flush()
    return credential


def list_credentials(
    session: Session, org_id: int, *, include_issued: bool = True
) -> list[Credential]:
    """An organization's credentials, oldest first (the hashes stay inside).

    ``include_issued=False`` leaves out the short-lived tokens issued to OAuth clients.
    """
    query = select(Credential).where(Credential.org_id == org_id)
    if not include_issued:
        query = query.where(Credential.label.not_like(ISSUED_LABEL_PREFIX + "%"))
    return list(session.scalars(query.order_by(Credential.created_at, Credential.id)))


def is_usable(credential: Credential, now: datetime | None = None) -> bool:
    """Neither revoked nor expired."""
    now = now or utcnow()
    if credential.revoked_at is not None:
        return False
    return credential.expires_at is None or credential.expires_at > now


def authenticate(session: Session, token: str, scope: Scope | str) -> int | None:
    """The organization a usable token of ``scope`` acts for, or None."""
    credential = find_credential(session, token)
    if credential is None or credential.scope != Scope(scope) or not is_usable(credential):
        return None
    return credential.org_id


# Built once and executed as plain Core (table columns, not ORM attributes):
# every request runs it, and a Core statement skips the ORM's per-execution
# compile step, which costs about as much as the query itself.
# The organization's schema version comes along (a primary-key join), so a
# request knows without another query whether its cached models are current.
_CREDENTIAL_BY_HASH = (
    select(
        CREDENTIALS.c.id,
        CREDENTIALS.c.org_id,
        CREDENTIALS.c.scope,
        CREDENTIALS.c.expires_at,
        CREDENTIALS.c.revoked_at,
        ORGANIZATIONS.c.schema_version,
    )
    .join(ORGANIZATIONS, ORGANIZATIONS.c.id == CREDENTIALS.c.org_id)
    .where(CREDENTIALS.c.token_hash == bindparam("token_hash"))
)


def find_credential_state(session: Session, token: str) -> Row[Any] | None:
    """``id, org_id, scope, expires_at, revoked_at`` of the token's credential, if any,
    and its organization's ``schema_version``."""
    row = session.execute(_CREDENTIAL_BY_HASH, {"token_hash": hash_token(token)}).one_or_none()
    return cast("Row[Any] | None", row)


@dataclass(frozen=True)
class AuthenticatedCredential:
    """A credential as Authlib's token validator sees it (its token protocol)."""

    credential_id: str
    org_id: int
    scope: str
    expired: bool
    revoked: bool
    schema_version: int = 0  # of the organization's declared SCIM extensions

    @classmethod
    def of(cls, credential: Credential | Row[Any]) -> AuthenticatedCredential:
        now = utcnow()
        return cls(
            credential_id=credential.id,
            org_id=credential.org_id,
            scope=credential.scope,
            expired=credential.expires_at is not None and credential.expires_at <= now,
            revoked=credential.revoked_at is not None,
            schema_version=getattr(credential, "schema_version", 0) or 0,
        )

    def is_expired(self) -> bool:
        return self.expired

    def is_revoked(self) -> bool:
        return self.revoked

    def get_scope(self) -> str:
        return self.scope


class CredentialValidator(BearerTokenValidator):  # type: ignore[misc]
    """Looks a bearer token up by hash in the request's database session."""

    def __init__(self, session: Callable[[], Session], realm: str) -> None:
        super().__init__(realm=realm)
        self._session = session

    def authenticate_token(self, token_string: str) -> AuthenticatedCredential | None:
        credential = find_credential_state(self._session(), token_string)
        return AuthenticatedCredential.of(credential) if credential is not None else None


def make_resource_protector(session: Callable[[], Session], realm: str) -> ResourceProtector:
    """Authlib's resource protector, checking credentials in ``session()``."""
    protector = ResourceProtector()
    protector.register_token_validator(CredentialValidator(session, realm))
    return protector


def acquire_credential(
    protector: ResourceProtector, scope: Scope, request: Request
) -> AuthenticatedCredential:
    """The usable credential of ``scope`` that ``request`` bears (RFC 6750 sections 2.1 and 3.1).

    Authlib's check, given only what a bearer check reads: the method and the
    headers. Authlib's Flask wrapper (``acquire_token``) would first build the
    request's full URL (from ``Host``, IRI-decoded) and its form payload,
    neither of which the check reads: a tenth of a light request's CPU.

    Raises Authlib's :class:`~authlib.oauth2.OAuth2Error` subclasses:
    ``MissingAuthorizationError``, ``UnsupportedTokenTypeError``,
    ``InvalidTokenError`` (unknown, revoked, expired), ``InsufficientScopeError``.
    """
    bearer = JsonRequest(request.method, request.path, request.headers)
    credential: AuthenticatedCredential = protector.validate_request([scope.value], bearer)
    return credential
