"""Protocol tests on the in-memory backend: protocol_settings -> fake_app -> api, store.

A test module that needs other limits overrides ``protocol_settings``.
"""

from __future__ import annotations

from typing import Any

import pytest

from scim.settings import ScimSettings
from tests.fake_backend import ScimClient, make_scim_app


@pytest.fixture
def protocol_settings() -> ScimSettings:
    return ScimSettings()


@pytest.fixture
def fake_app(protocol_settings: ScimSettings) -> tuple[Any, Any]:
    return make_scim_app(protocol_settings)


@pytest.fixture
def api(fake_app: tuple[Any, Any]) -> ScimClient:
    """A SCIM client of the blueprint mounted on the in-memory backend."""
    return ScimClient(fake_app[0])


@pytest.fixture
def store(fake_app: tuple[Any, Any]) -> Any:
    """The in-memory backend's data, to check what a request stored."""
    return fake_app[1].store
