"""The recorder: lifecycle events → batched merges into the task store → acks → waiters woken.

It runs inside each gateway process, on its own broker connection (so a
blocked publishing connection never stalls its acks), consuming the durable
``<ns>.events.recorder`` queue that every replica shares: events published
while no gateway runs wait there. The gateway's own ``queued`` write joins
the same batches (``submitted``), so the 202 path does no database round trip.

By concern:

* ``warren.service.recorder_items`` — a message decoded with one validation
  call into an item, written whole and never split; the next write taken from
  the head of the queue;
* ``warren.service.recorder_writer`` — one transaction in flight, what arrived
  meanwhile in the next, retried while the database is down;
* ``warren.service.recorder_acks`` — acks only after every change of a message
  is written, one ``multiple`` ack per channel where nothing older is pending.

Its prefetch is bounded in events, not messages: a message carries up to
``event_batch_max_events`` events, so the recorder holds
``recorder_max_unacked_events ÷ event_batch_max_events`` messages (at least 2:
one written while the next arrives); see ``recorder_prefetch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import UTC, datetime, timedelta

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from warren.service import topology
from warren.service.background import Background
from warren.service.recorder_items import Item, decoded
from warren.service.recorder_writer import RecorderStats, Writer
from warren.service.settings import Settings
from warren.service.store import Change, TaskRecord, TaskStore
from warren.service.store.db import StoreUnavailable
from warren.service.store.merge import merge_all

__all__ = ["Recorder", "RecorderStats", "recorder_prefetch"]

log = logging.getLogger(__name__)
WRITER, PRUNER = "recorder-writer", "recorder-pruner"
PRUNE_EVERY_SECONDS = 3600.0
MIN_PREFETCH = 2  # one message being written while the next one arrives


def recorder_prefetch(settings: Settings) -> int:
    """Messages the recorder holds unacked, so that at most about
    ``recorder_max_unacked_events`` events are: each message may carry up to the
    consumers' ``event_batch_max_events`` (the gateway assumes they share its setting).

    Full messages come under load, when consumers' batches grow; small ones mean a
    light load, which this many messages still keeps moving.
    """
    per_message = settings.event_batch_max_events
    return max(MIN_PREFETCH, math.ceil(settings.recorder_max_unacked_events / per_message))


class Recorder:
    def __init__(self, store: TaskStore, settings: Settings) -> None:
        self.store = store
        bound = settings.recorder_max_unwritten_submissions
        self._writer = Writer(store, settings.recorder_batch_size, bound)
        self._prefetch = recorder_prefetch(settings)
        self._retention = timedelta(days=settings.store_retention_days)
        self._shape = topology.build(settings, ())
        self._loops = Background()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None

    @property
    def stats(self) -> RecorderStats:
        return self._writer.stats

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Consume the recorder queue and start writing; prune now and then hourly."""
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        names = self._shape.names
        self._queue = await topology.declare_queue(self._channel, self._shape, names.recorder_queue)
        self._consumer_tag = await self._queue.consume(self._on_delivery)
        # Supervised: a crash restarts the loop and shows in /readyz, never a silent stop.
        self._loops.start(WRITER, self._writer.write_forever)
        self._loops.start(PRUNER, self._prune_forever)

    @property
    def healthy(self) -> bool:
        """Its loops run (none crashed lately): what the gateway's /readyz adds."""
        return self._loops.healthy

    def submitted(self, change: Change) -> None:
        """The gateway's ``queued`` write, joined to the next batch (no round trip now)."""
        self._writer.add(Item(None, (change,)))

    async def room(self, timeout: float) -> bool:
        """Whether the gateway may accept more tasks: fewer than
        ``recorder_max_unwritten_submissions`` of its ``queued`` writes wait (waited for, up
        to ``timeout``). Without it a store slower than the intake grows the gateway."""
        if self._writer.room.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._writer.room.wait()
        return self._writer.room.is_set()

    def unflushed(self, task_id: str) -> TaskRecord | None:
        """A task this gateway accepted whose ``queued`` write is still in the next batch."""
        return merge_all(None, self._writer.unflushed.get(task_id, ()))

    def unflushed_changes(self, task_id: str) -> list[Change]:
        """That task's changes not written yet, for a write that cannot wait for the batch."""
        return list(self._writer.unflushed.get(task_id, ()))

    async def _on_delivery(self, delivery: AbstractIncomingMessage) -> None:
        """A batch of events (one validation call) or a single event, queued for the writer."""
        item, malformed = decoded(delivery)
        self.stats.malformed += malformed
        self._writer.add(item)

    async def _prune_forever(self) -> None:
        while True:
            try:
                pruned = await self.store.prune(datetime.now(UTC) - self._retention)
                if pruned:
                    log.info("pruned %d task records older than %s", pruned, self._retention)
            except StoreUnavailable as exc:
                log.warning("pruning task records failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Stop consuming, write what already arrived, then close the channel.

        Deliveries still unacked when the channel closes go back to the queue
        for another replica (or the next start); the gateway's own writes that
        could not be written are logged as lost.
        """
        self._writer.closing = True
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(
                AMQPError, ChannelInvalidStateError, RuntimeError, TimeoutError
            ):
                async with asyncio.timeout(drain_seconds):
                    await self._queue.cancel(self._consumer_tag)
        self._writer.wake()
        await self._loops.close(PRUNER)
        writer = self._loops.task(WRITER)
        if writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), drain_seconds)
        await self._loops.close()
        if self._channel is not None:
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, RuntimeError):
                await self._channel.close()
        own = [c for changes in self._writer.unflushed.values() for c in changes]
        if own:
            try:
                await self.store.apply(own)
            except Exception as exc:
                log.error("recorder: %d queued writes lost at shutdown: %r", len(own), exc)
