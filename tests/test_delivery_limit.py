"""A message that kills its consumer cannot crash-loop a deployment, on either queue type.

Quorum queues count unsettled deliveries themselves (``x-delivery-limit``);
on classic queues Warren counts them (``warren.consumers.redelivery``): a
redelivered message is requeued at the back with ``warren-deliveries``, and
dead-lettered past ``WARREN_DELIVERY_LIMIT``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from tests.conftest import Spawn, StartConsumer, make_settings
from tests.processes import Child, until
from tests.support import Events, drain, first_attempt, message_count
from warren.service import topology
from warren.service.settings import Settings
from warren.service.topology import Declared, Names
from warren.service.wire import Envelope
from warren.service.wire.copies import H_DELIVERIES
from warren.service.wire.dead import H_DEAD_ERROR, H_DEAD_REASON

LIMIT = 2


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    """A low limit; the queue type a test asks for (``indirect``), classic by default."""
    queue_type = getattr(request, "param", "classic")
    return make_settings(delivery_limit=LIMIT, queue_type=queue_type, app="tests.apps.killer")


async def redeliver(channel: AbstractChannel, queue: str) -> None:
    """Take the queue's one message and give it back unsettled: the broker flags it redelivered."""
    taken = await (await channel.get_queue(queue, ensure=False)).get(timeout=5)
    await taken.nack(requeue=True)


async def publish(declared: Declared, names: Names, envelope: Envelope, **headers: Any) -> None:
    message = envelope.to_message()
    message.headers.update(headers)
    await declared.exchanges[names.work_exchange].publish(message, routing_key=envelope.queue)


async def test_a_redelivered_task_is_requeued_counted_and_runs_once(
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    channel: AbstractChannel,
    events: Events,
) -> None:
    names = Names(settings.namespace)
    task = first_attempt("diag.echo", {"message": "again"})
    await publish(declared, names, task)
    await redeliver(channel, names.work_queue("diag"))

    await start_consumer("diag")

    final = await events.final(task.id)
    assert final["status"] == "succeeded"
    # The copy runs without the broker's flag; its count header says an earlier one did not end.
    assert final["redelivered"] is True
    await asyncio.sleep(0.2)
    assert len(events.of(task.id, "succeeded")) == 1
    assert await message_count(channel, names.dead_queue("diag")) == 0


async def test_at_the_limit_a_redelivered_task_is_dead_lettered_unrun(
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    channel: AbstractChannel,
    events: Events,
) -> None:
    names = Names(settings.namespace)
    task = first_attempt("diag.echo", {"message": "killer"})
    await publish(declared, names, task, **{H_DELIVERIES: LIMIT - 1})
    await redeliver(channel, names.work_queue("diag"))

    await start_consumer("diag")

    [dead] = await drain(declared.queues[names.dead_queue("diag")], 1)
    assert dead.headers[H_DEAD_REASON] == "delivery-limit"
    assert str(dead.headers[H_DEAD_ERROR]).startswith(f"{LIMIT} deliveries went unsettled")
    final = await events.final(task.id)
    assert (final["status"], final["reason"]) == ("dead", "delivery-limit")
    assert not events.of(task.id, "running") and not events.of(task.id, "succeeded")


@pytest.mark.slow
@pytest.mark.parametrize("settings", ["classic", "quorum"], indirect=True)
async def test_a_task_that_kills_its_consumer_stops_after_the_limit(
    spawn: Spawn, settings: Settings, channel: AbstractChannel, events: Events
) -> None:
    """Consumers restarted in a loop, as a deployment does: the killer dies with the limit."""
    names = Names(settings.namespace)
    declared = await topology.declare(channel, topology.build(settings, ["test"]))
    good = [first_attempt("test.note", {"message": f"good {i}"}, queue="test") for i in range(4)]
    killer = first_attempt("test.note", {"message": "kill"}, queue="test")
    for envelope in (*good[:2], killer, *good[2:]):
        await publish(declared, names, envelope)

    def finished() -> bool:
        runs = [events.of(task.id, "succeeded") for task in good]
        return all(runs) and bool(events.of(killer.id, "dead"))

    kills = 0
    consumer = start_killable(spawn)
    while await killed(consumer, finished):
        kills += 1
        assert kills <= LIMIT, "killed more consumers than the limit"
        consumer = start_killable(spawn)  # the deployment restarts it
    consumer.send(signal.SIGTERM)
    assert await consumer.exit_code(within=20) == 0

    assert kills == LIMIT
    [dead] = await drain(declared.queues[names.dead_queue("test")], 1)
    assert (dead.message_id, dead.headers[H_DEAD_REASON]) == (killer.id, "delivery-limit")
    assert events.of(killer.id, "dead")[0]["reason"] == "delivery-limit"
    assert all(len(events.of(task.id, "succeeded")) == 1 for task in good)
    assert await message_count(channel, names.work_queue("test")) == 0


async def killed(consumer: Child, finished: Callable[[], bool]) -> bool:
    """Wait until ``consumer`` is killed (True) or the work is finished (False)."""
    await until(lambda: finished() or consumer.popen.poll() is not None, 30, "a kill or the end")
    if consumer.popen.poll() is None:
        return False
    assert consumer.popen.returncode == -signal.SIGKILL, consumer.log()[-2000:]
    return True


def start_killable(spawn: Spawn) -> Child:
    """One handler and one prefetched delivery: a kill takes back only the task it ran."""
    return spawn(
        "consume", "--queue", "test", "--concurrency", "1",
        consumer_prefetch=1, consumer_grace_seconds=1, health_port=0,
    )  # fmt: skip
