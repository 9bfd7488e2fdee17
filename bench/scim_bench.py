"""SCIM load benchmark: concurrent clients against hub-scim and scim2-server, or one client.

Without arguments it runs the concurrent comparison (bench/contention.py):
``--concurrency`` clients (default 8) send each phase in parallel to hub-scim
served by ``hub-scim serve`` on a fresh PostgreSQL database and on a SQLite
file, then to scim2-server, and it prints requests/s, p50/p99 and the ratio
phase by phase::

    .venv/bin/python bench/scim_bench.py                  # a few minutes
    .venv/bin/python bench/scim_bench.py --profile create,replace,deactivate,delete \
        --databases postgresql                            # where the time goes

With ``--spawn`` or ``--base-url`` (or ``--concurrency 1``) it runs the
sequential benchmark below, one client, as before.

Sequential phases (each prints ops/s, p50 and p99; every response is checked, and the run
aborts with a clear message on the first wrong answer):

  create     POST /Users, N users
  lookup     GET /Users?filter=userName eq "...", once per user
  replace    PUT /Users/{id}, once per user
  add        grow one group to M members by PATCH batches of 50 (prints the
             ratio of the last batch to the first, raw and as the mean of the
             last 5 over the first 5)
  remove     remove a bounded sample of members one at a time with
             members[value eq "..."]
  page       GET /Users?startIndex=..&count=100 through all users
  delete     DELETE /Users/{id}, every user the run created

M members need M users: when M > N the missing users are created in an untimed
setup step (through Bulk when the server offers it). ``--lookup-scaling`` adds
the lookup-scaling mode: ``userName eq`` lookups among 1,000 users, then among
100,000 (seeded through Bulk or several threads), in one run.

Targets, as ratios measured in one run: at 20,000 members the last
membership batch takes at most 1.5x the first; a lookup among 100,000 users at
most 1.5x one among 1,000; at least as fast as scim2-server phase by phase.

Quick run (spawns ``hub-scim serve`` on a temporary SQLite database)::

    .venv/bin/python bench/scim_bench.py --spawn

Full targets, compared with scim2-server (installed in its own venv)::

    .venv/bin/python bench/scim_bench.py --spawn --users 2000 --members 20000 \\
        --lookup-scaling --compare-scim2-server \\
        --scim2-server-command /tmp/scim2-venv/bin/scim2-server

All traffic goes to the loopback interface; every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from cpu_meter import CpuMeter

if __name__ == "__main__":
    # bench/contention.py and bench/profiling.py import this module by name:
    # let them share this copy (one BenchError class), not load a second one.
    sys.modules.setdefault("scim_bench", sys.modules[__name__])

REPO_ROOT = Path(__file__).resolve().parent.parent
SCIM_CONTENT_TYPE = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MEMBER_BATCH = 50
PAGE_SIZE = 100
REQUEST_TIMEOUT_SECONDS = 120.0
STARTUP_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0


class BenchError(Exception):
    """A wrong answer from the server, or a server that could not be started."""


# --- Results ------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class PhaseResult:
    name: str
    ops: int
    wall_seconds: float
    p50_ms: float
    p99_ms: float
    notes: list[str] = field(default_factory=list)
    cpu_server_ms: float = math.nan
    """CPU time per request of the server's processes (bench/cpu_meter.py)."""
    cpu_database_ms: float = math.nan
    """CPU time per request of the PostgreSQL backends serving it (0 on SQLite)."""
    cpu_client_ms: float = math.nan
    """CPU time per request of the benchmark's own clients."""

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.wall_seconds if self.wall_seconds > 0 else math.nan


