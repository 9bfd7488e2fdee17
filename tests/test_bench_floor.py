"""bench/floor.py keeps working: it prints every phase's CPU and the database floor."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.fixtures_db import POSTGRESQL_URL
from tests.test_cli import REPO_ROOT


def test_the_floor_benchmark_prints_each_phase_and_the_database_floor(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the floor is measured on PostgreSQL")
    admin_url = os.environ.get("HUB_SCIM_TEST_POSTGRESQL_URL", POSTGRESQL_URL)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    completed = subprocess.run(
        [sys.executable, "bench/floor.py", "--requests", "10", "--postgres-admin-url", admin_url],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr[-2000:]
    for phase in ("create", "lookup hit", "lookup miss", "replace", "deactivate", "delete"):
        figures = re.search(rf"^  {phase} +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)x$",
                            completed.stdout, re.MULTILINE)  # fmt: skip
        assert figures is not None, (phase, completed.stdout)
        assert float(figures.group(1)) > 0
        assert float(figures.group(2)) > 0
    for floor in ("credential lookup", "durable insert + audit row", "durable delete + audit row"):
        assert floor in completed.stdout
