"""Scenario 3: consumers are killed with SIGKILL every ~2 s during a run of hundreds of tasks.

A killed consumer never acks what it had in flight, so the broker requeues it
and another consumer runs it again: nothing is lost, and the duplicates are
bounded by what the dead process held unacked — its prefetch — per kill. Each
killed consumer is replaced by a new process, as a supervisor would.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.faults.conftest import MakeHarness
from tests.faults.load import declare_topology, publish_confirmed, scaled
from tests.faults.procs import queue_state
from tests.support import first_attempt

pytestmark = pytest.mark.faults

CONSUMERS = 2
PREFETCH = 4
KILL_EVERY = 1.75  # seconds, +-25 %


async def test_consumers_killed_every_two_seconds_lose_nothing_and_duplicate_within_prefetch(
    harness: MakeHarness,
) -> None:
    h = await harness()
    await declare_topology(h.settings)
    rng = random.Random(6)
    tasks = [first_attempt("diag.sleep", {"ms": rng.randint(20, 120)}) for _ in range(scaled(800))]
    await publish_confirmed(h.settings, h.ledger, tasks)
    await h.start_consumers(CONSUMERS, PREFETCH)

    kills = 0
    max_kills = scaled(6)
    while kills < max_kills:
        await asyncio.sleep(KILL_EVERY * rng.uniform(0.75, 1.25))
        state = await queue_state(h.node.url, h.work_queue)
        assert state is not None
        if state[0] == 0:
            break  # the queue ran dry: nothing left to interrupt
        victim = rng.choice([c for c in h.consumers if c.alive()])
        victim.kill_group()
        kills += 1
        h.spawn_consumer(PREFETCH)  # the supervisor's replacement

    assert kills >= 3, f"only {kills} kills happened before the queue ran dry"
    await h.consumers_attached(CONSUMERS)
    verdict = await h.outcomes(within=90)
    await h.drained()
    verdict.check(max_extra_runs=kills * PREFETCH)
