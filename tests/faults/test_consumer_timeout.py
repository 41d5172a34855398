"""Scenario 8: a handler runs past the broker's consumer timeout.

The broker closes the channel of a consumer that holds a delivery unacked for
longer than its ``consumer_timeout`` and requeues the delivery. Warren guards
against this by refusing to start when a task's timeout cap is not below
``WARREN_BROKER_CONSUMER_TIMEOUT_SECONDS``; here the node's timeout is lowered
behind Warren's back (as a broker upgrade or an operator could), so the guard
cannot see it. The promise is then: the channel closure is survived (the
consumer process stays up and re-attaches by itself), the interrupted task is
redelivered and runs to completion once it fits, other tasks keep being
served, and nothing crash-loops.

The node's ``channel_tick_interval`` is 1 s (see ``broker.py``), so the
timeout acts within about a second instead of a minute. A channel reads the
timeout when it opens, so the slow task is cut at most twice after the
timeout is restored.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import MakeHarness
from tests.faults.load import declare_topology, publish_confirmed, scaled
from tests.support import first_attempt

pytestmark = pytest.mark.faults

PREFETCH = 4
LOW_TIMEOUT_MS = 2000
SLOW_MS = 4000  # twice the lowered timeout
DEFAULT_TIMEOUT_MS = 1_800_000  # RabbitMQ's default consumer_timeout (30 min)


async def test_a_handler_past_the_consumer_timeout_is_redelivered_without_a_crash_loop(
    harness: MakeHarness,
) -> None:
    h = await harness()
    await declare_topology(h.settings)
    slow = first_attempt("diag.sleep", {"ms": SLOW_MS})
    await publish_confirmed(h.settings, h.ledger, [slow])
    try:
        await asyncio.to_thread(h.node.set_consumer_timeout, LOW_TIMEOUT_MS)
        await h.start_consumers(1, PREFETCH)
        # The channel is closed under the slow task, which comes back on a new channel.
        await h.tap.collect(
            h.ledger,
            lambda: len(h.ledger.of(slow.id, "running")) >= 2,
            within=20,
            linger=0,
            explain=h.explain,
        )
    finally:
        await asyncio.to_thread(h.node.set_consumer_timeout, DEFAULT_TIMEOUT_MS)
    # Other work is served meanwhile and afterwards.
    others = [first_attempt("diag.echo", {"message": f"m{i}"}) for i in range(scaled(40))]
    await publish_confirmed(h.settings, h.ledger, others)

    verdict = await h.outcomes(within=40)
    await h.consumers_attached(1)
    await h.drained()
    [consumer] = h.consumers
    assert consumer.alive(), consumer.tail()  # never crashed, never restarted
    # A cut-off run never completed: the task succeeded once, after being redelivered.
    assert len(h.ledger.of(slow.id, "succeeded")) == 1
    assert len(h.ledger.of(slow.id, "running")) >= 2
    # At most three closures (before, while and just after restoring the timeout).
    verdict.check(max_extra_runs=3 * PREFETCH)
