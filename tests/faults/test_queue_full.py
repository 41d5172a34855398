"""Scenario 7: a bounded work queue (``x-max-length`` + ``reject-publish``) is full.

The broker nacks a publish to a full queue; the gateway must turn that nack
into a refusal for the client (``429`` with problem code ``queue-full`` and
``Retry-After``: the task was certainly not enqueued, unlike a ``503``'s) and
never into a ``202``. The accounting is exact: the tasks accepted are the tasks enqueued,
and a refused task never runs (it was never enqueued).
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import MakeHarness
from tests.faults.ledger import Told
from tests.faults.procs import queue_state

pytestmark = pytest.mark.faults

MAX_LENGTH = 50
SUBMITTED = 80


async def test_a_full_queue_refuses_with_429_queue_full_and_accepted_equals_enqueued(
    harness: MakeHarness,
) -> None:
    h = await harness(max_queue_length=MAX_LENGTH)
    await h.start_gateway()
    # No consumer yet: the queue fills up and stays full.
    await h.load(workers=4).run(limit=SUBMITTED)

    accepted = h.ledger.told(Told.ACCEPTED)
    refused = h.ledger.told(Told.REFUSED)
    assert len(accepted) == MAX_LENGTH, h.ledger.verdict()
    assert len(refused) == SUBMITTED - MAX_LENGTH
    assert {(a.status, a.code) for a in refused} == {(429, "queue-full")}, refused
    assert all(a.retry_after for a in refused), refused
    assert await queue_state(h.node.url, h.work_queue) == (MAX_LENGTH, 0)

    await h.start_consumers(1, concurrency=8)
    verdict = await h.outcomes(within=30)
    await h.drained()
    assert verdict.recovered == [], "a refused (nacked) task ran"
    verdict.check(max_extra_runs=0)
