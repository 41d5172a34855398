"""Group commit of lifecycle events, on the real broker: batches, acks after confirms, crashes.

What users rely on: an outcome is durable on the broker before its task is
acked, batches or not. The confirms of event messages are held back here (the
broker has the message, the consumer is not told yet) to show that no delivery
of a batch is acked before its confirm, that the next batch is everything that
became due meanwhile, and that a batch's acks go as one ``multiple`` ack. A
consumer process killed with SIGKILL while a batch is in flight loses no
outcome: the broker redelivers, the tasks run again, and the recorder keeps
one record per task however many events arrived.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest
from aio_pika.abc import AbstractChannel

from tests.conftest import StartConsumer
from tests.processes import settings_env, until
from tests.store.support import Client, status_becomes, submit
from tests.support import Events, first_attempt, message_count
from warren.consumers.batcher import EventBatcher
from warren.consumers.runner import Consumer
from warren.service.amqp import Publisher
from warren.service.bench.procs import Proc
from warren.service.settings import Settings
from warren.service.topology import Declared, Names
from warren.service.wire import EventMessage

ECHO = {"type": "diag.echo", "payload": {"message": "hi"}}


class FirstConfirmLost:
    """The first event message is published as usual, but its confirm never reaches the
    consumer (as if lost); every later one does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent = 0
        original = Publisher.send_event

        def send_event(publisher: Publisher, event: EventMessage) -> asyncio.Future[None]:
            self.sent += 1
            confirm = original(publisher, event)
            return asyncio.get_running_loop().create_future() if self.sent == 1 else confirm

        monkeypatch.setattr(Publisher, "send_event", send_event)


