"""A plain success is acked from its batch confirm's callback (``SuccessAcks``): never before
that confirm, and given back to the broker when the confirm fails or never comes.

Real deliveries from the broker, real event publishes; only the confirm of each event
message is held back (the broker has the message, the settler is not told yet).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from tests.processes import until
from tests.support import first_attempt
from warren.consumers.acks import Acks
from warren.consumers.batcher import EventBatcher
from warren.consumers.inbound import Delivery
from warren.consumers.outcome import Succeeded
from warren.consumers.settle import Settler
from warren.service.amqp import Publisher
from warren.service.errors import PublishError
from warren.service.settings import Settings
from warren.service.topology import Topology
from warren.service.wire import Envelope, EventMessage


class HeldConfirms:
    """Every event message is published as usual; its confirm reaches the settler only once
    ``release`` is called, then as a failure if ``failure`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent = 0
        self.released = asyncio.Event()
        self.failure: BaseException | None = None
        original = Publisher.send_event

        def send_event(publisher: Publisher, event: EventMessage) -> asyncio.Future[None]:
            self.sent += 1
            return asyncio.ensure_future(self._after(original(publisher, event)))

        monkeypatch.setattr(Publisher, "send_event", send_event)

    def release(self, failure: BaseException | None = None) -> None:
        self.failure = failure
        self.released.set()

    async def _after(self, confirm: asyncio.Future[None]) -> None:
        await confirm
        await self.released.wait()
        if self.failure is not None:
            raise self.failure


@pytest.fixture
async def scratch_queue(channel: AbstractChannel) -> AsyncIterator[str]:
    name = f"test-success-acks-{uuid.uuid4().hex[:8]}"
    await channel.declare_queue(name, auto_delete=False)
    yield name
    await channel.queue_delete(name)


async def settler_on(
    connection: AbstractRobustConnection, shape: Topology, settings: Settings, timeout: float
) -> tuple[Settler, Acks]:
    publisher = await Publisher.open(connection, shape, timeout)
    acks = Acks()
    return Settler("diag", publisher, "test", acks, EventBatcher(publisher, settings)), acks


async def tasks_delivered(
    connection: AbstractRobustConnection, queue: str, acks: Acks, count: int
) -> tuple[AbstractChannel, list[Delivery]]:
    """``count`` tasks published to ``queue`` and taken on a fresh channel as the consumer
    takes them (tracked on arrival)."""
    publishing = await connection.channel()
    for _ in range(count):
        message = first_attempt("diag.echo", {"message": "hi"}).to_message()
        await publishing.default_exchange.publish(message, queue)
    await publishing.close()
    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=count)
    got: list[Delivery] = []

    async def take(message: DeliveredMessage) -> None:
        got.append(Delivery(message))
        acks.track(got[-1])

    await (await consuming.get_underlay_channel()).basic_consume(queue, take)
    await until(lambda: len(got) == count, 5, f"{count} deliveries")
    return consuming, got


def settle_all(settler: Settler, deliveries: list[Delivery]) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(settler.settle(d, Envelope.from_delivery(d), Succeeded(None)))
        for d in deliveries
    ]


def held(settler: Settler) -> int:
    return sum(len(group) for group in settler._successes._groups.values())


async def left_in(channel: AbstractChannel, queue: str) -> int:
    """How many messages the broker holds (the unacked ones, once their channel closed)."""
    taken = 0
    async with asyncio.timeout(5):
        while (message := await (await channel.get_queue(queue)).get(fail=False)) is not None:
            taken += 1
            await message.ack()
    return taken


@dataclass
class ThreeHeld:
    """Three successes whose events went out in one batch, its confirm held back."""

    confirms: HeldConfirms
    settler: Settler
    acks: Acks
    consuming: AbstractChannel
    settles: list[asyncio.Task[None]]


@pytest.fixture
async def three_held(
    monkeypatch: pytest.MonkeyPatch,
    connection: AbstractRobustConnection,
    shape: Topology,
    settings: Settings,
    declared: object,
    scratch_queue: str,
) -> ThreeHeld:
    confirms = HeldConfirms(monkeypatch)
    settler, acks = await settler_on(connection, shape, settings, timeout=30)
    consuming, got = await tasks_delivered(connection, scratch_queue, acks, 3)
    settles = settle_all(settler, got)
    await until(lambda: held(settler) == 3, 5, "three successes held on their confirm")
    return ThreeHeld(confirms, settler, acks, consuming, settles)


async def test_successes_are_acked_only_after_their_batch_confirm_with_one_multiple_ack(
    three_held: ThreeHeld, channel: AbstractChannel, scratch_queue: str
) -> None:
    # Given three successes whose events went out in one batch, its confirm held back
    # Then none is acked, and no settle has returned
    assert three_held.confirms.sent == 1 and three_held.acks.frames == 0
    assert not any(settle.done() for settle in three_held.settles)

    # When the confirm arrives, every settle returns, its delivery acked by one frame
    three_held.confirms.release()
    await asyncio.gather(*three_held.settles)
    assert three_held.acks.frames == 1 and held(three_held.settler) == 0
    await three_held.consuming.close()
    assert await left_in(channel, scratch_queue) == 0  # nothing came back: all three acked


async def test_successes_whose_batch_failed_are_given_back_not_acked(
    three_held: ThreeHeld, channel: AbstractChannel, scratch_queue: str
) -> None:
    # When the broker nacks the batch, the three are requeued (nack), none acked
    three_held.confirms.release(PublishError("nacked by the broker"))
    await asyncio.gather(*three_held.settles)
    assert three_held.acks.frames == 0
    await three_held.consuming.close()
    assert await left_in(channel, scratch_queue) == 3


async def test_successes_whose_confirm_never_comes_are_given_back_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
    connection: AbstractRobustConnection,
    channel: AbstractChannel,
    shape: Topology,
    settings: Settings,
    declared: object,
    scratch_queue: str,
) -> None:
    # Given a confirm that never arrives, the broker not blocking us, a timeout of 0.3 s
    HeldConfirms(monkeypatch)
    settler, acks = await settler_on(connection, shape, settings, timeout=0.3)
    consuming, got = await tasks_delivered(connection, scratch_queue, acks, 2)
    # Then each settle gives its delivery back, unacked
    await asyncio.gather(*settle_all(settler, got))
    assert acks.frames == 0
    await consuming.close()
    assert await left_in(channel, scratch_queue) == 2
