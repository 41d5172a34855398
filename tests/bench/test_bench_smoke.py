"""Smoke of every ``warren bench`` mode: tiny sizes, real processes and broker, no timing asserts.

Each run must complete, report sane fields, and leave nothing behind: its
namespace's queues are gone and every process it started has exited.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiormq
import pytest
from aio_pika.abc import AbstractRobustConnection

from warren.service.bench import parser, run_mode
from warren.service.bench.procs import REPO
from warren.service.bench.report import Report

pytestmark = pytest.mark.slow


async def bench(*argv: str) -> Report:
    return await run_mode(parser().parse_args([*argv, "-r", "1", "--quiet"]))


async def assert_cleaned_up(connection: AbstractRobustConnection, report: Report) -> None:
    """The run's namespace is deleted: its work queue no longer exists."""
    namespace = report.environment["namespace"]
    assert namespace.startswith("bench-")
    channel = await connection.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.declare_queue(f"{namespace}.diag", passive=True)


def positive(value: float) -> bool:
    return not math.isnan(value) and value > 0


def sane(value: float) -> bool:
    """A rate of a tiny drain may be 0: it can finish before the window opens (20 ms polls)."""
    return not math.isnan(value) and value >= 0


async def test_consumer_mode(connection: AbstractRobustConnection) -> None:
    report = await bench(
        "consumer", "-n", "40", "-p", "1", "--variants", "raw,warren,warren-recorder"
    )
    rows = {r.name: r for r in report.rows}
    assert set(rows) == {"raw", "warren", "warren-recorder"}
    assert all(sane(r.value) and r.unit == "tasks/s" for r in rows.values())
    assert rows["raw"].extra["acked"] == 40
    assert rows["warren-recorder"].extra["store_lag_s"] >= 0
    # Events are counted as events, whatever their packing: one `succeeded` per no-op task.
    warren = rows["warren"].extra
    assert warren["events_per_task"] == 1.0
    assert 0 < warren["enqueues_per_task"] <= 1.0 and 0 < warren["ack_frames_per_task"] <= 1.0
    assert sane(warren["cpu_ms_per_task"]) and sane(rows["raw"].extra["cpu_ms_per_task"])
    assert {t.name for t in report.targets} >= {
        "ack frames per task",
        "event publishes (= confirms) per task",
    }
    assert report.environment["rabbitmq"]
    json.dumps(report.to_json())
    await assert_cleaned_up(connection, report)


async def test_gateway_mode_with_the_python_load_generator(
    connection: AbstractRobustConnection,
) -> None:
    report = await bench(
        "gateway", "-d", "1", "--warmup", "0", "--loadgen", "python", "--variants",
        "baseline,warren",
    )  # fmt: skip
    baseline, warren = report.rows
    assert (baseline.name, warren.name) == ("baseline", "warren")
    assert positive(baseline.value) and positive(warren.value)
    assert warren.ratio is not None and positive(warren.ratio)
    assert warren.extra["errors"] == 0 and positive(warren.extra["p99_ms"])
    assert positive(baseline.extra["cpu_us_per_req"]) and positive(warren.extra["cpu_us_per_req"])
    assert report.settings["generator"] == "python"
    assert [t.name for t in report.targets] == ["warren / minimal confirm app"]
    await assert_cleaned_up(connection, report)


async def test_gateway_mode_at_one_rate_with_a_second_tree(
    connection: AbstractRobustConnection,
) -> None:
    # This checkout stands in for another one: warren-b runs it from its own path.
    report = await bench(
        "gateway", "-d", "1", "--warmup", "0", "--rate", "20", "--variants", "baseline,warren",
        "--tree-b", str(REPO),
    )  # fmt: skip
    assert [r.name for r in report.rows] == ["baseline", "warren", "warren-b"]
    baseline, warren, other = report.rows
    assert all(r.extra["errors"] == 0 and positive(r.extra["cpu_us_per_req"]) for r in report.rows)
    # Every variant served the rate; the ratio compares CPU per request, and no target is
    # judged on rates that were fixed.
    cpu = baseline.extra["cpu_us_per_req"]
    assert warren.ratio == pytest.approx(cpu / warren.extra["cpu_us_per_req"])
    assert other.ratio == pytest.approx(cpu / other.extra["cpu_us_per_req"])
    assert report.targets == [] and report.settings["rate"] == 20
    assert any(n.startswith("open loop at one rate") for n in report.notes)
    assert any(n.startswith("CPU per request, warren / warren-b") for n in report.notes)
    await assert_cleaned_up(connection, report)


