"""``warren bench soak`` with a small n, as CI runs it: real gateway, consumers and broker.

What a user of the soak relies on is its verdict: every task it submitted
through the batch endpoint is listed ``succeeded`` by the task API, each
process's RSS is reported, and the exit status says whether the checks held.
No figure of speed is asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import aiormq
import pytest
from aio_pika.abc import AbstractRobustConnection

from warren.service.bench.procs import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PROCESSES = {"gateway", "consume-0", "consume-1"}


def soak(*argv: str) -> tuple[int, dict[str, Any], str]:
    """``warren bench soak ARGV --json``: its exit code, report and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "warren", "bench", "soak", *argv, "--json", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report, done.stderr


def row(report: dict[str, Any], name: str, metric: str) -> dict[str, Any]:
    found = [r for r in report["rows"] if r["name"] == name and r["metric"] == metric]
    assert len(found) == 1, [(r["name"], r["metric"]) for r in report["rows"]]
    one: dict[str, Any] = found[0]
    return one


async def test_every_task_of_a_soak_succeeds_and_it_exits_zero(
    connection: AbstractRobustConnection,
) -> None:
    code, report, _ = soak("-n", "2000", "--batch", "250", "--sample-seconds", "0.5")

    assert code == 0, [t for t in report["targets"] if not t["met"]]
    assert row(report, "submit", "accepted")["extra"]["accepted"] == 2000
    assert row(report, "tasks", "not succeeded")["value"] == 0
    assert report["targets"][0] == {
        "name": "tasks not succeeded",
        "value": 0.0,
        "limit": 0.0,
        "op": "<=",
        "met": True,
    }
    # Every process the soak started has its RSS series and a bound on its growth
    for label in PROCESSES:
        assert row(report, label, "RSS last")["value"] > 0
        assert any(t["name"] == f"RSS growth of {label} (MiB)" for t in report["targets"])
    assert row(report, "store", "size")["value"] > 0
    # And the run's namespace is gone
    channel = await connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.declare_queue(f"{report['environment']['namespace']}.diag", passive=True)


def test_a_soak_whose_memory_bound_is_missed_exits_non_zero() -> None:
    # A bound no process can meet (RSS never shrinks by a gigabyte): the checks fail
    code, report, _ = soak("-n", "200", "--sample-seconds", "0.2", "--rss-growth-mib", "-1024")

    assert code == 1
    assert row(report, "tasks", "not succeeded")["value"] == 0
    missed = [t["name"] for t in report["targets"] if not t["met"]]
    assert sorted(missed) == sorted(f"RSS growth of {label} (MiB)" for label in PROCESSES)
