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

import base64
import binascii
import hmac
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, InsecureTransportError, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from flask import Blueprint, Flask, Request, Response, jsonify
from flask import request as flask_request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.tenancy.auth_throttle import FailureThrottle
from connector.tenancy.credentials import (
    ISSUED_LABEL_PREFIX,
    Scope,
    hash_token,
    is_usable,
    new_token,
)
from connector.tenancy.tables import Credential
from connector.web.proxies import arrived_over_tls

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
        matches = hmac.compare_digest(hash_token(client_secret), self.secret_hash)
        return matches and bool(self.client_id)

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


FAILURES_PER_CLIENT = (10, 10)
"""Failed authentications a client id may have: a burst, then this many a minute."""

FAILURES_PER_ADDRESS = (30, 30)
"""Failed authentications one client address may have: a burst, then this many a minute."""

_INVALID_CLIENT = {"error": "invalid_client", "error_description": "Client authentication failed"}


class _TransportCheckedRequest(FlaskOAuth2Request):  # type: ignore[misc]
    """Authlib's request, with TLS decided by :func:`arrived_over_tls` instead of the URL.

    Authlib judges TLS from the request URL, which is built from the ``Host``
    header (``Host: localhost`` would pass over plain HTTP from anywhere).
    """

    def __init__(self, request: Request) -> None:
        if not arrived_over_tls(request):
            raise InsecureTransportError()
        OAuth2Request.__init__(
            self,
            method=request.method,
            uri="https://" + request.url.split("://", 1)[1],
            headers=request.headers,
        )
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class _AuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return _TransportCheckedRequest(flask_request)


_NOBODY = OAuthClient(client_id="", org_id=0, secret_hash=hash_token(new_token()))
"""Stands for an unknown client, so that its secret is checked like any other and fails."""


def _find_client_or_nobody(session: Session, client_id: str) -> OAuthClient:
    return find_client(session, client_id) or _NOBODY


def create_token_blueprint(
    app: Flask, session: Callable[[], Session], token_ttl_seconds: int
) -> Blueprint:
    """``POST /oauth/token``: Authlib's authorization server with the client-credentials grant.

    An unknown client, a revoked one and a wrong secret all answer the same
    401 ``invalid_client`` (RFC 6749 section 5.2); failures are throttled per
    client id and per client address (:class:`FailureThrottle`).
    """
    server = _AuthorizationServer(
        app,
        query_client=lambda client_id: _find_client_or_nobody(session(), client_id),
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
    per_client = FailureThrottle(*FAILURES_PER_CLIENT)
    per_address = FailureThrottle(*FAILURES_PER_ADDRESS)

    blueprint = Blueprint("oauth", __name__)

    @blueprint.post(TOKEN_PATH)
    def issue_token() -> Response:
        keys = (
            (per_client, f"client:{_claimed_client_id()}"),
            (per_address, f"address:{flask_request.remote_addr}"),
        )
        waits = [wait for throttle, key in keys if (wait := throttle.retry_after(key)) is not None]
        if waits:
            return _throttled(max(waits))
        try:
            response: Response = server.create_token_response()
        except OAuth2Error as error:
            # Raised before Authlib's own handling: a token request over plain
            # HTTP from anywhere but loopback (RFC 6749 section 3.2, TLS).
            response = server.handle_error_response(None, error)
        except UnicodeDecodeError:
            # HTTP Basic credentials that are not UTF-8 (RFC 7617 section 2.1).
            response = _invalid_client()
        if response.status_code in (400, 401) and _is_invalid_client(response):
            for throttle, key in keys:
                throttle.record_failure(key)
            response = _invalid_client()
        return response

    return blueprint


def _claimed_client_id() -> str:
    """The client id the request names, in the form or in HTTP Basic, as text (may be made up)."""
    client_id = flask_request.form.get("client_id")
    if client_id:
        return client_id[:100]
    authorization = flask_request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=False)
    except (binascii.Error, ValueError):
        return ""
    return unquote(decoded.decode("utf-8", "replace").partition(":")[0])[:100]


def _is_invalid_client(response: Response) -> bool:
    body = response.get_json(silent=True)
    return isinstance(body, dict) and body.get("error") == "invalid_client"


def _invalid_client() -> Response:
    response = jsonify(_INVALID_CLIENT)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Basic realm="hub-scim"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _throttled(wait: float) -> Response:
    response = jsonify(
        {
            "error": "invalid_client",
            "error_description": "Too many failed client authentications; retry later",
        }
    )
    response.status_code = 429
    response.headers["Retry-After"] = str(math.ceil(wait))
    response.headers["Cache-Control"] = "no-store"
    return response
