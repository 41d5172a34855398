"""What a consumer knows of cancelled tasks, and how it stops a running attempt.

The gateway broadcasts a cancellation to ``<ns>.control``, which feeds the
stream ``<ns>.control.log``. Every consumer reads that stream from
``cancellation_retention_seconds`` ago, so one that starts *after* the
broadcast learns of it too; at start-up it publishes a ``sync`` marker and
waits (briefly) until it reads it back, so it has read everything published
before it takes its first delivery.

Hooks for the delivery path:

* ``is_cancelled(task_id)``: the delivery is skipped and acked, and a
  ``cancelled`` event recorded (the ``Cancelled`` outcome) — for a task
  cancelled while queued, or while waiting in a retry tier;
* ``guard(task_id, work, interruptible=…)``: runs an attempt so that a
  cancellation arriving meanwhile cancels its asyncio task (cooperatively:
  the handler sees ``CancelledError`` at its next ``await``) and
  ``TaskCancelled`` is raised instead of a result. The attempt runs in the
  delivery's own task, which a cancellation cancels: no second task per
  delivery.

A synchronous handler runs in a thread that nothing can interrupt: its
attempt is not interrupted, its outcome stands, and only a later attempt
(after a retry) is skipped.

What is remembered is bounded: ids expire after the retention, and at most
``MAX_REMEMBERED`` are kept (the oldest go first). A task that waits longer
than the retention before it runs again would run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from warren.service.amqp import Publisher
from warren.service.errors import PublishError
from warren.service.topology import Topology, declare_queue
from warren.service.wire import parse_control, sync_message

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_REMEMBERED = 100_000
STREAM_PREFETCH = 500
SYNC_TIMEOUT_SECONDS = 10.0


class TaskCancelled(BaseException):
    """The running attempt was cancelled on request: neither a failure nor a shutdown.

    A ``BaseException``, as ``CancelledError`` is, so that the ``except Exception``
    that turns handler failures into retries does not take it for one.
    """


class Cancellations:
    """Cancelled task ids (bounded, with a TTL) and the attempts running in this process."""

    def __init__(self, retention_seconds: float = 86_400.0, max_entries: int = MAX_REMEMBERED):
        self.retention_seconds = retention_seconds
        self._max_entries = max_entries
        self._until: OrderedDict[str, float] = OrderedDict()
        self._running: dict[str, asyncio.Future[Any]] = {}
        self._interrupted: set[str] = set()
        self._channel: AbstractChannel | None = None
        self._marker: tuple[str, asyncio.Future[None]] | None = None

    def is_cancelled(self, task_id: str) -> bool:
        until = self._until.get(task_id)
        return until is not None and until > time.monotonic()

    def cancel(self, task_id: str, at: datetime | None = None) -> None:
        """Remember ``task_id`` (until retention after ``at``); stop it if it runs here."""
        age = (datetime.now(UTC) - at).total_seconds() if at is not None else 0.0
        if age >= self.retention_seconds:
            return
        self._until[task_id] = time.monotonic() + self.retention_seconds - max(0.0, age)
        self._until.move_to_end(task_id)
        self._forget_old()
        running = self._running.get(task_id)
        if running is not None and not running.done():
            log.info("cancelling running task %s on request", task_id)
            self._interrupted.add(task_id)
            running.cancel()

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._until and (
            len(self._until) > self._max_entries or next(iter(self._until.values())) <= now
        ):
            self._until.popitem(last=False)

    async def guard(self, task_id: str, work: Awaitable[T], *, interruptible: bool) -> T:
        """``await work``, unless the task is cancelled first or meanwhile: ``TaskCancelled``.

        A cancellation of the *calling* task (the consumer stopping) is not
        turned into ``TaskCancelled``: it propagates, and the delivery is requeued.
        """
        if self.is_cancelled(task_id):
            _close(work)
            raise TaskCancelled(task_id)
        if not interruptible:
            return await work
        # No task of its own: a cancellation cancels the delivery's task, which runs the
        # attempt, and ``uncancel`` tells it from a stop that cancelled that task too.
        current = asyncio.current_task()
        assert current is not None, "an attempt runs in a task"
        self._running[task_id] = current
        try:
            result = await work
        except asyncio.CancelledError:
            if task_id in self._interrupted:
                self._interrupted.discard(task_id)
                if current.uncancel() == 0:
                    raise TaskCancelled(task_id) from None
            raise
        finally:
            if self._running.get(task_id) is current:
                del self._running[task_id]
        if task_id in self._interrupted:  # the handler swallowed the cancellation and returned
            self._interrupted.discard(task_id)
            current.uncancel()  # the request stands no more: later awaits are not cancelled
        return result

    async def follow(
        self, connection: AbstractRobustConnection, publisher: Publisher, shape: Topology
    ) -> None:
        """Read the control stream from retention ago; return once caught up (or after a while)."""
        names = shape.names
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=STREAM_PREFETCH)
        stream = await declare_queue(self._channel, shape, names.control_stream)
        marker = uuid.uuid4().hex
        caught_up: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._marker = (marker, caught_up)
        since = datetime.now(UTC) - timedelta(seconds=self.retention_seconds)
        await stream.consume(self._on_control, arguments={"x-stream-offset": since})
        try:
            await publisher.publish(names.control_exchange, sync_message(marker), "")
            async with asyncio.timeout(SYNC_TIMEOUT_SECONDS):
                await caught_up
        except (PublishError, TimeoutError) as exc:
            log.warning("not sure every earlier cancellation was read (%r); going on", exc)

    async def _on_control(self, message: AbstractIncomingMessage) -> None:
        control = parse_control(message.body)
        if control is not None and control.kind == "cancel":
            self.cancel(control.value, control.at)
        elif control is not None and self._marker and control.value == self._marker[0]:
            marker_seen = self._marker[1]
            if not marker_seen.done():
                marker_seen.set_result(None)
        with contextlib.suppress(AMQPError, ChannelInvalidStateError, RuntimeError):
            await message.ack()  # a stream needs acks to keep sending (credit), nothing else

    async def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, RuntimeError):
                await self._channel.close()


def _close(work: Awaitable[object]) -> None:
    """A coroutine that will never be awaited is closed, so Python does not warn about it."""
    close = getattr(work, "close", None)
    if callable(close):
        close()
