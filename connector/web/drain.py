"""Reads and discards the body of a refused request, so that its connection can serve the next one.

A 413 is decided from ``Content-Length`` before the body is read; the body
is still on the connection, and Okta and Entra ID send their next request on
the same keep-alive connection. Up to :data:`DRAIN_LIMIT_BYTES` of it is
read and thrown away after the answer is built; a larger body is left to the
server, which closes the connection.
"""

from __future__ import annotations

from flask import Flask, Response, request

DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024


def install_body_drain(app: Flask) -> None:
    @app.after_request
    def _drain_refused_body(response: Response) -> Response:
        if response.status_code == 413:
            discard_body(request.environ, DRAIN_LIMIT_BYTES)
        return response


def discard_body(environ: dict[str, object], limit: int) -> None:
    stream = environ.get("wsgi.input")
    read = getattr(stream, "read", None)
    if read is None:
        return
    discarded = 0
    while discarded < limit:
        try:
            chunk = read(_CHUNK)
        except (OSError, ValueError):
            return
        if not chunk:
            return
        discarded += len(chunk)
