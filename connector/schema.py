"""Every module that defines tables, imported so that ``Base.metadata`` is complete.

Alembic's ``env.py`` and the test fixtures import this one module; a module
that adds tables is listed here (``tests/test_migrations.py`` fails when one
is missing).
"""

from __future__ import annotations

from sqlalchemy import MetaData

import connector.audit
import connector.events
import connector.models
import connector.provisioning.tables
import connector.store.tables
from connector.db import Base

TABLE_MODULES = (
    connector.models,
    connector.store.tables,
    connector.audit,
    connector.events,
    connector.provisioning.tables,
)


def metadata() -> MetaData:
    """The metadata of every table of the service."""
    return Base.metadata
