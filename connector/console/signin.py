"""Signing in to the console with the organization's own IdP (OpenID Connect), and out.

``/login`` redirects (302) to the issuer's authorization endpoint found by
OpenID Connect Discovery 1.0 (``ISSUER/.well-known/openid-configuration``):
authorization code flow with PKCE (RFC 7636, S256), ``state`` and ``nonce``,
through Authlib's Flask client, which keeps them in the signed cookie and
checks them at ``/callback`` with the ID token's signature, issuer, audience
and expiry (OpenID Connect Core 3.1.3.7). The person must then be an active
staff user of the organization (:mod:`connector.console.identity`); anyone
else gets a 403 page and no session. A session starts with a fresh id in a
cleared cookie, so an id planted before sign-in is never used after it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from flask import Blueprint, g, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError
from werkzeug.wrappers import Response

from connector.admin.auditing import audit_action
from connector.admin.sso import (
    SsoNotConfigured,
    SsoSettings,
    get_sso,
    open_client_secret,
    redeem_console_link,
)
from connector.console.blueprint import ORG_KEY, SESSION_KEY, safe_next
from connector.console.guard import console_db
from connector.console.identity import SignInRefused, claimed_login, find_staff_user
from connector.console.sessions import BOOTSTRAP_NAME, end_session, start_session
from connector.settings import Settings
from connector.tenancy.sealing import SealingError

SCOPES = "openid email profile"
NEXT_KEY = "console_next"

logger = logging.getLogger(__name__)


class _Clients:
    """Authlib clients per organization, rebuilt when ``sso set`` changes the settings.

    Keeping a client keeps its discovery document and key set, so a sign-in
    costs the IdP only the token exchange.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[int, tuple[tuple[Any, ...], FlaskOAuth2App]] = {}

    def get(self, sso: SsoSettings, client_secret: str) -> FlaskOAuth2App:
        key = (sso.issuer, sso.client_id, sso.updated_at, client_secret)
        with self._lock:
            found = self._clients.get(sso.org_id)
            if found is not None and found[0] == key:
                return found[1]
            name = f"hub_console_{sso.org_id}"
            client = FlaskOAuth2App(
                FlaskIntegration(name),
                name=name,
                client_id=sso.client_id,
                client_secret=client_secret,
                server_metadata_url=sso.discovery_url,
                client_kwargs={"scope": SCOPES, "code_challenge_method": "S256"},
            )
            self._clients[sso.org_id] = (key, client)
            return client


