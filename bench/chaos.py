"""The reliability battery: fuzz, faults and soak against a spawned ``hub-scim serve``.

Runs on SQLite (a file in a temporary folder) and on PostgreSQL (a fresh
database it creates on 127.0.0.1:5432 and drops at the end), on loopback
only, with bounded loops, and prints one table (docs/reliability.md):

  fuzz    Hypothesis-generated SCIM and access API requests, hostile ones
          included (bench/chaos_fuzz.py): counts 5xx answers, error answers
          that are not SCIM Error documents (or, on the access API, not its
          JSON error), answers slower than 2 s, and broken connections.
  faults  kill -9 of a gunicorn worker, ``pg_terminate_backend`` of the
          app's connections, and (``--pg-restart``, PostgreSQL only) a
          restart of the cluster, each in the middle of an Okta/Entra-shaped
          load of Bulk creates, membership PATCHes and leavers. After each
          fault: how long until the app answers again, the directory's
          integrity, the Owner cap, and every write the load was told
          succeeded still there (lost acknowledged writes).
  soak    a steady mixed load for ``--soak-minutes``: RSS growth of the
          server's processes and p99 drift from the first window to the last.

Short run (part of the test suite: tests/test_reliability_short.py)::

    .venv/bin/python bench/chaos.py --fuzz 300 --faults 4

Long run (by hand; figures in docs/reliability.md)::

    .venv/bin/python bench/chaos.py --fuzz 20000 --faults 200 --soak-minutes 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_fuzz import (
    BULK_SCHEMA,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    USER_SCHEMA,
    FuzzRequest,
    scim_request,
)
from scim_bench import stop, tail

REPO_ROOT = Path(__file__).resolve().parent.parent
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
POSTGRESQL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SLOW_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0
STARTUP_TIMEOUT_SECONDS = 90.0
RECOVERY_LIMIT_SECONDS = 30.0
SERVER_KEEPALIVE_SECONDS = 5.0  # gunicorn's keepalive in connector/web/server.py
OWNERS_GROUP = "Hub Owners"
MAPPING = f"""
default_role = "member"
owner_fallback_role = "admin"

[[rules]]
group = "{OWNERS_GROUP}"
role = "owner"
"""


class ChaosError(Exception):
    """A server that could not be started or prepared."""


# --- The server under test ---------------------------------------------------------------------


def hub_scim_command() -> list[str]:
    return [sys.executable, "-m", "connector.cli.main"]


def server_environment(workdir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("HUB_SCIM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["XDG_DATA_HOME"] = str(workdir / "data")
    env["HUB_SCIM_RATE_LIMIT_PER_MINUTE"] = "0"  # the battery is the abuse a limit stops
    env["HUB_SCIM_LOG_LEVEL"] = "WARNING"
    return env


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*hub_scim_command(), *args], cwd=REPO_ROOT, env=env, input=stdin,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ChaosError(f"hub-scim {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


def free_loopback_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def database(kind: str, workdir: Path, admin_url: str) -> Iterator[str]:
    """A fresh database: a SQLite file, or a PostgreSQL database created here and dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'chaos.sqlite'}"
        return
    name = f"hub_scim_chaos_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5},
    )  # fmt: skip
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Server:
    """``hub-scim serve`` on loopback, its tokens, and a direct engine for the checks."""

    kind: str
    database_url: str
    root: str
    scim_token: str
    access_token: str
    process: subprocess.Popen[bytes]
    log: Path
    engine: Engine
    org_id: int

    @property
    def scim(self) -> str:
        return self.root + "/scim/v2"

    def workers(self) -> list[int]:
        """The gunicorn workers: the children of the master (``serve`` runs gunicorn in-process)."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def rss_kib(self) -> int:
        total = 0
        for pid in [self.process.pid, *self.workers()]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def session(self, token: str | None = None) -> requests.Session:
        session = requests.Session()
        session.headers.update(
            {
                "Authorization": f"Bearer {token or self.scim_token}",
                "Accept": "application/scim+json",
                "Content-Type": "application/scim+json",
            }
        )
        return session


@contextlib.contextmanager
def spawned_server(
    kind: str, workdir: Path, admin_url: str = POSTGRESQL_ADMIN_URL, workers: int = 2,
    threads: int = 4,
) -> Iterator[Server]:  # fmt: skip
    """Migrate a fresh database, create an organization, its tokens and mapping, then serve."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = server_environment(workdir)
    with database(kind, workdir, admin_url) as database_url:
        env["HUB_SCIM_DATABASE_URL"] = database_url
        run_cli(env, "db", "upgrade")
        run_cli(env, "org", "create", "chaos")
        scim_token = run_cli(env, "token", "create", "--org", "chaos").split()[-1]
        access_token = run_cli(
            env, "token", "create", "--org", "chaos", "--scope", "access"
        ).split()[-1]
        mapping = workdir / "mapping.toml"
        mapping.write_text(MAPPING)
        run_cli(env, "mapping", "apply", "--org", "chaos", str(mapping))
        port = free_loopback_port()
        log = workdir / f"serve-{kind}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*hub_scim_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(workers), "--threads", str(threads)],
                cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        engine = create_engine(
            database_url.replace("postgresql://", "postgresql+psycopg://", 1),
            pool_pre_ping=True,
        )
        try:
            root = f"http://127.0.0.1:{port}"
            wait_until_answering(root, process, log, STARTUP_TIMEOUT_SECONDS)
            with engine.connect() as connection:
                org_id = connection.scalar(
                    text("SELECT id FROM organizations WHERE name = 'chaos'")
                )
            yield Server(
                kind, database_url, root, scim_token, access_token, process, log, engine,
                int(org_id),
            )  # fmt: skip
        finally:
            stop(process)
            engine.dispose()


