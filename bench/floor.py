"""What a single-resource SCIM request costs at the least, in CPU, on this machine.

The concurrent comparison (``scim_bench.py``) measures requests/s of hub-scim
served by gunicorn against scim2-server served the same way. This script says
why the single-resource phases stay below scim2-server's rate on a small
machine, by measuring three things in one run, each as CPU time per request
(``time.process_time`` for this process, ``/proc`` for the PostgreSQL backend):

1. **scim2-server in process**: its WSGI application driven by Werkzeug's test
   client, no HTTP server: the whole of its work per request (a dictionary in
   memory, scim2-models validation and serialization, Werkzeug).
2. **hub-scim in process**: the connector's application driven the same way,
   on a fresh PostgreSQL database: its work, its driver's and its database's.
3. **The database floor**: the same effects done with the driver alone
   (psycopg, prepared statements, no framework): the credential lookup every
   request makes, a durable insert with its audit row, a durable delete with
   its audit row. No service that checks its credential in the database and
   commits an audited change before answering can spend less than this.

Served, each request also pays the HTTP server (gunicorn's parsing, its
keep-alive loop, the thread hand-offs): the concurrent comparison's CPU
columns show that share, the same for both servers.

    .venv/bin/python bench/floor.py [--requests 1000] [--postgres-admin-url URL]

Loopback only; the database it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_meter import processes_cpu_seconds

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PHASES = ("create", "lookup hit", "lookup miss", "replace", "deactivate", "delete")


def user_body(index: int, given: str = "Ada") -> dict[str, Any]:
    user_name = f"floor-{index}@example.com"
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "externalId": f"ext-{index}",
        "name": {"givenName": given, "familyName": "Lovelace"},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }


DEACTIVATION = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
}


class Target:
    """A SCIM application in process, with the CPU its database spends (if any)."""

    def __init__(
        self, client: Any, prefix: str, token: str, database_pids: Callable[[], list[int]]
    ):
        self.client = client
        self.prefix = prefix
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        self.database_pids = database_pids

    def call(
        self,
        method: str,
        path: str,
        expected: int | tuple[int, ...],
        body: Any = None,
        **kwargs: Any,
    ) -> Any:
        data = json.dumps(body) if body is not None else None
        response = self.client.open(
            self.prefix + path, method=method, headers=self.headers, data=data, **kwargs
        )
        if response.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
            raise SystemExit(
                f"{method} {path}: {response.status_code} {response.get_data()[:300]!r}"
            )
        return response


def run_phases(target: Target, count: int) -> dict[str, tuple[float, float]]:
    """CPU ms per request of each phase: (this process, the database's backends)."""
    ids: list[str] = []
    figures: dict[str, tuple[float, float]] = {}

    def create(i: int) -> None:
        ids.append(target.call("POST", "/Users", 201, user_body(i)).get_json()["id"])

    def lookup(user_name: str) -> Callable[[int], None]:
        def run(i: int) -> None:
            target.call(
                "GET",
                "/Users",
                200,
                query_string={"filter": f'userName eq "{user_name}{i}@example.com"'},
            )

        return run

    steps: dict[str, Callable[[int], None]] = {
        "create": create,
        "lookup hit": lookup("floor-"),
        "lookup miss": lookup("nobody-"),
        "replace": lambda i: target.call("PUT", f"/Users/{ids[i]}", 200, user_body(i, "Grace")),
        "deactivate": lambda i: target.call("PATCH", f"/Users/{ids[i]}", (200, 204), DEACTIVATION),
        "delete": lambda i: target.call("DELETE", f"/Users/{ids[i]}", 204),
    }
    for phase in PHASES:
        before_db = sum(processes_cpu_seconds(target.database_pids()).values())
        started = time.process_time()
        for i in range(count):
            steps[phase](i)
        spent = time.process_time() - started
        spent_db = sum(processes_cpu_seconds(target.database_pids()).values()) - before_db
        figures[phase] = (1000 * spent / count, 1000 * max(spent_db, 0.0) / count)
    return figures


def scim2_server_target() -> Target:
    from scim2_server_wsgi import build_application
    from werkzeug.test import Client

    token = secrets.token_urlsafe(16)
    return Target(Client(build_application(token)), "/v2", token, list)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"hub_scim_floor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def backends_of(admin_url: str, database: str) -> Callable[[], list[int]]:
    admin = psycopg.connect(admin_url, autocommit=True)

    def pids() -> list[int]:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
        return [row[0] for row in rows]

    return pids


def hub_scim_target(database_url: str, admin_url: str) -> tuple[Target, Callable[[], None]]:
    from connector.db.migrations import upgrade_database
    from connector.tenancy.credentials import Scope, create_credential
    from connector.tenancy.organizations import create_organization
    from connector.web.app import create_app, hub_scim

    url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    upgrade_database(url)
    # As served: the provisioning log on, the rate limit off (the benchmark is the abuse it stops).
    app = create_app(database_url=url, rate_limit_per_minute=0)
    state = hub_scim(app)
    with state.session_factory() as session:
        organization = create_organization(session, "floor")
        _, token = create_credential(session, organization.id, Scope.SCIM)
        session.commit()
    target = Target(
        app.test_client(), "/scim/v2", token, backends_of(admin_url, url.rsplit("/", 1)[1])
    )
    return target, state.close


def database_floor(database_url: str, count: int) -> dict[str, tuple[float, float]]:
    """The driver alone: what the database work of each request costs at the least."""
    figures: dict[str, tuple[float, float]] = {}
    with psycopg.connect(database_url) as connection:
        connection.execute(
            "CREATE TABLE floor_users (id text PRIMARY KEY, org_id int, name_key text, doc jsonb,"
            " UNIQUE (org_id, name_key))"
        )
        connection.execute(
            "CREATE TABLE floor_audit"
            " (id bigserial PRIMARY KEY, org_id int, action text, doc jsonb)"
        )
        connection.execute(
            "CREATE TABLE floor_credentials (token_hash text PRIMARY KEY, org_id int,"
            " revoked_at timestamptz)"
        )
        connection.execute("INSERT INTO floor_credentials VALUES ('h', 1, NULL)")
        connection.commit()
        pid = connection.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        connection.commit()
        ids = [uuid.uuid4().hex for _ in range(count)]

        def measure(name: str, step: Callable[[int], None]) -> None:
            for i in range(5):  # psycopg prepares a statement at its fifth use
                step(-1 - i)
            started, started_db = time.process_time(), processes_cpu_seconds([pid])[pid]
            for i in range(count):
                step(i)
            spent_db = processes_cpu_seconds([pid])[pid] - started_db
            figures[name] = (
                1000 * (time.process_time() - started) / count,
                1000 * spent_db / count,
            )

        def credential(_i: int) -> None:
            connection.execute(
                "SELECT org_id, revoked_at FROM floor_credentials WHERE token_hash = %s", ("h",)
            ).fetchone()
            connection.commit()

        def insert(i: int) -> None:
            key = ids[i] if i >= 0 else uuid.uuid4().hex
            connection.execute(
                "INSERT INTO floor_users VALUES (%s, 1, %s, %s)",
                (key, key, Jsonb({"userName": key})),
            )
            connection.execute(
                "INSERT INTO floor_audit (org_id, action, doc) VALUES (1, 'user.created', %s)",
                (Jsonb({"userName": key}),),
            )
            connection.commit()

        def delete(i: int) -> None:
            connection.execute("DELETE FROM floor_users WHERE id = %s", (ids[i] if i >= 0 else "",))
            connection.execute(
                "INSERT INTO floor_audit (org_id, action) VALUES (1, 'user.deleted')"
            )
            connection.commit()

        measure("credential lookup", credential)
        measure("durable insert + audit row", insert)
        measure("durable delete + audit row", delete)
    return figures


def flask_floor(count: int) -> float:
    """CPU ms of a request to a Flask route that answers a constant JSON document."""
    from flask import Flask

    app = Flask("floor")

    @app.get("/v2/Users")
    def users() -> tuple[str, int, dict[str, str]]:
        return '{"totalResults": 0}', 200, {"Content-Type": "application/scim+json"}

    client = app.test_client()
    started = time.process_time()
    for _ in range(count):
        client.get("/v2/Users", query_string={"filter": 'userName eq "x"'})
    return 1000 * (time.process_time() - started) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per phase")
    parser.add_argument(
        "--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args(argv)
    if "127.0.0.1" not in args.postgres_admin_url and "localhost" not in args.postgres_admin_url:
        parser.error("--postgres-admin-url must be a loopback address")
    count = args.requests

    theirs = run_phases(scim2_server_target(), count)
    flask_ms = flask_floor(count)
    with fresh_database(args.postgres_admin_url) as database_url:
        target, close = hub_scim_target(database_url, args.postgres_admin_url)
        try:
            ours = run_phases(target, count)
        finally:
            close()
        floor = database_floor(database_url, count)

    print(f"\nCPU ms per request, in process (no HTTP server), {count} requests per phase")
    print(f"  {'phase':<12} {'scim2-server':>12} {'hub-scim':>9} {'+ its db':>9} {'ratio':>6}")
    for phase in PHASES:
        their_cpu = theirs[phase][0]
        own, database = ours[phase]
        print(
            f"  {phase:<12} {their_cpu:12.3f} {own:9.3f} {database:9.3f}"
            f" {(own + database) / their_cpu:5.1f}x"
        )
    print(
        f"\nA Flask route answering a constant document: {flask_ms:.3f} ms (the framework's floor)"
    )
    print("\nThe database floor, psycopg alone (client + PostgreSQL backend, CPU ms)")
    for name, (client, database) in floor.items():
        print(f"  {name:<28} {client:6.3f} + {database:6.3f} = {client + database:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
