"""Settling a delivery: the one place that acks, requeues, retries and dead-letters.

Confirmed publishes first, ack last: the retry message, dead letter and
lifecycle events are all on the broker before the original is acked, so a
crash in between can only duplicate, never lose. A retry or dead letter is a
message of its own; lifecycle events go to the process's ``EventBatcher``,
which publishes the events of many tasks as one message (group commit), and
the settle waits for the confirm of the batch carrying its outcome. The
confirms of one outcome are awaited together, and the deliveries of a batch
are acked together, as one ``multiple`` ack, in the turn its confirm arrives.
A plain success (its event its only publish) is acked from the confirm's
callback itself, its task woken once the ack is sent (``SuccessAcks``).

``running`` goes out only once a handler has run for
``running_event_delay_seconds`` (at once with 0): most short tasks end sooner
and publish just their outcome, which carries ``started_at`` instead.

Under a resource alarm the broker blocks the publishing connection and no
confirm comes until the alarm clears. Requeueing on the publish timeout would
run the task again for every timeout the alarm lasts, so instead: a success is
acked at once (the work is done) and its events stay in the batcher, confirmed
after the alarm (lost only if the process ends first); a retry, dead letter or
cancellation holds its delivery, unacked, until the alarm clears.

Nothing is requeued with ``nack`` for a handler failure (that loops a poison
message at the head of the queue); ``nack(requeue=True)`` is kept for work that
never reached an outcome: shutdown and a failed settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from opentelemetry import trace

from warren.consumers.acks import ACK_ERRORS, Acks
from warren.consumers.batcher import EventBatcher
from warren.consumers.confirm_wait import ConfirmWait
from warren.consumers.inbound import Delivery
from warren.consumers.outcome import Cancelled, DeadLetter, Outcome, RetryIn, Succeeded
from warren.consumers.running import RunningEvent, RunningTimers
from warren.consumers.spans import messaging_attributes
from warren.consumers.success_acks import SuccessAcks
from warren.service.amqp import Publisher
from warren.service.errors import PublishError
from warren.service.metrics import CONFIRM_SAMPLE, DELIVERY_COUNTS, PUBLISH_CONFIRM
from warren.service.store.model import Status
from warren.service.telemetry import inject, tracer
from warren.service.wire import Envelope, dead_letter_message, event_of

log = logging.getLogger(__name__)
OUTCOME_LABEL = {
    Succeeded: "succeeded",
    RetryIn: "retried",
    DeadLetter: "dead",
    Cancelled: "cancelled",
}
MAX_DEFERRED = 10_000  # events held unconfirmed (an alarm's); beyond, successes wait too
BLOCK_CHECK_SECONDS = 0.25  # how often a confirm wait looks whether the broker blocked us

Confirms = list[asyncio.Future[None]]


class Settler:
    """Turns an outcome into confirmed publishes and an ack, for one work queue."""

    def __init__(
        self, queue: str, publisher: Publisher, worker: str, acks: Acks, batcher: EventBatcher
    ) -> None:
        self.queue = queue
        self._publisher = publisher
        self._worker = worker
        self._acks = acks
        self._batcher = batcher
        self._deferred: set[asyncio.Future[None]] = set()
        self._waits = ConfirmWait(BLOCK_CHECK_SECONDS)
        self._successes = SuccessAcks(
            publisher, acks, BLOCK_CHECK_SECONDS, self._counted_success, self._defer_if_room
        )
        self._settled = 0

    def running(self, envelope: Envelope, timers: RunningTimers) -> RunningEvent:
        """An attempt starts now: its ``running`` event, due after the timers' delay."""
        return timers.start(functools.partial(self._running_event, envelope))

    def _running_event(self, envelope: Envelope, started: datetime) -> asyncio.Future[None]:
        return self._event(envelope, Status.RUNNING, started_at=started)

    async def settle(
        self,
        delivery: Delivery,
        envelope: Envelope,
        outcome: Outcome,
        running: RunningEvent | None = None,
    ) -> None:
        """Publish the outcome (after ``running``, if the attempt published one), then ack."""
        confirms: Confirms = []
        started: datetime | None = None
        if running is not None:
            confirms += running.end()
            started = running.started_at
        confirms += self._publish(delivery, envelope, outcome, started)
        if type(outcome) is Succeeded and self._plain(confirms):
            await self._settle_success(delivery, confirms[0], envelope.type)
        else:
            await self._finish(delivery, confirms, outcome, envelope.type)

    async def settle_undecodable(
        self, delivery: Delivery, envelope: Envelope | None, reason: str, error: str
    ) -> None:
        """Dead-letter what cannot run; with a readable envelope, tell the event stream too."""
        outcome = DeadLetter(reason, "DecodeError", error)
        confirms = [self._dead(delivery, outcome, 0)]
        if envelope is not None:
            confirms.append(self._event(envelope, Status.DEAD, **_dead_details(outcome)))
        await self._finish(delivery, confirms, outcome, "(undecodable)")

    async def requeue(self, delivery: Delivery, why: str) -> None:
        """Give the delivery back to the broker unsettled; it is redelivered, never lost."""
        log.warning("requeueing %s: %s", delivery.message_id, why)
        # If the channel is gone, the broker requeues every unacked delivery by itself.
        with contextlib.suppress(*ACK_ERRORS):
            await delivery.nack(requeue=True)
        self._acks.forget(delivery)

    async def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` for events not yet confirmed (an alarm's); say how many
        are lost. Then log what this consumer cost the broker (benchmarks read the line).
        """
        batcher = self._batcher
        if batcher.unconfirmed:
            log.info("waiting for %d events not yet confirmed", batcher.unconfirmed)
        if lost := await batcher.flush(timeout):
            log.error(
                "%d events never confirmed (of tasks acked under an alarm, or given back)", lost
            )
        log.info(
            "settled %d deliveries with %d ack frames; %d events in %d messages",
            self._settled,
            self._acks.frames,
            batcher.events,
            batcher.messages,
        )

    def _plain(self, confirms: Confirms) -> bool:
        """One confirm still to come (a success's event alone), and no alarm on: the common
        case, acked from the confirm's callback. Blocked, the general path acks it at once."""
        return len(confirms) == 1 and not confirms[0].done() and not self._publisher.blocked

    async def _settle_success(
        self, delivery: Delivery, confirm: asyncio.Future[None], task_type: str
    ) -> None:
        error = await self._successes.hold(delivery, confirm, task_type)
        if isinstance(error, PublishError):
            await self.requeue(delivery, f"settling failed: {error}")
        elif error is not None:
            raise error

    async def _finish(
        self,
        delivery: Delivery,
        confirms: Confirms,
        outcome: Outcome,
        task_type: str,
    ) -> None:
        started = time.perf_counter()
        try:
            deferred = await self._confirmed(confirms, may_defer=isinstance(outcome, Succeeded))
        except PublishError as exc:
            await self.requeue(delivery, f"settling failed: {exc}")
            return
        self._count(task_type, type(outcome), None if deferred else started)
        await self._acks.ack(delivery)

    def _count(self, task_type: str, kind: type[Outcome], started: float | None) -> None:
        """A delivery settled (its ack wanted now); ``started``: when its confirm wait began,
        None if it was acked ahead of its confirm (an alarm's), which is not sampled."""
        self._settled += 1
        if started is not None and self._settled % CONFIRM_SAMPLE == 0:
            PUBLISH_CONFIRM.record(time.perf_counter() - started, self._confirm_labels(kind))
        DELIVERY_COUNTS[(self.queue, task_type, OUTCOME_LABEL[kind])] += 1

    def _counted_success(self, task_type: str, started: float | None) -> None:
        self._count(task_type, Succeeded, started)

    def _publish(
        self,
        delivery: Delivery,
        envelope: Envelope,
        outcome: Outcome,
        started: datetime | None,
    ) -> Confirms:
        """Start the outcome's publishes, in order: the message (if any), then the event.

        ``started`` is when the attempt started, for an outcome of a run; else None.
        """
        match outcome:
            case Succeeded(result=result):
                return [self._event(envelope, Status.SUCCEEDED, started, result=result)]
            case RetryIn(tier=tier, error_type=error_type, error=error):
                retry = self._retry(envelope, tier)
                details = {"next_delay_seconds": tier, "error_type": error_type, "error": error}
                return [retry, self._event(envelope, Status.RETRYING, started, **details)]
            case DeadLetter():
                dead = self._dead(delivery, outcome, envelope.attempt)
                return [dead, self._event(envelope, Status.DEAD, started, **_dead_details(outcome))]
            case Cancelled(reason=reason):
                log.info("task %s attempt %d cancelled on request", envelope.id, envelope.attempt)
                return [self._event(envelope, Status.CANCELLED, started, reason=reason)]

    async def _confirmed(self, confirms: Confirms, *, may_defer: bool) -> bool:
        """Wait for every confirm; True if they were left to follow an alarm instead.

        Raises ``PublishError`` if a publish failed, or if confirms did not come
        within the publish timeout (checked every ``BLOCK_CHECK_SECONDS``) while the
        connection was not blocked.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publisher.timeout
        pending = {confirm for confirm in confirms if not confirm.done()}
        while pending:
            if self._publisher.blocked:
                _raise_failed(c for c in confirms if c not in pending)
                if may_defer and self._defer_if_room(pending):
                    return True
                await self._publisher.unblocked()  # holds the delivery: no re-run per timeout
                deadline = loop.time() + self._publisher.timeout
            remaining = deadline - loop.time()
            if remaining <= 0:
                for confirm in pending:
                    if not self._batcher.carries(confirm):  # a batch's is shared: left alone
                        confirm.cancel()
                raise PublishError(f"no confirm within {self._publisher.timeout}s (unknown)")
            await self._waits.first(pending)
            pending = {confirm for confirm in pending if not confirm.done()}
        _raise_failed(confirms)
        return False

    def _defer_if_room(self, pending: set[asyncio.Future[None]]) -> bool:
        """Leave ``pending`` to be confirmed after the alarm, unless too many events are
        deferred already (then False: the caller holds its delivery)."""
        if self._batcher.unconfirmed >= MAX_DEFERRED:
            return False
        if not self._deferred:
            log.warning(
                "the broker blocks publishing (resource alarm): acking successes now, "
                "their events follow when it clears; retries and dead letters wait"
            )
        for confirm in pending - self._deferred:  # a batch's confirm is shared by many settles
            self._deferred.add(confirm)
            confirm.add_done_callback(self._deferred_done)
        return True

    def _deferred_done(self, confirm: asyncio.Future[None]) -> None:
        self._deferred.discard(confirm)
        if not confirm.cancelled() and confirm.exception() is not None:
            log.error("events of acked tasks were lost: %s", confirm.exception())
        elif not self._deferred:
            log.info("every event deferred by the resource alarm is confirmed")

    def _retry(self, envelope: Envelope, tier: float) -> asyncio.Future[None]:
        """Publish the next attempt from its own span, so that attempt is this one's child."""
        names = self._publisher.names
        attributes = messaging_attributes(
            "publish",
            names.retry_exchange,
            names.retry_key(self.queue, tier),
            {
                "warren.task.id": envelope.id,
                "warren.task.attempt": envelope.attempt + 1,
                "warren.retry.delay_seconds": tier,
            },
        )
        with _span(f"publish {self.queue}", attributes):
            confirm = self._publisher.send_retry(envelope.next_attempt(inject()), tier)
        log.warning("attempt %d failed; retry in %ss", envelope.attempt, tier)
        return confirm

    def _dead(self, delivery: Delivery, outcome: DeadLetter, attempts: int) -> asyncio.Future[None]:
        attributes = messaging_attributes(
            "publish",
            self._publisher.names.dead_exchange,
            self.queue,
            {
                "warren.task.id": delivery.message_id or "",
                "warren.dead.reason": outcome.reason,
                "warren.dead.error_type": outcome.error_type,
            },
        )
        with _span(f"dead-letter {self.queue}", attributes):
            message = dead_letter_message(
                delivery,
                reason=outcome.reason,
                error_type=outcome.error_type,
                error=outcome.error,
                queue=self.queue,
                attempts=attempts,
            )
            confirm = self._publisher.send_dead(message, self.queue)
        log.error("dead-lettered: %s (%s: %s)", outcome.reason, outcome.error_type, outcome.error)
        return confirm

    def _event(
        self,
        envelope: Envelope,
        status: Status,
        started_at: datetime | None = None,
        **details: Any,
    ) -> asyncio.Future[None]:
        """The event of ``envelope``'s task reaching ``status`` now, into the next batch;
        the confirm of the message that carries it."""
        event = event_of(envelope, status, self._worker, started_at, **details)
        return self._batcher.add(event, envelope.queue, status)

    def _confirm_labels(self, kind: type[Outcome]) -> dict[str, str]:
        names = self._publisher.names
        if kind is RetryIn:
            return self._publisher.labels(names.retry_exchange)
        if kind is DeadLetter:
            return self._publisher.labels(names.dead_exchange)
        return self._publisher.labels(names.events_exchange)


@contextlib.contextmanager
def _span(name: str, attributes: dict[str, Any]) -> Iterator[None]:
    """A producer span, only inside a recording one: an attempt not sampled has none, and
    its retry then carries its sender's trace context on (``AttemptSampling``)."""
    if not trace.get_current_span().is_recording():
        yield
        return
    with tracer().start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=attributes):
        yield


def _dead_details(outcome: DeadLetter) -> dict[str, Any]:
    return {"reason": outcome.reason, "error_type": outcome.error_type, "error": outcome.error}


def _raise_failed(confirms: Iterable[asyncio.Future[None]]) -> None:
    """Raise the first failure among finished publishes (``PublishError``)."""
    for confirm in confirms:
        if confirm.cancelled():
            raise PublishError("the publish was cancelled")
        if (exc := confirm.exception()) is not None:
            raise exc
