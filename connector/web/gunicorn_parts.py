"""Gunicorn's worker and access logger, as the service needs them.

- :class:`ScimThreadWorker`: the threaded worker, whose own refusals (a
  request line or header over gunicorn's limits, a malformed request) are
  SCIM Error documents instead of gunicorn's HTML page, so that every answer
  an IdP gets is one it can read (RFC 7644 section 3.12).
- :class:`RedactingLogger`: the access log without secrets: a refused
  ``?access_token=...`` or ``client_secret=...`` would otherwise be written
  in clear to the service log.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http.errors import (
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidRequestLine,
    InvalidRequestMethod,
    LimitRequestHeaders,
    LimitRequestLine,
)
from gunicorn.workers.gthread import ThreadWorker

SECRET_PARAMETERS = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "token",
    "password",
    "secret",
    "code",
)
"""Query-string parameters whose values never reach the access log."""

_SECRET_VALUE = re.compile(
    r"(?i)(?P<name>(?:^|[?&;])(?:" + "|".join(SECRET_PARAMETERS) + r")=)[^&;\s#]*"
)
_REDACTED = "[redacted]"


def redact_query(text: str) -> str:
    """``a=1&client_secret=xyz`` as ``a=1&client_secret=[redacted]``; also in a request line."""
    return _SECRET_VALUE.sub(lambda match: match.group("name") + _REDACTED, text)


class RedactingLogger(Logger):  # type: ignore[misc]
    """Gunicorn's logger; the request line, query string and credentials headers are redacted."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_query(atoms[key])
        for header in ("{authorization}i", "{cookie}i", "{proxy-authorization}i"):
            if header in atoms:
                atoms[header] = _REDACTED
        return atoms


_REFUSALS: tuple[tuple[type[Exception], int, str, str], ...] = (
    (
        LimitRequestLine,
        414,
        "URI Too Long",
        "The request line is too long; send a long filter in the body of POST /.search "
        "(RFC 7644 section 3.4.3)",
    ),
    (
        LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        "A request header field is too long, or there are too many",
    ),
    (
        InvalidRequestLine | InvalidRequestMethod | InvalidHTTPVersion,
        400,
        "Bad Request",
        "The request line is not valid HTTP/1.1",
    ),
    (
        InvalidHeader | InvalidHeaderName,
        400,
        "Bad Request",
        "A request header is not valid HTTP/1.1",
    ),
)


def scim_error_bytes(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying a SCIM Error; the connection closes after it."""
    body = json.dumps(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": str(status),
            "detail": detail,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/scim+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    return head + body


class ScimThreadWorker(ThreadWorker):  # type: ignore[misc]
    """Gunicorn's ``gthread`` worker, refusing malformed or oversized requests in SCIM."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        for kind, status, reason, detail in _REFUSALS:
            if isinstance(exc, kind):
                self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
                try:
                    util.write_nonblock(client, scim_error_bytes(status, reason, detail))
                except OSError:
                    self.log.debug("Failed to send error message.")
                return
        super().handle_error(req, client, addr, exc)