def wait_until_answering(
    root: str, process: subprocess.Popen[bytes], log: Path, limit: float
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChaosError(f"server exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(root + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise ChaosError(f"server not up after {limit:.0f} s:\n{tail(log)}")


def user_document(user_name: str, active: bool = True) -> dict[str, Any]:
    local = user_name.split("@")[0]
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "active": active,
        "externalId": local,
        "name": {"givenName": local, "familyName": "Chaos"},
        "emails": [
            {"value": user_name, "type": "work", "primary": True},
            {"value": f"{local}@home.example.com", "type": "home"},
        ],
    }


def create_pool(server: Server, users: int, groups: int) -> tuple[list[str], list[str], list[str]]:
    """Users and groups the fuzzer's PATCH and PUT requests aim at."""
    user_ids: list[str] = []
    user_names: list[str] = []
    group_ids: list[str] = []
    with server.session() as http:
        for number in range(users):
            name = f"pool{number}-{uuid.uuid4().hex[:6]}@example.com"
            answer = http.post(f"{server.scim}/Users", json=user_document(name), timeout=30)
            answer.raise_for_status()
            user_ids.append(answer.json()["id"])
            user_names.append(name)
        for number in range(groups):
            body = {"schemas": [GROUP_SCHEMA], "displayName": f"pool group {number}"}
            answer = http.post(f"{server.scim}/Groups", json=body, timeout=30)
            answer.raise_for_status()
            group_ids.append(answer.json()["id"])
    return user_ids, user_names, group_ids


# --- Fuzz --------------------------------------------------------------------------------------


@dataclass
class FuzzResult:
    requests: int = 0
    server_errors: int = 0
    non_conforming: int = 0
    slow: int = 0
    broken: int = 0
    idle_closed: int = 0
    slowest: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.server_errors + self.non_conforming + self.slow + self.broken


def conforms(path: str, response: requests.Response) -> bool:
    """An error answer is a SCIM Error on SCIM routes (RFC 7644 section 3.12), JSON on the API."""
    if response.status_code < 400:
        return True
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    if path.startswith("/scim/"):
        return (
            "json" in response.headers.get("Content-Type", "")
            and ERROR_SCHEMA in (body.get("schemas") or [])
            and str(body.get("status")) == str(response.status_code)
        )
    return isinstance(body.get("error"), str)


def run_fuzz(
    server: Server, examples: int, seed: int, log: Callable[[str], None] = print,
    slow_seconds: float = SLOW_SECONDS,
) -> FuzzResult:  # fmt: skip
    """Send ``examples`` generated requests and tally what went wrong.

    Generation is Hypothesis' own ``@given`` loop, run here as a plain
    function: ``phases=[Phase.generate]`` (no shrinking, no replay of a
    saved database: the body never raises, it counts), ``database=None``,
    every health check off (the driver is slow on purpose), and a fixed
    seed so that a run can be repeated.
    """
    user_ids, user_names, group_ids = create_pool(server, users=12, groups=4)
    picker = random.Random(seed)
    result = FuzzResult()
    scim_http = server.session()
    access_http = server.session(server.access_token)

    def placeholders() -> dict[bytes, bytes]:
        """One existing user and group (and one unknown id) per request, wherever it names them."""
        return {
            b"{user}": picker.choice(user_ids).encode(),
            b"{group}": picker.choice(group_ids).encode(),
            b"{username}": picker.choice(user_names).encode(),
            b"{missing}": str(uuid.uuid4()).encode(),
        }

    def fill(template: bytes, values: dict[bytes, bytes]) -> bytes:
        for placeholder, value in values.items():
            template = template.replace(placeholder, value)
        return template

    last_answer = [time.monotonic()]

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples, phases=[Phase.generate], database=None, deadline=None,
        suppress_health_check=list(HealthCheck), derandomize=False, print_blob=False,
    )  # fmt: skip
    @given(scim_request())
    def send(request: FuzzRequest) -> None:
        values = placeholders()
        path = fill(request.path.encode(), values).decode()
        body = None if request.body is None else fill(request.body, values)
        url = server.root + path + (f"?{request.query}" if request.query else "")
        http = access_http if path.startswith("/api/") else scim_http
        idle = time.monotonic() - last_answer[0]
        started = time.monotonic()
        try:
            try:
                response = http.request(
                    request.method, url, data=body, timeout=REQUEST_TIMEOUT_SECONDS
                )
            except requests.ConnectionError:
                if idle < SERVER_KEEPALIVE_SECONDS - 1:
                    raise
                # The server closed the connection while it idled (its keep-alive
                # timeout) as the request left: a pooled client retries on a new one.
                result.idle_closed += 1
                http.close()
                started = time.monotonic()
                response = http.request(
                    request.method, url, data=body, timeout=REQUEST_TIMEOUT_SECONDS
                )
        except requests.RequestException as error:
            result.requests += 1
            result.broken += 1
            result.findings.append(
                f"broken {request.kind} {request.method} {path} after {idle:.1f} s idle: {error}"
            )
            http.close()
            last_answer[0] = time.monotonic()
            return
        last_answer[0] = time.monotonic()
        elapsed = time.monotonic() - started
        result.requests += 1
        result.statuses[response.status_code] += 1
        result.slowest = max(result.slowest, elapsed)
        what = f"{request.kind} {request.method} {path} -> {response.status_code}"
        if response.status_code >= 500:
            result.server_errors += 1
            result.findings.append(f"5xx {what}: {response.text[:300]!r}")
        if not conforms(path, response):
            result.non_conforming += 1
            result.findings.append(f"not an error document: {what}: {response.text[:200]!r}")
        if elapsed > slow_seconds:
            result.slow += 1
            result.findings.append(f"slow {elapsed:.1f} s: {what} ({len(body or b'')} bytes)")
        if result.requests % 1000 == 0:
            log(f"  fuzz {server.kind}: {result.requests} requests, {result.failures} failures")

    try:
        send()
    finally:
        scim_http.close()
        access_http.close()
    return result


