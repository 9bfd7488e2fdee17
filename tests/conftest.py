"""Fixtures build on each other: database_url -> engine -> org_id -> app -> client -> scim.

Database fixtures live in ``tests/fixtures_db.py``; the app, credential and
SCIM-client fixtures in ``tests/fixtures_app.py``.
"""

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_app", "tests.fixtures_fake"]
