"""Console benchmark: the People page with 100,000 users (target: p50 under 100 ms).

Seeds one organization with N users straight into the tables (userName,
a primary work email indexed like the store indexes it, an access snapshot),
signs an Admin in with a server-side session, then times the People page
through the whole Flask app (session check, role matrix, SQL, template):
the first page, a page in the middle, and a prefix search. Prints p50 and
p99 per case. Nothing leaves the process.

    .venv/bin/python bench/console_bench.py                      # SQLite, 100,000 users
    .venv/bin/python bench/console_bench.py --database-url postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from connector.access.derive import DerivedAccess
from connector.access.roles import Role
from connector.console.sessions import start_session
from connector.db.engine import make_engine, make_session_factory
from connector.db.migrations import upgrade_database
from connector.derived.tables import AccessSnapshot
from connector.directory.tables import ScimAttributeValue, ScimResource
from connector.tenancy.organizations import create_organization
from connector.web.app import create_app, hub_scim

BATCH = 5000
SECRET_KEY = "console-bench-" + "k" * 32


def seed(database_url: str, users: int) -> tuple[str, int, str]:
    """An organization of ``users`` users; returns its name, id and an Admin's user id."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            org_id = create_organization(session, name).id
            session.commit()
            now = datetime.now(UTC)
            admin_id = ""
            for start in range(0, users, BATCH):
                resources, values, snapshots = [], [], []
                for index in range(start, min(start + BATCH, users)):
                    user_id = str(uuid.uuid4())
                    user_name = f"user{index:06d}@acme.example"
                    role = "admin" if index == 0 else "member"
                    admin_id = admin_id or user_id
                    document = {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "id": user_id,
                        "userName": user_name,
                        "active": index % 50 != 0 or index == 0,
                        "emails": [{"value": user_name, "type": "work", "primary": True}],
                    }
                    resources.append(
                        {
                            "id": user_id,
                            "org_id": org_id,
                            "kind": "User",
                            "name": user_name,
                            "name_key": user_name,
                            "external_id": None,
                            "active": document["active"],
                            "document": document,
                            "version": 1,
                            "created_at": now,
                            "modified_at": now,
                        }
                    )
                    values.append(
                        {
                            "resource_id": user_id,
                            "org_id": org_id,
                            "path": "emails.value",
                            "element": 0,
                            "value_text": user_name,
                            "value_key": user_name,
                        }
                    )
                    snapshots.append(
                        {
                            "user_id": user_id,
                            "org_id": org_id,
                            "access": DerivedAccess(
                                user_id,
                                active=bool(document["active"]),
                                role=Role(role) if document["active"] else None,
                            ).to_json(),
                            "updated_at": now,
                        }
                    )
                session.execute(insert(ScimResource), resources)
                session.execute(insert(ScimAttributeValue), values)
                session.execute(insert(AccessSnapshot), snapshots)
                session.commit()
        if engine.dialect.name == "postgresql":
            # As autovacuum would after a bulk load: the planner needs the new counts.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE")
        return name, org_id, admin_id
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="per case")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'console-bench.db'}"
        upgrade_database(url)
        began = time.perf_counter()
        org_name, org_id, admin_id = seed(url, args.users)
        took = time.perf_counter() - began
        print(f"seeded {args.users} users in {took:.1f} s ({url.split(':')[0]})")
        app = create_app(database_url=url, secret_key=SECRET_KEY, rate_limit_per_minute=0)
        try:
            with hub_scim(app).session_factory() as session:
                session_id = start_session(
                    session,
                    org_id,
                    user_id=admin_id,
                    user_name="user000000@acme.example",
                    lifetime=timedelta(hours=1),
                )
                session.commit()
            client = app.test_client()
            serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
            cookie = serializer.dumps({"console_session": session_id, "console_org": org_id})
            client.set_cookie("hub_scim_console", cookie, path="/admin/")
            middle = max(1, args.users // 100)  # 50 per page: the middle page
            cases = {
                "first page": f"/admin/{org_name}/people",
                "middle page": f"/admin/{org_name}/people?page={middle}",
                "prefix search": f"/admin/{org_name}/people?q=user0421",
                "active only": f"/admin/{org_name}/people?status=active&page=3",
            }
            for label, path in cases.items():
                timings = []
                for _ in range(args.requests):
                    start = time.perf_counter()
                    response = client.get(path)
                    timings.append((time.perf_counter() - start) * 1000)
                    if response.status_code != 200:
                        print(f"{label}: HTTP {response.status_code}", file=sys.stderr)
                        return 1
                timings.sort()
                p50 = statistics.median(timings)
                p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
                print(f"People, {label:14}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        finally:
            hub_scim(app).close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
