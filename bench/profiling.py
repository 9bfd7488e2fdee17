"""Where the time goes: the contention workload against hub-scim profiled in process.

``scim_bench.py --profile create,replace,...`` serves the connector's WSGI
application in this process under werkzeug's threaded server (one thread per
connection, as gunicorn's gthread worker does), runs the concurrent workload,
and for each named phase profiles every request with its own ``cProfile``
(cProfile sees one thread; the profiles are merged per phase). It prints:

- the SQL statements each request sent (SQLAlchemy cursor events), with their
  count per request and mean time;
- cost centres: the cumulative time per request of the functions that stand
  for auth, the SCIM view, scim2-models validation and dump, SQL, access
  recompute, the audit/events journal and commit;
- self time per package (what the time is spent *in*: Flask, pydantic, the
  SQL driver waiting on the database, ...), summing to the whole;
- the top cumulative entries.

All threads share one interpreter, so under profiling the absolute times grow
(the GIL and cProfile's own overhead); read shares and counts, and take
throughput from the unprofiled run.
"""

from __future__ import annotations

import cProfile
import functools
import logging
import pstats
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from contention import ContentionConfig, run_contention
from scim_bench import BenchError, RunResult, free_loopback_port, prepare_database
from sqlalchemy import Engine, event
from werkzeug.serving import make_server

from connector.settings import load_settings
from connector.web.app import create_app

