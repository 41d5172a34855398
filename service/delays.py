"""Delayed tasks: a delay in whole seconds, and its publish onto the broker's delay ladder.

The delay lives in RabbitMQ, never in a process: a delayed task is published
to the top of the delay ladder (``warren.service.topology``), whose TTL queues
dead-letter it level by level down to its work queue when it is due. No
worker holds it meanwhile, so nothing trips the broker's ``consumer_timeout``
and a worker's memory does not grow with the tasks waiting.

Delays are whole seconds, rounded up (a task never runs early), from 1 s up
to ``MAX_DELAY_SECONDS`` (48.5 days). Retries keep their own TTL tiers.

Cancelling a delayed task: consumers remember a cancellation for
``cancellation_retention_seconds`` (and the control stream keeps 7 days),
while a task may be due weeks later. So the gateway also sends the
cancellation down the ladder itself, timed to reach the control stream
half a retention before the task is due: every consumer then still
remembers it when the task arrives, whichever consumer started when.
(RabbitMQ dead-letters into no stream: the ladder ends in ``<ns>.control.due``,
which gateways relay into the control stream: ``CancelRelay``.)
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from warren.service.amqp import Publisher
from warren.service.errors import PublishError
from warren.service.topology import (
    CONTROL_DELAY_TAIL,
    MAX_DELAY_SECONDS,
    Names,
    Topology,
    declare_queue,
)
from warren.service.wire import Envelope, cancel_message, parse_control

__all__ = [
    "MAX_DELAY_SECONDS",
    "CancelRelay",
    "cancel_later",
    "delay_until",
    "publish_delayed",
    "route",
]
log = logging.getLogger(__name__)
RELAY_PREFETCH = 20


def delay_until(due: datetime, now: datetime | None = None) -> int:
    """Whole seconds from ``now`` until ``due``, rounded up; 0 when already due."""
    left = (due - (now or datetime.now(UTC))).total_seconds()
    return max(0, math.ceil(left - 1e-6))  # a float a hair above a whole second is that second


def route(names: Names, queue: str, seconds: int) -> tuple[str, str]:
    """Exchange and routing key of a task for ``queue`` due in ``seconds`` (0: now)."""
    if seconds <= 0:
        return names.work_exchange, queue
    return names.delay_entry, Names.delay_key(queue, seconds)


async def publish_delayed(publisher: Publisher, envelope: Envelope, seconds: int) -> None:
    """Publish ``envelope`` to reach its work queue in ``seconds``; confirmed and mandatory
    (the ladder routes every key to some queue, so a return means a missing binding)."""
    exchange, key = route(publisher.names, envelope.queue, seconds)
    await publisher.publish(exchange, envelope.to_message(), key)


async def cancel_later(
    publisher: Publisher, task_id: str, due_at: datetime, retention_seconds: float
) -> bool:
    """Send ``task_id``'s cancellation again, to arrive half a retention before ``due_at``;
    False (nothing sent) when the one sent now is remembered long enough already."""
    lead = timedelta(seconds=retention_seconds / 2)
    seconds = delay_until(due_at - lead)
    if seconds == 0:
        return False
    seconds = min(seconds, MAX_DELAY_SECONDS)
    # Dated when it arrives: consumers count their retention from a cancellation's time.
    arrives = datetime.now(UTC) + timedelta(seconds=seconds)
    key = Names.delay_key(CONTROL_DELAY_TAIL, seconds)
    await publisher.publish(publisher.names.delay_entry, cancel_message(task_id, arrives), key)
    return True


class CancelRelay:
    """Moves delayed cancellations from ``<ns>.control.due`` into the control stream.

    RabbitMQ dead-letters into no stream, so the ladder ends in a queue that
    every gateway consumes; each message is published to ``<ns>.control``
    (confirmed), then acked: a crash in between sends it twice, which is harmless.
    """

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def start(self, connection: AbstractRobustConnection, shape: Topology) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=RELAY_PREFETCH)
        queue = await declare_queue(channel, shape, shape.names.control_relay)
        await queue.consume(self._relay)

    async def _relay(self, message: AbstractIncomingMessage) -> None:
        control = parse_control(message.body)
        if control is None or control.kind != "cancel":
            await message.ack()  # not ours to relay
            return
        names = self._publisher.names
        try:
            await self._publisher.publish(
                names.control_exchange, cancel_message(control.value, control.at), ""
            )
        except PublishError as exc:
            log.warning("delayed cancellation of %s not relayed yet: %s", control.value, exc)
            await message.nack(requeue=True)
            return
        await message.ack()
