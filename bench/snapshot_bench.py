"""Memory and time of a whole-organization access snapshot (``GET /api/v1/access``).

Seeds one organization with N users (100,000 by default) straight into the
directory tables in bulk, a third of them in a mapped "PSA Technicians" group
and a few in "Hub Owners", then lets IT apply the mapping with the real
service, which derives and stores every user's access. It then reads the
snapshot page by page through the access API (in process, Flask's test
client) in a fresh process of its own, keeping nothing but a count, the
last id and the timings, and prints the time per page and that process's
RSS before the first page, after it and after the last, and its peak: a snapshot
served a page at a time must not grow with N.

    .venv/bin/python bench/snapshot_bench.py                      # both databases, 100k users
    .venv/bin/python bench/snapshot_bench.py --users 20000 --databases sqlite --limit 1000

Each database is made fresh (a temporary SQLite file; a new PostgreSQL
database on loopback, dropped at the end). Figures: docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from scim_bench import BenchError, database_for
from sqlalchemy import insert

from connector.admin.grants import set_product_state
from connector.admin.mappings import apply_mapping
from connector.db.engine import make_engine, make_session_factory
from connector.db.migrations import upgrade_database
from connector.db.planner import refresh_postgresql_statistics
from connector.directory.tables import GROUP_MEMBERS, RESOURCES
from connector.tenancy.credentials import Scope, create_credential
from connector.tenancy.organizations import create_organization
from connector.web.app import create_app, hub_scim

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
MAPPING = """
default_role = "member"
owner_fallback_role = "admin"

[[rules]]
group = "Hub Owners"
role = "owner"

[[rules]]
group = "PSA Technicians"
product = "psa"
product_roles = ["technician"]
permissions = ["psa.tickets.read", "psa.tickets.create"]
"""
CHUNK = 5_000


def rss_mib() -> tuple[float, float]:
    """This process's resident set now and its peak so far (``VmRSS``, ``VmHWM``), in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    now, peak = (int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))
    return now, peak


def _resource(kind: str, name: str, now: Any) -> dict[str, Any]:
    resource_id = str(uuid.uuid4())
    if kind == "User":
        document: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": name, "active": True}
    else:
        document = {"schemas": [GROUP_SCHEMA], "displayName": name}
    return {
        "id": resource_id,
        "kind": kind,
        "name": name,
        "name_key": name.lower(),
        "external_id": None,
        "active": True if kind == "User" else None,
        "document": document,
        "version": 1,
        "created_at": now,
        "modified_at": now,
    }


