"""The contention workload: every phase sent by N concurrent clients, as IdPs send it.

Entra ID and Okta send provisioning requests in parallel; this workload
measures what a server sustains then (requests per second over the phase's
wall time) and how long each request waits (p50, p99). Each of the N clients
is a thread with its own keep-alive ``requests.Session``; a phase's requests
are dealt to the clients round-robin, and the phase's clock starts when every
client is ready and stops when the last answer is in.

Phases, in order (every answer is checked; the run aborts on the first wrong one):

  create        POST /Users, one per user
  lookup hit    GET /Users?filter=userName eq "<existing>"
  lookup miss   GET /Users?filter=userName eq "<absent>"
  replace       PUT /Users/{id}
  deactivate    PATCH /Users/{id} replace active "False" (Entra ID sends the string)
  reactivate    PATCH /Users/{id} replace active "True"
  add members   PATCH /Groups/{big} add k members (the group holds the seeded members)
  remove members PATCH /Groups/{big} remove members[value eq .. or ..], the same k
  page users    GET /Users?startIndex=..&count=100, every page, several passes
  delete        DELETE /Users/{id}

The big group's members are seeded (untimed, through Bulk) before the
membership phases, and the group is deleted (untimed) before the delete phase.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests
from scim_bench import (
    GROUP_SCHEMA,
    PAGE_SIZE,
    PATCH_SCHEMA,
    REQUEST_TIMEOUT_SECONDS,
    SCIM_CONTENT_TYPE,
    BenchError,
    PhaseResult,
    RunResult,
    ScimHttp,
    Timer,
    check_user,
    delete_users,
    discover,
    expect_equal,
    filter_query,
    print_phase,
    seed_users,
    user_body,
)

CONTENTION_PHASES = (
    "create",
    "lookup hit",
    "lookup miss",
    "replace",
    "deactivate",
    "reactivate",
    "add members",
    "remove members",
    "page users",
    "delete",
)

PhaseHook = Callable[[str | None], None]
"""Told the name of the phase about to start, then None when it is over (for profiling)."""


@dataclass(frozen=True)
class ContentionConfig:
    users: int
    concurrency: int
    group_size: int
    member_batch: int
    member_requests: int
    page_requests: int
    seed_threads: int
    phase_timeout_seconds: float
    cleanup: bool
    seed: int


class PinnedScimHttp(ScimHttp):
    """A client with one keep-alive session of its own, whichever thread drives it."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token)
        self._pinned = requests.Session()
        self._pinned.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": SCIM_CONTENT_TYPE,
                "Content-Type": SCIM_CONTENT_TYPE,
            }
        )

    def _session(self) -> requests.Session:
        return self._pinned

    def close(self) -> None:
        self._pinned.close()


Request = Callable[[ScimHttp, Timer], None]
"""One timed request of a phase, and the checks of its answer."""


def run_parallel(
    name: str,
    clients: Sequence[ScimHttp],
    requests_of_phase: Sequence[Request],
    timeout_seconds: float,
) -> PhaseResult:
    """Deal ``requests_of_phase`` to the clients round-robin and run them all at once."""
    timer = Timer(name)
    deadline_box: list[float] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    ready = threading.Barrier(len(clients) + 1)

    def drive(index: int) -> None:
        ready.wait()
        try:
            for request in requests_of_phase[index :: len(clients)]:
                if stop.is_set():
                    return
                if time.monotonic() > deadline_box[0]:
                    raise BenchError(f"{name}: not done within {timeout_seconds:.0f} s")
                request(clients[index], timer)
        except BaseException as error:  # reported by the main thread
            failures.append(error)
            stop.set()

    threads = [
        threading.Thread(target=drive, args=(index,), name=f"client-{index}", daemon=True)
        for index in range(len(clients))
    ]
    for thread in threads:
        thread.start()
    deadline_box.append(time.monotonic() + timeout_seconds)
    timer.latencies.clear()
    started = time.perf_counter()
    ready.wait()
    for thread in threads:
        thread.join(timeout_seconds + REQUEST_TIMEOUT_SECONDS)
    wall = time.perf_counter() - started
    if failures:
        error = failures[0]
        raise error if isinstance(error, BenchError) else BenchError(f"{name}: {error!r}")
    if any(thread.is_alive() for thread in threads):
        stop.set()
        raise BenchError(f"{name}: clients still busy after {timeout_seconds:.0f} s")
    result = timer.result()
    result.wall_seconds = wall
    return result


