"""Scenario 4: a consumer crashes after the side effect and before the ack.

The worst moment for at-least-once: the work is done and reported (the
``succeeded`` event is confirmed), but the broker never hears the ack, so it
redelivers and the task runs again. That duplicate cannot be avoided by the
pipeline; what Warren promises is that it is *detected* — the repeat delivery
carries the broker's ``redelivered`` flag, which reaches the handler as
``ctx.redelivered`` so an idempotent handler can check before acting again —
and *visible* afterwards.

The consumer is Warren's real one, in a process whose ``diag.echo`` appends
each run to a file (the side effect) and which SIGKILLs itself at the ack of
the first delivery of each ``crash…`` task (``tests.faults.crash_consumer``).
A new such process replaces each one that died, as a supervisor would.
"""

from __future__ import annotations

import json
import signal
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.broker import RabbitNode
from tests.faults.harness import open_harness, run_once
from tests.faults.ledger import Ledger, Verdict
from tests.faults.load import declare_topology, publish_confirmed, scaled
from tests.faults.procs import Proc, Spawner, until
from tests.support import first_attempt

pytestmark = pytest.mark.faults

PREFETCH = 4
TASKS = 24
CRASH_EVERY = 8  # one task in eight crashes its consumer


@dataclass
class CrashRun:
    verdict: Verdict
    ledger: Ledger
    crashes: int
    crash_tasks: set[str]
    side_effects: dict[str, list[dict[str, Any]]]  # task id -> runs, in order


async def crash_scenario(node: RabbitNode, spawner: Spawner) -> CrashRun:
    h = await open_harness(node, spawner, "crash-after-side-effect-before-ack")
    await declare_topology(h.settings)
    messages = [f"{'crash' if i % CRASH_EVERY == 3 else 'calm'}-{i}" for i in range(scaled(TASKS))]
    tasks = [first_attempt("diag.echo", {"message": m}) for m in messages]
    crash_tasks = {t.id for t, m in zip(tasks, messages, strict=True) if m.startswith("crash")}
    await publish_confirmed(h.settings, h.ledger, tasks)
    side_file = spawner.log_dir / "side-effects.jsonl"
    env = h.settings.child_environment(consumer_prefetch=PREFETCH)

    def runs() -> dict[str, list[dict[str, Any]]]:
        by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if side_file.exists():
            for line in side_file.read_text().splitlines():
                record = json.loads(line)
                by_task[record["task_id"]].append(record)
        return by_task

    def all_done() -> bool:
        done = runs()
        return all(done[t.id] for t in tasks) and all(
            any(r["redelivered"] for r in done[t]) or len(done[t]) > 1 for t in crash_tasks
        )

    crashes = 0
    while True:
        proc: Proc = spawner.python(
            "-m",
            "tests.faults.crash_consumer",
            str(side_file),
            "--crash-before-ack",
            "--concurrency",
            str(PREFETCH),
            env=env,
            name="crash-consumer",
        )
        await until(
            lambda proc=proc: not proc.alive() or all_done(),
            30,
            "a crash or the end of the work",
            explain=spawner.logs,
        )
        if proc.alive():
            break
        assert proc.popen.returncode == -signal.SIGKILL, proc.tail()
        crashes += 1
        assert crashes <= len(crash_tasks), "crashed more often than there are crash tasks"
    verdict = await h.outcomes(within=30)
    await h.drained()
    return CrashRun(verdict, h.ledger, crashes, crash_tasks, dict(runs()))


@pytest.fixture(scope="module")
def crash_run(node: RabbitNode, tmp_path_factory: pytest.TempPathFactory) -> CrashRun:
    log_dir: Path = tmp_path_factory.mktemp("crash-before-ack")
    return run_once(lambda spawner: crash_scenario(node, spawner), log_dir)


def test_a_crash_before_the_ack_redelivers_and_the_repeat_run_is_flagged(
    crash_run: CrashRun,
) -> None:
    run = crash_run
    assert run.crashes >= 1
    # Nothing lost, nothing unexpected, and the only duplicates are the crashed windows.
    run.verdict.check(max_extra_runs=run.crashes * PREFETCH)
    repeated = {task: r for task, r in run.side_effects.items() if len(r) > 1}
    # Every crash left its task's side effect done and unacked: it ran again.
    assert len(repeated) >= run.crashes
    assert {t for t in run.crash_tasks if len(run.side_effects[t]) > 1}, run.side_effects
    # Detection: every repeat run was told it is a redelivery.
    for task, records in repeated.items():
        assert all(r["redelivered"] for r in records[1:]), (task, records)
    # Visible: each crash's task ran to a confirmed `succeeded` twice. (A run cut off before
    # its event leaves only its side effect: see the expected failure below.)
    assert len(run.verdict.duplicated) >= run.crashes, run.verdict


def test_a_redelivered_run_is_recorded_as_such_on_the_event_stream(crash_run: CrashRun) -> None:
    """The run that completed after a redelivery says so in its own events."""
    repeated = {t: r for t, r in crash_run.side_effects.items() if len(r) > 1}
    assert repeated
    for task, records in repeated.items():
        last = records[-1]  # the run that reached its ack
        assert last["redelivered"]
        own = [e for e in crash_run.ledger.of(task) if e["worker"].endswith(f":{last['pid']}")]
        assert own, crash_run.ledger.of(task)
        assert all(e.get("redelivered") is True for e in own), own