# (label, file path fragment, function name): the cumulative time of these
# functions stands for one cost centre. Several entries may share a label
# (their times add: they must not call one another).
COST_CENTRES: tuple[tuple[str, str, str], ...] = (
    ("whole request (Flask wsgi_app)", "flask/app.py", "wsgi_app"),
    ("auth: credential check + rate limit", "connector/web/app.py", "_authenticate_scim_request"),
    ("  credential lookup", "connector/tenancy/credentials.py", "authenticate_token"),
    ("request backend (cause, write lock)", "connector/web/app.py", "_request_backend"),
    ("parse body (scim2-models)", "scim/representation.py", "parse_resource"),
    ("scim2-models model_validate (all)", "scim2_models/base.py", "model_validate"),
    ("scim2-models model_dump (all)", "scim2_models/base.py", "model_dump"),
    ("store: create", "connector/directory/store.py", "create"),
    ("store: replace", "connector/directory/store.py", "replace"),
    ("store: delete", "connector/directory/store.py", "delete"),
    ("store: get", "connector/directory/store.py", "get"),
    ("write path: create", "connector/provisioning/writes.py", "create"),
    ("write path: replace", "connector/provisioning/writes.py", "replace"),
    ("write path: delete", "connector/provisioning/writes.py", "delete"),
    ("write path: update members", "connector/provisioning/writes.py", "update_members"),
    ("  rules read", "connector/provisioning/writes.py", "_rules"),
    ("access listener (all)", "connector/provisioning/listener.py", "user_written"),
    ("access listener (all)", "connector/provisioning/listener.py", "user_deleted"),
    ("access listener (all)", "connector/provisioning/listener.py", "members_changed"),
    ("access listener (all)", "connector/provisioning/listener.py", "check_user"),
    ("  access recompute", "connector/derived/recompute.py", "recompute"),
    ("  journal write (audit, events, snapshots)", "connector/trail/journal.py", "write"),
    ("commit (store)", "connector/directory/store.py", "commit"),
    ("commit (write path)", "connector/provisioning/writes.py", "commit"),
    ("  driver commit", "psycopg/connection.py", "commit"),
    ("  driver commit", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("SQL: SQLAlchemy execute (all statements)", "sqlalchemy/engine/base.py", "_execute_context"),
    ("response document", "scim/representation.py", "response_document"),
    ("statistics refresh", "connector/db/statistics.py", "write_committed"),
)

# Self time by where the code lives, first match wins.
PACKAGES: tuple[tuple[str, str], ...] = (
    ("psycopg (driver; includes waiting on PostgreSQL)", "psycopg"),
    ("sqlite3 (driver; includes waiting on the write lock)", "sqlite3"),
    ("sqlalchemy", "sqlalchemy/"),
    ("pydantic / scim2-models", "pydantic"),
    ("pydantic / scim2-models", "scim2_models/"),
    ("flask / werkzeug", "flask/"),
    ("flask / werkzeug", "werkzeug/"),
    ("authlib", "authlib/"),
    ("connector", "/connector/"),
    ("scim (protocol layer)", "/scim/"),
    ("json", "json/"),
    ("json", "'_json"),
    ("lock waits (threading)", "acquire' of '_thread"),
    ("lock waits (threading)", "threading.py"),
)


def _package(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    for label, fragment in PACKAGES:
        if fragment in where:
            return label
    return "other (stdlib, ...)"


@dataclass
class PhaseProfile:
    """What was recorded while one phase ran."""

    requests: int = 0
    request_seconds: float = 0.0
    statements: Counter[str] = field(default_factory=Counter)
    statement_seconds: Counter[str] = field(default_factory=Counter)
    locked_requests: int = 0
    lock_held_seconds: float = 0.0
    stats: pstats.Stats | None = None


class ProfilingMiddleware:
    """Profiles each request of the phase being recorded, and counts its SQL statements."""

    def __init__(self, app: Callable[..., Any], phases: Iterable[str]) -> None:
        self.app = app
        self.phases = set(phases)
        self.recording: str | None = None
        self.profiles: dict[str, PhaseProfile] = defaultdict(PhaseProfile)
        self._lock = threading.Lock()
        self._local = threading.local()
        event.listen(Engine, "before_cursor_execute", self._before_execute)
        event.listen(Engine, "after_cursor_execute", self._after_execute)

    def close(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._before_execute)
        event.remove(Engine, "after_cursor_execute", self._after_execute)

    def on_phase(self, name: str | None) -> None:
        self.recording = name if name in self.phases else None

    def _before_execute(self, *_args: Any) -> None:
        self._local.started = time.perf_counter()

    def _after_execute(
        self, _conn: Any, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
    ) -> None:
        phase = getattr(self._local, "phase", None)
        if phase is None:
            return
        now = time.perf_counter()
        elapsed = now - self._local.started
        key, takes_lock = _statement_key(statement)
        if takes_lock and getattr(self._local, "locked_at", None) is None:
            self._local.locked_at = now
        with self._lock:
            record = self.profiles[phase]
            record.statements[key] += 1
            record.statement_seconds[key] += elapsed

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        phase = self.recording
        if phase is None or environ.get("PATH_INFO", "").endswith("/ServiceProviderConfig"):
            return self.app(environ, start_response)
        profile = cProfile.Profile()
        self._local.phase = phase
        self._local.locked_at = None
        started = time.perf_counter()
        profile.enable()
        try:
            answer = self.app(environ, start_response)
            try:
                body = list(answer)
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()
        finally:
            profile.disable()
            self._local.phase = None
        ended = time.perf_counter()
        elapsed = ended - started
        locked_at: float | None = self._local.locked_at
        with self._lock:
            record = self.profiles[phase]
            record.requests += 1
            record.request_seconds += elapsed
            if locked_at is not None:
                record.locked_requests += 1
                record.lock_held_seconds += ended - locked_at
            if record.stats is None:
                record.stats = pstats.Stats(profile)
            else:
                record.stats.add(profile)
        return body


WRITE_LOCK = re.compile(
    r"FOR (NO KEY )?UPDATE|FOR (KEY )?SHARE|pg_advisory_xact_lock|^\s*BEGIN IMMEDIATE",
    re.IGNORECASE,
)
"""Statements that take a lock: row locks and advisory locks (PostgreSQL), the database (SQLite)."""


@functools.lru_cache(maxsize=4096)
def _statement_key(statement: str) -> tuple[str, bool]:
    """A statement's first words (whitespace collapsed, parameter lists folded); takes a lock?

    Cached: the same compiled statements come back on every request, and the
    profiler's own time should not grow with their length.
    """
    text = re.sub(r"\s+", " ", statement).strip()
    text = re.sub(r"(%\(\w+\)s|\?|\$\d+)(, (%\(\w+\)s|\?|\$\d+))+", r"\1, ...", text)
    short = text if len(text) <= 150 else text[:147] + "..."
    return short, bool(WRITE_LOCK.search(statement))


def profile_contention(
    command: list[str],
    database_url: str,
    config: ContentionConfig,
    phases: list[str],
    top: int,
) -> RunResult:
    """Run the workload against an in-process, profiled hub-scim; print where the time went."""
    token = prepare_database(command, database_url)
    settings = load_settings(
        {}, database_url=database_url, rate_limit_per_minute=0, log_level="WARNING"
    )
    app = create_app(settings)
    middleware = ProfilingMiddleware(app.wsgi_app, phases)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_loopback_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, name="profiled-server", daemon=True)
    serving.start()
    print(
        f"serving hub-scim in process (werkzeug threaded) on 127.0.0.1:{port}, "
        f"{database_url}; profiling {', '.join(phases)}",
        flush=True,
    )
    try:
        result = run_contention(
            f"http://127.0.0.1:{port}/scim/v2",
            token,
            "hub-scim (profiled)",
            config,
            on_phase=middleware.on_phase,
        )
    finally:
        server.shutdown()
        serving.join(timeout=30)
        middleware.close()
    for phase in phases:
        record = middleware.profiles.get(phase)
        if record is None or record.stats is None or not record.requests:
            raise BenchError(f"profile: no request recorded in phase {phase!r}")
        print_phase_profile(phase, record, top)
    return result


def _location(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function
    for marker in ("site-packages/", "/bench/", "/connector/", "/scim/"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            prefix = "" if marker == "site-packages/" else marker.strip("/") + "/"
            return f"{prefix}{tail}:{line}({function})"
    return f"{filename.rsplit('/', 1)[-1]}:{line}({function})"


def print_phase_profile(phase: str, record: PhaseProfile, top: int) -> None:
    assert record.stats is not None
    requests = record.requests
    per = 1000.0 / requests
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = record.stats.stats  # type: ignore[attr-defined]
    print(
        f"\n== profile: {phase}, {requests} requests, "
        f"{record.request_seconds * per:.2f} ms per request in the server (profiled)"
    )

    if record.locked_requests:
        held = record.lock_held_seconds / record.locked_requests * 1000
        print(
            f"  {record.locked_requests} requests took a lock (row or advisory lock, "
            f"BEGIN IMMEDIATE); from the first one granted to the response: {held:.2f} ms "
            f"each; if these writers serialize on it, at most {1000 / held:.0f} requests/s "
            "while profiled"
        )

    print("\n  SQL statements per request (mean ms each, wall time incl. waits):")
    total_statements = sum(record.statements.values())
    total_sql = sum(record.statement_seconds.values())
    print(f"  {total_statements / requests:6.2f} statements, {total_sql * per:.2f} ms per request")
    for statement, count in record.statements.most_common():
        mean_ms = record.statement_seconds[statement] / count * 1000
        print(f"  {count / requests:6.2f} x {mean_ms:7.2f} ms  {statement}")

    print("\n  cost centres (cumulative ms per request):")
    centres: dict[str, float] = {}
    for label, fragment, function in COST_CENTRES:
        for (filename, _line, name), (_cc, _nc, _tt, cumulative, _callers) in raw.items():
            if name == function and (fragment in filename or fragment == filename):
                centres[label] = centres.get(label, 0.0) + cumulative
    for label, _fragment, _function in COST_CENTRES:
        if label in centres:
            print(f"  {centres.pop(label) * per:8.2f} ms  {label}")

    print("\n  self time by package (ms per request; sums to the profiled total):")
    by_package: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _nc, own, _cumulative, _callers) in raw.items():
        by_package[_package(filename, name)] += own
    whole = sum(by_package.values())
    for label, seconds in by_package.most_common():
        print(f"  {seconds * per:8.2f} ms  {seconds / whole:5.1%}  {label}")

    print(f"\n  top {top} cumulative (ms per request; calls per request):")
    entries = sorted(raw.items(), key=lambda item: item[1][3], reverse=True)
    for key, (_cc, calls, own, cumulative, _callers) in entries[:top]:
        print(
            f"  {cumulative * per:8.2f} cum {own * per:7.2f} self {calls / requests:7.1f} calls  "
            f"{_location(key)}"
        )