def run_contention(
    base_url: str,
    token: str,
    server: str,
    config: ContentionConfig,
    on_phase: PhaseHook | None = None,
) -> RunResult:
    """Every contention phase against one server; ``on_phase`` hears each phase start and end."""
    run = RunResult(server=server)
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(config.seed)
    admin = PinnedScimHttp(base_url, token)
    clients = [PinnedScimHttp(base_url, token) for _ in range(config.concurrency)]
    features = discover(admin)
    print(
        f"\n== {server}  ({admin.base_url}), {config.concurrency} concurrent clients",
        flush=True,
    )

    def phase(name: str, requests_of_phase: Sequence[Request]) -> None:
        for client in clients:  # open each keep-alive connection before the clock starts
            client.call("GET", "/ServiceProviderConfig", 200)
        if on_phase is not None:
            on_phase(name)
        try:
            result = run_parallel(name, clients, requests_of_phase, config.phase_timeout_seconds)
        finally:
            if on_phase is not None:
                on_phase(None)
        run.phases[name] = result
        print_phase(result)

    names = [f"conc-{tag}-{index:06d}@example.com" for index in range(config.users)]
    ids: list[str] = [""] * config.users

    def create(index: int) -> Request:
        def send(http: ScimHttp, timer: Timer) -> None:
            name = names[index]
            created = http.call("POST", "/Users", 201, user_body(name, index), timer)
            ids[index] = check_user(f"POST /Users {name}", created, name)

        return send

    phase("create", [create(index) for index in range(config.users)])

    def lookup_hit(index: int) -> Request:
        def send(http: ScimHttp, timer: Timer) -> None:
            name = names[index]
            query = filter_query(f'userName eq "{name}"')
            found = http.call("GET", "/Users?filter=" + query, 200, timer=timer)
            expect_equal(f"lookup {name} totalResults", found.get("totalResults"), 1)
            expect_equal(
                f"lookup {name} id", (found.get("Resources") or [{}])[0].get("id"), ids[index]
            )

        return send

    phase("lookup hit", [lookup_hit(index) for index in range(config.users)])

    def lookup_miss(index: int) -> Request:
        def send(http: ScimHttp, timer: Timer) -> None:
            name = f"absent-{tag}-{index:06d}@example.com"
            query = filter_query(f'userName eq "{name}"')
            found = http.call("GET", "/Users?filter=" + query, 200, timer=timer)
            expect_equal(f"lookup {name} totalResults", found.get("totalResults"), 0)

        return send

    phase("lookup miss", [lookup_miss(index) for index in range(config.users)])

    def replace(index: int) -> Request:
        def send(http: ScimHttp, timer: Timer) -> None:
            body = user_body(names[index], index, display_suffix=" (replaced)")
            body["id"] = ids[index]
            replaced = http.call("PUT", f"/Users/{ids[index]}", 200, body, timer)
            expect_equal(f"PUT {ids[index]} id", replaced.get("id"), ids[index])
            expect_equal(
                f"PUT {ids[index]} displayName", replaced.get("displayName"), body["displayName"]
            )

        return send

    phase("replace", [replace(index) for index in range(config.users)])

    def set_active(index: int, value: str) -> Request:
        # Entra ID's shape: a capitalized op and the boolean as a string.
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "Replace", "path": "active", "value": value}],
        }

        def send(http: ScimHttp, timer: Timer) -> None:
            patched = http.call("PATCH", f"/Users/{ids[index]}", (200, 204), body, timer)
            if patched is not None:
                expect_equal(f"PATCH {ids[index]} active", patched.get("active"), value == "True")

        return send

    phase("deactivate", [set_active(index, "False") for index in range(config.users)])
    phase("reactivate", [set_active(index, "True") for index in range(config.users)])

    # Setup (untimed): the big group and its seeded members.
    started = time.perf_counter()
    seeded_names = [f"conc-{tag}-g{index:06d}@example.com" for index in range(config.group_size)]
    seeded = (
        seed_users(admin, features, seeded_names, 10**6, config.seed_threads)
        if seeded_names
        else []
    )
    group = admin.call(
        "POST", "/Groups", 201, {"schemas": [GROUP_SCHEMA], "displayName": f"big-{tag}"}
    )
    group_id = group.get("id") if isinstance(group, dict) else None
    if not isinstance(group_id, str):
        raise BenchError(f"POST /Groups: no id in {json.dumps(group)[:300]}")
    for start in range(0, len(seeded), 500):
        values = [{"value": member} for member in seeded[start : start + 500]]
        admin.call(
            "PATCH",
            f"/Groups/{group_id}",
            (200, 204),
            {
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "add", "path": "members", "value": values}],
            },
        )
    run.notes.append(
        f"setup: group of {len(seeded)} seeded members in {time.perf_counter() - started:.1f} s"
    )
    print(f"  {run.notes[-1]}", flush=True)

    batches = [
        ids[start : start + config.member_batch]
        for start in range(0, len(ids), config.member_batch)
    ][: config.member_requests]
    moved = {user for batch in batches for user in batch}

    def add_members(batch: Sequence[str]) -> Request:
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": user} for user in batch]}
            ],
        }

        def send(http: ScimHttp, timer: Timer) -> None:
            http.call("PATCH", f"/Groups/{group_id}", (200, 204), body, timer)

        return send

    def remove_members(batch: Sequence[str]) -> Request:
        selector = " or ".join(f'value eq "{user}"' for user in batch)
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "remove", "path": f"members[{selector}]"}],
        }

        def send(http: ScimHttp, timer: Timer) -> None:
            http.call("PATCH", f"/Groups/{group_id}", (200, 204), body, timer)

        return send

    phase("add members", [add_members(batch) for batch in batches])
    run.phases["add members"].notes.append(f"{config.member_batch} members per PATCH")
    check_members(admin, group_id, set(seeded) | moved)
    phase("remove members", [remove_members(batch) for batch in batches])
    run.phases["remove members"].notes.append(f"{config.member_batch} members per PATCH")
    check_members(admin, group_id, set(seeded))

    total = len(ids) + len(seeded)
    first = admin.call("GET", f"/Users?startIndex=1&count={PAGE_SIZE}", 200)
    listed_total = first.get("totalResults")
    if not isinstance(listed_total, int) or listed_total < total:
        raise BenchError(f"paging: totalResults {listed_total!r}, created {total}")
    page_starts = list(range(1, listed_total + 1, PAGE_SIZE))
    passes = max(1, math.ceil(config.page_requests / len(page_starts)))
    seen: dict[int, list[str]] = {}
    seen_lock = threading.Lock()

    def page(start_index: int) -> Request:
        def send(http: ScimHttp, timer: Timer) -> None:
            listing = http.call(
                "GET", f"/Users?startIndex={start_index}&count={PAGE_SIZE}", 200, timer=timer
            )
            resources = listing.get("Resources") or []
            expect_equal(f"page {start_index} totalResults", listing.get("totalResults"),
                         listed_total)  # fmt: skip
            expect_equal(
                f"page {start_index} size",
                len(resources),
                min(PAGE_SIZE, listed_total - start_index + 1),
            )
            page_ids = [resource["id"] for resource in resources]
            with seen_lock:
                if seen.setdefault(start_index, page_ids) != page_ids:
                    raise BenchError(f"page {start_index} changed between passes")

        return send

    phase("page users", [page(start) for _ in range(passes) for start in page_starts])
    run.phases["page users"].notes.append(
        f"{len(page_starts)} pages of {PAGE_SIZE} x {passes} passes"
    )
    listed = [user_id for page_ids in seen.values() for user_id in page_ids]
    if len(set(listed)) != len(listed):
        raise BenchError("paging: a user appeared on two pages")
    missing = (set(ids) | set(seeded)) - set(listed)
    if missing:
        raise BenchError(f"paging: {len(missing)} created users never listed")

    admin.call("DELETE", f"/Groups/{group_id}", 204)

    def delete(index: int) -> Request:
        def send(http: ScimHttp, timer: Timer) -> None:
            http.call("DELETE", f"/Users/{ids[index]}", 204, timer=timer)

        return send

    phase("delete", [delete(index) for index in range(config.users)])
    for user_id in rng.sample(ids, min(20, len(ids))):
        admin.call("GET", f"/Users/{user_id}", 404)
    if config.cleanup and seeded:
        delete_users(admin, seeded, config.seed_threads)
    for client in [admin, *clients]:
        client.close()
    return run


