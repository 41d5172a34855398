"""Scenario 6: a memory alarm, then a disk alarm, on the broker.

Under a resource alarm RabbitMQ blocks every connection that publishes; it
keeps delivering to consumers and taking their acks, so that queues can drain
and free the resource. The gateway must then answer ``503`` within its publish
timeout instead of hanging the client (a blocked publish never confirms);
a ``503`` here means "not promised", since the blocked publish may still be
enqueued when the alarm clears (counted as *recovered*). Nothing accepted may
be lost. Consumers should keep draining their queue on their own consuming
connection.

One run feeds all tests: a backlog of ``diag.sleep`` tasks is queued, the
memory alarm is raised, a consumer starts (its consuming connection never
publishes, so the alarm does not block it) and the queue depth is sampled,
submissions are made under the alarm, the alarm is cleared; then the same
submissions under a disk alarm.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.broker import RabbitNode
from tests.faults.harness import open_harness, run_once
from tests.faults.ledger import Answer, Told, Verdict
from tests.faults.load import HttpLoad, scaled
from tests.faults.procs import Spawner, queue_state

pytestmark = pytest.mark.faults

PREFETCH = 4
PUBLISH_TIMEOUT = 2.0
TASK_MS = 100
BACKLOG = 100
ALARM_SAMPLES = 8  # queue depth samples, 0.5 s apart, under the memory alarm


@dataclass
class AlarmRun:
    verdict: Verdict
    backlog: int  # ready messages when the memory alarm began (no consumer yet)
    depths: list[int]  # ready messages, sampled under the memory alarm once a consumer runs
    under_alarm: dict[str, list[Answer]]  # alarm kind -> submissions made under it


def sleep_task(key: str) -> dict[str, object]:
    return {"type": "diag.sleep", "payload": {"ms": TASK_MS}}


async def alarm_scenario(node: RabbitNode, spawner: Spawner) -> AlarmRun:
    h = await open_harness(
        node, spawner, "resource-alarms", publish_timeout_seconds=PUBLISH_TIMEOUT
    )
    await h.start_gateway()
    # The backlog is queued before the consumer starts, so it is certainly waiting when
    # the alarm begins, however slow the machine is.
    await h.load("backlog", task=sleep_task).run(limit=scaled(BACKLOG))
    under: dict[str, list[Answer]] = {}
    depths: list[int] = []
    try:
        await asyncio.to_thread(node.memory_alarm, True)
        state = await queue_state(node.url, h.work_queue)
        assert state is not None
        backlog = state[0]
        await h.start_consumers(1, PREFETCH)
        for _ in range(ALARM_SAMPLES):
            state = await queue_state(node.url, h.work_queue)
            assert state is not None
            depths.append(state[0])
            await asyncio.sleep(0.5)
        under["memory"] = await submit_under_alarm(h.load("memory", workers=2))
    finally:
        await asyncio.to_thread(node.memory_alarm, False)
    try:
        await asyncio.to_thread(node.disk_alarm, True)
        under["disk"] = await submit_under_alarm(h.load("disk", workers=2))
    finally:
        await asyncio.to_thread(node.disk_alarm, False)
    verdict = await h.outcomes(within=60)
    await h.drained()
    return AlarmRun(verdict, backlog, depths, under)


async def submit_under_alarm(load: HttpLoad) -> list[Answer]:
    """Four submissions under the alarm; each must be refused within the publish timeout."""
    before = set(load.ledger.answers)
    await load.run(limit=4)
    return [a for k, a in load.ledger.answers.items() if k not in before]


@pytest.fixture(scope="module")
def alarm_run(node: RabbitNode, tmp_path_factory: pytest.TempPathFactory) -> AlarmRun:
    log_dir: Path = tmp_path_factory.mktemp("alarms")
    return run_once(lambda spawner: alarm_scenario(node, spawner), log_dir)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_the_gateway_answers_503_within_its_publish_timeout_under_an_alarm(
    alarm_run: AlarmRun, kind: str
) -> None:
    answers = alarm_run.under_alarm[kind]
    assert len(answers) == 4
    assert {a.told for a in answers} == {Told.REFUSED}, answers
    assert all(a.answered_at - a.sent_at < PUBLISH_TIMEOUT + 1.0 for a in answers), answers


def test_nothing_accepted_is_lost_across_the_alarms(alarm_run: AlarmRun) -> None:
    # The premise of the draining test below: work was waiting when the alarm began.
    assert alarm_run.backlog == scaled(BACKLOG)
    verdict = alarm_run.verdict
    verdict.check(max_extra_runs=None)
    assert verdict.refused == 8


def test_consumers_keep_draining_under_a_memory_alarm(alarm_run: AlarmRun) -> None:
    # More than what one prefetch window holds was taken off the queue and acked.
    depths = alarm_run.depths
    assert depths[-1] < alarm_run.backlog - PREFETCH, f"{alarm_run.backlog}, then {depths}"


def test_an_alarm_does_not_make_consumers_rerun_their_tasks(alarm_run: AlarmRun) -> None:
    verdict = alarm_run.verdict
    assert verdict.extra_starts <= PREFETCH, verdict
