"""Every module that defines tables, imported so that ``Base.metadata`` is complete.

Alembic's ``env.py`` and the test fixtures import this one module; a module
that adds tables is listed here (``tests/test_migrations.py`` fails when one
is missing).
"""

from __future__ import annotations

from sqlalchemy import MetaData

import connector.derived.tables
import connector.directory.tables
import connector.tenancy.console
import connector.tenancy.tables
import connector.trail.audit
import connector.trail.events
import connector.trail.request_log
import connector.trail.retention
import connector.trail.role_changes
from connector.db.base import Base

TABLE_MODULES = (
    connector.tenancy.tables,
    connector.directory.tables,
    connector.trail.audit,
    connector.trail.events,
    connector.trail.request_log,
    connector.trail.retention,
    connector.trail.role_changes,
    connector.derived.tables,
    connector.tenancy.console,
)


def metadata() -> MetaData:
    """The metadata of every table of the service."""
    return Base.metadata