def check_members(http: ScimHttp, group_id: str, expected: set[str]) -> None:
    """The group holds exactly ``expected`` (untimed check)."""
    group = http.call("GET", f"/Groups/{group_id}", 200)
    members = [member.get("value") for member in group.get("members") or []]
    if len(members) != len(set(members)):
        raise BenchError(f"group {group_id}: duplicate members")
    if set(members) != expected:
        raise BenchError(
            f"group {group_id}: {len(members)} members, expected {len(expected)} "
            f"({len(expected - set(members))} missing, {len(set(members) - expected)} extra)"
        )


def print_contention_table(database: str, ours: RunResult, theirs: RunResult | None) -> None:
    """One line per phase: requests/s and latency of both servers, their ratio, and CPU per request.

    CPU per request (bench/cpu_meter.py) is the server's processes plus, on
    PostgreSQL, its database backends: the work a request costs, which moves far
    less than requests/s when other work shares the machine. "cpu ratio" is
    theirs / ours: above 1.0 the connector spends less CPU per request.
    """
    title = f"hub-scim on {database}" + (f" vs {theirs.server}" if theirs else "")
    print(f"\n== {title} (requests/s over the phase's wall time; ratio = ours / theirs)")
    header = f"  {'phase':<15} {'ops':>6} {'ours/s':>8} {'p50':>7} {'p99':>8}"
    if theirs is not None:
        header += f" {'theirs/s':>9} {'p50':>7} {'p99':>8} {'ratio':>7}"
    header += f" {'cpu ms/req: srv':>16} {'db':>5}"
    if theirs is not None:
        header += f" {'theirs':>7} {'cpu ratio':>9}"
    print(header + "   (latencies in ms)")
    for name, mine in ours.phases.items():
        line = (
            f"  {name:<15} {mine.ops:>6} {mine.ops_per_second:>8.1f} "
            f"{mine.p50_ms:>7.2f} {mine.p99_ms:>8.2f}"
        )
        other = theirs.phases.get(name) if theirs is not None else None
        if other is not None:
            ratio = mine.ops_per_second / other.ops_per_second
            line += (
                f" {other.ops_per_second:>9.1f} {other.p50_ms:>7.2f} {other.p99_ms:>8.2f} "
                f"{ratio:>6.2f}x"
            )
        line += f" {mine.cpu_server_ms:>16.2f} {mine.cpu_database_ms:>5.2f}"
        if other is not None:
            ours_cpu = mine.cpu_server_ms + mine.cpu_database_ms
            # A short phase can measure no clock tick at all: no ratio, not a crash.
            cpu_ratio = other.cpu_server_ms / ours_cpu if ours_cpu else math.nan
            line += f" {other.cpu_server_ms:>7.2f} {cpu_ratio:>8.2f}x"
        print(line, flush=True)
