"""Settling a delivery: the one place that acks, requeues, retries and dead-letters.

Confirmed publishes first, ack last: the retry message, dead letter and
lifecycle event are all on the broker before the original is acked, so a
crash in between can only duplicate, never lose. Nothing is requeued with
``nack`` for a handler failure (that loops a poison message at the head of
the queue); ``nack(requeue=True)`` is kept for work that never reached an
outcome: shutdown and a failed settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from opentelemetry import trace

from consumers.outcome import DeadLetter, Outcome, RetryIn, Succeeded
from service.amqp import Publisher
from service.envelope import Envelope, dead_letter_message
from service.errors import PublishError
from service.events import Status, event_body
from service.metrics import DELIVERIES
from service.telemetry import inject, tracer

log = logging.getLogger(__name__)
OUTCOME_LABEL = {Succeeded: "succeeded", RetryIn: "retried", DeadLetter: "dead"}


class Settler:
    """Turns an outcome into confirmed publishes and an ack, for one work queue."""

    def __init__(self, queue: str, publisher: Publisher, worker: str) -> None:
        self.queue = queue
        self._publisher = publisher
        self._worker = worker

    def running(self, envelope: Envelope) -> asyncio.Future[None]:
        """Publish ``running`` without waiting; ``settle`` awaits it before the outcome's event."""
        return asyncio.ensure_future(self.event(envelope, Status.RUNNING))

    async def settle(
        self,
        delivery: AbstractIncomingMessage,
        envelope: Envelope,
        outcome: Outcome,
        running: asyncio.Future[None],
    ) -> None:
        try:
            await running  # one task's events stay in order: running before its outcome
            match outcome:
                case Succeeded(result=result):
                    await self.event(envelope, Status.SUCCEEDED, result=result)
                case RetryIn(tier=tier, error_type=error_type, error=error):
                    await self._retry(envelope, tier)
                    await self.event(
                        envelope,
                        Status.RETRYING,
                        next_delay_seconds=tier,
                        error_type=error_type,
                        error=error,
                    )
                case DeadLetter(reason=reason, error_type=error_type, error=error):
                    await self.dead(delivery, reason, error_type, error, envelope.attempt)
                    await self.event(
                        envelope, Status.DEAD, reason=reason, error_type=error_type, error=error
                    )
            await self._ack(delivery)
        except PublishError as exc:
            await requeue(delivery, f"settling failed: {exc}")
            return
        DELIVERIES.add(
            1, {"queue": self.queue, "type": envelope.type, "outcome": OUTCOME_LABEL[type(outcome)]}
        )

    async def settle_undecodable(
        self, delivery: AbstractIncomingMessage, envelope: Envelope | None, reason: str, error: str
    ) -> None:
        """Dead-letter what cannot run; with a readable envelope, tell the event stream too."""
        try:
            await self.dead(delivery, reason, "DecodeError", error, 0)
            if envelope is not None:
                await self.event(
                    envelope, Status.DEAD, reason=reason, error_type="DecodeError", error=error
                )
            await self._ack(delivery)
        except PublishError as exc:
            await requeue(delivery, f"dead-lettering failed: {exc}")
            return
        DELIVERIES.add(1, {"queue": self.queue, "type": "(undecodable)", "outcome": "dead"})

    async def _retry(self, envelope: Envelope, tier: float) -> None:
        """Publish the next attempt from its own span, so that attempt is this one's child."""
        with tracer().start_as_current_span(
            f"publish {self.queue}",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "publish",
                "messaging.destination.name": self._publisher.names.retry_exchange,
                "messaging.rabbitmq.destination.routing_key": self._publisher.names.retry_key(
                    self.queue, tier
                ),
                "warren.task.id": envelope.id,
                "warren.task.attempt": envelope.attempt + 1,
                "warren.retry.delay_seconds": tier,
            },
        ):
            await self._publisher.publish_retry(envelope.next_attempt(inject()), tier)
        log.warning("attempt %d failed; retry in %ss", envelope.attempt, tier)

    async def dead(
        self,
        delivery: AbstractIncomingMessage,
        reason: str,
        error_type: str,
        error: str,
        attempts: int,
    ) -> None:
        with tracer().start_as_current_span(
            f"dead-letter {self.queue}",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "publish",
                "messaging.destination.name": self._publisher.names.dead_exchange,
                "messaging.rabbitmq.destination.routing_key": self.queue,
                "warren.task.id": delivery.message_id or "",
                "warren.dead.reason": reason,
                "warren.dead.error_type": error_type,
            },
        ):
            message = dead_letter_message(
                delivery,
                reason=reason,
                error_type=error_type,
                error=error,
                queue=self.queue,
                attempts=attempts,
            )
            await self._publisher.publish_dead(message, self.queue)
        log.error("dead-lettered: %s (%s: %s)", reason, error_type, error)

    async def event(self, envelope: Envelope, status: Status, **details: Any) -> None:
        await self._publisher.publish_event(event_body(envelope, status, self._worker, **details))

    @staticmethod
    async def _ack(delivery: AbstractIncomingMessage) -> None:
        try:
            await delivery.ack()
        except (AMQPError, ChannelInvalidStateError) as exc:
            log.warning("ack failed (%r); the broker will redeliver", exc)


async def requeue(delivery: AbstractIncomingMessage, why: str) -> None:
    """Give the delivery back to the broker unsettled; it is redelivered, never lost."""
    log.warning("requeueing %s: %s", delivery.message_id, why)
    # If the channel is gone, the broker requeues every unacked delivery by itself.
    with contextlib.suppress(AMQPError, ChannelInvalidStateError):
        await delivery.nack(requeue=True)
