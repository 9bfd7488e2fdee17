"""Every request gets a deadline: ``HUB_SCIM_REQUEST_TIMEOUT_SECONDS`` from its start.

Gunicorn's ``timeout`` does not bound a request in a threaded worker (it
watches the worker's main loop, not its threads), so the bound is kept here:
the deadline runs for the whole request (:class:`scim.limits.Deadline`),
SQLite interrupts a statement past it and stops waiting for its write lock
at it (:mod:`connector.db.engine`), PostgreSQL cancels one that runs
longer (``statement_timeout``), and the SCIM layer checks it between steps of
a PATCH. A request past its deadline answers 503 with ``Retry-After``;
nothing it did is kept (its transaction rolls back).
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from scim.errors import error_response
from scim.limits import Deadline, DeadlineExceededException

RETRY_AFTER_SECONDS = 30
"""Deadline answers ask the IdP to come back after this long, when the load may have passed."""


def install_request_deadline(app: Flask, seconds: float) -> None:
    """Start the deadline before each request, end it after; answer its expiry as a 503."""

    @app.before_request
    def _start() -> None:
        g.hub_scim_deadline = Deadline.start(seconds)

    @app.teardown_request
    def _stop(_exc: BaseException | None) -> None:
        token = g.pop("hub_scim_deadline", None)
        if token is not None:
            Deadline.stop(token)

    app.register_error_handler(DeadlineExceededException, past_deadline_response)


def past_deadline_response(exc: DeadlineExceededException) -> Response:
    """A SCIM Error on SCIM routes, the access API's JSON elsewhere; 503 with ``Retry-After``."""
    if request.path.startswith("/scim/"):
        response = error_response(exc)
    else:
        response = Response(
            '{"error": "unavailable", "detail": "The request ran past its time limit; '
            'nothing was changed. Retry shortly."}',
            status=503,
            mimetype="application/json",
        )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
