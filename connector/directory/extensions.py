"""The SCIM schemas each organization is served: the core ones and the extensions it declared.

A request learns its organization's ``schema_version`` with its credential
(one primary-key join). Version 0, an organization that declared nothing,
is served :data:`scim.extensions.DEFAULT_SCHEMAS` without any query; another
version reads the declarations once per process and keeps the models built
from them (:func:`scim.extensions.served_schemas`) under ``(org, version)``.
A declaration bumps the version, so every instance sees it on its next request.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.directory.tables import EXTENSIONS
from connector.tenancy.tables import ORGANIZATIONS
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas, served_schemas

CACHED_ORGANIZATIONS = 1024
"""Organizations whose served schemas a process keeps at most; the oldest go first."""

_cache: dict[tuple[int, int], ServedSchemas] = {}
_cache_lock = threading.Lock()


def extension_documents(session: Session, org_id: int) -> list[dict[str, Any]]:
    """The Schema resources the organization declared, by URN."""
    rows = session.execute(
        select(EXTENSIONS.c.document)
        .where(EXTENSIONS.c.org_id == org_id)
        .order_by(EXTENSIONS.c.urn_key)
    )
    return [document for (document,) in rows]


def org_schemas(session: Session, org_id: int, version: int | None = None) -> ServedSchemas:
    """The schemas served to ``org_id``; ``version`` as the credential lookup read it.

    Without ``version`` it is read here (the command line, the admin services).
    """
    if version is None:
        version = (
            session.scalar(
                select(ORGANIZATIONS.c.schema_version).where(ORGANIZATIONS.c.id == org_id)
            )
            or 0
        )
    if version == 0:
        return DEFAULT_SCHEMAS
    found = _cache.get((org_id, version))
    if found is not None:
        return found
    served = served_schemas(extension_documents(session, org_id))
    with _cache_lock:
        if len(_cache) >= CACHED_ORGANIZATIONS:
            _cache.pop(next(iter(_cache)))
        _cache[(org_id, version)] = served
    return served
