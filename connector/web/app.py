"""The application factory: configuration, database, authentication and the routes.

Routes: SCIM 2.0 under ``/scim/v2`` (IdPs, ``scim`` credentials), the access
API under ``/api/v1`` (Hub's products, ``access`` credentials), the OAuth
token endpoint ``/oauth/token`` (client-credentials grant), and the probes
``/healthz`` and ``/readyz``.

:func:`create_app` builds one Flask application per call and keeps its state
in ``app.extensions["hub_scim"]`` (an engine, a session factory, Authlib's
resource protector, the rate limiter). Each request gets one database session,
opened on first use and closed at teardown; the SCIM layer commits it once on
success.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import MissingAuthorizationError, UnsupportedTokenTypeError
from authlib.oauth2.rfc6750 import InsufficientScopeError
from flask import Flask, Response, current_app, g, request
from scim2_models import Error, ForbiddenException, SCIMException, UnauthorizedException
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connector.console.blueprint import install as install_console
from connector.db.engine import make_engine, make_session_factory, read_only
from connector.db.migrations import ensure_sqlite_directory
from connector.db.statistics import StatisticsKeeper
from connector.directory.extensions import org_schemas
from connector.provisioning.writes import ScimWrites
from connector.settings import REALM, Settings, load_settings, replace_settings
from connector.tenancy.credentials import (
    AuthenticatedCredential,
    Scope,
    acquire_credential,
    make_resource_protector,
)
from connector.tenancy.oauth import create_token_blueprint
from connector.tenancy.ratelimit import RateLimiter
from connector.trail.cause import Cause
from connector.web import observability
from connector.web.access_api import ACCESS_API_PREFIX, create_access_blueprint
from connector.web.deadline import install_request_deadline, past_deadline_response
from connector.web.drain import install_body_drain
from connector.web.probes import create_health_blueprint, database_ping
from connector.web.proxies import RecordTransportScheme, TrustedProxyFix, parse_networks
from connector.web.published import hub_publications
from connector.web.request_logging import install_request_log
from scim.backend import Backend
from scim.blueprint import create_blueprint
from scim.errors import error_response, register_scim_error_handlers
from scim.extensions import ServedSchemas
from scim.limits import Deadline, DeadlineExceededException

EXTENSION = "hub_scim"
SCIM_PREFIX = "/scim/v2"

logger = logging.getLogger(__name__)

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class HubScim:
    """Per-application state, kept in ``app.extensions["hub_scim"]``."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    protector: ResourceProtector
    rate_limiter: RateLimiter
    statistics: StatisticsKeeper
    owns_engine: bool

    def close(self) -> None:
        """Release the connection pool, unless the engine was handed in."""
        if self.owns_engine:
            self.engine.dispose()


def hub_scim(app: Flask | None = None) -> HubScim:
    """The state of ``app``, or of the application handling the current request."""
    state: HubScim = (app or current_app).extensions[EXTENSION]
    return state


def request_session() -> Session:
    """This request's database session, opened on first use, closed at teardown.

    A request that only reads (:func:`reads_only`) begins its transaction as
    a reader (:func:`connector.db.engine.read_only`), and so does every SCIM
    request: its credential is checked and its body read and validated
    before the write path begins writing
    (:func:`connector.db.engine.begin_writing`).
    """
    session: Session | None = g.get("hub_scim_session")
    if session is None:
        session = hub_scim().session_factory()
        if reads_only() or request.path.startswith(SCIM_PREFIX):
            read_only(session)
        g.hub_scim_session = session
    return session


_READ_METHODS = frozenset({"GET", "HEAD"})
_READING_POSTS = ("/.search", "/authorize")


def reads_only() -> bool:
    """Whether this request never writes: a GET, a SCIM ``.search``, an access check.

    Credentials are checked within the same transaction, which reads only.
    """
    return request.method in _READ_METHODS or request.path.endswith(_READING_POSTS)


def _close_request_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("hub_scim_session", None)
    if session is not None:
        session.close()


