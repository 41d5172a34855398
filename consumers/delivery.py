"""One delivery, top to bottom: extract trace context → decode → run handler (in a slot) → settle.

Everything about one delivery happens inside its ``process <queue>`` span and
with its task ids bound to the log context, so traces and log lines of an
attempt carry the same ids. An attempt not sampled at its start runs with its
sender's trace context and no span; it gets its span afterwards only if it
fails (``warren.service.telemetry.AttemptSampling``). How the outcome reaches the broker is
``warren.consumers.settle``'s business.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from concurrent.futures import Executor
from typing import Any, NamedTuple

import orjson
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from warren.consumers.cancellation import Cancellations, TaskCancelled
from warren.consumers.context import Resources, TaskContext
from warren.consumers.deadlines import Deadlines
from warren.consumers.inbound import Delivery
from warren.consumers.outcome import Cancelled, Outcome, Succeeded, decide
from warren.consumers.poison import screen
from warren.consumers.registry import Handler
from warren.consumers.running import RunningEvent, RunningTimers
from warren.consumers.settle import Settler
from warren.consumers.spans import messaging_attributes
from warren.service.contracts import Backoff
from warren.service.errors import DecodeError
from warren.service.logs import bound_task
from warren.service.metrics import HANDLER_DURATION, REDELIVERIES
from warren.service.settings import Settings
from warren.service.telemetry import AttemptSampling, SpanLike
from warren.service.wire.envelope import H_ATTEMPT, Envelope

log = logging.getLogger(__name__)
MAX_RESULT_BYTES = 65_536


class Decoded(NamedTuple):
    """A delivery ready to run (a tuple: built for every delivery, read-only)."""

    envelope: Envelope
    handler: Handler[Any]
    payload: BaseModel


class DeliveryProcessor:
    """Runs the deliveries of one work queue; shared by all of a consumer's concurrent tasks.

    A consumer holds more deliveries (its prefetch) than it runs handlers at once
    (its concurrency): a delivery waits for one of ``concurrency`` handler slots,
    and gives it back as soon as its handler returns, so waiting for the
    outcome's confirms never keeps another delivery from running.
    """

    def __init__(
        self,
        queue: str,
        handlers: dict[str, Handler[Any]],
        settler: Settler,
        settings: Settings,
        executor: Executor,
        resources: Resources,
        worker: str,
        cancellations: Cancellations | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.queue = queue
        self._handlers = handlers
        self._settler = settler
        self._settings = settings
        self._executor = executor
        self._resources = resources
        self._worker = worker
        self._cancellations = cancellations or Cancellations()
        self._slots = asyncio.Semaphore(concurrency or settings.consumer_concurrency)
        self._timers = RunningTimers(settings.running_event_delay_seconds)
        self._deadlines = Deadlines()
        self._max_body_bytes = settings.max_body_bytes
        self._running = 0
        self._waiting: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._labels = {"queue": queue}
        self._sampling = AttemptSampling(settings.otel_sampling_ratio)
        self._span_name = f"process {queue}"
        self._default_backoff = Backoff(
            settings.retry_base_seconds, settings.retry_max_seconds, settings.retry_jitter
        )

    @property
    def running(self) -> int:
        """Handler slots taken now."""
        return self._running

    async def process(self, delivery: Delivery) -> None:
        headers = delivery.headers

        def attributes() -> dict[str, Any]:  # only for an attempt that gets a span
            return messaging_attributes(
                "process",
                self.queue,
                delivery.routing_key,
                {
                    "messaging.message.id": delivery.message_id or "",
                    "messaging.rabbitmq.message.delivery_tag": delivery.delivery_tag,
                    "warren.task.id": delivery.message_id or "",
                    "warren.task.type": delivery.type or "",
                },
            )

        with (
            self._sampling.span(self._span_name, headers, attributes) as span,
            bound_task(
                task_id=delivery.message_id,
                task_type=delivery.type,
                queue=self.queue,
                attempt=headers.get(H_ATTEMPT),
            ),
        ):
            await self._process(delivery, span)

    async def _process(self, delivery: Delivery, span: SpanLike) -> None:
        if delivery.redelivered:
            REDELIVERIES.add(1, self._labels)
            log.info("redelivered: a previous delivery of this message was not settled")
        envelope, poison = screen(delivery, self.queue)
        try:
            if poison is not None:
                raise poison
            assert envelope is not None  # without a reason, screen gives an envelope
            decoded = self.decode(envelope, delivery.body)
        except DecodeError as exc:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, exc.reason)
            span.set_attribute("warren.task.outcome", "dead")
            await self._settler.settle_undecodable(delivery, envelope, exc.reason, str(exc))
            return
        if self._cancellations.is_cancelled(envelope.id):  # cancelled while queued or retrying
            await self._settler.settle(delivery, envelope, Cancelled())
            return
        try:
            outcome, running = await self._run_in_slot(decoded, envelope.redelivered, span)
        except asyncio.CancelledError:
            # Cancelled by ``stop`` (grace over), or by aiormq when the channel closed.
            why = "the consumer is stopping" if self._stopping else "the delivery was cancelled"
            await self._settler.requeue(delivery, why)
            raise
        await self._settler.settle(delivery, envelope, outcome, running)

    async def _run_in_slot(
        self, decoded: Decoded, redelivered: bool, span: SpanLike
    ) -> tuple[Outcome, RunningEvent]:
        """The attempt in a handler slot, its ``running`` event due if it outlasts the delay.

        The slot is free again on return, and no ``running`` goes out any more.
        """
        await self._take_slot()
        self._running += 1
        running = self._settler.running(decoded.envelope, self._timers)
        try:
            return await self._attempt(decoded, redelivered, span), running
        except TaskCancelled:  # cancelled while running
            return Cancelled(), running
        except asyncio.CancelledError:
            running.cancel()
            raise
        finally:
            running.end()
            self._running -= 1
            self._slots.release()

    async def _take_slot(self) -> None:
        """Wait for a handler slot; ``stop`` cancels the wait (the delivery goes back unstarted)."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken at once, nothing to give back on a stop
            return
        waiting = asyncio.current_task()
        assert waiting is not None
        self._waiting.add(waiting)
        try:
            await self._slots.acquire()
        finally:
            self._waiting.discard(waiting)

    def stop(self) -> None:
        """Give back, unstarted, every delivery still waiting for a handler slot."""
        self._stopping = True
        for waiting in self._waiting:
            waiting.cancel()  # ``_process`` requeues it: it never ran, no event was sent

    def decode(self, envelope: Envelope, body: bytes) -> Decoded:
        """The envelope's handler and validated payload, or ``DecodeError`` with a reason."""
        handler = self._handlers.get(envelope.type)
        if handler is None:
            raise DecodeError(
                "unknown-type", f"no task type {envelope.type!r} on queue {self.queue}"
            )
        if len(body) > self._max_body_bytes:
            raise DecodeError("too-large", f"body of {len(body)} bytes is over the limit")
        try:
            payload = handler.contract.adapter.validate_json(body)
        except ValidationError as exc:
            reason = "not-json" if exc.errors()[0]["type"] == "json_invalid" else "invalid-payload"
            raise DecodeError(reason, _short_errors(exc)) from None
        return Decoded(envelope, handler, payload)

    async def _attempt(self, decoded: Decoded, redelivered: bool, span: SpanLike) -> Outcome:
        """Run the handler once and say how it ended (never raises for a handler failure)."""
        envelope = decoded.envelope
        span.set_attribute("warren.task.attempt", envelope.attempt)
        started = time.perf_counter()
        try:
            result = await self._cancellations.guard(
                envelope.id, self._run(decoded, redelivered), interruptible=decoded.handler.is_async
            )
            outcome: Outcome = Succeeded(_bounded_result(result))
        except Exception as exc:  # a handler failure of any kind is an outcome, not a crash
            span.record_exception(exc)
            backoff = decoded.handler.contract.backoff or self._default_backoff
            outcome = decide(exc, envelope, backoff, self._settings.retry_tiers_seconds)
            span.set_status(trace.StatusCode.ERROR, outcome.error_type)
        finally:
            HANDLER_DURATION.record_key(time.perf_counter() - started, (self.queue, envelope.type))
        span.set_attribute("warren.task.outcome", type(outcome).__name__.lower())
        return outcome

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
            settings=self._resources.settings,
            resources=self._resources,
        )
        with self._deadlines.limit(envelope.timeout_seconds):
            if handler.is_async:
                return await handler.fn(decoded.payload, ctx)
            call = functools.partial(handler.fn, decoded.payload, ctx)
            run_in_context = functools.partial(contextvars.copy_context().run, call)
            return await asyncio.get_running_loop().run_in_executor(self._executor, run_in_context)


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
