"""The service's Prometheus instruments (docs/observability.md).

Created on first use, not at import: under gunicorn the metrics are shared
between worker processes through files (prometheus-client's multiprocess
mode), which must be switched on (:func:`enable_multiprocess`, by the
gunicorn master) before any instrument exists. Without it (tests, the
command line) they live in the process.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds; SCIM answers are mostly milliseconds, a large Bulk takes seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class Instruments:
    requests: Counter
    latency: Histogram
    scim_operations: Counter
    rate_limited: Counter
    access_changes: Counter
    owner_holds: Counter
    pool_in_use: Gauge
    pool_size: Gauge


@functools.cache
def instruments() -> Instruments:
    """The instruments, created once per process."""
    return Instruments(
        requests=Counter(
            "hub_scim_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
        ),
        latency=Histogram(
            "hub_scim_http_request_duration_seconds",
            "Time to answer a request, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
        ),
        scim_operations=Counter(
            "hub_scim_scim_operations",
            "SCIM requests by organization id (all unless HUB_SCIM_METRICS_ORG_LABEL), "
            "resource, method and outcome (success, client_error, server_error).",
            ["org", "resource", "method", "outcome"],
        ),
        rate_limited=Counter(
            "hub_scim_rate_limited",
            "Requests refused by the per-credential rate limit (429), by route.",
            ["route"],
        ),
        access_changes=Counter(
            "hub_scim_access_changes",
            "Users whose effective Hub access a change recomputed to something new.",
        ),
        owner_holds=Counter(
            "hub_scim_owner_holds",
            "Would-be third Owners put on hold (docs/rules.md, owner cap and hold queue).",
        ),
        pool_in_use=Gauge(
            "hub_scim_db_pool_connections_in_use",
            "Database connections checked out of the pools, summed over live workers.",
            multiprocess_mode="livesum",
        ),
        pool_size=Gauge(
            "hub_scim_db_pool_size",
            "Configured connections of the pools (without overflow), summed over live workers.",
            multiprocess_mode="livesum",
        ),
    )


def count_journal(actions: Sequence[str]) -> None:
    """Count what one change's audit entries say: access changes, Owner holds."""
    if not actions:
        return
    metrics = instruments()
    changes = sum(1 for action in actions if action == "access.changed")
    holds = sum(1 for action in actions if action == "owner.held")
    if changes:
        metrics.access_changes.inc(changes)
    if holds:
        metrics.owner_holds.inc(holds)


def enable_multiprocess(directory: str | None = None) -> Path:
    """Share metrics between this process's future children through files in ``directory``.

    ``directory`` defaults to ``$PROMETHEUS_MULTIPROC_DIR``, else a new
    temporary one. Files left by an earlier run are removed (stale counters
    would otherwise add up). Call before any instrument is created.
    """
    chosen = directory or os.environ.get(MULTIPROC_ENV)
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="hub-scim-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client decides between in-process and file-backed values on
    # import; the instruments are not created yet, so they take the new one.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path
