"""Liveness and readiness probes for load balancers and orchestrators.

``/healthz`` answers as long as the process serves requests; ``/readyz``
also checks that the database answers. Neither needs a credential, and neither
says more than ok or not: a probe's body is public.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Response, jsonify
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)


def database_ping(engine: Engine) -> Callable[[], None]:
    """A check that raises unless the database runs ``SELECT 1``."""

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return ping


def create_health_blueprint(ping: Callable[[], None]) -> Blueprint:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @blueprint.get("/readyz")
    def readyz() -> tuple[Response, int]:
        try:
            ping()
        except SQLAlchemyError:
            logger.exception("readiness check: the database does not answer")
            return jsonify(status="unavailable"), 503
        return jsonify(status="ok"), 200

    return blueprint