async def test_gateway_batch_variants_count_tasks_against_the_raw_windowed_rate(
    connection: AbstractRobustConnection,
) -> None:
    report = await bench(
        "gateway", "-d", "1", "--warmup", "0", "--loadgen", "python", "--variants",
        "raw-windowed,warren-batch", "--batch-size", "50",
    )  # fmt: skip
    raw, batch = report.rows
    assert (raw.unit, batch.unit) == ("tasks/s", "tasks/s")
    assert positive(raw.value) and positive(batch.value)
    assert batch.ratio is not None and batch.extra["errors"] == 0
    assert [t.name for t in report.targets] == ["warren batch / raw windowed publish"]
    await assert_cleaned_up(connection, report)


async def test_gateway_tree_b_adds_the_batch_route_of_another_checkout(
    connection: AbstractRobustConnection,
) -> None:
    report = await bench(
        "gateway", "-d", "1", "--warmup", "0", "--loadgen", "python", "--variants",
        "raw-windowed,warren-batch", "--batch-size", "50", "--tree-b", str(REPO),
    )  # fmt: skip
    assert [row.name for row in report.rows] == ["raw-windowed", "warren-batch", "warren-batch-b"]
    assert positive(report.rows[2].value) and report.rows[2].extra["errors"] == 0
    assert any(note.startswith("warren-batch / warren-batch-b") for note in report.notes)
    await assert_cleaned_up(connection, report)


async def test_e2e_mode(connection: AbstractRobustConnection) -> None:
    report = await bench(
        "e2e", "-d", "1", "--max-duration", "1", "--warmup", "0", "-p", "1",
        "--loadgen", "python",
    )  # fmt: skip
    rows = {r.metric: r for r in report.rows}
    assert sane(rows["sustainable maximum"].value)
    assert rows["tasks not succeeded"].value == 0
    p50, p99 = rows["submit→succeeded p50"].value, rows["submit→succeeded p99"].value
    assert positive(p50) and p99 >= p50
    stages = [rows[f"{stage} p50"].value for stage in ("gateway", "to consumer", "event")]
    assert all(positive(value) for value in stages)  # where the latency went
    assert positive(rows["cpu gateway (paced)"].value)
    assert positive(rows["cpu generator (paced)"].value)
    end = rows["store lag after the last event"].value
    assert 0 <= end < 60  # the store caught up with every paced task (else NaN)
    assert [t.name for t in report.targets][-1] == "store lag (s)"
    assert len(report.targets) == 3
    await assert_cleaned_up(connection, report)


async def test_e2e_tree_b_paces_another_checkout_in_turn(
    connection: AbstractRobustConnection,
) -> None:
    """Both pipelines ran in namespaces of their own, at one rate, and both are gone."""
    report = await bench(
        "e2e", "-d", "1", "--max-duration", "1", "--warmup", "0", "-p", "1",
        "--loadgen", "python", "--rate", "20", "--tree-b", str(REPO),
    )  # fmt: skip
    rows = {(r.name, r.metric): r for r in report.rows}
    for name in ("warren", "warren-b"):
        assert rows[(name, "tasks not succeeded")].value == 0
        assert rows[(name, "paced rate")].value == 20
        assert positive(rows[(name, "submit→succeeded p50")].value)
    assert len(report.targets) == 3  # this tree's only
    other = report.environment["namespace of warren-b"]
    assert other != report.environment["namespace"]
    await assert_cleaned_up(connection, report)
    report.environment["namespace"] = other
    await assert_cleaned_up(connection, report)


def test_cli_prints_json() -> None:
    """``warren bench`` through the real CLI: one JSON object on stdout."""
    argv = ["-m", "warren", "bench", "consumer", "-n", "300", "-p", "1", "-r", "1"]
    done = subprocess.run(
        [sys.executable, *argv, "--variants", "raw", "--json", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["mode"] == "consumer"
    assert data["rows"][0]["name"] == "raw" and data["rows"][0]["value"] >= 0
    assert data["environment"]["cores"] >= 1


@pytest.fixture
def exported_tree(tmp_path: Path) -> Path:
    """This commit as a plain tree (what ``git archive COMMIT | tar -x`` makes)."""
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    return tmp_path


async def test_consumer_mode_runs_another_tree_in_turn(
    connection: AbstractRobustConnection, exported_tree: Path
) -> None:
    """``--tree-b``: a before/after in one run; here tree b is this commit, exported."""
    tmp_path = exported_tree
    report = await bench(
        "consumer", "-n", "40", "-p", "1", "--variants", "warren", "--tree-b", str(tmp_path)
    )
    rows = {r.name: r for r in report.rows}
    assert set(rows) == {"warren", "warren-b"}
    assert rows["warren-b"].extra["events_per_task"] == 1.0
    assert report.settings["tree_b"] == str(tmp_path)
    await assert_cleaned_up(connection, report)
