"""OAuth 2.0 client-credentials grant for IdPs that prefer it to a long-lived token.

Microsoft Entra ID can authenticate with "OAuth2 Client Credentials Grant":
it trades a client id and secret at ``POST /oauth/token`` (RFC 6749 section
4.4) for a short-lived bearer token, then calls ``/scim/v2`` with that token.

Both live in the ``credentials`` table, so that the SCIM routes check them
exactly as any other credential: the client is a credential of scope
``client`` whose id is the client id and whose hash is the secret's; each
issued token is a credential of scope ``scim`` that expires after
``HUB_SCIM_OAUTH_TOKEN_TTL_SECONDS`` and carries the label ``oauth:<client id>``,
so that revoking the client revokes what it was issued. The endpoint is built
on Authlib's authorization server and answers in OAuth's JSON (RFC 6749
section 5), as token clients expect.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from flask import Blueprint, Flask, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.tenancy.credentials import (
    ISSUED_LABEL_PREFIX,
    Scope,
    hash_token,
    is_usable,
    new_token,
)
from connector.tenancy.tables import Credential

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a secret
GRANT_TYPE = "client_credentials"
# Expired issued tokens are deleted this long after expiry, so the table
# stays small while a recent token can still be recognized in the list.
_KEEP_EXPIRED = timedelta(days=1)


def issued_label(client_id: str) -> str:
    return ISSUED_LABEL_PREFIX + client_id


def create_client(session: Session, org_id: int, *, label: str = "") -> tuple[str, str]:
    """Register an OAuth client of ``org_id``; return its id and secret (shown once)."""
    secret = new_token()
    client = Credential(
        id=str(uuid.uuid4()),
        org_id=org_id,
        scope=Scope.CLIENT.value,
        token_hash=hash_token(secret),
        label=label,
        created_at=utcnow(),
    )
    session.add(client)
    session.flush()
    return client.id, secret


@dataclass(frozen=True)
class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A ``client`` credential as Authlib's authorization server sees it."""

    client_id: str
    org_id: int
    secret_hash: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return Scope.SCIM.value

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(hash_token(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ClientCredentials.TOKEN_ENDPOINT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE


class ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 section 4.4; the secret in HTTP Basic or in the form (Entra sends the form)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    """The usable (not revoked) OAuth client ``client_id``, or None."""
    try:
        uuid.UUID(client_id)
    except ValueError:
        return None
    credential = session.scalars(
        select(Credential).where(Credential.id == client_id, Credential.scope == Scope.CLIENT.value)
    ).one_or_none()
    if credential is None or not is_usable(credential):
        return None
    return OAuthClient(credential.id, credential.org_id, credential.token_hash)


def save_issued_token(session: Session, client: OAuthClient, token: dict[str, Any]) -> None:
    """Store a token issued to ``client`` (its hash only) and forget long-expired ones; commit."""
    now = utcnow()
    label = issued_label(client.client_id)
    session.execute(
        delete(Credential).where(
            Credential.org_id == client.org_id,
            Credential.label == label,
            Credential.expires_at < now - _KEEP_EXPIRED,
        )
    )
    session.add(
        Credential(
            id=str(uuid.uuid4()),
            org_id=client.org_id,
            scope=Scope.SCIM.value,
            token_hash=hash_token(token["access_token"]),
            label=label,
            created_at=now,
            expires_at=now + timedelta(seconds=int(token["expires_in"])),
        )
    )
    session.commit()


def create_token_blueprint(
    app: Flask, session: Callable[[], Session], token_ttl_seconds: int
) -> Blueprint:
    """``POST /oauth/token``: Authlib's authorization server with the client-credentials grant."""
    server = AuthorizationServer(
        app,
        query_client=lambda client_id: find_client(session(), client_id),
        save_token=lambda token, request: save_issued_token(session(), request.client, token),
    )
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda **_: new_token(),
            expires_generator=lambda client, grant_type: token_ttl_seconds,
        ),
    )
    server.register_grant(ClientCredentials)

    blueprint = Blueprint("oauth", __name__)

    @blueprint.post(TOKEN_PATH)
    def issue_token() -> Response:
        try:
            response: Response = server.create_token_response()
        except OAuth2Error as error:
            # Raised before Authlib's own handling: a token request over plain
            # HTTP from anywhere but loopback (RFC 6749 section 3.2, TLS).
            response = server.handle_error_response(None, error)
        return response

    return blueprint