@dataclass
class RunResult:
    server: str
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Timer:
    """Collects the latency of each operation of one phase, and the phase's wall time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self._started = time.perf_counter()

    @contextlib.contextmanager
    def op(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.latencies.append(time.perf_counter() - started)

    def result(self) -> PhaseResult:
        wall = time.perf_counter() - self._started
        ordered = sorted(self.latencies)
        return PhaseResult(
            name=self.name,
            ops=len(ordered),
            wall_seconds=wall,
            p50_ms=percentile(ordered, 0.50) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
        )


def print_phase(result: PhaseResult) -> None:
    print(
        f"  {result.name:<16} {result.ops:>7} ops  {result.ops_per_second:>9.1f} ops/s  "
        f"p50 {result.p50_ms:>8.2f} ms  p99 {result.p99_ms:>8.2f} ms",
        flush=True,
    )
    for note in result.notes:
        print(f"  {'':<16} {note}", flush=True)


# --- HTTP -----------------------------------------------------------------------------------


def require_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise BenchError(f"refusing {base_url}: the benchmark only talks to the loopback interface")


class ScimHttp:
    """A SCIM client for one server: one keep-alive session per thread, every answer checked."""

    def __init__(self, base_url: str, token: str) -> None:
        require_loopback(base_url)
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(
                {
                    "Authorization": f"Bearer {self.token}",
                    "Accept": SCIM_CONTENT_TYPE,
                    "Content-Type": SCIM_CONTENT_TYPE,
                }
            )
            self._local.session = session
        return session

    def call(
        self,
        method: str,
        path: str,
        expected: int | tuple[int, ...],
        body: Any = None,
        timer: Timer | None = None,
    ) -> Any:
        """Send one request; return its JSON body (None when empty); raise on a wrong status."""
        url = self.base_url + path
        data = None if body is None else json.dumps(body)
        session = self._session()
        try:
            if timer is None:
                response = session.request(method, url, data=data, timeout=REQUEST_TIMEOUT_SECONDS)
            else:
                with timer.op():
                    response = session.request(
                        method, url, data=data, timeout=REQUEST_TIMEOUT_SECONDS
                    )
        except requests.RequestException as error:
            raise BenchError(f"{method} {path}: {error}") from error
        accepted = (expected,) if isinstance(expected, int) else expected
        if response.status_code not in accepted:
            hint = ""
            if response.status_code == 429:
                hint = " (rate-limited: run the server with HUB_SCIM_RATE_LIMIT_PER_MINUTE=0)"
            raise BenchError(
                f"{method} {path} answered {response.status_code}, expected "
                f"{' or '.join(map(str, accepted))}{hint}: {response.text[:600]}"
            )
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as error:
            raise BenchError(f"{method} {path}: body is not JSON: {response.text[:300]}") from error


def expect_equal(what: str, found: Any, wanted: Any) -> None:
    if found != wanted:
        raise BenchError(f"{what}: got {found!r}, expected {wanted!r}")


def filter_query(expression: str) -> str:
    return quote(expression, safe="")


# --- What the benchmark sends -----------------------------------------------------------------


def user_body(user_name: str, index: int, display_suffix: str = "") -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "externalId": f"ext-{user_name}",
        "name": {"givenName": f"Given{index}", "familyName": f"Family{index}"},
        "displayName": f"Bench User {index}{display_suffix}",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }


def check_user(what: str, document: Any, user_name: str) -> str:
    if not isinstance(document, dict) or not isinstance(document.get("id"), str):
        raise BenchError(f"{what}: no id in {json.dumps(document)[:300]}")
    expect_equal(f"{what} userName", document.get("userName"), user_name)
    user_id: str = document["id"]
    return user_id


@dataclass
class ServerFeatures:
    bulk_max_operations: int
    bulk_max_payload: int
    max_page_size: int | None


def discover(http: ScimHttp) -> ServerFeatures:
    config = http.call("GET", "/ServiceProviderConfig", 200)
    bulk = config.get("bulk") or {}
    filters = config.get("filter") or {}
    operations = int(bulk.get("maxOperations") or 0) if bulk.get("supported") else 0
    return ServerFeatures(
        bulk_max_operations=operations,
        bulk_max_payload=int(bulk.get("maxPayloadSize") or 0),
        max_page_size=filters.get("maxResults"),
    )


def seed_users(
    http: ScimHttp,
    features: ServerFeatures,
    user_names: Sequence[str],
    first_index: int,
    threads: int,
) -> list[str]:
    """Create users fast (untimed): Bulk batches when offered, else POSTs on several threads.

    Returns their ids, in order.
    """
    batch = min(features.bulk_max_operations, 1000)
    if batch > 0 and features.bulk_max_payload:
        per_user = len(json.dumps(user_body(user_names[0], first_index))) + 120 if user_names else 1
        batch = max(1, min(batch, (features.bulk_max_payload * 9 // 10) // per_user))
    chunks = [
        (start, user_names[start : start + max(batch, 1)])
        for start in range(0, len(user_names), max(batch, 1))
    ]

    def bulk_chunk(chunk: tuple[int, Sequence[str]]) -> list[str]:
        start, names = chunk
        operations = [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"u{start + offset}",
                "data": user_body(name, first_index + start + offset),
            }
            for offset, name in enumerate(names)
        ]
        answer = http.call(
            "POST", "/Bulk", 200, {"schemas": [BULK_REQUEST_SCHEMA], "Operations": operations}
        )
        results = answer.get("Operations") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(names):
            raise BenchError(f"Bulk answered {len(results or [])} results for {len(names)} users")
        ids: list[str] = []
        for result in results:
            status = str(result.get("status", ""))
            location = result.get("location") or ""
            if not status.startswith("201") or not location:
                raise BenchError(f"Bulk user creation failed: {json.dumps(result)[:400]}")
            ids.append(location.rstrip("/").rsplit("/", 1)[-1])
        return ids

    def post_chunk(chunk: tuple[int, Sequence[str]]) -> list[str]:
        start, names = chunk
        return [
            check_user(
                "seed POST /Users",
                http.call("POST", "/Users", 201, user_body(name, first_index + start + offset)),
                name,
            )
            for offset, name in enumerate(names)
        ]

    if batch <= 0:
        chunks = [
            (start, user_names[start : start + 200]) for start in range(0, len(user_names), 200)
        ]
    work: Callable[[tuple[int, Sequence[str]]], list[str]] = bulk_chunk if batch > 0 else post_chunk
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(work, chunks))
    return [user_id for chunk_ids in results for user_id in chunk_ids]


def delete_users(http: ScimHttp, user_ids: Sequence[str], threads: int) -> None:
    def delete(user_id: str) -> None:
        http.call("DELETE", f"/Users/{user_id}", 204)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(delete, user_ids))


# --- The phases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    users: int
    members: int
    remove_sample: int
    seed_threads: int
    lookup_scaling: bool
    lookup_small: int
    lookup_big: int
    lookups: int
    settle_seconds: float
    cleanup: bool
    seed: int


def run_phases(http: ScimHttp, server: str, config: BenchConfig) -> RunResult:
    run = RunResult(server=server)
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(config.seed)
    features = discover(http)
    print(f"\n== {server}  ({http.base_url})", flush=True)
    print(
        f"  bulk maxOperations={features.bulk_max_operations} "
        f"maxPayloadSize={features.bulk_max_payload} filter maxResults={features.max_page_size}",
        flush=True,
    )

    def record(result: PhaseResult) -> None:
        run.phases[result.name] = result
        print_phase(result)

    names = [f"bench-{tag}-{index:06d}@example.com" for index in range(config.users)]
    ids: list[str] = []

    timer = Timer("create")
    for index, name in enumerate(names):
        created = http.call("POST", "/Users", 201, user_body(name, index), timer)
        ids.append(check_user(f"POST /Users {name}", created, name))
    record(timer.result())

    timer = Timer("lookup")
    for name, user_id in zip(names, ids, strict=True):
        found = http.call(
            "GET", "/Users?filter=" + filter_query(f'userName eq "{name}"'), 200, timer=timer
        )
        expect_equal(f"lookup {name} totalResults", found.get("totalResults"), 1)
        expect_equal(f"lookup {name} id", (found.get("Resources") or [{}])[0].get("id"), user_id)
    record(timer.result())

    timer = Timer("replace")
    for index, (name, user_id) in enumerate(zip(names, ids, strict=True)):
        body = user_body(name, index, display_suffix=" (replaced)")
        body["id"] = user_id
        replaced = http.call("PUT", f"/Users/{user_id}", 200, body, timer)
        expect_equal(f"PUT {user_id} id", replaced.get("id"), user_id)
        expect_equal(f"PUT {user_id} displayName", replaced.get("displayName"), body["displayName"])
    record(timer.result())

    # Setup (untimed): M members need M users.
    member_ids = list(ids[: config.members])
    extra_ids: list[str] = []
    if config.members > len(ids):
        extra_names = [
            f"bench-{tag}-m{index:06d}@example.com" for index in range(config.members - len(ids))
        ]
        started = time.perf_counter()
        extra_ids = seed_users(http, features, extra_names, 10**6, config.seed_threads)
        member_ids.extend(extra_ids)
        run.notes.append(
            f"setup: {len(extra_ids)} extra member users seeded in "
            f"{time.perf_counter() - started:.1f} s "
            f"({'Bulk' if features.bulk_max_operations else 'parallel POST'})"
        )
        print(f"  {run.notes[-1]}", flush=True)
    group = http.call(
        "POST", "/Groups", 201, {"schemas": [GROUP_SCHEMA], "displayName": f"bench-{tag}"}
    )
    group_id = group.get("id") if isinstance(group, dict) else None
    if not isinstance(group_id, str):
        raise BenchError(f"POST /Groups: no id in {json.dumps(group)[:300]}")

    timer = Timer("add members")
    for start in range(0, len(member_ids), MEMBER_BATCH):
        values = [{"value": member} for member in member_ids[start : start + MEMBER_BATCH]]
        http.call(
            "PATCH",
            f"/Groups/{group_id}",
            (200, 204),
            {
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "add", "path": "members", "value": values}],
            },
            timer,
        )
    result = timer.result()
    batches = timer.latencies
    if batches:
        raw_ratio = batches[-1] / batches[0]
        window = min(5, len(batches))
        smoothed = (sum(batches[-window:]) / window) / (sum(batches[:window]) / window)
        run.figures["batch_ratio_raw"] = raw_ratio
        run.figures["batch_ratio_smoothed"] = smoothed
        result.notes.append(
            f"{len(batches)} batches of {MEMBER_BATCH}; last/first batch = {raw_ratio:.2f}x raw, "
            f"{smoothed:.2f}x mean of last {window} / first {window} (target <= 1.5x)"
        )
    record(result)
    verify_member_count(http, group_id, len(member_ids))

    sample = rng.sample(member_ids, min(config.remove_sample, len(member_ids)))
    timer = Timer("remove member")
    for member in sample:
        http.call(
            "PATCH",
            f"/Groups/{group_id}",
            (200, 204),
            {
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "remove", "path": f'members[value eq "{member}"]'}],
            },
            timer,
        )
    record(timer.result())
    verify_member_count(http, group_id, len(member_ids) - len(sample))

    all_ids = ids + extra_ids
    timer = Timer("page users")
    seen: list[str] = []
    total: int | None = None
    max_pages = (len(all_ids) + 10_000) // PAGE_SIZE + 2  # bounded even if the server misbehaves
    for page in range(max_pages):
        start_index = 1 + page * PAGE_SIZE
        listing = http.call(
            "GET", f"/Users?startIndex={start_index}&count={PAGE_SIZE}", 200, timer=timer
        )
        resources = listing.get("Resources") or []
        if total is None:
            total = listing.get("totalResults")
            if not isinstance(total, int) or total < len(all_ids):
                raise BenchError(f"paging: totalResults {total!r}, created {len(all_ids)}")
        expect_equal(f"page {start_index} totalResults", listing.get("totalResults"), total)
        expect_equal(
            f"page {start_index} itemsPerPage", listing.get("itemsPerPage"), len(resources)
        )
        if len(resources) > PAGE_SIZE:
            raise BenchError(
                f"page {start_index}: {len(resources)} resources for count={PAGE_SIZE}"
            )
        seen.extend(resource["id"] for resource in resources)
        if start_index + PAGE_SIZE > total:
            break
    if total is not None and len(seen) != total:
        raise BenchError(f"paging: {len(seen)} users over all pages, totalResults {total}")
    if len(set(seen)) != len(seen):
        raise BenchError("paging: a user appeared on two pages")
    missing = set(all_ids) - set(seen)
    if missing:
        raise BenchError(f"paging: {len(missing)} created users never listed")
    record(timer.result())

    http.call("DELETE", f"/Groups/{group_id}", 204)
    timer = Timer("delete")
    for user_id in all_ids:
        http.call("DELETE", f"/Users/{user_id}", 204, timer=timer)
    record(timer.result())
    for user_id in rng.sample(all_ids, min(20, len(all_ids))):
        http.call("GET", f"/Users/{user_id}", 404)

    if config.lookup_scaling:
        run_lookup_scaling(http, features, config, tag, run, record)
    return run


def verify_member_count(http: ScimHttp, group_id: str, expected: int) -> None:
    """The group holds exactly ``expected`` members (untimed check)."""
    group = http.call("GET", f"/Groups/{group_id}", 200)
    members = group.get("members") or []
    expect_equal(f"group {group_id} member count", len(members), expected)
    if len({member.get("value") for member in members}) != len(members):
        raise BenchError(f"group {group_id}: duplicate members")


def run_lookup_scaling(
    http: ScimHttp,
    features: ServerFeatures,
    config: BenchConfig,
    tag: str,
    run: RunResult,
    record: Callable[[PhaseResult], None],
) -> None:
    """``userName eq`` among ``lookup_small`` users, then among ``lookup_big``, same lookups."""
    rng = random.Random(config.seed + 1)
    small = [f"scale-{tag}-{index:07d}@example.com" for index in range(config.lookup_small)]
    started = time.perf_counter()
    small_ids = seed_users(http, features, small, 0, config.seed_threads)
    print(f"  seeded {len(small_ids)} users in {time.perf_counter() - started:.1f} s", flush=True)
    by_name = dict(zip(small, small_ids, strict=True))
    probes = [rng.choice(small) for _ in range(config.lookups)]

    def measure(label: str) -> PhaseResult:
        for name in probes[: min(200, len(probes))]:  # warm-up, untimed
            http.call("GET", "/Users?filter=" + filter_query(f'userName eq "{name}"'), 200)
        timer = Timer(label)
        for name in probes:
            found = http.call(
                "GET", "/Users?filter=" + filter_query(f'userName eq "{name}"'), 200, timer=timer
            )
            expect_equal(f"lookup {name} totalResults", found.get("totalResults"), 1)
            expect_equal(
                f"lookup {name} id", (found.get("Resources") or [{}])[0].get("id"), by_name[name]
            )
        return timer.result()

    among_small = measure(f"lookup @{config.lookup_small // 1000}k")
    record(among_small)
    big = [
        f"scale-{tag}-{index:07d}@example.com"
        for index in range(config.lookup_small, config.lookup_big)
    ]
    started = time.perf_counter()
    big_ids = seed_users(http, features, big, config.lookup_small, config.seed_threads)
    seconds = time.perf_counter() - started
    run.notes.append(
        f"lookup scaling: seeded {len(big_ids)} more users in {seconds:.1f} s "
        f"({len(big_ids) / seconds:.0f} users/s, "
        f"{'Bulk' if features.bulk_max_operations else 'parallel POST'}, "
        f"{config.seed_threads} threads)"
    )
    print(f"  {run.notes[-1]}", flush=True)
    if config.settle_seconds > 0:
        # Lets the database refresh its planner statistics after the bulk load,
        # as PostgreSQL's autovacuum does within a minute in production.
        print(f"  settling {config.settle_seconds:.0f} s before the timed lookups", flush=True)
        time.sleep(config.settle_seconds)
    among_big = measure(f"lookup @{config.lookup_big // 1000}k")
    ratio_p50 = among_big.p50_ms / among_small.p50_ms
    ratio_mean = (among_big.wall_seconds / among_big.ops) / (
        among_small.wall_seconds / among_small.ops
    )
    among_big.notes.append(
        f"lookup among {config.lookup_big} vs {config.lookup_small}: p50 {ratio_p50:.2f}x, "
        f"mean {ratio_mean:.2f}x (target <= 1.5x)"
    )
    run.figures["lookup_ratio_p50"] = ratio_p50
    run.figures["lookup_ratio_mean"] = ratio_mean
    record(among_big)
    if config.cleanup:
        started = time.perf_counter()
        delete_users(http, small_ids + big_ids, config.seed_threads)
        print(f"  cleaned up in {time.perf_counter() - started:.1f} s", flush=True)


# --- Servers the benchmark starts -----------------------------------------------------------


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"server exited with {process.returncode}: {tail(log)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise BenchError(f"server not up after {STARTUP_TIMEOUT_SECONDS:.0f} s: {tail(log)}")


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server this script started (its own process group), gracefully first."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def hub_scim_command(explicit: str | None) -> list[str]:
    """``hub-scim`` as installed next to this Python, else ``python -m connector.cli.main``."""
    if explicit:
        return explicit.split()
    beside = Path(sys.executable).parent / "hub-scim"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("hub-scim")
    if found:
        return [found]
    return [sys.executable, "-m", "connector.cli.main"]


@dataclass
class Spawned:
    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path


def run_cli(command: list[str], env: dict[str, str]) -> str:
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if completed.returncode != 0:
        raise BenchError(f"{' '.join(command)} failed: {completed.stderr or completed.stdout}")
    return completed.stdout


def bench_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["HUB_SCIM_RATE_LIMIT_PER_MINUTE"] = "0"  # the benchmark is the abuse a limit stops
    return env


def prepare_database(command: list[str], database_url: str) -> str:
    """Migrate ``database_url``, create an organization and return a SCIM token for it."""
    env = bench_environment()
    organization = f"bench-{uuid.uuid4().hex[:8]}"
    run_cli([*command, "db", "upgrade", "--database-url", database_url], env)
    run_cli([*command, "org", "create", organization, "--database-url", database_url], env)
    output = run_cli(
        [*command, "token", "create", "--org", organization, "--database-url", database_url], env
    )
    return output.strip().splitlines()[-1].strip()


def spawn_hub_scim(
    args: argparse.Namespace, workdir: Path, database_url: str | None = None
) -> Spawned:
    command = hub_scim_command(args.hub_scim_command)
    database_url = database_url or args.database_url or f"sqlite:///{workdir / 'bench.sqlite'}"
    env = bench_environment()
    token = prepare_database(command, database_url)
    port = free_loopback_port()
    serve = [*command, "serve", "--host", "127.0.0.1", "--port", str(port)]
    serve += ["--database-url", database_url]
    if args.workers:
        serve += ["--workers", str(args.workers)]
    if args.threads:
        serve += ["--threads", str(args.threads)]
    log = workdir / f"hub-scim-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            serve, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(root + "/healthz", process, log)
    except BaseException:
        stop(process)
        raise
    print(f"started hub-scim serve (pid {process.pid}) on {root}, database {database_url}")
    return Spawned(root + "/scim/v2", token, process, log)


def spawn_scim2_server(args: argparse.Namespace, workdir: Path) -> Spawned:
    beside = Path(sys.executable).parent / "scim2-server"
    executable = args.scim2_server_command or (
        str(beside) if beside.exists() else shutil.which("scim2-server")
    )
    if not executable:
        raise BenchError(
            "scim2-server not found: it comes with the test extra "
            "(.venv/bin/pip install -e '.[test]'), or pass --scim2-server-command"
        )
    token = uuid.uuid4().hex
    port = free_loopback_port()
    log = workdir / "scim2-server.log"
    command = [*executable.split(), "--hostname", "127.0.0.1", "--port", str(port)]
    command += ["--bearer-token", token]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=dict(os.environ), stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(root + "/v2/ServiceProviderConfig", process, log)
    except BaseException:
        stop(process)
        raise
    print(f"started scim2-server (pid {process.pid}) on {root}")
    return Spawned(root + "/v2", token, process, log)


def spawn_scim2_server_gunicorn(args: argparse.Namespace, workdir: Path, threads: int) -> Spawned:
    """scim2-server's application under gunicorn: 1 worker (in-memory storage), ``threads`` threads.

    See bench/scim2_server_wsgi.py for why not its own wsgiref command under concurrency.
    """
    beside = Path(sys.executable).parent / "gunicorn"
    gunicorn = [str(beside)] if beside.exists() else [sys.executable, "-m", "gunicorn"]
    token = uuid.uuid4().hex
    port = free_loopback_port()
    log = workdir / "scim2-server.log"
    command = [*gunicorn, "--chdir", str(Path(__file__).resolve().parent)]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread"]
    command += ["--threads", str(threads), "--keep-alive", "5", "--log-level", "warning"]
    command += ["scim2_server_wsgi:app"]
    env = dict(os.environ, SCIM2_BENCH_TOKEN=token)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(root + "/v2/ServiceProviderConfig", process, log)
    except BaseException:
        stop(process)
        raise
    print(
        f"started scim2-server's application under gunicorn (1 worker x {threads} threads, "
        f"pid {process.pid}) on {root}"
    )
    return Spawned(root + "/v2", token, process, log)


# --- Report -------------------------------------------------------------------------------


def print_comparison(ours: RunResult, theirs: RunResult) -> None:
    print(f"\n== {ours.server} vs {theirs.server}, phase by phase (ops/s; higher is better)")
    print(f"  {'phase':<16} {'ours':>10} {'scim2-server':>13} {'ratio':>8}  p50 ours/theirs (ms)")
    for name, mine in ours.phases.items():
        other = theirs.phases.get(name)
        if other is None:
            print(f"  {name:<16} {mine.ops_per_second:>10.1f} {'-':>13}")
            continue
        ratio = mine.ops_per_second / other.ops_per_second
        verdict = "ok" if ratio >= 1.0 else "SLOWER"
        print(
            f"  {name:<16} {mine.ops_per_second:>10.1f} {other.ops_per_second:>13.1f} "
            f"{ratio:>7.2f}x  {mine.p50_ms:.2f} / {other.p50_ms:.2f}  {verdict}"
        )


def summarize(result: RunResult) -> None:
    figures = result.figures
    print(f"\n== {result.server}: targets")
    if "batch_ratio_raw" in figures:
        print(
            f"  membership batch last/first: {figures['batch_ratio_raw']:.2f}x raw, "
            f"{figures['batch_ratio_smoothed']:.2f}x smoothed (target <= 1.5x)"
        )
    if "lookup_ratio_p50" in figures:
        print(
            f"  lookup 100k/1k: p50 {figures['lookup_ratio_p50']:.2f}x, "
            f"mean {figures['lookup_ratio_mean']:.2f}x (target <= 1.5x)"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("server under test")
    target.add_argument("--base-url", help="SCIM base URL of a running server (loopback only)")
    target.add_argument("--token", help="its bearer token")
    target.add_argument(
        "--spawn", action="store_true", help="start `hub-scim serve` for the run and stop it after"
    )
    target.add_argument(
        "--database-url",
        help="with --spawn: database to serve (default: a temporary SQLite file); in the "
        "concurrent comparison: serve this database (kept) instead of --databases",
    )
    target.add_argument("--workers", type=int, help="with --spawn: gunicorn workers")
    target.add_argument("--threads", type=int, help="with --spawn: threads per worker")
    target.add_argument("--hub-scim-command", help="how to run hub-scim (default: found on PATH)")
    target.add_argument(
        "--sqlite-synchronous",
        choices=("full", "normal"),
        help="SQLite's PRAGMA synchronous for the servers the run starts "
        "(HUB_SCIM_SQLITE_SYNCHRONOUS; default: the server's, full)",
    )
    contention = parser.add_argument_group(
        "concurrent comparison (the default; --concurrency 1 runs the sequential phases)"
    )
    contention.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="concurrent clients per phase; 1 runs the sequential benchmark. Default: 8 "
        "(the concurrent comparison), or 1 with --spawn or --base-url (the sequential "
        "benchmark, as before)",
    )
    contention.add_argument(
        "--databases",
        default="postgresql,sqlite",
        help="hub-scim databases to serve, in order (default postgresql,sqlite): PostgreSQL "
        "in a fresh database created and dropped by the run, SQLite in a temporary file",
    )
    contention.add_argument(
        "--postgres-admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where to create and drop the fresh PostgreSQL database (loopback only)",
    )
    contention.add_argument(
        "--group-size",
        type=int,
        default=1000,
        help="members seeded (untimed) into the big group before the membership phases "
        "(default 1000)",
    )
    contention.add_argument(
        "--member-batch", type=int, default=10, help="k: members added or removed per PATCH"
    )
    contention.add_argument(
        "--member-requests",
        type=int,
        default=50,
        help="membership PATCHes per phase (default 50; bounded by N / k)",
    )
    contention.add_argument(
        "--page-requests",
        type=int,
        default=100,
        help="at least this many page requests (passes over every page of 100 users; default 100)",
    )
    contention.add_argument(
        "--phase-timeout",
        type=float,
        default=300.0,
        help="abort a phase that takes longer than this many seconds (default 300)",
    )
    contention.add_argument(
        "--no-scim2-server", action="store_true", help="skip the scim2-server comparison"
    )
    contention.add_argument(
        "--scim2-server-via",
        choices=("gunicorn", "command"),
        default="gunicorn",
        help="serve scim2-server's application with gunicorn, 1 worker x N threads (default), "
        "or with its own `scim2-server` command (wsgiref: one connection per request)",
    )
    contention.add_argument(
        "--profile",
        metavar="PHASES",
        help="serve hub-scim in process under a threaded WSGI server and profile these "
        "comma-separated phases (cProfile, SQL statements per request); e.g. "
        "'create,replace,deactivate,delete'. No scim2-server run",
    )
    contention.add_argument(
        "--profile-top", type=int, default=30, help="cumulative entries printed per phase"
    )
    sizes = parser.add_argument_group("workload")
    sizes.add_argument("--users", type=int, default=1000, help="N users (default 1000)")
    sizes.add_argument(
        "--members", type=int, default=5000, help="M group members (default 5000; target 20000)"
    )
    sizes.add_argument("--remove-sample", type=int, default=200, help="members removed one by one")
    sizes.add_argument(
        "--seed-threads",
        type=int,
        default=1,
        help="parallel requests for untimed seeding (default 1: SQLite has one writer; "
        "PostgreSQL gains from 4)",
    )
    sizes.add_argument("--lookup-scaling", action="store_true", help="also run lookup scaling")
    sizes.add_argument("--lookup-small", type=int, default=1000)
    sizes.add_argument("--lookup-big", type=int, default=100_000)
    sizes.add_argument("--lookups", type=int, default=1000, help="timed lookups per size")
    sizes.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to wait after seeding the big lookup set (lets autovacuum ANALYZE)",
    )
    sizes.add_argument(
        "--no-cleanup", action="store_true", help="keep lookup-scaling users on a running server"
    )
    sizes.add_argument("--seed", type=int, default=7, help="random seed of the samples")
    compare = parser.add_argument_group("comparison")
    compare.add_argument(
        "--compare-scim2-server",
        action="store_true",
        help="also run every phase against scim2-server (python-scim) and print both",
    )
    compare.add_argument(
        "--scim2-server-command", help="the scim2-server executable (in its own venv)"
    )
    parser.add_argument("--json-out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.concurrency is None:
        args.concurrency = 1 if (args.spawn or args.base_url) and not args.profile else 8
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if bool(args.base_url) != bool(args.token):
        parser.error("give --base-url and --token together")
    if args.concurrency == 1 and not args.spawn and not args.base_url and not args.profile:
        parser.error("give --base-url and --token, or --spawn")
    if args.profile:
        from contention import CONTENTION_PHASES

        unknown = set(profiled_phases(args)) - set(CONTENTION_PHASES)
        if unknown or args.base_url:
            parser.error(
                "--profile needs no --base-url, and phases among: " + ", ".join(CONTENTION_PHASES)
            )
    if min(args.member_batch, args.member_requests, args.page_requests) < 1 or args.group_size < 0:
        parser.error(
            "--member-batch, --member-requests and --page-requests must be positive, "
            "--group-size >= 0"
        )
    if args.users < 1 or args.members < 1 or args.lookup_big <= args.lookup_small:
        parser.error("--users and --members must be positive, --lookup-big > --lookup-small")
    return args


def profiled_phases(args: argparse.Namespace) -> list[str]:
    return [name.strip() for name in (args.profile or "").split(",") if name.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sqlite_synchronous:
        # Read by every hub-scim the run starts (bench_environment copies it).
        os.environ["HUB_SCIM_SQLITE_SYNCHRONOUS"] = args.sqlite_synchronous
    if args.concurrency > 1 or args.profile:
        return main_contention(args)
    return main_sequential(args)


def main_contention(args: argparse.Namespace) -> int:
    """The concurrent comparison: hub-scim on each database, then scim2-server, same workload."""
    from contention import (
        ContentionConfig,
        print_contention_table,
        run_contention,
    )

    config = ContentionConfig(
        users=args.users,
        concurrency=args.concurrency,
        group_size=args.group_size,
        member_batch=args.member_batch,
        member_requests=args.member_requests,
        page_requests=args.page_requests,
        seed_threads=max(args.seed_threads, 4),
        phase_timeout_seconds=args.phase_timeout,
        cleanup=not args.no_cleanup and bool(args.base_url),
        seed=args.seed,
    )
    profile = profiled_phases(args)
    ours: dict[str, RunResult] = {}
    theirs: RunResult | None = None
    spawned: list[Spawned] = []
    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    print(
        f"concurrent comparison: {config.concurrency} clients, N={config.users} users, "
        f"big group {config.group_size} + k={config.member_batch} per PATCH",
        flush=True,
    )
    try:
        if args.base_url:
            ours["running server"] = run_contention(args.base_url, args.token, "hub-scim", config)
        else:
            for database in databases(args):
                with database_for(args, database, workdir) as database_url:
                    if profile:
                        from profiling import profile_contention

                        ours[database] = profile_contention(
                            hub_scim_command(args.hub_scim_command),
                            database_url,
                            config,
                            profile,
                            args.profile_top,
                        )
                        continue
                    server = spawn_hub_scim(args, workdir, database_url)
                    spawned.append(server)
                    print(f"  hub-scim serve: {serve_shape(args)}", flush=True)
                    meter = cpu_meter_for(server, database_url, args.postgres_admin_url)
                    ours[database] = run_contention(
                        server.base_url, server.token, f"hub-scim ({database})", config, meter
                    )
                    attach_cpu(ours[database], meter)
                    stop(spawned.pop().process)
        if not args.no_scim2_server and not profile:
            server = (
                spawn_scim2_server(args, workdir)
                if args.scim2_server_via == "command"
                else spawn_scim2_server_gunicorn(args, workdir, config.concurrency)
            )
            spawned.append(server)
            meter = cpu_meter_for(server, None, None)
            theirs = run_contention(server.base_url, server.token, "scim2-server", config, meter)
            attach_cpu(theirs, meter)
            stop(spawned.pop().process)
    except BenchError as error:
        print(f"\nABORTED: {error}", file=sys.stderr)
        for server in spawned:
            print(f"server log ({server.log}):\n{tail(server.log)}", file=sys.stderr)
        return 2
    finally:
        for server in spawned:
            stop(server.process)
        shutil.rmtree(workdir, ignore_errors=True)
    for database, result in ours.items():
        print_contention_table(database, result, theirs)
    if args.json_out:
        write_json(args.json_out, [*ours.values(), *([theirs] if theirs else [])])
    return 0


def cpu_meter_for(server: Spawned, database_url: str | None, admin_url: str | None) -> CpuMeter:
    """A meter of the server's process group and, on PostgreSQL, its database's backends."""
    if database_url is None or not database_url.startswith("postgresql"):
        return CpuMeter(server_group=server.process.pid)
    name = urlsplit(database_url).path.lstrip("/")
    return CpuMeter(server_group=server.process.pid, admin_url=admin_url, database_name=name)


def attach_cpu(result: RunResult, meter: CpuMeter) -> None:
    """Each phase's CPU per request, from the meter's totals."""
    for name, phase in result.phases.items():
        cpu = meter.phases.get(name)
        if cpu is None or not phase.ops:
            continue
        phase.cpu_server_ms = cpu.server_seconds * 1000 / phase.ops
        phase.cpu_database_ms = cpu.database_seconds * 1000 / phase.ops
        phase.cpu_client_ms = cpu.client_seconds * 1000 / phase.ops


def serve_shape(args: argparse.Namespace) -> str:
    """Workers and threads ``hub-scim serve`` runs with here (its defaults unless overridden)."""
    from connector.settings import load_settings

    settings = load_settings(bench_environment())
    workers = args.workers or settings.workers
    threads = args.threads or settings.threads
    return f"gunicorn gthread, {workers} workers x {threads} threads"


def databases(args: argparse.Namespace) -> list[str]:
    if args.database_url:
        return [args.database_url]
    return [name.strip() for name in args.databases.split(",") if name.strip()]


@contextlib.contextmanager
def database_for(args: argparse.Namespace, database: str, workdir: Path) -> Iterator[str]:
    """A fresh database of the kind named: a temporary SQLite file, or a new PostgreSQL database.

    The PostgreSQL database is dropped when the run leaves it, whatever happened. A
    database URL given with --database-url is used as it is, and kept.
    """
    if "://" in database:
        yield database
        return
    if database == "sqlite":
        yield f"sqlite:///{workdir / f'contention-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    if database not in ("postgresql", "postgres"):
        raise BenchError(f"unknown database {database!r}: postgresql or sqlite")
    import psycopg

    admin_url = args.postgres_admin_url
    parts = urlsplit(admin_url)
    if parts.scheme not in ("postgresql", "postgres") or parts.hostname not in LOOPBACK_HOSTS:
        raise BenchError(f"--postgres-admin-url: a postgresql:// URL on loopback, not {admin_url}")
    name = f"hub_scim_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        raise BenchError(f"cannot create database {name} at {admin_url}: {error}") from error
    print(f"created PostgreSQL database {name}", flush=True)
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"dropped PostgreSQL database {name}", flush=True)


def write_json(path: Path, results: Sequence[RunResult]) -> None:
    path.write_text(
        json.dumps(
            [
                {
                    "server": result.server,
                    "phases": {
                        name: {**asdict(phase), "ops_per_second": phase.ops_per_second}
                        for name, phase in result.phases.items()
                    },
                    "figures": result.figures,
                    "notes": result.notes,
                }
                for result in results
            ],
            indent=2,
        )
        + "\n"
    )


def main_sequential(args: argparse.Namespace) -> int:
    config = BenchConfig(
        users=args.users,
        members=args.members,
        remove_sample=args.remove_sample,
        seed_threads=args.seed_threads,
        lookup_scaling=args.lookup_scaling,
        lookup_small=args.lookup_small,
        lookup_big=args.lookup_big,
        lookups=args.lookups,
        settle_seconds=args.settle,
        # A spawned server's database is thrown away with the run.
        cleanup=not args.no_cleanup and not args.spawn,
        seed=args.seed,
    )
    spawned: list[Spawned] = []
    results: list[RunResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    try:
        if args.spawn:
            ours = spawn_hub_scim(args, workdir)
            spawned.append(ours)
            base_url, token = ours.base_url, ours.token
        else:
            base_url, token = args.base_url, args.token
        results.append(run_phases(ScimHttp(base_url, token), "hub-scim", config))
        if spawned:
            stop(spawned.pop().process)
        summarize(results[0])
        if args.compare_scim2_server:
            theirs = spawn_scim2_server(args, workdir)
            spawned.append(theirs)
            their_config = BenchConfig(**{**asdict(config), "cleanup": False})
            results.append(
                run_phases(ScimHttp(theirs.base_url, theirs.token), "scim2-server", their_config)
            )
            stop(spawned.pop().process)
            summarize(results[1])
            print_comparison(results[0], results[1])
    except BenchError as error:
        print(f"\nABORTED: {error}", file=sys.stderr)
        for server in spawned:
            print(f"server log ({server.log}):\n{tail(server.log)}", file=sys.stderr)
        return 2
    finally:
        for server in spawned:
            stop(server.process)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json_out:
        write_json(args.json_out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