# --- Faults ------------------------------------------------------------------------------------


class Ledger:
    """What the IdP was told: per key, the last acknowledged value and the unknowns after it.

    A key (a user's existence, its ``active``, one membership) is written by
    one load thread only, so its writes are ordered. A write whose answer never
    came (connection cut, 5xx) may or may not have happened: its value joins
    the acceptable ones until a later acknowledged write settles the key.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acked: dict[tuple[str, ...], Any] = {}
        self._maybe: dict[tuple[str, ...], set[Any]] = {}
        self.acknowledged = 0
        self.unacknowledged = 0

    def acked(self, key: tuple[str, ...], value: Any) -> None:
        with self._lock:
            self._acked[key] = value
            self._maybe.pop(key, None)
            self.acknowledged += 1

    def unknown(self, key: tuple[str, ...], value: Any) -> None:
        with self._lock:
            self._maybe.setdefault(key, set()).add(value)
            self.unacknowledged += 1

    def keys(self) -> set[tuple[str, ...]]:
        with self._lock:
            return set(self._acked) | set(self._maybe)

    def acceptable(self, key: tuple[str, ...], initial: Any) -> set[Any]:
        with self._lock:
            return {self._acked.get(key, initial), *self._maybe.get(key, set())}

    def settled(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            return key in self._acked and key not in self._maybe


ACK = (200, 201, 204)


class IdpLoad:
    """Okta/Entra-shaped writers, each owning the keys it writes, running until stopped.

    - ``bulk``: Bulk POSTs of new users (Okta's initial import through Bulk).
    - ``members``: membership PATCHes on three groups, Okta's and Entra's forms,
      over users the bulk writer created (never deleted).
    - ``leavers``: own users created one by one, moved in and out of the Owners
      group, deactivated, reactivated and deleted (Entra's string booleans).
    """

    def __init__(self, server: Server, ledger: Ledger, seed: int) -> None:
        self.server = server
        self.ledger = ledger
        self.random = random.Random(seed)
        self.stopping = threading.Event()
        self.bulk_users: list[tuple[str, str]] = []  # (userName, id) acknowledged
        self.leaver_users: dict[str, str] = {}  # userName -> id, acknowledged and not deleted
        self.groups: dict[str, str] = {}
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self._lock = threading.Lock()

    def prepare(self) -> None:
        with self.server.session() as http:
            for name in ("Chaos A", "Chaos B", OWNERS_GROUP):
                body = {"schemas": [GROUP_SCHEMA], "displayName": name}
                answer = http.post(f"{self.server.scim}/Groups", json=body, timeout=30)
                answer.raise_for_status()
                self.groups[name] = answer.json()["id"]

    def send(self, http: requests.Session, method: str, path: str, body: Any) -> int | None:
        with self._lock:
            self.requests += 1
        try:
            answer = http.request(
                method, self.server.scim + path, json=body, timeout=REQUEST_TIMEOUT_SECONDS
            )
        except requests.RequestException as error:
            with self._lock:
                self.errors[type(error).__name__] += 1
            http.close()
            return None
        if answer.status_code not in ACK:
            with self._lock:
                self.errors[f"{answer.status_code}"] += 1
        return answer.status_code

    def run(self, name: str) -> None:
        step = getattr(self, f"step_{name}")
        rng = random.Random(self.random.random())
        with self.server.session() as http:
            while not self.stopping.is_set():
                step(http, rng)

    def step_bulk(self, http: requests.Session, rng: random.Random) -> None:
        names = [f"bulk-{uuid.uuid4().hex[:10]}@example.com" for _ in range(rng.randint(5, 15))]
        operations = [
            {"method": "POST", "path": "/Users", "bulkId": name, "data": user_document(name)}
            for name in names
        ]
        body = {"schemas": [BULK_SCHEMA], "Operations": operations}
        try:
            answer = http.post(f"{self.server.scim}/Bulk", json=body, timeout=60)
            statuses = {
                item.get("bulkId"): (str(item.get("status")), item.get("location"))
                for item in answer.json().get("Operations", [])
            } if answer.status_code == 200 else {}  # fmt: skip
        except (requests.RequestException, ValueError, AttributeError):
            http.close()
            statuses = {}
        with self._lock:
            self.requests += 1
        for name in names:
            status, location = statuses.get(name, (None, None))
            if status == "201" and location:
                self.ledger.acked(("user", name), True)
                with self._lock:
                    self.bulk_users.append((name, location.rsplit("/", 1)[-1]))
            else:
                self.ledger.unknown(("user", name), True)

    def step_members(self, http: requests.Session, rng: random.Random) -> None:
        with self._lock:
            candidates = list(self.bulk_users)
        if len(candidates) < 3:
            time.sleep(0.05)
            return
        group_name = rng.choice(["Chaos A", "Chaos B"])
        group_id = self.groups[group_name]
        chosen = rng.sample(candidates, k=min(len(candidates), rng.randint(1, 5)))
        adding = rng.random() < 0.6
        entra = rng.random() < 0.5
        members = [{"value": user_id} for _, user_id in chosen]
        if adding:
            operations = [{"op": "Add" if entra else "add", "path": "members", "value": members}]
        elif entra:
            operations = [{"op": "Remove", "path": "members", "value": members}]
        else:
            condition = " or ".join(f'value eq "{user_id}"' for _, user_id in chosen)
            operations = [{"op": "remove", "path": f"members[{condition}]"}]
        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        status = self.send(http, "PATCH", f"/Groups/{group_id}", body)
        for name, _ in chosen:
            key = ("member", group_name, name)
            if status in ACK:
                self.ledger.acked(key, adding)
            else:
                self.ledger.unknown(key, adding)

    def step_leavers(self, http: requests.Session, rng: random.Random) -> None:
        roll = rng.random()
        with self._lock:
            owned = dict(self.leaver_users)
        if roll < 0.3 or len(owned) < 3:
            name = f"leaver-{uuid.uuid4().hex[:10]}@example.com"
            try:
                answer = http.post(
                    f"{self.server.scim}/Users", json=user_document(name), timeout=30
                )
                status: int | None = answer.status_code
                user_id = answer.json().get("id") if status == 201 else None
            except (requests.RequestException, ValueError):
                http.close()
                status, user_id = None, None
            with self._lock:
                self.requests += 1
            if status == 201 and user_id:
                self.ledger.acked(("user", name), True)
                self.ledger.acked(("active", name), True)
                with self._lock:
                    self.leaver_users[name] = user_id
            else:
                self.ledger.unknown(("user", name), True)
                self.ledger.unknown(("active", name), True)
            return
        name, user_id = rng.choice(sorted(owned.items()))
        if roll < 0.5:  # into or out of the Owners group
            adding = rng.random() < 0.5
            member = [{"value": user_id}]
            operation = (
                {"op": "add", "path": "members", "value": member} if adding
                else {"op": "Remove", "path": "members", "value": member}
            )  # fmt: skip
            body = {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
            status = self.send(http, "PATCH", f"/Groups/{self.groups[OWNERS_GROUP]}", body)
            key = ("member", OWNERS_GROUP, name)
            (self.ledger.acked if status in ACK else self.ledger.unknown)(key, adding)
        elif roll < 0.85:  # leaver or rejoiner, Okta's or Entra's form
            active = rng.random() < 0.5
            operation = (
                {"op": "Replace", "path": "active", "value": "True" if active else "False"}
                if rng.random() < 0.5 else {"op": "replace", "value": {"active": active}}
            )  # fmt: skip
            body = {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
            status = self.send(http, "PATCH", f"/Users/{user_id}", body)
            (self.ledger.acked if status in ACK else self.ledger.unknown)(("active", name), active)
        else:  # deleted
            status = self.send(http, "DELETE", f"/Users/{user_id}", None)
            if status in (204, 404) and (status == 204 or self.ledger.settled(("user", name))):
                self.ledger.acked(("user", name), False)
            else:
                self.ledger.unknown(("user", name), False)
            with self._lock:
                self.leaver_users.pop(name, None)


def directory_state(server: Server) -> dict[str, Any]:
    """Users by userName (active), and memberships by group name, read from the database."""
    with server.engine.connect() as connection:
        users = {
            name: bool(active) if active is not None else True
            for name, active in connection.execute(
                text(
                    "SELECT name, active FROM scim_resources WHERE org_id = :org AND kind = 'User'"
                ),
                {"org": server.org_id},
            )
        }
        members = {
            (group, user)
            for group, user in connection.execute(
                text(
                    "SELECT g.name, u.name FROM group_members m "
                    "JOIN scim_resources g ON g.id = m.group_id "
                    "JOIN scim_resources u ON u.id = m.user_id WHERE m.org_id = :org"
                ),
                {"org": server.org_id},
            )
        }
    return {"users": users, "members": members}


def lost_writes(server: Server, ledger: Ledger) -> list[str]:
    """Every key whose stored value is not one the IdP's answers allow."""
    state = directory_state(server)
    users: dict[str, bool] = state["users"]
    lost: list[str] = []
    for key in sorted(ledger.keys()):
        if key[0] == "user":
            found: Any = key[1] in users
            allowed = ledger.acceptable(key, False)
        elif key[0] == "active":
            if key[1] not in users:
                continue  # a deleted user: its existence is checked on its own key
            found = users[key[1]]
            allowed = ledger.acceptable(key, True)
        else:
            if key[2] not in users:
                continue
            found = (key[1], key[2]) in state["members"]
            allowed = ledger.acceptable(key, False)
        if found not in allowed:
            lost.append(f"{'/'.join(key)}: stored {found}, the IdP was told {sorted(allowed)}")
    return lost


INTEGRITY_CHECKS = {
    "a member that is not a user of the organization": """
        SELECT count(*) FROM group_members m LEFT JOIN scim_resources u ON u.id = m.user_id
        WHERE u.id IS NULL OR u.kind <> 'User' OR u.org_id <> m.org_id""",
    "a membership of a group that is missing": """
        SELECT count(*) FROM group_members m LEFT JOIN scim_resources g ON g.id = m.group_id
        WHERE g.id IS NULL OR g.kind <> 'Group'""",
    "a user whose emails are not all indexed": """
        SELECT count(*) FROM scim_resources r WHERE r.kind = 'User'
        AND (r.name LIKE 'bulk-%' OR r.name LIKE 'leaver-%') AND (SELECT count(*)
            FROM scim_attribute_values v
            WHERE v.resource_id = r.id AND v.path = 'emails.value') <> 2""",
    "an access snapshot of a missing user": """
        SELECT count(*) FROM access_snapshots s LEFT JOIN scim_resources u ON u.id = s.user_id
        WHERE u.id IS NULL""",
    "more than two Owners": """
        SELECT count(*) FROM (SELECT org_id FROM owner_seats GROUP BY org_id
        HAVING count(*) > 2) AS crowded""",
    "an Owner seat of a missing or inactive user": """
        SELECT count(*) FROM owner_seats s LEFT JOIN scim_resources u ON u.id = s.user_id
        WHERE u.id IS NULL OR u.active = false""",
    "a free Owner seat while someone is held": """
        SELECT count(*) FROM organizations o WHERE
        (SELECT count(*) FROM owner_seats s WHERE s.org_id = o.id) < 2
        AND EXISTS (SELECT 1 FROM owner_holds h WHERE h.org_id = o.id)""",
    "a hold of a missing user": """
        SELECT count(*) FROM owner_holds h LEFT JOIN scim_resources u ON u.id = h.user_id
        WHERE u.id IS NULL""",
}


def integrity_problems(server: Server) -> list[str]:
    problems: list[str] = []
    with server.engine.connect() as connection:
        for what, query in INTEGRITY_CHECKS.items():
            count = connection.scalar(text(query)) or 0
            if count:
                problems.append(f"{count} x {what}")
    return problems


@dataclass
class FaultResult:
    faults: Counter[str] = field(default_factory=Counter)
    recovery_seconds: list[float] = field(default_factory=list)
    not_recovered: int = 0
    integrity: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    acknowledged: int = 0
    unacknowledged: int = 0
    requests: int = 0
    load_errors: Counter[str] = field(default_factory=Counter)

    @property
    def injected(self) -> int:
        return sum(self.faults.values())


def kill_worker(server: Server, rng: random.Random) -> str:
    workers = server.workers()
    if not workers:
        return "no worker"
    os.kill(rng.choice(workers), signal.SIGKILL)
    return "kill -9 worker"


def terminate_backends(server: Server, admin_url: str) -> str:
    name = make_url(server.database_url).database
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    finally:
        admin.dispose()
    return "pg_terminate_backend"


def restart_postgresql(cluster: str) -> str:
    version, name = cluster.split()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    return "PostgreSQL restart"


def wait_for_recovery(server: Server, limit: float) -> float | None:
    """Seconds until a SCIM read answers 200 again, or None past ``limit``."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with contextlib.suppress(requests.RequestException), server.session() as http:
            if http.get(f"{server.scim}/Users?count=1", timeout=5).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.05)
    return None


def run_faults(
    server: Server, count: int, seed: int, admin_url: str, pg_restart: str | None,
    log: Callable[[str], None],
) -> FaultResult:  # fmt: skip
    """``count`` rounds: load, one fault in its middle, recovery, then every check."""
    rng = random.Random(seed)
    ledger = Ledger()
    load = IdpLoad(server, ledger, seed)
    load.prepare()
    result = FaultResult()
    kinds = ["kill -9 worker"]
    if server.kind == "postgresql":
        kinds.append("pg_terminate_backend")
        if pg_restart:
            kinds.append("PostgreSQL restart")
    for round_number in range(count):
        load.stopping.clear()
        threads = [
            threading.Thread(target=load.run, args=(name,), daemon=True)
            for name in ("bulk", "members", "leavers")
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.3, 1.0))
        kind = kinds[round_number % len(kinds)]
        if kind == "kill -9 worker":
            kind = kill_worker(server, rng)
        elif kind == "pg_terminate_backend":
            kind = terminate_backends(server, admin_url)
        elif pg_restart:
            kind = restart_postgresql(pg_restart)
        result.faults[kind] += 1
        recovered = wait_for_recovery(server, RECOVERY_LIMIT_SECONDS)
        if recovered is None:
            result.not_recovered += 1
        else:
            result.recovery_seconds.append(recovered)
        time.sleep(rng.uniform(0.2, 0.6))
        load.stopping.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT_SECONDS * 3)
        problems = integrity_problems(server)
        result.integrity.extend(f"after fault {round_number + 1}: {p}" for p in problems)
        lost = lost_writes(server, ledger)
        result.lost = lost  # cumulative: the latest comparison covers every write so far
        if problems or lost:
            log(f"  faults {server.kind}: round {round_number + 1}: {problems} {lost[:5]}")
        if (round_number + 1) % 10 == 0:
            log(f"  faults {server.kind}: {round_number + 1} faults, {len(lost)} lost writes")
    result.acknowledged = ledger.acknowledged
    result.unacknowledged = ledger.unacknowledged
    result.requests = load.requests
    result.load_errors = load.errors
    return result


# --- Soak --------------------------------------------------------------------------------------


@dataclass
class SoakResult:
    minutes: float
    requests: int
    errors: int
    rss_first_kib: int
    rss_last_kib: int
    p99_first_ms: float
    p99_last_ms: float

    @property
    def rss_growth(self) -> float:
        return (self.rss_last_kib - self.rss_first_kib) / max(1, self.rss_first_kib)

    @property
    def p99_drift(self) -> float:
        return (self.p99_last_ms - self.p99_first_ms) / max(0.001, self.p99_first_ms)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_soak(
    server: Server, minutes: float, rate: float, seed: int, log: Callable[[str], None]
) -> SoakResult:
    """A steady mixed load: Okta lookups and creates, Entra PATCHes, membership deltas, reads.

    The first and last windows are a tenth of the run each (at least 30 s),
    after a warm-up of the same length; RSS is the sum over the gunicorn
    master and workers, sampled at the end of each window.
    """
    rng = random.Random(seed)
    user_ids, user_names, group_ids = create_pool(server, users=50, groups=5)
    window = max(30.0, minutes * 6.0)
    started = time.monotonic()
    end = started + minutes * 60
    latencies: list[tuple[float, float]] = []
    errors = 0
    requests_sent = 0
    rss_samples: list[tuple[float, int]] = []
    interval = 1.0 / rate
    next_at = started
    with server.session() as http, server.session(server.access_token) as access:
        while time.monotonic() < end:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            roll = rng.random()
            sent = time.monotonic()
            try:
                if roll < 0.35:
                    name = rng.choice(user_names)
                    answer = http.get(
                        f"{server.scim}/Users", params={"filter": f'userName eq "{name}"'},
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )  # fmt: skip
                elif roll < 0.5:
                    name = f"soak-{uuid.uuid4().hex[:10]}@example.com"
                    answer = http.post(
                        f"{server.scim}/Users", json=user_document(name),
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )  # fmt: skip
                    if answer.status_code == 201:
                        user_ids.append(answer.json()["id"])
                        user_names.append(name)
                elif roll < 0.65:
                    value = rng.choice(["True", "False"])
                    body = {"schemas": [PATCH_SCHEMA], "Operations": [
                        {"op": "Replace", "path": "active", "value": value},
                        {"op": "Replace", "path": "title", "value": f"T{rng.randint(0, 99)}"},
                    ]}  # fmt: skip
                    answer = http.patch(
                        f"{server.scim}/Users/{rng.choice(user_ids)}", json=body,
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )  # fmt: skip
                elif roll < 0.8:
                    op = rng.choice(["add", "remove"])
                    members = [{"value": rng.choice(user_ids)} for _ in range(3)]
                    body = {"schemas": [PATCH_SCHEMA], "Operations": [
                        {"op": op, "path": "members", "value": members}
                    ]}  # fmt: skip
                    answer = http.patch(
                        f"{server.scim}/Groups/{rng.choice(group_ids)}", json=body,
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )  # fmt: skip
                elif roll < 0.9:
                    answer = http.get(
                        f"{server.scim}/Groups/{rng.choice(group_ids)}",
                        params={"excludedAttributes": "members"}, timeout=REQUEST_TIMEOUT_SECONDS,
                    )  # fmt: skip
                else:
                    answer = access.get(
                        f"{server.root}/api/v1/access/{rng.choice(user_ids)}",
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )
                ok = answer.status_code < 400
            except requests.RequestException:
                ok = False
            finished = time.monotonic()
            requests_sent += 1
            latencies.append((finished - started, (finished - sent) * 1000))
            if not ok:
                errors += 1
            if not rss_samples or finished - rss_samples[-1][0] - started >= 10:
                rss_samples.append((finished - started, server.rss_kib()))
                log(f"  soak {server.kind}: {finished - started:.0f} s, {requests_sent} requests, "
                    f"RSS {rss_samples[-1][1] / 1024:.0f} MiB, {errors} errors")  # fmt: skip
    total = minutes * 60

    def p99_between(low: float, high: float) -> float:
        return percentile([ms for at, ms in latencies if low <= at < high], 0.99)

    def rss_near(at: float) -> int:
        return min(rss_samples, key=lambda sample: abs(sample[0] - at))[1]

    return SoakResult(
        minutes, requests_sent, errors, rss_near(2 * window), rss_near(total),
        p99_between(window, 2 * window), p99_between(total - window, total),
    )  # fmt: skip


# --- The table ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def statuses(counted: Counter[int]) -> str:
    return ", ".join(f"{status}: {count}" for status, count in sorted(counted.items()))


def fuzz_rows(kind: str, fuzz: FuzzResult) -> list[tuple[str, str, str, str]]:
    return [
        (kind, "fuzz requests", f"{fuzz.requests} ({statuses(fuzz.statuses)})", ""),
        (kind, "fuzz 5xx", f"{fuzz.server_errors}", verdict(fuzz.server_errors == 0)),
        (kind, "fuzz non-SCIM error bodies", f"{fuzz.non_conforming}",
         verdict(fuzz.non_conforming == 0)),
        (kind, f"fuzz answers over {SLOW_SECONDS:.0f} s", f"{fuzz.slow} (slowest "
         f"{fuzz.slowest:.2f} s)", verdict(fuzz.slow == 0)),
        (kind, "fuzz broken connections (idle keep-alive closes retried)",
         f"{fuzz.broken} ({fuzz.idle_closed})", verdict(fuzz.broken == 0)),
    ]  # fmt: skip


def fault_rows(kind: str, faults: FaultResult) -> list[tuple[str, str, str, str]]:
    recovery = faults.recovery_seconds
    slowest = max(recovery, default=0.0)
    injected = ", ".join(f"{count} {name}" for name, count in sorted(faults.faults.items()))
    return [
        (kind, "faults injected", f"{faults.injected} ({injected})", ""),
        (kind, "load requests (acknowledged / unknown writes)",
         f"{faults.requests} ({faults.acknowledged} / {faults.unacknowledged})", ""),
        (kind, "recovery, median / slowest", f"{percentile(recovery, 0.5):.2f} s / {slowest:.2f} s",
         verdict(faults.not_recovered == 0)),
        (kind, "half-written resources, Owner cap", f"{len(faults.integrity)}",
         verdict(not faults.integrity)),
        (kind, "lost acknowledged writes", f"{len(faults.lost)}", verdict(not faults.lost)),
    ]  # fmt: skip


def soak_rows(kind: str, soak: SoakResult) -> list[tuple[str, str, str, str]]:
    return [
        (kind, f"soak {soak.minutes:g} min requests / errors", f"{soak.requests} / {soak.errors}",
         verdict(soak.errors == 0)),
        (kind, "soak RSS growth", f"{soak.rss_first_kib / 1024:.0f} -> "
         f"{soak.rss_last_kib / 1024:.0f} MiB ({soak.rss_growth:+.1%})",
         verdict(soak.rss_growth < 0.10)),
        (kind, "soak p99 drift", f"{soak.p99_first_ms:.1f} -> {soak.p99_last_ms:.1f} ms "
         f"({soak.p99_drift:+.1%})", verdict(soak.p99_drift < 0.20)),
    ]  # fmt: skip


def print_table(rows: Sequence[tuple[str, str, str, str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    header = ("database", "measure", "figure", "target")
    widths = [max(width, len(title)) for width, title in zip(widths, header, strict=True)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


@dataclass
class RunOutcome:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    fuzz: dict[str, FuzzResult] = field(default_factory=dict)
    faults: dict[str, FaultResult] = field(default_factory=dict)
    soak: dict[str, SoakResult] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(row[3] != "FAIL" for row in self.rows)


def run_battery(
    databases: Sequence[str], fuzz: int, faults: int, soak_minutes: float, seed: int,
    workdir: Path, admin_url: str = POSTGRESQL_ADMIN_URL, pg_restart: str | None = None,
    soak_rate: float = 40.0, log: Callable[[str], None] = print,
) -> RunOutcome:  # fmt: skip
    """Each part on each database, each against a server of its own."""
    outcome = RunOutcome()
    for kind in databases:
        if fuzz:
            with spawned_server(kind, workdir / f"fuzz-{kind}", admin_url) as server:
                log(f"fuzz {kind}: {fuzz} requests")
                outcome.fuzz[kind] = run_fuzz(server, fuzz, seed, log)
                outcome.rows += fuzz_rows(kind, outcome.fuzz[kind])
        if faults:
            with spawned_server(kind, workdir / f"faults-{kind}", admin_url) as server:
                log(f"faults {kind}: {faults} faults")
                restart = pg_restart if kind == "postgresql" else None
                outcome.faults[kind] = run_faults(server, faults, seed, admin_url, restart, log)
                outcome.rows += fault_rows(kind, outcome.faults[kind])
        if soak_minutes:
            with spawned_server(kind, workdir / f"soak-{kind}", admin_url) as server:
                log(f"soak {kind}: {soak_minutes:g} minutes at {soak_rate:g} requests/s")
                outcome.soak[kind] = run_soak(server, soak_minutes, soak_rate, seed, log)
                outcome.rows += soak_rows(kind, outcome.soak[kind])
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz", type=int, default=300, help="fuzz requests per database")
    parser.add_argument("--faults", type=int, default=4, help="faults injected per database")
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--soak-rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgresql-admin-url", default=POSTGRESQL_ADMIN_URL)
    parser.add_argument(
        "--pg-restart", metavar="'VERSION CLUSTER'",
        help="also restart this PostgreSQL cluster mid-load, e.g. '15 main' (every other "
        "client of that cluster sees it: only on a machine where nothing else uses it)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--findings", type=int, default=20, help="findings printed per part")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"postgresql://[^@/]*@(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/\w+",
                        args.postgresql_admin_url):  # fmt: skip
        parser.error("--postgresql-admin-url must point at loopback")
    with tempfile.TemporaryDirectory(prefix="hub-scim-chaos-") as workdir:
        outcome = run_battery(
            args.databases.split(","), args.fuzz, args.faults, args.soak_minutes, args.seed,
            Path(workdir), args.postgresql_admin_url, args.pg_restart, args.soak_rate,
        )  # fmt: skip
    for kind, fuzz in outcome.fuzz.items():
        for finding in fuzz.findings[: args.findings]:
            print(f"{kind}: {finding}")
    for kind, faults in outcome.faults.items():
        for finding in [*faults.integrity, *faults.lost][: args.findings]:
            print(f"{kind}: {finding}")
        if faults.load_errors:
            print(
                f"{kind}: load answers that were not acknowledgements: {dict(faults.load_errors)}"
            )
    print()
    print_table(outcome.rows)
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
