"""Fixtures build on each other: database_url -> engine -> org_id -> app -> client -> scim.

Database fixtures live in ``tests/fixtures_db.py``; the app, credential and
SCIM-client fixtures in ``tests/fixtures_app.py``.
"""

import pytest

# The storage contract suite is a module of tests that other modules subclass:
# its asserts explain their failures only if pytest rewrites them too.
pytest.register_assert_rewrite("tests.backend_contract")

pytest_plugins = [
    "tests.fixtures_db",
    "tests.fixtures_app",
    "tests.fixtures_fake",
    "tests.fixtures_console",
]
