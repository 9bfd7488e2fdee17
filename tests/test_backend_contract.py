"""The storage contract (tests/backend_contract.py) run against every Backend implementation.

- ``SqlBackend``: the directory store alone, on SQLite and PostgreSQL;
- ``ScimWrites``: Hub's write path (store, access recompute, journal), with
  its cause, on SQLite and PostgreSQL;
- ``FakeBackend``: the in-memory backend of the protocol layer's own tests.

The SQL implementations are watched through the statements their engine
runs: membership reads are statements on ``group_members``; document writes
are an UPDATE of ``scim_resources.document`` or any write of the attribute
value index.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from connector.db.engine import make_session_factory
from connector.directory.store import SqlBackend
from connector.provisioning.writes import ScimWrites
from connector.tenancy.tables import Organization
from connector.trail.cause import Cause
from tests.backend_contract import BackendContract, Observed, OpenBackend
from tests.fake_backend import FakeBackend, FakeStore

OpenSession = Callable[[], Session]

_MEMBER_TABLE = re.compile(r"\bgroup_members\b")
# A write is the statement, or one of its ``WITH`` clauses (``WITH updated AS (UPDATE ...``).
_WRITE = r"(?:^|\bAS \()"
_DOCUMENT_UPDATE = re.compile(_WRITE + r"UPDATE scim_resources SET (?P<set>.*?)(?: WHERE |$)")
_INDEX_WRITE = re.compile(_WRITE + r"(INSERT INTO|UPDATE|DELETE FROM) scim_attribute_values\b")


class StatementProbe:
    """Watches the statements an engine runs, and sorts out what the contract asks about."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def watch(self) -> Iterator[Observed]:
        seen = Observed()

        def record(*args: Any) -> None:
            statement = " ".join(str(args[2]).split())
            if _MEMBER_TABLE.search(statement):
                seen.member_reads += statement.startswith("SELECT")
            updated = _DOCUMENT_UPDATE.search(statement)
            if (updated and "document" in updated["set"]) or _INDEX_WRITE.search(statement):
                seen.document_writes += 1

        event.listen(self.engine, "before_cursor_execute", record)
        try:
            yield seen
        finally:
            event.remove(self.engine, "before_cursor_execute", record)


def new_organization(engine: Engine) -> int:
    with make_session_factory(engine)() as session:
        organization = Organization(name=f"org-{os.urandom(8).hex()}")
        session.add(organization)
        session.commit()
        return organization.id


@pytest.fixture
def open_session(engine: Engine) -> Iterator[OpenSession]:
    """Sessions of the test's engine, each rolled back and closed when the test ends."""
    factory = make_session_factory(engine)
    opened: list[Session] = []

    def open_one() -> Session:
        session = factory()
        opened.append(session)
        return session

    yield open_one
    for session in opened:
        session.rollback()
        session.close()


class TestSqlBackend(BackendContract):
    """The directory store as the protocol layer's backend, for a directory nothing follows."""

    @pytest.fixture
    def open_backend(self, open_session: OpenSession, org_id: int) -> OpenBackend:
        return lambda: SqlBackend(open_session(), org_id)

    @pytest.fixture
    def open_other_tenant(self, open_session: OpenSession, engine: Engine) -> OpenBackend:
        other = new_organization(engine)
        return lambda: SqlBackend(open_session(), other)

    @pytest.fixture
    def probe(self, engine: Engine) -> StatementProbe:
        return StatementProbe(engine)


class TestScimWrites(BackendContract):
    """Hub's write path: the same contract, with access derived and journaled beside it."""

    cause = Cause("scim:contract", "the storage contract suite")

    @pytest.fixture
    def open_backend(self, open_session: OpenSession, org_id: int) -> OpenBackend:
        return lambda: ScimWrites(open_session(), org_id, self.cause)

    @pytest.fixture
    def open_other_tenant(self, open_session: OpenSession, engine: Engine) -> OpenBackend:
        other = new_organization(engine)
        return lambda: ScimWrites(open_session(), other, self.cause)

    @pytest.fixture
    def probe(self, engine: Engine) -> StatementProbe:
        return StatementProbe(engine)


class TestFakeBackend(BackendContract):
    """The protocol layer's in-memory backend: one store, one tenant, nothing to watch."""

    tenants = False
    observable_storage = False

    @pytest.fixture
    def open_backend(self) -> OpenBackend:
        store = FakeStore()
        return lambda: FakeBackend(store)