def request_org_id() -> int:
    """The organization whose credential authenticated this SCIM request."""
    credential: AuthenticatedCredential | None = g.get("hub_scim_credential")
    if credential is None:
        raise UnauthorizedException()
    return credential.org_id


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    **overrides: Any,
) -> Flask:
    """Build the service: ``settings`` (else loaded from the environment) plus ``overrides``.

    ``engine`` lets a caller share one engine between applications (the test
    suite does); otherwise the application creates and owns its own.
    """
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = replace_settings(settings, **overrides)
    logging.getLogger("connector").setLevel(settings.log_level.upper())

    app = Flask(__name__)
    # Werkzeug answers 413 before reading a larger body; the SCIM layer then
    # holds each route to its own, possibly smaller, limit.
    app.config["MAX_CONTENT_LENGTH"] = max(
        settings.scim.max_payload_bytes, settings.scim.bulk_max_payload_bytes
    )
    _install_proxy_handling(app, settings)

    owns_engine = engine is None
    if engine is None:
        ensure_sqlite_directory(settings.database_url)
        engine = make_engine(
            settings.database_url,
            statement_timeout_seconds=settings.request_timeout_seconds,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
    session_factory = make_session_factory(engine)
    app.extensions[EXTENSION] = HubScim(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        protector=make_resource_protector(request_session, REALM),
        rate_limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        statistics=StatisticsKeeper(engine),
        owns_engine=owns_engine,
    )
    app.teardown_appcontext(_close_request_session)
    install_request_deadline(app, settings.request_timeout_seconds)
    install_body_drain(app)
    app.register_blueprint(create_health_blueprint(database_ping(engine)))
    app.register_blueprint(
        create_token_blueprint(app, request_session, settings.oauth_token_ttl_seconds)
    )
    _mount_scim(app, settings)
    state = hub_scim(app)
    access_blueprint = create_access_blueprint(
        request_session, state.protector, state.rate_limiter, REALM
    )
    # Like the SCIM routes: a busy database is a 503 to retry, not the API's generic 500.
    access_blueprint.register_error_handler(OperationalError, _database_busy)
    app.register_blueprint(access_blueprint, url_prefix=ACCESS_API_PREFIX)
    # Request ids, the per-request JSON log line and metrics (docs/observability.md).
    observability.install(app, engine, label_organizations=settings.metrics_org_label)
    # The provisioning log: every SCIM request, written in batches outside its transaction.
    install_request_log(app, settings, session_factory, SCIM_PREFIX)

    # -- the IT console under /admin/<org>/ (connector.console) --
    install_console(app, settings, session_factory)
    return app


def _request_backend() -> Backend:
    """This request's organization, through Hub's write path (:mod:`connector.provisioning`).

    The cause each write is audited with is this request's credential and
    request line (docs/rules.md#audit).
    """
    credential: AuthenticatedCredential | None = g.get("hub_scim_credential")
    if credential is None:
        raise UnauthorizedException()
    cause = Cause(
        actor=f"scim:{credential.credential_id}", reason=f"{request.method} {request.path}"
    )
    return ScimWrites(request_session(), credential.org_id, cause, _request_schemas())


def _request_schemas() -> ServedSchemas:
    """The schemas this request's organization is served: core, and its declared extensions."""
    served: ServedSchemas | None = g.get("hub_scim_schemas")
    if served is None:
        credential: AuthenticatedCredential | None = g.get("hub_scim_credential")
        if credential is None:
            raise UnauthorizedException()
        served = org_schemas(request_session(), credential.org_id, credential.schema_version)
        g.hub_scim_schemas = served
    return served


def _mount_scim(app: Flask, settings: Settings) -> None:
    blueprint = create_blueprint(
        _request_backend,
        settings.scim,
        publications=hub_publications(request_session, request_org_id),
        schemas=_request_schemas,
    )
    blueprint.after_request(_count_committed_write)
    # On the blueprint, so that it wins over the SCIM layer's catch-all 500.
    blueprint.register_error_handler(OperationalError, _database_busy)
    # And over its SCIMException handler: a deadline the SCIM layer finds
    # passed (between PATCH steps, in a Bulk) is asked to retry, as any other.
    blueprint.register_error_handler(DeadlineExceededException, past_deadline_response)
    # Authentication runs before anything else of the SCIM layer, so that
    # nothing is parsed for a caller without a credential.
    blueprint.before_request_funcs.setdefault(None, []).insert(0, _authenticate_scim_request)
    app.register_blueprint(blueprint, url_prefix=SCIM_PREFIX)
    register_scim_error_handlers(app, SCIM_PREFIX, settings.scim.www_authenticate)
    app.register_error_handler(OperationalError, _database_busy)


def _count_committed_write(response: Response) -> Response:
    if request.method in _WRITE_METHODS and response.status_code < 400:
        hub_scim().statistics.write_committed()
    return response


def _database_busy(error: OperationalError) -> Response:
    """A database that stayed locked or unreachable past its timeout: 503, retry later.

    On SQLite one writer holds the lock at a time and others wait up to the
    busy timeout; a very long write (a 1,000-operation Bulk) can outlast it.
    Nothing was written (the transaction rolled back), and a 503 with
    ``Retry-After`` is what Okta and Entra retry, unlike a 500.
    """
    if Deadline.passed():
        # The statement was stopped at the request's deadline (SQLite's
        # progress handler, PostgreSQL's statement_timeout).
        return past_deadline_response(DeadlineExceededException())
    logger.warning("database unavailable: %s", error.orig)
    if not request.path.startswith(SCIM_PREFIX):
        response = Response(
            '{"error": "unavailable", "detail": "The database is busy; retry shortly."}',
            status=503,
            mimetype="application/json",
        )
    else:
        response = error_response(
            SCIMException.from_error(
                Error(status=503, detail="The directory is busy; retry shortly.")
            )
        )
    response.headers["Retry-After"] = "5"
    return response


def _authenticate_scim_request() -> Response | None:
    """Require a usable ``scim`` credential (RFC 6750 section 3); rate-limit it."""
    state = hub_scim()
    try:
        credential = acquire_credential(state.protector, Scope.SCIM, request)
    except OAuth2Error as error:
        return _authentication_error(error)
    retry_after = state.rate_limiter.acquire(credential.credential_id)
    if retry_after is not None:
        response = error_response(
            SCIMException.from_error(
                Error(status=429, detail="Too many requests for this credential")
            )
        )
        response.headers["Retry-After"] = str(math.ceil(retry_after))
        return response
    g.hub_scim_credential = credential
    return None


def _authentication_error(error: OAuth2Error) -> Response:
    """Authlib's verdict as a SCIM Error (RFC 7644 section 3.12), never as OAuth JSON.

    RFC 6750 section 3: no error code when no credential was sent;
    ``invalid_token`` (401) for an unknown, revoked or expired one;
    ``insufficient_scope`` (403) for a credential of another scope, such as an
    ``access`` credential of Hub's products.
    """
    challenge = f'Bearer realm="{REALM}"'
    exc: SCIMException
    if isinstance(error, MissingAuthorizationError | UnsupportedTokenTypeError):
        exc = UnauthorizedException(
            detail="A bearer token is required: Authorization: Bearer <token>"
        )
    elif isinstance(error, InsufficientScopeError):
        challenge += f', error="insufficient_scope", scope="{Scope.SCIM.value}"'
        exc = ForbiddenException(detail="This credential is not a SCIM provisioning credential")
    else:
        challenge += ', error="invalid_token"'
        exc = UnauthorizedException(detail="The bearer token is invalid, expired or revoked")
    response = error_response(exc)
    response.headers["WWW-Authenticate"] = challenge
    return response


def _install_proxy_handling(app: Flask, settings: Settings) -> None:
    # Middleware runs outermost first: trusted proxy headers, then the
    # transport scheme is recorded, then the public URL rewrites it.
    if settings.public_base_url:
        app.wsgi_app = _PublicBaseUrl(  # type: ignore[method-assign]
            app.wsgi_app, settings.public_base_url
        )
    app.wsgi_app = RecordTransportScheme(app.wsgi_app)  # type: ignore[method-assign]
    if settings.trusted_proxy_count:
        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, settings.trusted_proxy_count, parse_networks(settings.trusted_proxies)
        )


class _PublicBaseUrl:
    """Makes every generated URL (``Location``, ``meta.location``) use the public origin.

    A path in the public base URL is taken as the prefix a reverse proxy strips
    before forwarding (WSGI ``SCRIPT_NAME``).
    """

    def __init__(self, wsgi_app: Callable[..., Any], public_base_url: str) -> None:
        self._wsgi_app = wsgi_app
        parts = urlsplit(public_base_url)
        self._scheme = parts.scheme
        self._host = parts.netloc
        self._script_name = parts.path.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgi.url_scheme"] = self._scheme
        environ["HTTP_HOST"] = self._host
        if self._script_name:
            environ["SCRIPT_NAME"] = self._script_name
        return self._wsgi_app(environ, start_response)
