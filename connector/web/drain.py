"""Reads and discards what a request's body left unread, so its connection can serve the next.

Okta and Entra ID send their next request on the same keep-alive connection.
Whenever an answer is built without reading the whole body (a 413 decided
from ``Content-Length``, a refusal before the body was parsed, a ``GET``
that came with a body, an unknown route), the rest of it is still on the
connection, and the next request would be read from the middle of it. Up to
:data:`DRAIN_LIMIT_BYTES` of it is read and thrown away after the answer is
built; when more is left, the answer says ``Connection: close`` so that no
client reuses the connection.
"""

from __future__ import annotations

from typing import IO

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_input_stream

DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024


def install_body_drain(app: Flask) -> None:
    @app.after_request
    def _drain_unread_body(response: Response) -> Response:
        if not _has_body(request.environ):
            return response
        if not discard_rest(_body_stream(), DRAIN_LIMIT_BYTES):
            response.headers["Connection"] = "close"
        return response


def _body_stream() -> IO[bytes]:
    """The body as the app read it, bounded by its length: reading on gets only what is left.

    A body refused for its size was never opened: a fresh bounded stream
    over it, without the size limit, reads it from its start.
    """
    try:
        return request.stream
    except HTTPException:
        return get_input_stream(request.environ, max_content_length=None)


def _has_body(environ: dict[str, object]) -> bool:
    length = environ.get("CONTENT_LENGTH")
    if isinstance(length, str) and length.strip() not in ("", "0"):
        return True
    encoding = environ.get("HTTP_TRANSFER_ENCODING")
    return isinstance(encoding, str) and "chunked" in encoding.lower()


def discard_rest(stream: IO[bytes], limit: int) -> bool:
    """Read what is left of ``stream``, at most ``limit`` bytes; whether it reached the end."""
    discarded = 0
    while discarded < limit:
        try:
            chunk = stream.read(_CHUNK)
        except (OSError, ValueError, HTTPException):
            return False
        if not chunk:
            return True
        discarded += len(chunk)
    return False