class GatedConfirms:
    """Every event message is published as usual; the confirm of the n-th reaches the
    consumer only once ``release(n)`` is called (from 1), or ``release_all()``: the broker
    has the batch, the consumer does not know it yet."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gates: list[asyncio.Event] = []
        self.all_released = False
        original = Publisher.send_event

        def send_event(publisher: Publisher, event: EventMessage) -> asyncio.Future[None]:
            gate = asyncio.Event()
            if self.all_released:
                gate.set()
            self.gates.append(gate)
            return asyncio.ensure_future(self._after(original(publisher, event), gate))

        monkeypatch.setattr(Publisher, "send_event", send_event)

    @property
    def sent(self) -> int:
        return len(self.gates)

    def release(self, n: int) -> None:
        self.gates[n - 1].set()

    def release_all(self) -> None:
        """This confirm and every later one go through."""
        self.all_released = True
        for gate in self.gates:
            gate.set()

    async def _after(self, confirm: asyncio.Future[None], gate: asyncio.Event) -> None:
        await confirm
        await gate.wait()


def batcher_of(consumer: Consumer) -> EventBatcher:
    assert consumer._settler is not None
    return consumer._settler._batcher


async def publish_echoes(declared: Declared, settings: Settings, count: int) -> list[str]:
    exchange = declared.exchanges[Names(settings.namespace).work_exchange]
    ids = []
    for _ in range(count):
        envelope = first_attempt("diag.echo", {"message": "hi"})
        await exchange.publish(envelope.to_message(), routing_key="diag")
        ids.append(envelope.id)
    return ids


def succeeded(events: Events) -> Counter[str]:
    return Counter(e["task_id"] for e in events.items if e["status"] == "succeeded")


async def test_a_batchs_deliveries_are_acked_only_after_its_confirm_and_together(
    monkeypatch: pytest.MonkeyPatch,
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    channel: AbstractChannel,
    events: Events,
) -> None:
    # Given a consumer whose first event batch is on the broker, its confirm not yet here
    held = GatedConfirms(monkeypatch)
    only_outcomes = {"running_event_delay_seconds": 1.0, "consumer_prefetch": 32}
    consumer = await start_consumer("diag", 4, settings_=settings.model_copy(update=only_outcomes))
    ids = await publish_echoes(declared, settings, 20)
    batcher = batcher_of(consumer)

    # When all 20 tasks have run
    await until(lambda: batcher.unconfirmed == 20 and consumer.running == 0, 20, "20 outcomes")
    # Then none is acked: every delivery is still held, and only the first batch went out
    assert consumer._acks.frames == 0 and consumer.inflight == 20
    assert held.sent == 1

    # When the confirm arrives, the 19 outcomes that became due meanwhile go as one batch
    held.release_all()
    await events.wait_for(lambda _: set(succeeded(events)) == set(ids))
    await until(lambda: consumer.inflight == 0, 10, "every delivery settled")
    assert held.sent == 2 and events.messages == 2
    # And each batch's deliveries were acked with one multiple ack
    assert consumer._acks.frames == 2
    await consumer.stop(grace=1)
    assert await message_count(channel, Names(settings.namespace).work_queue("diag")) == 0


async def test_a_batch_is_split_at_its_bound_and_every_event_still_arrives_once(
    monkeypatch: pytest.MonkeyPatch,
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    events: Events,
) -> None:
    held = GatedConfirms(monkeypatch)
    bounded = {
        "event_batch_max_events": 4,
        "running_event_delay_seconds": 1.0,
        "consumer_prefetch": 32,
    }
    consumer = await start_consumer("diag", 4, settings_=settings.model_copy(update=bounded))
    ids = await publish_echoes(declared, settings, 20)
    await until(lambda: batcher_of(consumer).unconfirmed == 20, 20, "20 outcomes")

    held.release_all()
    await events.wait_for(lambda _: set(succeeded(events)) == set(ids))
    assert succeeded(events) == Counter(ids)  # each once
    assert events.messages == 1 + math.ceil(19 / 4)  # the first batch, then 19 in fours


async def test_a_batch_whose_confirm_never_comes_does_not_stall_the_consumer(
    monkeypatch: pytest.MonkeyPatch,
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    channel: AbstractChannel,
    events: Events,
) -> None:
    # Given a first batch whose confirm is lost, and a publish timeout of half a second
    lost = FirstConfirmLost(monkeypatch)
    impatient = {
        "publish_timeout_seconds": 0.5,
        "running_event_delay_seconds": 1.0,
        "consumer_prefetch": 32,
    }
    consumer = await start_consumer("diag", 4, settings_=settings.model_copy(update=impatient))
    ids = await publish_echoes(declared, settings, 10)

    # Then that batch counts as failed: its tasks are requeued and run again, the batches
    # after it go out, and every task is settled
    await events.wait_for(lambda _: set(succeeded(events)) == set(ids))
    await events.wait_for(
        lambda items: any(e["redelivered"] and e["status"] == "succeeded" for e in items)
    )
    await until(lambda: consumer.inflight == 0, 10, "every delivery settled")
    assert lost.sent >= 2 and batcher_of(consumer).unconfirmed == 0
    await consumer.stop(grace=1)
    assert await message_count(channel, Names(settings.namespace).work_queue("diag")) == 0


@pytest.mark.slow
@pytest.mark.parametrize("when", ["published", "confirmed"])
async def test_a_consumer_killed_with_a_batch_in_flight_loses_no_outcome(
    when: str,
    gateway: Client,
    start_consumer: StartConsumer,
    events: Events,
    settings: Settings,
    tmp_path: Path,
) -> None:
    # Given 12 accepted tasks, taken by a consumer that SIGKILLs itself with its first
    # batch in flight (just published; or confirmed by the broker but not yet acted on)
    accepted = {(await submit(gateway, ECHO))["id"] for _ in range(12)}
    env = settings_env(settings, running_event_delay_seconds=0.05)  # outcomes only
    argv = [sys.executable, "-m", "tests.batch_crash_consumer", when]
    crash = Proc(argv, tmp_path / "crash.log", env, pipe=False)
    try:
        await until(lambda: not crash.alive(), 30, "the consumer to kill itself")
        assert crash.popen.returncode == -signal.SIGKILL
    finally:
        crash.kill_group()

    # When another consumer takes over
    await start_consumer("diag")

    # Then every task is recorded succeeded, once: one attempt, whatever came twice
    for task_id in accepted:
        record = await status_becomes(gateway, task_id, "succeeded")
        assert [(a["attempt"], a["outcome"]) for a in record["attempts"]] == [(1, "succeeded")]
    await events.wait_for(lambda _: set(succeeded(events)) == accepted)
    # The broker gave the dead consumer's deliveries back, and they ran again
    assert any(e["redelivered"] for e in events.items if e["status"] == "succeeded")
    if when == "confirmed":  # the first batch is on the broker: its tasks' outcomes came twice
        assert max(succeeded(events).values()) == 2


async def lingering_batch(
    monkeypatch: pytest.MonkeyPatch,
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    linger: float,
) -> tuple[GatedConfirms, Consumer, list[str]]:
    """A consumer under load (its second batch carried 19 events) whose third batch is 5
    events short of ``event_batch_min_events`` (10) when the second is confirmed."""
    gated = GatedConfirms(monkeypatch)
    options = {
        "event_batch_min_events": 10,
        "event_batch_linger_seconds": linger,
        "running_event_delay_seconds": 1.0,
        "consumer_prefetch": 64,
    }
    consumer = await start_consumer("diag", 4, settings_=settings.model_copy(update=options))
    batcher = batcher_of(consumer)
    ids = await publish_echoes(declared, settings, 20)
    await until(lambda: batcher.unconfirmed == 20 and consumer.running == 0, 20, "20 outcomes")
    gated.release(1)  # 1 event: no load yet, so the 19 waiting go at once
    await until(lambda: gated.sent == 2, 10, "the second batch")
    ids += await publish_echoes(declared, settings, 5)
    await until(lambda: batcher.unconfirmed == 24 and consumer.running == 0, 20, "5 more")
    gated.release(2)
    return gated, consumer, ids


async def third_batch_settles(
    gated: GatedConfirms, consumer: Consumer, events: Events, ids: list[str]
) -> None:
    """The third batch goes and is confirmed: every outcome arrived once, in 3 messages."""
    await until(lambda: gated.sent == 3, 10, "the third batch")
    gated.release(3)
    await events.wait_for(lambda _: set(succeeded(events)) == set(ids))
    assert succeeded(events) == Counter(ids) and events.messages == 3
    await until(lambda: consumer.inflight == 0, 10, "every delivery settled")


async def test_under_load_a_short_batch_waits_to_fill_and_goes_once_full(
    monkeypatch: pytest.MonkeyPatch,
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    events: Events,
) -> None:
    # Given a batch 5 events short of the minimum, under load, with a linger of a minute
    gated, consumer, ids = await lingering_batch(
        monkeypatch, start_consumer, declared, settings, linger=60.0
    )
    # Then it waits: nothing more is published, and its deliveries stay unacked
    await until(lambda: batcher_of(consumer).unconfirmed == 5, 10, "the second confirmed")
    await asyncio.sleep(0.3)
    assert gated.sent == 2 and consumer.inflight == 5
    # When 5 more outcomes come, the batch has its 10 and goes at once, as one message
    ids += await publish_echoes(declared, settings, 5)
    await third_batch_settles(gated, consumer, events, ids)


async def test_under_load_a_short_batch_goes_when_its_linger_is_over(
    monkeypatch: pytest.MonkeyPatch,
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    events: Events,
) -> None:
    # Given a batch 5 events short of the minimum, under load, with a linger of a second
    gated, consumer, ids = await lingering_batch(
        monkeypatch, start_consumer, declared, settings, linger=1.0
    )
    # Then it waits, and goes anyway once the linger is over; every outcome arrives once
    await until(lambda: batcher_of(consumer).unconfirmed == 5, 10, "the second confirmed")
    assert gated.sent == 2
    await third_batch_settles(gated, consumer, events, ids)
