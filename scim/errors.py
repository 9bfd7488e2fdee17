"""Every error on a SCIM route becomes a SCIM Error document (RFC 7644 section 3.12).

One place maps scim2-models' :class:`~scim2_models.SCIMException` hierarchy,
pydantic validation errors, Werkzeug's HTTP errors (including the 404 and 405
that routing raises before any blueprint is chosen) and unexpected exceptions
to ``application/scim+json`` responses. An unexpected exception is logged and
answered with a generic 500 that carries no detail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    NotFoundException,
    PayloadTooLargeException,
    SCIMException,
)
from werkzeug.exceptions import HTTPException

SCIM_CONTENT_TYPE = "application/scim+json"

logger = logging.getLogger(__name__)

_GENERIC_DETAILS = {
    405: "The method is not allowed on this endpoint",
    415: "Content-Type must be application/scim+json or application/json",
    500: "The service provider could not complete the request",
}


def scim_json_response(
    document: Mapping[str, Any] | None,
    status: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An ``application/scim+json`` response (RFC 7644 section 3.1)."""
    body = "" if document is None else json.dumps(document, ensure_ascii=False)
    response = Response(body, status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def exception_from_validation_error(error: ValidationError) -> SCIMException:
    """The SCIM exception a pydantic validation error stands for (RFC 7644 section 3.12).

    scim2-models names the ``scimType`` (``invalidSyntax`` for a payload that
    does not follow the request schema, ``invalidValue`` for a value that does
    not fit its attribute, or the type its own exceptions carry).
    """
    errors = Error.from_validation_errors(error)
    first = errors[0] if errors else Error(status=400, scim_type="invalidValue")
    if first.status is None or first.status < 400:
        first = first.model_copy(update={"status": 400})
    return SCIMException.from_error(first)


def error_response(exc: SCIMException, www_authenticate: str | None = None) -> Response:
    """The Error document of a SCIM exception, with the headers its status calls for."""
    error = exc.to_error()
    status = error.status or exc.status
    headers: dict[str, str] = dict(exc.context.get("headers") or {})
    if status == 401 and www_authenticate and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = www_authenticate
    document = error.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    document["status"] = str(status)
    return scim_json_response(document, status, headers)


def http_error_response(exc: HTTPException) -> Response:
    """A Werkzeug HTTP error as a SCIM Error, keeping its ``Allow`` header on 405."""
    status = exc.code or 500
    scim_exc: SCIMException
    if status == 404:
        scim_exc = NotFoundException(detail="No SCIM endpoint at this address")
    elif status == 413:
        scim_exc = PayloadTooLargeException(detail="The request body is too large")
    else:
        detail = _GENERIC_DETAILS.get(status) or exc.description or exc.name
        scim_exc = SCIMException.from_error(Error(status=status, detail=detail))
    response = error_response(scim_exc)
    allow = exc.get_response().headers.get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def internal_error_response(exc: BaseException) -> Response:
    """Log an unexpected exception and answer a 500 that reveals nothing about it."""
    logger.error("Unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(SCIMException.from_error(Error(status=500, detail=_GENERIC_DETAILS[500])))


def is_scim_path(path: str, url_prefix: str) -> bool:
    prefix = url_prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def register_scim_error_handlers(
    app: Flask,
    url_prefix: str = "/scim/v2",
    www_authenticate: str | None = 'Bearer realm="scim"',
) -> None:
    """Answer SCIM Errors for what no blueprint can catch, under ``url_prefix`` only.

    Routing raises 404 and 405 before a blueprint is chosen, and the WSGI layer
    may raise 413; both reach only the application's handlers. Elsewhere in
    the application the default handling is kept: an HTTP error is returned
    as it is, and any other exception is re-raised to Flask.
    """

    def handle_http_error(exc: HTTPException) -> Response | HTTPException:
        if not is_scim_path(request.path, url_prefix):
            return exc
        return http_error_response(exc)

    def handle_unexpected(exc: Exception) -> Response:
        if not is_scim_path(request.path, url_prefix):
            raise exc
        if isinstance(exc, SCIMException):
            return error_response(exc, www_authenticate)
        if isinstance(exc, ValidationError):
            return error_response(exception_from_validation_error(exc))
        return internal_error_response(exc)

    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
