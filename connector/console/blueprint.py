"""The console's blueprint: organization, CSRF, session and security headers on every request.

Mounted at ``/admin/<org>/``. Each request opens a database session of its
own (committed by the views that write), resolves the organization by name
(unknown: 404), checks the CSRF token of every POST (Flask-WTF), then the
server-side session (:mod:`connector.console.sessions`): a visitor without a
live session is sent to sign in. Responses carry a Content-Security-Policy
without inline script, ``frame-ancestors 'none'``, ``X-Frame-Options``,
``Referrer-Policy`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf, validate_csrf
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.wrappers import Response
from wtforms.validators import ValidationError

from connector.console.guard import allowed, principal
from connector.console.sessions import resolve
from connector.settings import Settings
from connector.tenancy.tables import Organization

CONSOLE_PREFIX = "/admin/<org_name>"
SESSION_COOKIE = "hub_scim_console"
SESSION_KEY = "console_session"
ORG_KEY = "console_org"
# Routes a visitor without a session may reach.
PUBLIC_ENDPOINTS = frozenset(
    {"console.login", "console.callback", "console.link", "console.link_use", "console.static"}
)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class _ConsoleCookie(SecureCookieSessionInterface):
    """Flask's signed cookie, ``Secure`` whenever the request came over HTTPS (or via a proxy)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def make_blueprint(settings: Settings, session_factory: sessionmaker[Session]) -> Blueprint:
    blueprint = Blueprint(
        "console",
        __name__,
        url_prefix=CONSOLE_PREFIX,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    idle = timedelta(seconds=settings.console_idle_timeout_seconds)

    @blueprint.url_value_preprocessor
    def _take_org(endpoint: str | None, values: dict[str, Any] | None) -> None:
        g.console_org_name = (values or {}).pop("org_name", None)

    @blueprint.url_defaults
    def _give_org(endpoint: str, values: dict[str, Any]) -> None:
        if "org_name" not in values and g.get("console_org_name") is not None:
            values["org_name"] = g.console_org_name

    @blueprint.before_request
    def _open() -> Response | None:
        if not settings.secret_key:
            return _page("unavailable.html", 503)
        db = session_factory()
        g.console_db = db
        org = db.execute(
            select(Organization.id, Organization.name).where(
                Organization.name == g.console_org_name
            )
        ).first()
        if org is None:
            return _page("not_found.html", 404)
        g.console_org_id = org.id
        if request.method == "POST":
            try:
                validate_csrf(request.form.get("csrf_token"))
            except ValidationError as error:
                return _page("csrf.html", 400, reason=str(error))
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        session_id = session.get(SESSION_KEY)
        if not isinstance(session_id, str) or session.get(ORG_KEY) != org.id:
            return _to_login()
        resolved = resolve(db, session_id, org.id, org.name, idle)
        db.commit()
        if resolved.principal is None:
            session.clear()
            return _to_login(resolved.ended)
        g.console_principal = resolved.principal
        return None

    @blueprint.teardown_request
    def _close(_error: BaseException | None) -> None:
        db: Session | None = g.pop("console_db", None)
        if db is not None:
            db.close()

    @blueprint.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.endpoint != "console.static":
            response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.app_context_processor
    def _template_globals() -> dict[str, Any]:
        return {
            "csrf_token": generate_csrf,
            "may": allowed,
            "me": g.get("console_principal"),
            "org_name": g.get("console_org_name"),
        }

    return blueprint


def _page(template: str, status: int, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def _to_login(reason: str | None = None) -> Response:
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("console.login", next=target or None, ended=reason))


def safe_next(target: str | None, org_name: str) -> str | None:
    """``target`` if it is a path under this organization's console, else None: no open redirect."""
    if not target:
        return None
    prefix = f"/admin/{org_name}/"
    path = target.split("?", 1)[0]
    # A browser reads %2e%2e as "..": no escape in the path, and no dot segment.
    if (
        not target.startswith(prefix)
        or "//" in target
        or "\\" in target
        or "%" in path
        or any(ord(char) < 0x20 for char in target)
        or any(segment in (".", "..") for segment in path.split("/"))
    ):
        return None
    return target


def install(app: Flask, settings: Settings, session_factory: sessionmaker[Session]) -> None:
    """Mount the console on ``app``: its cookie settings, its blueprint and its routes."""
    # Imported here: they import this module's helpers.
    from connector.console import pages, signin

    if settings.secret_key:
        app.secret_key = settings.secret_key
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/admin/",
        SESSION_COOKIE_SECURE=bool(
            settings.public_base_url and settings.public_base_url.startswith("https://")
        ),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_ttl_seconds),
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which expires itself
    )
    app.session_interface = _ConsoleCookie()
    blueprint = make_blueprint(settings, session_factory)
    for register in (signin.register, pages.register):
        register(blueprint, settings)
    app.register_blueprint(blueprint)


RouteRegistrar = Callable[[Blueprint, Settings], None]
__all__ = ["install", "principal", "safe_next"]
