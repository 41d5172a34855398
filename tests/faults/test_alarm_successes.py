"""Successes held on their batch's confirm when a resource alarm begins are acked under it.

A consumer acks a plain success from its event batch's confirm (``SuccessAcks``).
RabbitMQ blocks a connection under an alarm when it next publishes, so the first
batch a running consumer publishes under an alarm is what gets it blocked, and
the successes of that batch are already held on a confirm that will not come
until the alarm clears. They must be acked anyway, their events following, as a
success settled while blocked is: held, they would keep their prefetch slots as
long as the alarm lasts.

The tasks reach the work queue under the alarm without anyone publishing: they
wait out a retry tier's TTL first, and the broker moves them itself.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from tests.faults.broker import RabbitNode
from tests.faults.conftest import MakeHarness
from tests.faults.harness import Harness
from tests.faults.load import declare_topology, scaled
from tests.support import first_attempt
from warren.service.wire import Envelope

pytestmark = pytest.mark.faults

CONCURRENCY = 4
TASKS = 40
TIER = 5.0  # seconds the tasks wait in a retry queue: time enough to raise the alarm


def messages_in(node: RabbitNode, queue: str) -> int:
    """Ready plus unacked messages of ``queue``, as the broker counts them now."""
    listing = node.ctl("list_queues", "-q", "name", "messages")
    for line in listing.splitlines():
        name, _, count = line.rpartition("\t")
        if name.strip() == queue:
            return int(count)
    raise AssertionError(f"no queue {queue} in {listing!r}")


async def publish_delayed(h: Harness, envelopes: list[Envelope]) -> None:
    """Into the retry tier of ``TIER``: the broker moves them to the work queue after it."""
    names = h.names
    connection = await aio_pika.connect(h.settings.broker_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(names.retry_exchange)
        key = names.retry_key("diag", TIER)
        await asyncio.gather(
            *(exchange.publish(e.to_message(), routing_key=key, mandatory=True) for e in envelopes)
        )
    for e in envelopes:
        h.ledger.confirmed(e.id)


async def test_successes_held_when_an_alarm_begins_are_acked_under_it(
    harness: MakeHarness,
) -> None:
    # Given a running consumer, and echo tasks (a success's event its only publish) that
    # reach its queue only once a memory alarm is on
    # (no ``running`` event either: the tests' default publishes one at once)
    h = await harness(retry_tiers_seconds=(TIER,), running_event_delay_seconds=1.0)
    await declare_topology(h.settings)
    await h.start_consumers(1, CONCURRENCY)
    tasks = [first_attempt("diag.echo", {"message": f"m{i}"}) for i in range(scaled(TASKS))]
    await publish_delayed(h, tasks)
    retry_queue = h.names.retry_queue("diag", TIER)
    try:
        await asyncio.to_thread(h.node.memory_alarm, True)
        waiting = await asyncio.to_thread(messages_in, h.node, retry_queue)
        assert waiting == len(tasks), "the alarm came too late: tasks already left their tier"
        # Then, the alarm still on, every delivery is acked: none left, ready or unacked
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIER + 20
        while left := sum(
            [await asyncio.to_thread(messages_in, h.node, q) for q in (retry_queue, h.work_queue)]
        ):
            assert loop.time() < deadline, f"{left} tasks not acked under the alarm"
            await asyncio.sleep(0.25)
    finally:
        await asyncio.to_thread(h.node.memory_alarm, False)
    # And once it clears, every task's outcome arrives, each task having run once
    verdict = await h.outcomes(within=40)
    verdict.check(max_extra_runs=0)
    [consumer] = h.consumers
    assert "acking successes now" in consumer.tail(1_000_000), consumer.tail()
