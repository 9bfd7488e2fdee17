"""Where older scenarios import the IdP and Hub helpers from; they live in tests/scenarios.py."""

from __future__ import annotations

from tests.scenarios import (
    GROUP_SCHEMA,
    OWNERS_MAPPING,
    PATCH_SCHEMA,
    USER_SCHEMA,
    Hub,
    Idp,
)

__all__ = ["GROUP_SCHEMA", "OWNERS_MAPPING", "PATCH_SCHEMA", "USER_SCHEMA", "Hub", "Idp"]
