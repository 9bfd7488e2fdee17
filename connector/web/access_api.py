"""The access API Hub's products call: a user's access, may they do X, onboarding, events.

The rules it answers by are in docs/rules.md (grants and product states, role
as ceiling, leavers, onboarding, immediacy and events). Mounted by
:func:`connector.web.app.create_app` under ``/api/v1``::

    GET  /api/v1/access?cursor=C&limit=N             every user's access, a page at a time
    GET  /api/v1/access/<user>                       the user's effective access
    POST /api/v1/access/<user>/authorize             {"permission": "psa.tickets.create"}
    POST /api/v1/access/<user>/onboarding/<product>  the product's onboarding is done
    GET  /api/v1/events?after=ID&limit=N             access-change events, in order

``<user>`` is the SCIM id or the userName. Every route takes a bearer
credential of scope ``access`` of the organization (RFC 6750), checked by the
same Authlib resource protector as the SCIM routes; a ``scim`` credential is
refused here with 403 ``insufficient_scope``, as an ``access`` one is on SCIM
routes. Errors are JSON, ``{"error": CODE, "detail": TEXT}``, never HTML and
never a stack trace. A user of another organization is answered exactly as an
unknown one: 404.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import MissingAuthorizationError, UnsupportedTokenTypeError
from authlib.oauth2.rfc6750 import InsufficientScopeError
from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from connector.access.catalog import HUB_CATALOG
from connector.admin.grants import complete_onboarding
from connector.db.engine import read_consistently
from connector.derived.queries import authorize_user, user_access
from connector.derived.roster import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, access_page
from connector.errors import HubError, InvalidInput, NotFound, answer_for
from connector.tenancy.credentials import AuthenticatedCredential, Scope, acquire_credential
from connector.tenancy.ratelimit import RateLimiter
from connector.trail.events import event_body, events_after
from connector.web.access_cursor import AccessCursor, CursorError, decode_cursor, encode_cursor

ACCESS_API_PREFIX = "/api/v1"
DEFAULT_EVENT_LIMIT = 100
MAX_EVENT_LIMIT = 1000
MAX_PERMISSION_LENGTH = 200
# product.resource.action, as the catalog names permissions (connector.access.catalog).
_PERMISSION_FORMAT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")

logger = logging.getLogger(__name__)


class AccessApiError(Exception):
    """A request the API refuses: an HTTP status, an error code and a sentence for people."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """``{"error": ..., "detail": ...}`` with ``status``: the one error shape of this API."""
    response = jsonify(error=error, detail=detail)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def create_access_blueprint(
    session: Callable[[], Session],
    protector: ResourceProtector,
    rate_limiter: RateLimiter,
    realm: str,
) -> Blueprint:
    """The access API; ``session()`` is the request's session, committed here once on success."""
    blueprint = Blueprint("access_api", __name__)

    @blueprint.before_request
    def authenticate() -> Response | None:
        return _authenticate(protector, rate_limiter, realm)

    @blueprint.get("/access")
    def list_access() -> Response:
        limit = _int_arg("limit", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        org_id = _org_id()
        after = _cursor_arg(org_id)
        db = session()
        read_consistently(db)
        page = access_page(db, org_id, after=after, limit=limit)
        next_cursor = (
            None
            if page.next_after is None
            else encode_cursor(AccessCursor(org_id, page.next_after))
        )
        return jsonify(position=page.position, users=list(page.users), next_cursor=next_cursor)

    @blueprint.get("/access/<user>")
    def get_access(user: str) -> Response:
        return jsonify(user_access(session(), _org_id(), user))

    @blueprint.post("/access/<user>/authorize")
    def authorize(user: str) -> Response:
        permission = _permission_from_body()
        decision = authorize_user(session(), _org_id(), user, permission)
        return jsonify({"user": user, "permission": permission, **decision.to_json()})

    @blueprint.post("/access/<user>/onboarding/<product>")
    def onboarding_done(user: str, product: str) -> Response:
        _require_onboarding_product(product)
        db = session()
        first_time = complete_onboarding(db, _org_id(), user, product, actor=_actor())
        db.commit()
        return jsonify(product=product, onboarding="done", first_time=first_time)

    @blueprint.get("/events")
    def list_events() -> Response:
        after = _int_arg("after", default=0, minimum=0, maximum=MAX_SQL_INTEGER)
        limit = _int_arg("limit", default=DEFAULT_EVENT_LIMIT, minimum=1, maximum=MAX_EVENT_LIMIT)
        # Sequences are 32-bit columns: a cursor beyond them has nothing after it,
        # and PostgreSQL would refuse to compare with it.
        events = events_after(session(), _org_id(), min(after, MAX_SEQUENCE), limit)
        return jsonify(
            events=[event_body(event) for event in events],
            next_after=events[-1].sequence if events else after,
        )

    # Routing answers an unknown path before any blueprint is chosen; this
    # route keeps such answers JSON under the API's prefix.
    @blueprint.route("/<path:_unknown>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown_endpoint(_unknown: str) -> Response:
        return error_response(
            404, "not_found", f"no such endpoint: {request.method} {request.path}"
        )

    blueprint.register_error_handler(AccessApiError, _api_error)
    blueprint.register_error_handler(HubError, _refused)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.register_error_handler(Exception, _unexpected_error)
    return blueprint


# -- authentication ------------------------------------------------------------


def _authenticate(
    protector: ResourceProtector, rate_limiter: RateLimiter, realm: str
) -> Response | None:
    """Require a usable ``access`` credential (RFC 6750 section 3); rate-limit it."""
    try:
        credential = acquire_credential(protector, Scope.ACCESS, request)
    except OAuth2Error as error:
        return _authentication_error(error, realm)
    retry_after = rate_limiter.acquire(credential.credential_id)
    if retry_after is not None:
        return error_response(
            429,
            "too_many_requests",
            "Too many requests for this credential",
            {"Retry-After": str(math.ceil(retry_after))},
        )
    g.hub_access_credential = credential
    return None


def _authentication_error(error: OAuth2Error, realm: str) -> Response:
    """RFC 6750 section 3: no error code without a credential; ``invalid_token`` (401)
    for an unknown, revoked or expired one; ``insufficient_scope`` (403) for a
    credential of another scope, such as the IdP's ``scim`` credential.
    """
    challenge = f'Bearer realm="{realm}"'
    if isinstance(error, MissingAuthorizationError | UnsupportedTokenTypeError):
        return error_response(
            401,
            "unauthorized",
            "A bearer token is required: Authorization: Bearer <token>",
            {"WWW-Authenticate": challenge},
        )
    if isinstance(error, InsufficientScopeError):
        return error_response(
            403,
            "insufficient_scope",
            "This credential is not an access credential of Hub's products "
            "(hub-scim token create --scope access)",
            {
                "WWW-Authenticate": challenge
                + f', error="insufficient_scope", scope="{Scope.ACCESS.value}"'
            },
        )
    return error_response(
        401,
        "invalid_token",
        "The bearer token is invalid, expired or revoked",
        {"WWW-Authenticate": challenge + ', error="invalid_token"'},
    )


def _credential() -> AuthenticatedCredential:
    credential: AuthenticatedCredential | None = g.get("hub_access_credential")
    if credential is None:  # only if a route escaped the before_request check
        raise AccessApiError(401, "unauthorized", "A bearer token is required")
    return credential


def _org_id() -> int:
    """The organization whose ``access`` credential authenticated this request."""
    return _credential().org_id


def _actor() -> str:
    """Who the audit trail names for a product's write: its credential."""
    return f"access-credential:{_credential().credential_id}"


# -- parsing -------------------------------------------------------------------


def _permission_from_body() -> str:
    try:
        body: Any = request.get_json(force=True, silent=True)
    except RecursionError:
        # Nested deeper than the JSON reader's stack; silent= covers only ValueError.
        body = None
    if not isinstance(body, dict):
        raise AccessApiError(
            400, "invalid_request", 'The body must be a JSON object: {"permission": "..."}'
        )
    permission = body.get("permission")
    if not isinstance(permission, str):
        raise AccessApiError(
            400, "invalid_request", '"permission" is required and must be a string'
        )
    if len(permission) > MAX_PERMISSION_LENGTH or not _PERMISSION_FORMAT.match(permission):
        raise AccessApiError(
            400,
            "invalid_permission",
            f"{permission[:MAX_PERMISSION_LENGTH]!r} is not a permission name "
            "(product.resource.action, such as psa.tickets.create)",
        )
    return permission


def _require_onboarding_product(product: str) -> None:
    found = HUB_CATALOG.product(product)
    if found is None:
        known = ", ".join(HUB_CATALOG.names)
        raise NotFound(f"unknown product {product!r} (expected one of {known})")
    if found.onboarding is None:
        raise InvalidInput(f"{product} has no onboarding flow")


def _cursor_arg(org_id: int) -> str:
    """The user id the page starts after: ``""`` (the first page) without a cursor."""
    raw = request.args.get("cursor")
    if raw is None or raw == "":
        return ""
    try:
        return decode_cursor(raw, org_id).after
    except CursorError as error:
        raise AccessApiError(
            400, "invalid_cursor", f"cursor: {error}; pass next_cursor back unchanged"
        ) from None


MAX_SQL_INTEGER = 2**63 - 1
"""The largest integer a query parameter compared in SQL may hold (64-bit on every database)."""
MAX_SEQUENCE = 2**31 - 1  # events.sequence is an Integer column


def _int_arg(name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AccessApiError(
            400, "invalid_request", f"{name} must be an integer, not {raw[:50]!r}"
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise AccessApiError(400, "invalid_request", f"{name} must be at least {minimum}{upper}")
    return value


# -- errors --------------------------------------------------------------------


def _api_error(error: AccessApiError) -> Response:
    return error_response(error.status, error.error, error.detail)


def _refused(error: HubError) -> Response:
    """A refusal of the connector, answered as :data:`connector.errors.ANSWERS` says.

    An unknown user and another organization's are the same ``not_found``
    (docs/rules.md#words).
    """
    answer = answer_for(error)
    return error_response(answer.status, answer.api_error, str(error))


def _http_error(error: HTTPException) -> Response:
    code = error.code or 500
    name = (error.name or "error").lower().replace(" ", "_")
    return error_response(code, name, error.description or error.name or "error")


def _unexpected_error(error: Exception) -> Response:
    logger.exception("access API request failed", exc_info=error)
    return error_response(500, "internal_error", "The request failed; it changed nothing")
