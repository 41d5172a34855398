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


def test_the_default_prefetch_keeps_a_drain_full_and_grows_with_the_concurrency() -> None:
    settings = Settings()
    assert [settings.prefetch_for(c) for c in (1, 16, 32, 64)] == [128, 128, 128, 256]
    assert settings.model_copy(update={"consumer_prefetch": 16}).prefetch_for(64) == 16


@pytest.mark.parametrize(("prefetch", "expected", "held"), [(None, 128, 8), (3, 3, 3)])
async def test_prefetch_bounds_held_deliveries_and_concurrency_bounds_running_handlers(
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    events: Events,
    prefetch: int | None,
    expected: int,
    held: int,
) -> None:
    # Default prefetch: max(128, 4 * concurrency), so all 8 are held at once; or as set.
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
    assert (consumer.prefetch, peak_held, peak_running) == (expected, held, 2)


async def test_two_consumers_share_a_queue_fairly(
    start_consumer: StartConsumer, declared: Declared, settings: Settings, events: Events
) -> None:
    # Long tasks: prefetch = concurrency, as documented, so neither process hoards work.
    long_tasks = {"consumer_prefetch": 1}
    first = await start_consumer(
        "diag", 1, settings_=settings.model_copy(update={"worker_id": "first", **long_tasks})
    )
    second = await start_consumer(
        "diag", 1, settings_=settings.model_copy(update={"worker_id": "second", **long_tasks})
    )
    assert (first.worker, second.worker) == ("first", "second")
    ids = await publish_sleeps(declared, settings, 10, 100)
    await events.wait_for(lambda items: sum(e["status"] == "succeeded" for e in items) == 10)
    by_worker = Counter(e["worker"] for e in events.items if e["status"] == "succeeded")
    assert set(by_worker) == {"first", "second"}
    assert all(4 <= n <= 6 for n in by_worker.values()), by_worker
    assert sorted(e["task_id"] for e in events.items if e["status"] == "succeeded") == sorted(ids)
