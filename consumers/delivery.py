"""One delivery, top to bottom: extract trace context → decode → run handler → settle.

Settling is confirmed publishes first, ack last: the retry message, dead
letter and lifecycle event are all on the broker before the original is
acked, so a crash in between can only duplicate, never lose. Nothing is ever
requeued with ``nack`` for a handler failure (that would loop a poison message
at the head of the queue); ``nack(requeue=True)`` is kept for the two cases
where the task itself never ran to an outcome: shutdown and a failed settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from consumers.context import Resources, TaskContext
from consumers.outcome import DeadLetter, Outcome, RetryIn, Succeeded, decide
from consumers.registry import Handler
from service.amqp import Publisher
from service.contracts import Backoff
from service.envelope import Envelope, dead_letter_message
from service.errors import DecodeError, PublishError
from service.events import Status, event_body
from service.settings import Settings
from service.telemetry import extract, tracer

log = logging.getLogger(__name__)
MAX_RESULT_BYTES = 65_536


@dataclass(frozen=True)
class Decoded:
    envelope: Envelope
    handler: Handler[Any]
    payload: BaseModel


class DeliveryProcessor:
    """Runs the deliveries of one work queue; shared by all of a consumer's concurrent tasks."""

    def __init__(
        self,
        queue: str,
        handlers: dict[str, Handler[Any]],
        publisher: Publisher,
        settings: Settings,
        executor: Executor,
        resources: Resources,
        worker: str,
    ) -> None:
        self.queue = queue
        self._handlers = handlers
        self._publisher = publisher
        self._settings = settings
        self._executor = executor
        self._resources = resources
        self._worker = worker
        self._default_backoff = Backoff(
            settings.retry_base_seconds, settings.retry_max_seconds, settings.retry_jitter
        )

    async def process(self, delivery: AbstractIncomingMessage) -> None:
        with tracer().start_as_current_span(
            f"process {self.queue}",
            context=extract(delivery.headers or {}),
            kind=trace.SpanKind.CONSUMER,
            attributes=self._span_attributes(delivery),
        ) as span:
            envelope: Envelope | None = None
            try:
                envelope = Envelope.from_delivery(delivery)
                decoded = self.decode(envelope, delivery.body)
            except DecodeError as exc:
                await self._dead_undecodable(delivery, envelope, exc, span)
                return
            await self._run_and_settle(delivery, decoded, span)

    def decode(self, envelope: Envelope, body: bytes) -> Decoded:
        """The envelope's handler and validated payload, or ``DecodeError`` with a reason."""
        handler = self._handlers.get(envelope.type)
        if handler is None:
            raise DecodeError(
                "unknown-type", f"no task type {envelope.type!r} on queue {self.queue}"
            )
        if len(body) > self._settings.max_body_bytes:
            raise DecodeError("too-large", f"body of {len(body)} bytes is over the limit")
        try:
            payload = handler.contract.adapter.validate_json(body)
        except ValidationError as exc:
            reason = "not-json" if exc.errors()[0]["type"] == "json_invalid" else "invalid-payload"
            raise DecodeError(reason, _short_errors(exc)) from None
        return Decoded(envelope, handler, payload)

    async def _run_and_settle(
        self, delivery: AbstractIncomingMessage, decoded: Decoded, span: trace.Span
    ) -> None:
        envelope = decoded.envelope
        span.set_attribute("warren.task.attempt", envelope.attempt)
        running = asyncio.ensure_future(self._event(envelope, Status.RUNNING))
        try:
            result = await self._run(decoded, delivery.redelivered or False)
            outcome: Outcome = Succeeded(_bounded_result(result))
        except asyncio.CancelledError:
            await _requeue(delivery, running, "the consumer is stopping")
            raise
        except Exception as exc:  # a handler failure of any kind is an outcome, not a crash
            span.record_exception(exc)
            backoff = decoded.handler.contract.backoff or self._default_backoff
            outcome = decide(exc, envelope, backoff, self._settings.retry_tiers_seconds)
        span.set_attribute("warren.task.outcome", type(outcome).__name__.lower())
        if not isinstance(outcome, Succeeded):
            span.set_status(trace.StatusCode.ERROR, outcome.error_type)
        await self._settle(delivery, envelope, outcome, running)

    async def _run(self, decoded: Decoded, redelivered: bool) -> Any:
        envelope, handler = decoded.envelope, decoded.handler
        ctx = TaskContext(
            task_id=envelope.id,
            type=envelope.type,
            queue=self.queue,
            attempt=envelope.attempt,
            max_attempts=envelope.max_attempts,
            trace_id=envelope.trace_id,
            redelivered=redelivered,
            worker=self._worker,
            settings=self._settings,
            resources=self._resources,
        )
        async with asyncio.timeout(envelope.timeout_seconds):
            if handler.is_async:
                return await handler.fn(decoded.payload, ctx)
            call = functools.partial(handler.fn, decoded.payload, ctx)
            run_in_context = functools.partial(contextvars.copy_context().run, call)
            return await asyncio.get_running_loop().run_in_executor(self._executor, run_in_context)

    async def _settle(
        self,
        delivery: AbstractIncomingMessage,
        envelope: Envelope,
        outcome: Outcome,
        running: asyncio.Future[None],
    ) -> None:
        try:
            await running  # events of one task stay in order: running before its outcome
            match outcome:
                case Succeeded(result=result):
                    await self._event(envelope, Status.SUCCEEDED, result=result)
                case RetryIn(tier=tier):
                    await self._publisher.publish_retry(envelope, tier)
                    await self._event(
                        envelope,
                        Status.RETRYING,
                        next_delay_seconds=tier,
                        error_type=outcome.error_type,
                        error=outcome.error,
                    )
                    log.warning(
                        "task %s attempt %d failed (%s); retry in %ss",
                        envelope.id,
                        envelope.attempt,
                        outcome.error_type,
                        tier,
                    )
                case DeadLetter(reason=reason):
                    await self._dead(
                        delivery, reason, outcome.error_type, outcome.error, envelope.attempt
                    )
                    await self._event(
                        envelope,
                        Status.DEAD,
                        reason=reason,
                        error_type=outcome.error_type,
                        error=outcome.error,
                    )
            await delivery.ack()
        except PublishError as exc:
            await _requeue(delivery, None, f"settling failed: {exc}")
        except (AMQPError, ChannelInvalidStateError) as exc:
            log.warning("task %s: ack failed (%r); the broker will redeliver it", envelope.id, exc)

    async def _dead_undecodable(
        self,
        delivery: AbstractIncomingMessage,
        envelope: Envelope | None,
        exc: DecodeError,
        span: trace.Span,
    ) -> None:
        """Dead-letter what cannot run; with a readable envelope, tell the event stream too."""
        span.record_exception(exc)
        span.set_status(trace.StatusCode.ERROR, exc.reason)
        span.set_attribute("warren.task.outcome", "deadletter")
        try:
            await self._dead(delivery, exc.reason, "DecodeError", str(exc), 0)
            if envelope is not None:
                await self._event(
                    envelope,
                    Status.DEAD,
                    reason=exc.reason,
                    error_type="DecodeError",
                    error=str(exc),
                )
            await delivery.ack()
        except PublishError as err:
            await _requeue(delivery, None, f"dead-lettering failed: {err}")

    async def _dead(
        self,
        delivery: AbstractIncomingMessage,
        reason: str,
        error_type: str,
        error: str,
        attempts: int,
    ) -> None:
        message = dead_letter_message(
            delivery,
            reason=reason,
            error_type=error_type,
            error=error,
            queue=self.queue,
            attempts=attempts,
        )
        await self._publisher.publish_dead(message, self.queue)
        log.error(
            "message %s on %s dead-lettered: %s (%s: %s)",
            delivery.message_id,
            self.queue,
            reason,
            error_type,
            error,
        )

    async def _event(self, envelope: Envelope, status: Status, **details: Any) -> None:
        await self._publisher.publish_event(event_body(envelope, status, self._worker, **details))

    def _span_attributes(self, delivery: AbstractIncomingMessage) -> dict[str, Any]:
        return {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": self.queue,
            "messaging.rabbitmq.destination.routing_key": delivery.routing_key or "",
            "messaging.message.id": delivery.message_id or "",
            "messaging.rabbitmq.message.delivery_tag": delivery.delivery_tag or 0,
            "warren.task.id": delivery.message_id or "",
            "warren.task.type": delivery.type or "",
        }


async def _requeue(
    delivery: AbstractIncomingMessage, running: asyncio.Future[None] | None, why: str
) -> None:
    """Give the delivery back to the broker unsettled; it is redelivered, never lost."""
    if running is not None:
        running.cancel()
    log.warning("requeueing %s: %s", delivery.message_id, why)
    # If the channel is gone, the broker requeues every unacked delivery by itself.
    with contextlib.suppress(AMQPError, ChannelInvalidStateError):
        await delivery.nack(requeue=True)


def _bounded_result(result: Any) -> Any:
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    encoded = orjson.dumps(result, default=str)
    if len(encoded) > MAX_RESULT_BYTES:
        return {"truncated": True, "bytes": len(encoded)}
    return orjson.loads(encoded)


def _short_errors(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errors[:5])
