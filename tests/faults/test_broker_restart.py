"""Scenario 2: the broker is stopped and started gracefully, with a backlog waiting.

Durable queues and persistent messages must survive the restart, and the
gateway and consumers must come back by themselves: no operator restarts a
Warren process after a broker maintenance window. The consumer count is
asserted explicitly, because a consumer that reconnects without re-attaching
to its queue (seen with aio-pika when the queue object was not declared) looks
healthy and serves nothing. A graceful stop writes every ack, so the only
re-runs are deliveries in flight: one prefetch window per time the consumer
loses its connection.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import MakeHarness
from tests.faults.ledger import Told
from tests.faults.load import scaled
from tests.faults.procs import queue_state, wait_http_ready

pytestmark = pytest.mark.faults

PREFETCH = 2
TASK_MS = 50  # 200 tasks are ~5 s of work for one consumer: a backlog at the stop


def sleep_task(key: str) -> dict[str, object]:
    return {"type": "diag.sleep", "payload": {"ms": TASK_MS}}


async def test_graceful_restart_keeps_the_backlog_and_everyone_resumes_by_themselves(
    harness: MakeHarness,
) -> None:
    h = await harness()
    gateway = await h.start_gateway()
    await h.start_consumers(1, PREFETCH)
    submitted = scaled(200)
    await h.load("before", task=sleep_task).run(limit=submitted)
    assert len(h.ledger.told(Told.ACCEPTED)) == submitted, h.ledger.verdict()

    before = await queue_state(h.node.url, h.work_queue)
    assert before is not None and before[0] >= submitted // 10, before  # a backlog is waiting
    await asyncio.to_thread(h.node.stop)
    await asyncio.sleep(1.0)
    assert gateway.alive() and all(c.alive() for c in h.consumers), h.explain()
    await asyncio.to_thread(h.node.start)

    # Nobody is restarted: the consumer re-attaches and the gateway serves again.
    await h.consumers_attached(1)
    await wait_http_ready(h.base_url, gateway, within=30)
    after = h.load("after", task=sleep_task)
    await after.run(limit=scaled(20))
    assert len(h.ledger.told(Told.ACCEPTED)) == submitted + scaled(20), h.ledger.verdict()

    verdict = await h.outcomes(within=60)
    await h.drained()
    assert await queue_state(h.node.url, h.work_queue) == (0, 1)
    # What was in flight runs again: one prefetch window per time the consumer's connection
    # is lost. The stop loses it once; a reconnection that races the restarted node's
    # recovery of its queues (NOT_FOUND on a re-declare) is torn down and retried, and
    # takes back what it had just been handed: allow for two such retries.
    verdict.check(max_extra_runs=3 * PREFETCH)
