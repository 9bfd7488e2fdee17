"""What recording the provisioning log costs SCIM writes: throughput with and without it, one run.

Starts two ``hub-scim serve`` on loopback, each on a database of its own, one
with the log on (the default) and one with ``HUB_SCIM_REQUEST_LOG=off``. Then,
in alternating rounds (on, off, on, off, ...) so that a noisy machine weighs
on both alike, 8 client threads create users (POST /Users) and deactivate them
(PATCH active=false): two SCIM writes per user, every answer checked. Prints
writes/s per round, the median of each side and the cost of the log; the target
is a cost of at most 5%. After the servers stop (the recorder flushes at exit),
it checks that the log holds one row per request the logged server answered.

    .venv/bin/python bench/request_log_bench.py
    .venv/bin/python bench/request_log_bench.py --postgresql postgresql://postgres@127.0.0.1:5432/test

All traffic goes to the loopback interface; every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scim_bench import (
    PATCH_SCHEMA,
    BenchError,
    ScimHttp,
    Spawned,
    spawn_hub_scim,
    stop,
    tail,
    user_body,
)

from connector.db.engine import make_engine
from connector.trail.request_log import SCIM_REQUEST_LOG

DEACTIVATE = {
    "schemas": [PATCH_SCHEMA],
    "Operations": [{"op": "replace", "value": {"active": False}}],
}


def write_round(http: ScimHttp, users: int, concurrency: int, tag: str) -> tuple[float, int]:
    """Create, then deactivate, ``users`` users from ``concurrency`` threads: (writes/s, writes)."""

    def one(index: int) -> None:
        created = http.call("POST", "/Users", 201, user_body(f"{tag}-{index}@example.com", index))
        http.call("PATCH", f"/Users/{created['id']}", 200, DEACTIVATE)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(users)))
    wall = time.perf_counter() - started
    return 2 * users / wall, 2 * users


def group_cpu_seconds(group: int) -> float:
    """User and system CPU time of every live process of a process group (Linux /proc).

    Less sensitive than wall-clock throughput to other load on a shared
    machine: the log's cost shows as more CPU per write, whoever else runs.
    """
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp, ... utime (12th), stime (13th).
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def databases(admin_url: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases: SQLite files, or PostgreSQL databases created and dropped here."""
    if admin_url is None:
        yield f"sqlite:///{workdir / 'log-on.sqlite'}", f"sqlite:///{workdir / 'log-off.sqlite'}"
        return
    admin = make_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    names = [f"hub_scim_bench_log_{side}_{uuid.uuid4().hex[:8]}" for side in ("on", "off")]
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        base = make_url(admin_url)
        on, off = (base.set(database=name).render_as_string(hide_password=False) for name in names)
        yield on, off
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def logged_rows(database_url: str) -> int:
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(SCIM_REQUEST_LOG)) or 0)
    finally:
        engine.dispose()


def spawn(args: argparse.Namespace, workdir: Path, database_url: str, log_on: bool) -> Spawned:
    os.environ["HUB_SCIM_REQUEST_LOG"] = "on" if log_on else "off"
    args.database_url = database_url
    workdir.mkdir()
    return spawn_hub_scim(args, workdir)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300, help="users per round (2 writes each)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--postgresql", metavar="ADMIN_URL", help="run on PostgreSQL (loopback)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: deploy's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: deploy's)")
    parser.add_argument("--hub-scim-command", help="how to run hub-scim (default: found on PATH)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.rounds < 1 or args.concurrency < 1:
        parser.error("--users, --rounds and --concurrency must be positive")
    if args.postgresql and make_url(args.postgresql).host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--postgresql must be on the loopback interface")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="request-log-bench-"))
    spawned: dict[str, Spawned] = {}
    try:
        with databases(args.postgresql, workdir) as (url_on, url_off):
            spawned["on"] = spawn(args, workdir / "on", url_on, log_on=True)
            spawned["off"] = spawn(args, workdir / "off", url_off, log_on=False)
            clients = {side: ScimHttp(s.base_url, s.token) for side, s in spawned.items()}
            figures: dict[str, list[float]] = {"on": [], "off": []}
            cpu_ms: dict[str, list[float]] = {"on": [], "off": []}
            answered_on = 0
            for side, client in clients.items():  # warm-up, untimed
                write_round(client, 20, args.concurrency, f"warm-{side}")
            answered_on += 40
            for number in range(args.rounds):
                for side in ("on", "off") if number % 2 == 0 else ("off", "on"):
                    cpu_before = group_cpu_seconds(spawned[side].process.pid)
                    rate, writes = write_round(
                        clients[side], args.users, args.concurrency, f"r{number}-{side}"
                    )
                    # The recorder writes within a second: let it, so its CPU counts.
                    time.sleep(1.5)
                    per_write = group_cpu_seconds(spawned[side].process.pid) - cpu_before
                    cpu_ms[side].append(per_write * 1000 / writes)
                    figures[side].append(rate)
                    if side == "on":
                        answered_on += writes
                    print(
                        f"round {number + 1} log {side:<3}: {rate:8.1f} writes/s, "
                        f"{cpu_ms[side][-1]:6.2f} server CPU ms/write",
                        flush=True,
                    )
            for server in spawned.values():
                stop(server.process)
            on, off = statistics.median(figures["on"]), statistics.median(figures["off"])
            cost = (off - on) / off * 100
            paired = statistics.median(
                a / b for a, b in zip(figures["on"], figures["off"], strict=True)
            )
            cpu_on, cpu_off = statistics.median(cpu_ms["on"]), statistics.median(cpu_ms["off"])
            database = "PostgreSQL" if args.postgresql else "SQLite"
            print(
                f"\n{database}, concurrency {args.concurrency}, {args.rounds} rounds of "
                f"{2 * args.users} writes per side"
            )
            print(f"median with the log:    {on:8.1f} writes/s")
            print(f"median without the log: {off:8.1f} writes/s")
            print(f"cost of the log: {cost:+.1f}% of write throughput (target: at most 5%)")
            print(f"median of the rounds' paired ratios (on/off): {paired:.3f}")
            print(
                f"server CPU per write: {cpu_on:.2f} ms with the log, {cpu_off:.2f} ms without "
                f"({(cpu_on - cpu_off) / cpu_off * 100:+.1f}%)"
            )
            rows = logged_rows(url_on)
            print(f"log rows written: {rows} for {answered_on} requests answered")
            if rows != answered_on:
                raise BenchError(f"the log holds {rows} rows, expected {answered_on}")
            if logged_rows(url_off):
                raise BenchError("the server with the log off recorded requests")
    except BenchError as error:
        print(f"\nABORTED: {error}", file=sys.stderr)
        for server in spawned.values():
            print(f"server log ({server.log}):\n{tail(server.log)}", file=sys.stderr)
        return 2
    finally:
        for server in spawned.values():
            stop(server.process)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
