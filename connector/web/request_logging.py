"""The provisioning log's hook on the SCIM routes: one logged request per response.

Runs after the response is built (``after_request``), outside the request's
transaction, and hands the row to a
:class:`~connector.trail.request_recorder.RequestRecorder`, which writes it
later. A request is logged when its organization is known: from the
credential that authenticated it, else, for a refused one (401 revoked or
expired, 403 of another scope, 429), from the bearer token it presented. An
unknown token belongs to no organization and is not logged anywhere.

What is kept (docs/provisioning-log.md): method, path and query, status,
``scimType`` and ``detail`` of a SCIM Error (RFC 7644 section 3.12), duration,
the User or Group the request touched, and the IdP's request id header. Never
the body, never the ``Authorization`` header. Nothing here can fail the
request: any error is logged and the response goes out as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, g, request
from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.db.engine import make_engine, read_only
from connector.settings import Settings
from connector.tenancy.credentials import AuthenticatedCredential, find_credential_state
from connector.trail.request_log import LoggedRequest
from connector.trail.request_recorder import RequestRecorder

EXTENSION = "hub_scim_request_log"

# Headers IdPs send to identify a request, first match kept. Microsoft's
# services take a caller-generated ``client-request-id`` GUID; Okta names its
# requests ``X-Okta-Request-Id``; ``X-Request-Id`` is the common convention
# (and what a proxy in front of the service may add).
REQUEST_ID_HEADERS = ("client-request-id", "X-Okta-Request-Id", "X-Request-Id", "Request-Id")

_RESOURCE_KINDS = {"Users": "User", "Groups": "Group"}
_STARTED = "hub_scim_request_log_started"

logger = logging.getLogger(__name__)


def install_request_log(
    app: Flask,
    settings: Settings,
    session_factory: Callable[[], Session],
    scim_prefix: str,
    *,
    recorder: RequestRecorder | None = None,
) -> None:
    """Log every request under ``scim_prefix`` of ``app``, unless the log is turned off.

    ``recorder`` defaults to one with the configured retention, writing
    through an engine of its own: its batches take no connection from the
    requests' pool, and the requests' engine sees only the requests' statements.
    ``session_factory`` (the requests') serves the lookup of a refused request's token.
    """
    if recorder is None:
        if not settings.request_log:
            return
        recorder = RequestRecorder(
            make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous),
            timedelta(days=settings.request_log_retention_days),
            owns_engine=True,
        )
    hook = _RequestLogHook(recorder, scim_prefix, session_factory)
    app.before_request(hook.start)
    app.after_request(hook.finish)
    app.extensions[EXTENSION] = recorder


def request_recorder(app: Flask) -> RequestRecorder | None:
    """The recorder of ``app``'s provisioning log; None when the log is off."""
    recorder: RequestRecorder | None = app.extensions.get(EXTENSION)
    return recorder


class _RequestLogHook:
    def __init__(
        self,
        recorder: RequestRecorder,
        scim_prefix: str,
        session_factory: Callable[[], Session],
    ) -> None:
        self._recorder = recorder
        self._prefix = scim_prefix
        self._session_factory = session_factory

    def start(self) -> None:
        if request.path.startswith(self._prefix):
            g.setdefault(_STARTED, time.perf_counter())

    def finish(self, response: Response) -> Response:
        started: float | None = g.pop(_STARTED, None)
        if started is None:
            return response
        try:
            logged = self._logged(response, (time.perf_counter() - started) * 1000)
            if logged is not None:
                self._recorder.record(logged)
        except Exception:  # the log never costs the IdP its answer
            logger.exception(
                "provisioning log: could not record %s %s", request.method, request.path
            )
        return response

    def _logged(self, response: Response, duration_ms: float) -> LoggedRequest | None:
        owner = self._owner(response)
        if owner is None:
            return None
        org_id, credential_id = owner
        status = response.status_code
        kind, resource_id = self._resource(response)
        scim_type, detail = _error_of(response) if status >= 400 else (None, None)
        return LoggedRequest(
            org_id=org_id,
            at=utcnow(),
            credential_id=credential_id,
            method=request.method,
            path=_request_target(),
            status=status,
            duration_ms=round(duration_ms, 2),
            scim_type=scim_type,
            detail=detail,
            resource_kind=kind,
            resource_id=resource_id,
            idp_request_id=_idp_request_id(),
        )

    def _owner(self, response: Response) -> tuple[int, str] | None:
        """The organization and credential the request acted for, if any is known."""
        credential: AuthenticatedCredential | None = g.get("hub_scim_credential")
        if credential is not None:
            return credential.org_id, credential.credential_id
        if response.status_code < 400:
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        # Only refused requests get here; their own session may be gone or broken.
        with self._session_factory() as session:
            read_only(session)
            row = find_credential_state(session, token)
        return None if row is None else (row.org_id, row.id)

    def _resource(self, response: Response) -> tuple[str | None, str | None]:
        segments = request.path[len(self._prefix) :].strip("/").split("/")
        kind = _RESOURCE_KINDS.get(segments[0])
        if kind is None:
            return None, None
        if len(segments) == 2 and segments[1] != ".search":
            return kind, segments[1]
        if len(segments) == 1 and request.method == "POST" and response.status_code == 201:
            location = response.headers.get("Location", "")
            return kind, location.rstrip("/").rsplit("/", 1)[-1] or None
        return kind, None


def _error_of(response: Response) -> tuple[str | None, str | None]:
    """``scimType`` and ``detail`` of a SCIM Error response (RFC 7644 section 3.12)."""
    if not response.is_json:
        return None, None
    document: Any = response.get_json(silent=True)
    if not isinstance(document, dict):
        return None, None
    scim_type = document.get("scimType")
    detail = document.get("detail")
    return (
        scim_type if isinstance(scim_type, str) else None,
        detail if isinstance(detail, str) else None,
    )


def _request_target() -> str:
    """Path and query; a token sent in the query (RFC 6750 section 2.3) left out."""
    if "access_token" not in request.args:
        return request.full_path.rstrip("?")
    kept = [
        (name, value) for name, value in request.args.items(multi=True) if name != "access_token"
    ]
    return request.path + ("?" + urlencode(kept) if kept else "")


def _idp_request_id() -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = request.headers.get(name)
        if value:
            return value.strip()
    return None
