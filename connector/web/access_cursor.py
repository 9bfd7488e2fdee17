"""The opaque cursor of ``GET /api/v1/access``: where the next page of users starts.

Products pass it back unchanged (docs/reconciliation.md). It holds the
organization and the last user id served, as base64url JSON with a check
digest, so a cursor that was cut, edited or made up is refused with 400
rather than read as some other place, and one issued to another
organization is refused too. The check is not a secret: a cursor grants
nothing, since the organization read is always the credential's, never the
cursor's, and the cursor only says where in that organization's id order
to resume.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

_VERSION = 1
_CHECK_LABEL = b"hub-scim access snapshot cursor v1:"
_CHECK_BYTES = 8
MAX_CURSOR_LENGTH = 300
MAX_ID_LENGTH = 36  # scim_resources.id


class CursorError(ValueError):
    """A cursor this service did not issue to this organization, or altered since."""


@dataclass(frozen=True)
class AccessCursor:
    """Resume after user ``after`` of organization ``org_id``."""

    org_id: int
    after: str


def _check(body: bytes) -> bytes:
    return hashlib.sha256(_CHECK_LABEL + body).digest()[:_CHECK_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_cursor(cursor: AccessCursor) -> str:
    body = json.dumps(
        {"v": _VERSION, "o": cursor.org_id, "a": cursor.after}, separators=(",", ":")
    ).encode()
    return f"{_b64(body)}.{_b64(_check(body))}"


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def decode_cursor(text: str, org_id: int) -> AccessCursor:
    """The cursor ``text`` stands for; raises :class:`CursorError` unless it is one this
    service issued to ``org_id``, unchanged."""
    if len(text) > MAX_CURSOR_LENGTH or text.count(".") != 1:
        raise CursorError("not a cursor of this API")
    encoded_body, encoded_check = text.split(".")
    try:
        body, check = _unb64(encoded_body), _unb64(encoded_check)
        data: Any = json.loads(body)
    except (binascii.Error, ValueError):
        raise CursorError("not a cursor of this API") from None
    if not hmac.compare_digest(check, _check(body)):
        raise CursorError("the cursor was altered")
    if (
        not isinstance(data, dict)
        or data.keys() != {"v", "o", "a"}
        or data["v"] != _VERSION
        or type(data["o"]) is not int
        or not isinstance(data["a"], str)
        or not 0 < len(data["a"]) <= MAX_ID_LENGTH
        or not (data["a"].isascii() and data["a"].isprintable())
    ):
        raise CursorError("not a cursor of this API")
    if data["o"] != org_id:
        raise CursorError("the cursor belongs to another organization")
    return AccessCursor(data["o"], data["a"])
