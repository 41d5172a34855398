"""Coalesced acks never settle a delivery that is still being worked on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from warren.consumers.acks import Acks
from warren.consumers.inbound import Delivery


@pytest.fixture
async def scratch_queue(
    connection: AbstractRobustConnection, channel: AbstractChannel
) -> AsyncIterator[str]:
    name = f"test-acks-{uuid.uuid4().hex[:8]}"
    await channel.declare_queue(name, auto_delete=False)
    yield name
    await channel.queue_delete(name)


async def deliver(
    connection: AbstractRobustConnection, queue: str, count: int
) -> tuple[AbstractChannel, list[Delivery]]:
    """Publish ``count`` messages and take them all on a fresh consuming channel, as the
    consumer takes them (aiormq's deliveries, as ``Delivery``)."""
    publishing = await connection.channel()
    for n in range(count):
        await publishing.default_exchange.publish(aio_pika.Message(str(n).encode()), queue)
    await publishing.close()
    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=count)
    got: list[Delivery] = []
    arrived = asyncio.Event()

    async def take(message: DeliveredMessage) -> None:
        got.append(Delivery(message))
        if len(got) == count:
            arrived.set()

    await (await consuming.get_underlay_channel()).basic_consume(queue, take)
    async with asyncio.timeout(5):
        await arrived.wait()
    return consuming, got


async def left_in(channel: AbstractChannel, queue: str, within: float = 5) -> list[bytes]:
    """What the broker holds after the consuming channel closed: the unacked ones, requeued."""
    bodies: list[bytes] = []
    async with asyncio.timeout(within):
        while (message := await (await channel.get_queue(queue)).get(fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
    return sorted(bodies)


async def test_a_batch_ack_stops_below_an_open_delivery_and_acks_the_rest_one_by_one(
    connection: AbstractRobustConnection, channel: AbstractChannel, scratch_queue: str
) -> None:
    # Given five deliveries on one channel, tracked on arrival as the consumer does
    consuming, got = await deliver(connection, scratch_queue, 5)
    acks = Acks()
    for delivery in got:
        acks.track(delivery)
    # When 1, 2, 4 and 5 are acked in the same turn while 3 is still running
    await asyncio.gather(*(acks.ack(got[i]) for i in (0, 1, 3, 4)))
    # Then closing the channel gives back only 3: the batch ack stopped below it
    await consuming.close()
    assert await left_in(channel, scratch_queue) == [b"2"]


async def test_a_delivery_given_back_no_longer_holds_the_batch(
    connection: AbstractRobustConnection, channel: AbstractChannel, scratch_queue: str
) -> None:
    consuming, got = await deliver(connection, scratch_queue, 3)
    acks = Acks()
    for delivery in got:
        acks.track(delivery)
    await got[0].nack(requeue=True)  # requeued by the consumer (e.g. a failed settle)
    acks.forget(got[0])
    await asyncio.gather(acks.ack(got[1]), acks.ack(got[2]))
    await consuming.close()
    # The requeued one is back once; the two acked ones are gone.
    assert await left_in(channel, scratch_queue) == [b"0"]
