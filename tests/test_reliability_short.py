"""The reliability battery's short run: the real server fuzzed, then faulted mid-load.

The long run is bench/chaos.py, run by hand (docs/reliability.md). Here each
database gets a few hundred generated requests, hostile ones included, and a
handful of faults (kill -9 of a worker, and on PostgreSQL the termination of
the app's connections) in the middle of an Okta/Entra-shaped load. Timing
limits are generous: this machine is shared; the battery's own 2 s limit is
measured by the long run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.fixtures_db import POSTGRESQL_URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import chaos

SEED = 20240601
FUZZ_REQUESTS = 250
FAULTS = 4
# A loaded 2-core machine: a request only fails the short run when it is very slow.
SLOW_SECONDS_HERE = 15.0


def admin_url() -> str:
    return os.environ.get("HUB_SCIM_TEST_POSTGRESQL_URL", POSTGRESQL_URL)


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        engine = create_engine(
            admin_url().replace("postgresql://", "postgresql+psycopg://", 1),
            connect_args={"connect_timeout": 3},
        )
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as error:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL unreachable: {error.orig}")
            pytest.skip(f"PostgreSQL unreachable: {error.orig}")
        finally:
            engine.dispose()
    return str(request.param)


@pytest.fixture
def server(kind: str, tmp_path: Path) -> Iterator[chaos.Server]:
    with chaos.spawned_server(kind, tmp_path, admin_url(), workers=2, threads=2) as served:
        yield served


def quiet(_line: str) -> None:
    """Progress lines are for the long run's terminal."""


def test_generated_and_hostile_requests_never_get_a_5xx_or_a_non_scim_error(
    server: chaos.Server,
) -> None:
    result = chaos.run_fuzz(server, FUZZ_REQUESTS, SEED, quiet, slow_seconds=SLOW_SECONDS_HERE)
    assert result.requests == FUZZ_REQUESTS
    # The generator reaches the write path, not only the parser's refusals.
    assert result.statuses[201] + result.statuses[200] > FUZZ_REQUESTS // 20
    assert result.statuses[400] > 0
    assert result.failures == 0, "\n".join(result.findings)


def test_workers_killed_and_connections_cut_mid_load_lose_no_acknowledged_write(
    server: chaos.Server,
) -> None:
    result = chaos.run_faults(server, FAULTS, SEED, admin_url(), pg_restart=None, log=quiet)
    assert result.injected == FAULTS
    if server.kind == "postgresql":
        assert result.faults["pg_terminate_backend"] == FAULTS // 2
    assert result.not_recovered == 0
    assert max(result.recovery_seconds) < chaos.RECOVERY_LIMIT_SECONDS
    # The load was running: writes were acknowledged and checked after each fault.
    assert result.acknowledged > 20
    assert result.integrity == []
    assert result.lost == []
