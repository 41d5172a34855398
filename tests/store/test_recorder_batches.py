"""The recorder and event batches, on the real broker and both stores.

A batch is one message of many events: the recorder must write every event of
it exactly once, in one transaction, and ack the message only after that
transaction; a batch delivered twice changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel

from tests.conftest import BROKER_URL
from tests.store.support import eventually
from tests.support import message_count
from warren.service import topology
from warren.service.recorder import Recorder, recorder_prefetch
from warren.service.settings import Settings
from warren.service.store import Change, TaskRecord, TaskStore
from warren.service.store.model import Status
from warren.service.wire import encode_event, event_batch


class CountingStore:
    """The real store, counting what the recorder asks it to apply; ``gate`` holds writes."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.applied: Counter[str] = Counter()
        self.transactions = 0
        self.asked = 0  # writes asked for, held at the gate or not
        self.gate = asyncio.Event()
        self.gate.set()

    async def apply(self, changes: Sequence[Change]) -> list[TaskRecord]:
        self.asked += 1
        await self.gate.wait()
        written = await self.store.apply(changes)
        self.applied.update(c.dedup_key for c in changes)
        self.transactions += 1
        return written

    async def prune(self, before: datetime) -> int:
        return await self.store.prune(before)


def succeeded_events(n: int) -> list[Change]:
    now = datetime.now(UTC)
    return [
        Change(
            task_id=uuid.uuid4().hex,
            type="diag.echo",
            queue="diag",
            status=Status.SUCCEEDED,
            attempt=1,
            max_attempts=3,
            at=now,
            worker="host:1",
            result={"n": i},
            started_at=now,
            created_at=now,
        )
        for i in range(n)
    ]


async def publish_batch(
    channel: AbstractChannel, settings: Settings, changes: list[Change]
) -> None:
    batch = event_batch("diag.succeeded", [encode_event(c) for c in changes])
    names = topology.Names(settings.namespace)
    exchange = await channel.get_exchange(names.events_exchange)
    message = aio_pika.Message(batch.body, headers=batch.properties.headers, delivery_mode=2)
    await exchange.publish(message, batch.routing_key)


async def recording(
    store: CountingStore, settings: Settings
) -> tuple[Recorder, aio_pika.abc.AbstractRobustConnection]:
    """A recorder on a connection of its own, so a test can take it away."""
    connection = await aio_pika.connect_robust(BROKER_URL)
    recorder = Recorder(store, settings)  # type: ignore[arg-type]
    await recorder.start(connection)
    return recorder, connection


async def test_every_event_of_a_batch_is_applied_once_in_one_transaction_then_acked(
    settings: Settings,
    store: TaskStore,
    channel: AbstractChannel,
    declared: topology.Declared,
) -> None:
    # Given a batch of 40 events, one of them twice (a consumer's re-run in the same batch)
    events = succeeded_events(40)
    counting = CountingStore(store)
    recorder, connection = await recording(counting, settings)
    await publish_batch(channel, settings, [*events, events[7]])

    # Then each event is applied exactly once, all in one transaction
    await eventually(lambda: _true(counting.transactions >= 1))
    assert counting.applied == Counter(c.dedup_key for c in events)
    assert counting.transactions == 1
    for change in events:
        record = await store.get(change.task_id)
        assert record is not None and record.status is Status.SUCCEEDED
        assert record.result == change.result
    # And the message was acked: closing the recorder gives nothing back to the queue
    await recorder.close()
    await connection.close()
    recorder_queue = topology.Names(settings.namespace).recorder_queue
    assert await message_count(channel, recorder_queue) == 0


async def test_a_batch_is_acked_only_after_its_transaction_and_a_redelivery_changes_nothing(
    settings: Settings,
    store: TaskStore,
    channel: AbstractChannel,
    declared: topology.Declared,
) -> None:
    events = succeeded_events(10)
    counting = CountingStore(store)
    counting.gate.clear()  # the database is slow: the write has not happened yet
    recorder, connection = await recording(counting, settings)
    await publish_batch(channel, settings, events)
    recorder_queue = topology.Names(settings.namespace).recorder_queue
    await eventually(lambda: _true(counting.asked == 1))

    # When the recorder goes away before its write, the batch is still the broker's
    await connection.close()
    await eventually(lambda: _ready(channel, recorder_queue, 1))
    await recorder.close(drain_seconds=0.1)

    # Then the next recorder writes it, and the same batch delivered again changes nothing
    again = CountingStore(store)
    recorder, connection = await recording(again, settings)
    await eventually(lambda: _true(again.transactions == 1))
    written = {c.task_id: await store.get(c.task_id) for c in events}
    await publish_batch(channel, settings, events)
    await eventually(lambda: _true(again.transactions == 2))
    assert {c.task_id: await store.get(c.task_id) for c in events} == written
    assert all(r is not None and r.status is Status.SUCCEEDED for r in written.values())
    await recorder.close()
    await connection.close()
    assert await message_count(channel, recorder_queue) == 0


async def _true(value: bool) -> bool:
    return value


async def _ready(channel: AbstractChannel, queue: str, count: int) -> bool:
    return await message_count(channel, queue) == count


async def test_the_recorder_holds_about_max_unacked_events_not_a_fixed_count_of_messages(
    settings: Settings,
    store: TaskStore,
    channel: AbstractChannel,
    declared: topology.Declared,
) -> None:
    # Given consumers' batches of up to 10 events and a recorder bound of 30 events,
    # and 8 full batches waiting before the recorder starts, its database stalled
    bounded = settings.model_copy(
        update={"event_batch_max_events": 10, "recorder_max_unacked_events": 30}
    )
    assert recorder_prefetch(bounded) == 3
    batches = [succeeded_events(10) for _ in range(8)]
    for events in batches:
        await publish_batch(channel, bounded, events)
    recorder_queue = topology.Names(settings.namespace).recorder_queue
    counting = CountingStore(store)
    counting.gate.clear()

    # When it starts, it holds 3 messages (30 events) and the broker keeps the other 5
    recorder, connection = await recording(counting, bounded)
    await eventually(lambda: _true(counting.asked == 1))
    await eventually(lambda: _ready(channel, recorder_queue, 5))
    assert await message_count(channel, recorder_queue) == 5

    # Then, the database back, every event of every batch is written and acked
    counting.gate.set()
    await eventually(lambda: _ready(channel, recorder_queue, 0))
    await eventually(lambda: _true(sum(counting.applied.values()) == 80))
    await recorder.close()
    await connection.close()
    assert counting.applied == Counter(c.dedup_key for events in batches for c in events)
    assert await message_count(channel, recorder_queue) == 0


def test_the_prefetch_is_at_least_two_messages(settings: Settings) -> None:
    small = settings.model_copy(update={"recorder_max_unacked_events": 1})
    assert recorder_prefetch(small) == 2
    assert recorder_prefetch(settings) == 200  # the defaults: 100,000 events, 500 a message