def register(blueprint: Blueprint, settings: Settings) -> None:
    clients = _Clients()
    secret_key = settings.secret_key or ""
    lifetime = settings.console_session_ttl_seconds

    def client_of_org() -> tuple[FlaskOAuth2App | None, Response | None]:
        db = console_db()
        try:
            sso = get_sso(db, g.console_org_id)
            secret = open_client_secret(db, g.console_org_id, secret_key)
        except SsoNotConfigured:
            return None, _page("signin_unconfigured.html", 503)
        except SealingError as error:
            return None, _page("signin_unconfigured.html", 503, problem=str(error))
        return clients.get(sso, secret), None

    @blueprint.get("/login")
    def login() -> Response:
        ended = request.args.get("ended")
        if ended or request.args.get("signed_out"):
            return _page("signed_out.html", 200, ended=ended)
        client, problem = client_of_org()
        if client is None:
            assert problem is not None
            return problem
        target = safe_next(request.args.get("next"), g.console_org_name)
        try:
            response: Response = client.authorize_redirect(
                url_for("console.callback", _external=True)
            )
        except (requests.RequestException, AuthlibBaseError, ValueError, KeyError) as error:
            logger.warning("console sign-in: the IdP's discovery failed: %s", error)
            return _page("idp_unreachable.html", 502)
        if target:
            session[NEXT_KEY] = target
        return response

    @blueprint.get("/callback")
    def callback() -> Response:
        client, problem = client_of_org()
        if client is None:
            assert problem is not None
            return problem
        db = console_db()
        org_id: int = g.console_org_id
        login_name = "unknown"
        try:
            token = client.authorize_access_token()
            claims = token.get("userinfo")
            if not claims:
                raise SignInRefused("the identity provider returned no ID token")
            login_name = claimed_login(claims)
            user = find_staff_user(db, org_id, login_name)
        except (AuthlibBaseError, JoseError, requests.RequestException, ValueError, KeyError) as e:
            reason = _oauth_reason(e)
            return _refused(org_id, login_name, reason)
        except SignInRefused as refusal:
            return _refused(org_id, login_name, str(refusal))
        target = safe_next(session.get(NEXT_KEY), g.console_org_name)
        session.clear()  # a fresh cookie: nothing set before sign-in survives it
        session_id = start_session(
            db,
            org_id,
            user_id=user.user_id,
            user_name=user.user_name,
            lifetime=timedelta(seconds=lifetime),
        )
        audit_action(
            db,
            org_id,
            actor=f"console:{user.user_name}",
            action="console.signed_in",
            target=f"user:{user.user_id}",
            after={"role": user.role.value, "login": login_name},
            reason="signed in with the organization's identity provider",
        )
        db.commit()
        session[SESSION_KEY] = session_id
        session[ORG_KEY] = org_id
        session.permanent = True
        return redirect(target or url_for("console.overview"))

    @blueprint.post("/logout")
    def logout() -> Response:
        db = console_db()
        session_id = session.get(SESSION_KEY)
        if isinstance(session_id, str):
            end_session(db, session_id, "signed out")
            who = g.get("console_principal")
            if who is not None:
                audit_action(
                    db,
                    who.org_id,
                    actor=who.actor,
                    action="console.signed_out",
                    target=f"user:{who.user_id}" if who.user_id else "console:bootstrap",
                    reason="signed out",
                )
            db.commit()
        session.clear()
        return redirect(url_for("console.login", signed_out=1))

    @blueprint.get("/link")
    def link() -> Response:
        # A GET never spends the link (mail scanners and chat previews follow
        # links). The token rides in the query string, never in the path that
        # request logs record, and goes back in the form's body.
        return _page("link.html", 200, token=request.args.get("token", "")[:200])

    @blueprint.post("/link")
    def link_use() -> Response:
        db = console_db()
        org_id: int = g.console_org_id
        token = request.form.get("token", "")
        if not token or not redeem_console_link(db, org_id, token):
            db.commit()  # the refusal's audit entry
            return _page(
                "signin_refused.html",
                403,
                reason="this sign-in link is unknown, already used or expired, or the "
                "organization's IdP has provisioned an Owner (sign in with the IdP)",
            )
        session.clear()
        session_id = start_session(
            db,
            org_id,
            user_id=None,
            user_name=BOOTSTRAP_NAME,
            lifetime=timedelta(seconds=lifetime),
            bootstrap=True,
        )
        db.commit()
        session[SESSION_KEY] = session_id
        session[ORG_KEY] = org_id
        session.permanent = True
        return redirect(url_for("console.overview"))


def _oauth_reason(error: Exception) -> str:
    description = getattr(error, "description", None) or getattr(error, "error", None)
    kind = type(error).__name__
    if kind == "MismatchingStateError":
        return "the sign-in response does not match a sign-in started here (replayed or forged)"
    return f"the identity provider's answer was refused ({kind}: {description or error})"


def _refused(org_id: int, login_name: str, reason: str) -> Response:
    db = console_db()
    db.rollback()
    audit_action(
        db,
        org_id,
        actor=f"console:{login_name}",
        action="console.sign_in_refused",
        target="console:sign-in",
        reason=reason,
    )
    db.commit()
    session.clear()
    # Who was refused is in the audit trail; the log keeps no address.
    logger.info("console sign-in refused: %s", reason)
    return _page("signin_refused.html", 403, reason=reason)


def _page(template: str, status: int, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")
