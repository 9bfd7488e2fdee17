"""Reading SCIM requests off the wire: media types, body limits, JSON and ETags.

RFC 7644 section 3.1 names ``application/scim+json`` and allows
``application/json``; RFC 7644 section 3.14 carries versions as weak ETags in
``meta.version`` and in the ``ETag``, ``If-Match`` and ``If-None-Match``
headers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request
from scim2_models import InvalidSyntaxException, PayloadTooLargeException, SCIMException
from werkzeug.datastructures import ETags
from werkzeug.http import quote_etag, unquote_etag

from scim.limits import MAX_JSON_DEPTH, check_json_depth

ACCEPTED_MEDIA_TYPES = frozenset({"application/scim+json", "application/json"})


class UnsupportedMediaTypeException(SCIMException):
    """A body whose Content-Type is neither SCIM nor plain JSON (RFC 7231 section 6.5.13).

    RFC 7644 section 3.12 lets a service provider answer any HTTP status; 415
    tells the client exactly what is wrong, where ``invalidSyntax`` would send
    it looking for a fault in a body that may well be valid.
    """

    status = 415
    _default_detail = "Content-Type must be application/scim+json or application/json"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json_body(request: Request, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The request body parsed as JSON, within ``max_bytes`` and ``max_depth`` levels of nesting.

    The declared ``Content-Length`` is checked before anything is read, and a
    chunked body is read only up to one byte past the limit, so an oversized
    request costs no more than the limit. A missing ``Content-Type`` is
    tolerated; a different one answers 415.
    """
    if request.mimetype and request.mimetype not in ACCEPTED_MEDIA_TYPES:
        raise UnsupportedMediaTypeException()
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLargeException(
            detail=f"The request body exceeds the limit of {max_bytes} bytes"
        )
    raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLargeException(
            detail=f"The request body exceeds the limit of {max_bytes} bytes"
        )
    if not raw.strip():
        raise InvalidSyntaxException(detail="The request body is empty")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidSyntaxException(detail="The request body is not valid JSON") from exc
    # Validation and Bulk's reference resolution walk the body recursively.
    check_json_depth(body, max_depth)
    return body


_WEAK_NUMBER = re.compile(r'W/"[0-9]+"')


def weak_etag(version: str) -> str:
    """The weak entity tag of a stored version (RFC 7644 section 3.14, RFC 7232 section 2.3).

    A backend may keep its version as the bare opaque value or as the ETag
    itself; both give the same header.
    """
    if _WEAK_NUMBER.fullmatch(version):
        return version  # already the weak tag of a number, as backends keep it
    opaque, _ = unquote_etag(version)
    return quote_etag(opaque or version, weak=True)


def opaque_version(version: str) -> str:
    opaque, _ = unquote_etag(version)
    return opaque or version


def etag_matches(tags: ETags, version: str) -> bool:
    """Whether ``If-Match`` or ``If-None-Match`` names this version, by weak comparison.

    SCIM versions are weak validators (RFC 7644 section 3.14), so strong
    comparison would never match; ``*`` matches any existing resource.
    """
    return tags.star_tag or tags.contains_weak(opaque_version(version))
