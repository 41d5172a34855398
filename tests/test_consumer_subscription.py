"""The consumer's own ``basic.consume`` comes back after whatever took it away.

The consumer consumes through aiormq, not through aio-pika's robust queue
(``warren.consumers.subscription``), so restoring it is Warren's business: after
a channel error (the robust channel reopens it), and after the broker cancels
the consumer (its queue was deleted). A reconnect is
``tests/test_connection_loss.py``'s.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from tests.conftest import StartConsumer
from tests.support import Events, queue_counts
from tests.test_envelope import sample_envelope
from warren.service.settings import Settings
from warren.service.topology import Declared, Names


async def consumers_on(
    connection: AbstractRobustConnection, queue: str, count: int, within: float
) -> None:
    """Wait until the broker lists ``count`` consumers on ``queue`` (which may be re-created).

    Each look on a channel of its own: a passive declare of a missing queue closes it."""
    async with asyncio.timeout(within):
        while True:
            probe = await connection.channel()
            try:
                if (await queue_counts(probe, queue))[1] == count:
                    return
            except ChannelNotFoundEntity:
                pass  # not declared again yet
            finally:
                await probe.close()
            await asyncio.sleep(0.1)


async def test_a_channel_closed_by_an_error_is_reopened_and_consumed_again(
    settings: Settings,
    declared: Declared,
    start_consumer: StartConsumer,
    events: Events,
    connection: AbstractRobustConnection,
) -> None:
    # Given a consumer that ran one task
    names = Names(settings.namespace)
    consumer = await start_consumer("diag", concurrency=2)
    exchange = declared.exchanges[names.work_exchange]
    first = sample_envelope()
    await exchange.publish(first.to_message(), routing_key="diag")
    assert (await events.final(first.id, timeout=10))["status"] == "succeeded"
    subscription = consumer._subscription
    assert subscription is not None
    # When its consuming channel is closed by the broker (an ack of a tag it never sent)
    consuming = subscription._on
    assert consuming is not None
    await consuming.basic_ack(1_000_000)
    await asyncio.wait([consuming.closing], timeout=10)
    assert consuming.is_closed
    # Then it consumes again, on the reopened channel, and runs the next task
    await consumers_on(connection, names.work_queue("diag"), 1, within=10)
    assert subscription.consuming
    after = sample_envelope()
    await exchange.publish(after.to_message(), routing_key="diag")
    assert (await events.final(after.id, timeout=10))["status"] == "succeeded"


async def test_a_consumer_the_broker_cancels_declares_its_queue_again_and_consumes(
    settings: Settings,
    declared: Declared,
    start_consumer: StartConsumer,
    events: Events,
    channel: AbstractChannel,
    connection: AbstractRobustConnection,
) -> None:
    # Given a consumer of the work queue
    names = Names(settings.namespace)
    work = names.work_queue("diag")
    await start_consumer("diag", concurrency=2)
    await consumers_on(connection, work, 1, within=10)
    # When the queue is deleted under it (the broker sends basic.cancel)
    await channel.queue_delete(work, if_unused=False, if_empty=False)
    # Then the queue is back, with the consumer on it, which runs what reaches the queue
    await consumers_on(connection, work, 1, within=15)
    task = sample_envelope()
    await channel.default_exchange.publish(task.to_message(), routing_key=work)
    assert (await events.final(task.id, timeout=10))["status"] == "succeeded"
