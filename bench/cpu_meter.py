"""CPU time per request of each party of a benchmark: the server, its database, the clients.

Throughput on a shared machine moves with whatever else runs on it, but the CPU
time a request costs does not move much: it is the figure that says which server
does less work, and on a machine with C cores and nothing else running the
requests/s of a CPU-bound phase is about ``C / (server + database + client)``.

Read from ``/proc`` (Linux): the server is every process of its process group
(the benchmark starts each server in a session of its own, so gunicorn's
master and workers are one group); the database is every PostgreSQL backend
connected to the benchmark's database (looked up in ``pg_stat_activity`` at
each sample, so backends the pool opens during a phase count from their start);
SQLite works inside the server's processes. The client is the benchmark's own
process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process ended between listing and reading
        return None
    # The command name sits in parentheses and may hold spaces: split after it.
    return text[text.rindex(")") + 2 :].split()


def _cpu_seconds(fields: list[str]) -> float:
    # Fields 14 and 15 of proc(5) (utime, stime) are 11 and 12 after the name.
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def process_group_cpu_seconds(group: int) -> float:
    """User and system CPU seconds of the live processes of process group ``group``."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == group:
            total += _cpu_seconds(fields)
    return total


def processes_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each of ``pids`` still alive."""
    seconds: dict[int, float] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            seconds[pid] = _cpu_seconds(fields)
    return seconds


@dataclass
class PhaseCpu:
    server_seconds: float = 0.0
    database_seconds: float = 0.0
    client_seconds: float = 0.0


@dataclass
class CpuMeter:
    """Samples CPU at each phase's start and end (a ``PhaseHook`` of bench/contention.py).

    ``database_name`` and ``admin_url`` name the PostgreSQL database whose
    backends count as the server's database; leave them out for SQLite.
    """

    server_group: int
    admin_url: str | None = None
    database_name: str | None = None
    phases: dict[str, PhaseCpu] = field(default_factory=dict)
    _phase: str | None = None
    _server_start: float = 0.0
    _client_start: float = 0.0
    _backends_start: dict[int, float] = field(default_factory=dict)

    def _backend_pids(self) -> list[int]:
        if not self.admin_url or not self.database_name:
            return []
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database_name,)
            ).fetchall()
        return [int(row[0]) for row in rows]

    def __call__(self, phase: str | None) -> None:
        if phase is not None:
            self._phase = phase
            self._backends_start = processes_cpu_seconds(self._backend_pids())
            self._server_start = process_group_cpu_seconds(self.server_group)
            self._client_start = time.process_time()
            return
        client = time.process_time() - self._client_start
        server = process_group_cpu_seconds(self.server_group) - self._server_start
        backends = processes_cpu_seconds(self._backend_pids())
        database = sum(
            seconds - self._backends_start.get(pid, 0.0) for pid, seconds in backends.items()
        )
        if self._phase is not None:
            self.phases[self._phase] = PhaseCpu(server, database, client)
        self._phase = None
