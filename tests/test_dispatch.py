"""Prefetch bounds what one consumer holds, and consumers of one queue share it fairly."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.conftest import StartConsumer
from tests.support import Events
from tests.test_envelope import sample_envelope
from warren.service.settings import Settings
from warren.service.topology import Declared, Names


async def publish_sleeps(declared: Declared, settings: Settings, count: int, ms: int) -> list[str]:
    exchange = declared.exchanges[Names(settings.namespace).work_exchange]
    ids = []
    for _ in range(count):
        envelope = sample_envelope(type="diag.sleep", body=b'{"ms":%d}' % ms)
        await exchange.publish(envelope.to_message(), routing_key="diag")
        ids.append(envelope.id)
    return ids


@pytest.mark.parametrize(("prefetch", "held"), [(None, 4), (3, 3)])
async def test_prefetch_bounds_held_deliveries_and_concurrency_bounds_running_handlers(
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    events: Events,
    prefetch: int | None,
    held: int,
) -> None:
    # Default prefetch: twice the concurrency; ``consumer_prefetch`` overrides it.
    consumer = await start_consumer(
        "diag", concurrency=2, settings_=settings.model_copy(update={"consumer_prefetch": prefetch})
    )
    ids = await publish_sleeps(declared, settings, 8, 300)
    peak_held = peak_running = 0
    async with asyncio.timeout(20):
        while len([e for e in events.items if e["status"] == "succeeded"]) < len(ids):
            peak_held = max(peak_held, consumer.inflight)
            peak_running = max(peak_running, consumer.running)
            await asyncio.sleep(0.01)
    assert (consumer.prefetch, peak_held, peak_running) == (held, held, 2)


async def test_two_consumers_share_a_queue_fairly(
    start_consumer: StartConsumer, declared: Declared, settings: Settings, events: Events
) -> None:
    first = await start_consumer(
        "diag", concurrency=1, settings_=settings.model_copy(update={"worker_id": "first"})
    )
    second = await start_consumer(
        "diag", concurrency=1, settings_=settings.model_copy(update={"worker_id": "second"})
    )
    assert (first.worker, second.worker) == ("first", "second")
    ids = await publish_sleeps(declared, settings, 10, 100)
    await events.wait_for(lambda items: sum(e["status"] == "succeeded" for e in items) == 10)
    by_worker = Counter(e["worker"] for e in events.items if e["status"] == "succeeded")
    assert set(by_worker) == {"first", "second"}
    assert all(4 <= n <= 6 for n in by_worker.values()), by_worker
    assert sorted(e["task_id"] for e in events.items if e["status"] == "succeeded") == sorted(ids)
