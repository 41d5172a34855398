"""``Publisher.publish_task``: the tasks of concurrent requests written together
(``coalesced.Gathered``), each still with its own confirm and its own outcome, in order;
a publish given up before it was written is never written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from tests.conftest import make_settings
from tests.support import drain
from tests.test_envelope import sample_envelope
from warren.service import topology
from warren.service.amqp import Publisher
from warren.service.coalesced import Gathered, Outgoing
from warren.service.errors import PublishError, QueueFull
from warren.service.settings import Settings
from warren.service.wire import Envelope


class Counted:
    """``Publisher.send_batch``, with the size of every batch it was handed noted."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.sizes: list[int] = []

    async def __call__(self, batch: Sequence[Outgoing]) -> list[asyncio.Future[None]]:
        self.sizes.append(len(batch))
        return await self.publisher.send_batch(batch)


async def test_concurrent_publishes_go_in_one_batch_in_order(
    connection: AbstractRobustConnection, channel: AbstractChannel, settings: Settings
) -> None:
    # Given a publisher whose batches are counted
    publisher = await Publisher.open(connection, topology.build(settings, ["diag"]), 5.0)
    assert publisher.coalesces
    counted = Counted(publisher)
    publisher._gathered = Gathered(counted)
    # When 20 tasks are published at once (as 20 requests in one loop turn)
    envelopes = [sample_envelope(body=f'"{i}"'.encode()) for i in range(20)]
    await asyncio.gather(*(publisher.publish_task(e) for e in envelopes))
    # Then they were written as one batch, and the queue holds them all, in order
    assert counted.sizes == [20]
    queue = await channel.get_queue(publisher.names.work_queue("diag"), ensure=False)
    taken = await drain(queue, len(envelopes))
    assert [Envelope.from_delivery(m) for m in taken] == envelopes
    # and one published alone later is a batch of one
    await publisher.publish_task(sample_envelope())
    assert counted.sizes == [20, 1]
    await drain(queue, 1)


async def test_each_publish_of_a_batch_gets_its_own_outcome(
    connection: AbstractRobustConnection, channel: AbstractChannel, settings: Settings
) -> None:
    # Given a work queue that holds 3 messages and refuses more (reject-publish)
    bounded = make_settings(namespace=settings.namespace, max_queue_length=3)
    publisher = await Publisher.open(connection, topology.build(bounded, ["diag"]), 5.0)
    # When 5 tasks are published at once
    envelopes = [sample_envelope() for _ in range(5)]
    results = await asyncio.gather(
        *(publisher.publish_task(e) for e in envelopes), return_exceptions=True
    )
    # Then the first 3 are confirmed and the last 2 refused, each on its own publish
    assert results[:3] == [None, None, None]
    assert all(isinstance(r, QueueFull) for r in results[3:]), results
    queue = await channel.get_queue(publisher.names.work_queue("diag"), ensure=False)
    taken = await drain(queue, 3)
    assert [m.message_id for m in taken] == [e.id for e in envelopes[:3]]


async def test_a_publish_given_up_before_its_write_is_never_written(
    connection: AbstractRobustConnection, channel: AbstractChannel, settings: Settings
) -> None:
    publisher = await Publisher.open(connection, topology.build(settings, ["diag"]), 5.0)
    gathered = Gathered(publisher.send_batch)
    exchange = publisher.work_exchange
    given_up, kept = sample_envelope(), sample_envelope()
    # Given a publish whose caller gives up in the same loop turn (its future cancelled)
    gathered.send(Outgoing(exchange, "diag", given_up.body, given_up.to_properties())).cancel()
    # When another one is published after it and confirmed
    await gathered.send(Outgoing(exchange, "diag", kept.body, kept.to_properties()))
    # Then only that one reached the queue
    queue = await channel.get_queue(publisher.names.work_queue("diag"), ensure=False)
    assert [m.message_id for m in await drain(queue, 1)] == [kept.id]
    await asyncio.sleep(0.2)
    assert await queue.get(fail=False) is None


async def test_a_failing_write_fails_every_publish_waiting_on_it() -> None:
    async def broken(batch: Sequence[Outgoing]) -> list[asyncio.Future[None]]:
        raise RuntimeError("the write failed")

    gathered = Gathered(broken)
    envelope = sample_envelope()
    message = Outgoing("x", "diag", envelope.body, envelope.to_properties())
    confirms = [gathered.send(message) for _ in range(3)]
    await asyncio.wait(confirms, timeout=5)
    for confirm in confirms:
        with pytest.raises(RuntimeError, match="the write failed"):
            confirm.result()


async def test_publishes_whose_write_a_shutdown_cut_short_are_told_the_outcome_is_unknown() -> None:
    async def stuck(batch: Sequence[Outgoing]) -> list[asyncio.Future[None]]:
        await asyncio.Event().wait()  # the channel's lock never comes
        raise AssertionError("unreachable")

    gathered = Gathered(stuck)
    envelope = sample_envelope()
    message = Outgoing("x", "diag", envelope.body, envelope.to_properties())
    confirms = [gathered.send(message) for _ in range(3)]
    await asyncio.sleep(0.05)  # the flush is writing
    flushing = gathered._flushing
    assert flushing is not None
    flushing.cancel()  # what the loop's shutdown does to it
    await asyncio.wait(confirms, timeout=5)
    for confirm in confirms:
        with pytest.raises(PublishError, match=r"interrupted \(CancelledError; unknown\)"):
            confirm.result()
