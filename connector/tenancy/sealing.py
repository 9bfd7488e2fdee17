"""Sealing a secret at rest with the service's key (``HUB_SCIM_SECRET_KEY``).

The OIDC client secret must be usable for the token exchange, so it cannot
be hashed: it is encrypted with Fernet (AES-128-CBC with an HMAC-SHA256, from
``cryptography``, which Authlib already depends on). The Fernet key is
derived from ``HUB_SCIM_SECRET_KEY`` with HKDF-SHA256 and a purpose label, so
the same setting can also sign cookies without the two uses sharing a key.
A database dump alone reveals no secret; the dump and the key together do.
Changing the key makes sealed secrets unreadable: run ``hub-scim sso set`` again.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PURPOSE = b"hub-scim console: OIDC client secret at rest"


class SealingError(ValueError):
    """A sealed value cannot be opened: another key sealed it, or it was altered."""


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(secret_key: str, plaintext: str) -> str:
    """``plaintext`` encrypted and authenticated under a key derived from ``secret_key``."""
    return _fernet(secret_key).encrypt(plaintext.encode("utf-8")).decode("ascii")


def unseal(secret_key: str, sealed: str) -> str:
    """The plaintext of :func:`seal`; raises :class:`SealingError` for another key or tampering."""
    try:
        return _fernet(secret_key).decrypt(sealed.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError):
        raise SealingError(
            "the stored OIDC client secret cannot be decrypted with HUB_SCIM_SECRET_KEY "
            "(was the key changed?): run `hub-scim sso set` again"
        ) from None
