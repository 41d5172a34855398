"""Smoke of the peer comparison's driver (``benchmarks/peers/compare.py``).

Warren's row always runs. A peer runs too when its venv exists
(``benchmarks/peers/setup`` makes it; CI's fresh clone has none, and installing
four frameworks is not a few seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from warren.service.bench.procs import REPO

pytestmark = pytest.mark.slow
PEERS = REPO / "benchmarks" / "peers"


def test_compare_prints_a_table_with_warren_and_the_ceiling() -> None:
    peers = "warren,dramatiq-2x8" if (PEERS / ".venv" / "bin" / "dramatiq").exists() else "warren"
    argv = [str(PEERS / "compare.py"), "--peers", peers, "-n", "200", "-r", "1", "--timed", "10"]
    done = subprocess.run(
        [sys.executable, *argv, "--json", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    rows = {row["name"]: row for row in report["rows"]}
    assert {"raw aio-pika (ceiling)", *peers.split(",")} <= set(rows)
    assert all(row["value"] >= 0 for row in rows.values())  # a tiny drain may beat the window
