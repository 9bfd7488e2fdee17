"""The engine and session factory, with what each dialect needs to be safe.

Nothing here connects at import time: :func:`make_engine` is called by the app
factory and the CLI with the configured URL.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from scim.limits import Deadline


def _sqlite_pragmas(dbapi_connection: Any, synchronous: str) -> None:
    # WAL lets readers proceed during a write; busy_timeout makes a writer wait
    # for the lock instead of failing with "database is locked"; foreign keys
    # are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL (the default): a change answered to the IdP survives a power loss
    # (the IdP will not send it again); NORMAL could lose the last commits.
    # Cost measured in docs/benchmark.md.
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()
    # Every few thousand virtual-machine steps SQLite asks whether to go on:
    # a statement still running past the request's deadline is interrupted.
    dbapi_connection.set_progress_handler(_past_deadline, _PROGRESS_STEPS)


_PROGRESS_STEPS = 10_000

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer outside any request waits for the write lock."""

_BUSY_TIMEOUT_SET = "hub_scim_busy_timeout_ms"


def _past_deadline() -> int:
    return 1 if Deadline.passed() else 0


READ_ONLY = "hub_scim_read_only"
"""Execution option of a connection whose transaction only reads (see :func:`read_only`)."""


def read_only(session: Session) -> None:
    """Begin ``session``'s transaction as a reader: it takes no write lock, and no round trip.

    Call it before the session's first statement, in a request that never
    writes, or before the part of a request that reads before it writes (a
    SCIM request's credential check and body). On SQLite, under WAL, such a
    transaction reads a consistent snapshot while a writer works, instead of
    queueing behind it for the write lock. On PostgreSQL it runs in autocommit:
    under READ COMMITTED every statement of a transaction takes a snapshot of
    its own anyway, so a reader loses nothing and saves the ``BEGIN`` and
    ``ROLLBACK`` round trips, which cost a short read as much as its query.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if session.get_bind().dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    session.connection(execution_options=options)


def read_consistently(session: Session) -> None:
    """End ``session``'s transaction and begin one that reads a single snapshot throughout.

    For reads that must agree with each other across statements (a page of
    every user's access and the event position it is at). PostgreSQL's
    default, READ COMMITTED, takes a new snapshot per statement: this
    transaction is REPEATABLE READ and read-only instead. A SQLite reader
    under WAL already keeps the snapshot of its first read until it ends.
    Only for transactions that never write; whatever ``session`` had read
    before is committed (it only read).
    """
    if session.in_transaction():
        session.commit()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
    else:
        read_only(session)


def begin_writing(session: Session) -> None:
    """Make what ``session`` runs next part of a writing transaction.

    A session begun as a reader (:func:`read_only`: a request's credential
    check, the read half of a PATCH) ends its reading here, so that the next
    statement begins the writing transaction (``BEGIN IMMEDIATE`` on SQLite):
    the write lock is held only for the SQL of the change, never while a body
    is read or validated. Call it before the first write and outside any
    savepoint; a session already writing is left as it is.
    """
    if not session.in_transaction() or session.in_nested_transaction():
        return
    if session.connection().get_execution_options().get(READ_ONLY):
        session.commit()


def _sqlite_begin(conn: Any) -> None:
    # A SQLite transaction that starts as a reader and later writes can fail
    # with SQLITE_BUSY without waiting; taking the write lock up front makes
    # every writing transaction serialize on busy_timeout instead. A
    # transaction declared read-only starts deferred and never takes it.
    _wait_for_the_lock_until_the_deadline(conn.connection)
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _wait_for_the_lock_until_the_deadline(connection: Any) -> None:
    """Cut SQLite's wait for the write lock at the running request's deadline.

    The progress handler stops statements that run, not a writer sleeping in
    the busy handler: without this, a request queued behind a long write
    would wait the whole ``BUSY_TIMEOUT_MS`` past its deadline. The pragma
    goes straight to the driver (no SQLAlchemy statement), and only when the
    wait changes: a transaction outside any request costs nothing more.
    """
    remaining = Deadline.remaining()
    wait_ms = (
        BUSY_TIMEOUT_MS
        if remaining is None
        # One millisecond past it, so that a wait given up finds the deadline passed.
        else max(1, min(BUSY_TIMEOUT_MS, math.ceil(remaining * 1000) + 1))
    )
    if connection.info.get(_BUSY_TIMEOUT_SET, BUSY_TIMEOUT_MS) != wait_ms:
        connection.dbapi_connection.execute(f"PRAGMA busy_timeout={wait_ms}")
        connection.info[_BUSY_TIMEOUT_SET] = wait_ms


def make_engine(
    url: str,
    *,
    statement_timeout_seconds: float | None = None,
    sqlite_synchronous: str = "full",
    **kwargs: Any,
) -> Engine:
    """Create the engine for ``url``, with the settings each dialect needs to be safe.

    Error messages never carry bound parameters (personal data). On PostgreSQL,
    ``statement_timeout_seconds`` bounds every statement of the engine's
    connections; on SQLite a statement stops at the deadline of the request
    running it (:class:`scim.limits.Deadline`), and ``sqlite_synchronous``
    (``full`` or ``normal``) is its ``PRAGMA synchronous``.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        synchronous = {"full": "FULL", "normal": "NORMAL"}[sqlite_synchronous]

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, synchronous)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, emit BEGIN (see the SQLAlchemy
            # docs on "Serializable isolation / Savepoints / Transactional DDL").
            dbapi_connection.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # No pre-ping: it costs every request a round trip. A connection that the
    # server dropped (a restart, a failover) fails its request as a 503 with
    # Retry-After, and SQLAlchemy then invalidates the whole pool, so the
    # retry, and every request after it, gets a fresh connection.
    # Cloud load balancers and NATs drop idle flows after minutes (about 4 on
    # Azure): recycle idle connections before that, and let TCP keepalives
    # find a dropped one in seconds instead of a request hanging on it.
    kwargs.setdefault("pool_recycle", 240)
    kwargs.setdefault(
        "connect_args",
        {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3},
    )
    engine = create_engine(url, **kwargs)
    if statement_timeout_seconds is not None:
        milliseconds = max(1, round(statement_timeout_seconds * 1000))

        @event.listens_for(engine, "connect")
        def _statement_timeout(dbapi_connection: Any, _record: Any) -> None:
            # A statement past it is cancelled (QueryCanceled), its transaction
            # rolls back, and the request answers 503 with Retry-After.
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {milliseconds}")
            dbapi_connection.commit()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