def seed(database_url: str, users: int) -> tuple[int, str]:
    """A new organization with ``users`` users, their access derived; its access token."""
    from connector.db.base import utcnow

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            org = create_organization(session, f"bench-{uuid.uuid4().hex[:8]}")
            _credential, token = create_credential(session, org.id, Scope.ACCESS, label="bench")
            session.commit()
            org_id = org.id
        started = time.perf_counter()
        now = utcnow()
        technicians, owners = (
            _resource("Group", name, now) for name in ("PSA Technicians", "Hub Owners")
        )
        with sessions() as session:
            session.execute(insert(RESOURCES), [{**technicians, "org_id": org_id}])
            session.execute(insert(RESOURCES), [{**owners, "org_id": org_id}])
            for start in range(0, users, CHUNK):
                rows = [
                    {**_resource("User", f"user{n:06d}@bench.example", now), "org_id": org_id}
                    for n in range(start, min(start + CHUNK, users))
                ]
                session.execute(insert(RESOURCES), rows)
                members = [
                    {"group_id": technicians["id"], "user_id": row["id"], "org_id": org_id}
                    for n, row in enumerate(rows, start)
                    if n % 3 == 0
                ]
                members += [
                    {"group_id": owners["id"], "user_id": row["id"], "org_id": org_id}
                    for n, row in enumerate(rows, start)
                    if n < 3
                ]
                session.execute(insert(GROUP_MEMBERS), members)
            session.commit()
        with engine.begin() as connection:
            # What autovacuum would do after such a load, before the mapping reads it all.
            refresh_postgresql_statistics(connection, threshold=0)
        print(f"  {users} users inserted in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        with sessions() as session:
            set_product_state(session, org_id, "psa", "active", actor="cli:bench")
            apply_mapping(session, org_id, MAPPING, actor="cli:bench", dry_run=False)
            session.commit()
        print(
            f"  mapping applied (every user's access derived, stored and announced) in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        return org_id, token
    finally:
        engine.dispose()


def read_snapshot(database_url: str, token: str, limit: int, expected: int) -> dict[str, Any]:
    """Every page of the snapshot, keeping only counts and timings; checks order and count."""
    app = create_app(database_url=database_url, rate_limit_per_minute=0, log_level="WARNING")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    timings: list[float] = []
    count, last_id, positions = 0, "", set()
    gc.collect()
    rss_before = rss_mib()
    rss_first = rss_before
    cursor: str | None = None
    try:
        started = time.perf_counter()
        while True:
            query: dict[str, Any] = {"limit": limit}
            if cursor:
                query["cursor"] = cursor
            began = time.perf_counter()
            response = client.get("/api/v1/access", query_string=query, headers=headers)
            if response.status_code != 200:
                raise BenchError(f"page {len(timings) + 1}: {response.status_code}")
            page = response.get_json()
            timings.append(time.perf_counter() - began)
            for user in page["users"]:
                if user["id"] <= last_id:
                    raise BenchError(f"ids out of order at {user['id']}")
                last_id = user["id"]
                count += 1
            positions.add(page["position"])
            cursor = page["next_cursor"]
            del page, response
            if len(timings) == 1:
                gc.collect()
                rss_first = rss_mib()
            if cursor is None:
                break
        total = time.perf_counter() - started
    finally:
        hub_scim(app).close()
    if count != expected:
        raise BenchError(f"the snapshot listed {count} users, not {expected}")
    gc.collect()
    rss_last = rss_mib()
    ordered = sorted(timings)
    return {
        "limit": limit,
        "pages": len(timings),
        "users": count,
        "total_s": total,
        "page_p50_ms": statistics.median(ordered) * 1000,
        "page_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "page_max_ms": ordered[-1] * 1000,
        "rss_before_mib": rss_before[0],
        "rss_after_first_mib": rss_first[0],
        "rss_after_last_mib": rss_last[0],
        "peak_rss_mib": rss_last[1],
        "positions": sorted(positions),
    }


def print_result(result: dict[str, Any]) -> None:
    print(
        f"  limit {result['limit']:>4}: {result['pages']} pages, {result['users']} users in "
        f"{result['total_s']:.1f} s; per page p50 {result['page_p50_ms']:.0f} ms, "
        f"p99 {result['page_p99_ms']:.0f} ms, max {result['page_max_ms']:.0f} ms; "
        f"RSS {result['rss_before_mib']:.0f} MiB before page 1, "
        f"{result['rss_after_first_mib']:.0f} after it, "
        f"{result['rss_after_last_mib']:.0f} after the last, peak {result['peak_rss_mib']:.0f}",
        flush=True,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--limit", default="500,1000", help="page sizes to read with")
    parser.add_argument(
        "--postgres-admin-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="where to create (and drop) the benchmark's PostgreSQL database (loopback only)",
    )
    parser.add_argument("--database-url", default=None, help=argparse.SUPPRESS)
    # The reader's own process: URL TOKEN LIMIT EXPECTED; prints its result as JSON.
    parser.add_argument("--read", nargs=4, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def read_in_own_process(url: str, token: str, limit: int, expected: int) -> dict[str, Any]:
    """:func:`read_snapshot` in a new interpreter, so its peak RSS is the reader's alone."""
    command = [sys.executable, __file__, "--read", url, token, str(limit), str(expected)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if finished.returncode != 0:
        raise BenchError(f"the reader failed: {finished.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def runs(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, str]]:
    for database in [name.strip() for name in args.databases.split(",") if name.strip()]:
        with database_for(args, database, workdir) as url:
            yield database, url


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.read:
        url, token, limit, expected = args.read
        print(json.dumps(read_snapshot(url, token, int(limit), int(expected))))
        return 0
    limits = [int(value) for value in args.limit.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        for database, url in runs(args, Path(workdir)):
            print(f"{database}: {args.users} users", flush=True)
            upgrade_database(url)
            _org_id, token = seed(url, args.users)
            for limit in limits:
                print_result(read_in_own_process(url, token, limit, args.users))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"snapshot_bench: {error}", file=sys.stderr)
        sys.exit(1)
