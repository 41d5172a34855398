"""The recorder: lifecycle events → batched merges into the task store → acks → waiters woken.

It runs inside each gateway process, on its own broker connection (so a
blocked publishing connection never stalls its acks), consuming the durable
``<ns>.events.recorder`` queue that every replica shares: events published
while no gateway runs wait there. The gateway's own ``queued`` write joins
the same batches (``submitted``), so the 202 path does no database round trip.

A message is a batch of events (``warren.service.wire.batches``; one event
alone from consumers older than batches), decoded with one validation call and
written whole in one transaction, then acked: never before every change in it
is written. Batching follows the load: one write is in flight at a time, and
every message that arrived meanwhile (up to ``recorder_batch_size`` changes)
goes into the next one. Idle, an event is written at once; under load (more arrived
during a write), the next batch also waits ``LINGER_SECONDS``, so batches grow
and the per-event cost falls. Deliveries are acked only after their batch
committed (a crash re-delivers them; merging is idempotent), and with one
``multiple`` ack per channel when nothing older is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from warren.service.settings import Settings
from warren.service.store import Change, TaskRecord, TaskStore
from warren.service.store.db import StoreUnavailable
from warren.service.store.merge import merge_all
from warren.service.wire import decode_events

log = logging.getLogger(__name__)
WRITER, PRUNER = "recorder-writer", "recorder-pruner"
PRUNE_EVERY_SECONDS = 3600.0
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
# Under load only (more arrived while a batch was written): let the next batch fill this much
# longer. Each transaction costs the store's thread several round trips whatever its size, and
# that thread competes with request handling for the GIL; records lag by this much more.
LINGER_SECONDS = 0.025


@dataclass(frozen=True, slots=True)
class _Item:
    """One message of the recorder queue (a batch of events, or one), or the gateway's write.

    Written whole, in one transaction, and acked after it: never split across two.
    """

    delivery: AbstractIncomingMessage | None  # None: the gateway's own write
    changes: Sequence[Change]  # its valid events (empty: all malformed, acked and dropped)


@dataclass
class RecorderStats:
    """What a benchmark or an operator wants to know: how much, and how far behind."""

    events: int = 0
    batches: int = 0
    largest_batch: int = 0
    lag_seconds: float = 0.0  # of the last batch: commit time minus its oldest event's time
    max_lag_seconds: float = 0.0
    malformed: int = 0
    write_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=1000), repr=False)


class Recorder:
    def __init__(self, store: TaskStore, settings: Settings) -> None:
        self.store = store
        self.stats = RecorderStats()
        self._batch_size = settings.recorder_batch_size
        self._retention = timedelta(days=settings.store_retention_days)
        self._shape = topology.build(settings, ())
        self._pending: list[_Item] = []
        self._unflushed: dict[str, list[Change]] = {}
        self._arrived = asyncio.Event()
        self._loops = Background()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._closing = False

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Consume the recorder queue and start writing; prune now and then hourly."""
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=self._batch_size * 2)
        names = self._shape.names
        self._queue = await topology.declare_queue(self._channel, self._shape, names.recorder_queue)
        self._consumer_tag = await self._queue.consume(self._on_delivery)
        # Supervised: a crash restarts the loop and shows in /readyz, never a silent stop.
        self._loops.start(WRITER, self._write_forever)
        self._loops.start(PRUNER, self._prune_forever)

    @property
    def healthy(self) -> bool:
        """Its loops run (none crashed lately): what the gateway's /readyz adds."""
        return self._loops.healthy

    def submitted(self, change: Change) -> None:
        """The gateway's ``queued`` write, joined to the next batch (no round trip now)."""
        self._pending.append(_Item(None, (change,)))
        self._unflushed.setdefault(change.task_id, []).append(change)
        self._arrived.set()

    def unflushed(self, task_id: str) -> TaskRecord | None:
        """A task this gateway accepted whose ``queued`` write is still in the next batch."""
        return merge_all(None, self._unflushed.get(task_id, ()))

    def unflushed_changes(self, task_id: str) -> list[Change]:
        """That task's changes not written yet, for a write that cannot wait for the batch."""
        return list(self._unflushed.get(task_id, ()))

    async def _on_delivery(self, delivery: AbstractIncomingMessage) -> None:
        """A batch of events (one validation call) or a single event, queued for the writer."""
        decoded = decode_events(delivery.body, delivery.headers)
        if decoded.errors:
            self.stats.malformed += len(decoded.errors)
            log.warning(
                "recorder: dropping %d malformed events of %s: %s",
                len(decoded.errors),
                delivery.message_id,
                decoded.errors[0],
            )
        self._pending.append(_Item(delivery, decoded.changes))
        self._arrived.set()

    async def _write_forever(self) -> None:
        """Write batch after batch; on ``close``, finish what is pending, then return."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._pending:
                batch = self._take()
                try:
                    await self._write(batch)
                except BaseException:
                    self._pending[:0] = batch  # the restarted writer takes them again
                    raise
                if 0 < _count(self._pending) < self._batch_size and not self._closing:
                    await asyncio.sleep(LINGER_SECONDS)
            if self._closing:
                return

    def _take(self) -> list[_Item]:
        """The next write: whole messages from the head of the queue, up to
        ``recorder_batch_size`` changes (one message larger than that goes alone)."""
        taken, changes = 0, 0
        for item in self._pending:
            if taken and changes + len(item.changes) > self._batch_size:
                break
            taken, changes = taken + 1, changes + len(item.changes)
        batch = self._pending[:taken]
        del self._pending[:taken]
        return batch

    async def _write(self, batch: list[_Item]) -> None:
        """Apply one batch (retried while the database is unavailable), then ack it.

        A batch the database refuses for its data (or that trips a bug) is
        written change by change, and only the changes that fail are dropped:
        one bad event must not hold up the queue.
        """
        changes = _deduplicated(batch)
        started = time.perf_counter()
        singly = False
        for attempt in itertools.count():
            try:
                await (self._write_singly(changes) if singly else self.store.apply(changes))
                break
            except StoreUnavailable as exc:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                log.warning(
                    "recorder: writing %d changes failed (%s); retry in %ss",
                    len(changes),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            except Exception:
                log.exception("recorder: batch refused; writing its changes one by one")
                singly = True
        self._account(changes, time.perf_counter() - started)
        for change in changes:
            self._unflushed.pop(change.task_id, None)
        await self._ack(batch)

    async def _write_singly(self, changes: Sequence[Change]) -> None:
        for change in changes:
            try:
                await self.store.apply([change])
            except StoreUnavailable:
                raise  # the database, not this change: the whole batch is retried
            except Exception:
                log.exception("recorder: dropping change %s it cannot store", change.dedup_key)

    def _account(self, changes: Sequence[Change], seconds: float) -> None:
        stats = self.stats
        stats.events += len(changes)
        stats.batches += 1
        stats.largest_batch = max(stats.largest_batch, len(changes))
        stats.write_seconds.append(seconds)
        if changes:
            now = datetime.now(UTC)
            stats.lag_seconds = max(0.0, (now - min(c.at for c in changes)).total_seconds())
            stats.max_lag_seconds = max(stats.max_lag_seconds, stats.lag_seconds)

    async def _ack(self, batch: list[_Item]) -> None:
        """One ``multiple`` ack per channel, unless an older delivery is still pending there.

        A delivery whose channel has closed since (a broker restart, a lost connection)
        cannot be acked and need not be: the broker redelivers it on the new channel and
        the merge is idempotent. It is skipped here, never raised: a raise would stop
        the writer, and with it every record.
        """
        live = [
            item.delivery
            for item in batch
            if item.delivery is not None and _channel_key(item.delivery) is not None
        ]
        newest: dict[int, AbstractIncomingMessage] = {}
        for delivery in live:
            key = _channel_key(delivery)
            if key is None:
                continue
            if (seen := newest.get(key)) is None or _tag(seen) < _tag(delivery):
                newest[key] = delivery
        singles: list[AbstractIncomingMessage] = []
        for key, delivery in list(newest.items()):
            if any(_older_on(p.delivery, key, delivery) for p in self._pending):
                singles += [d for d in live if _channel_key(d) == key]
                del newest[key]
        for delivery in newest.values():
            await _ack_quietly(delivery, multiple=True)
        for delivery in singles:
            await _ack_quietly(delivery, multiple=False)

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
        self._closing = True
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(
                AMQPError, ChannelInvalidStateError, RuntimeError, TimeoutError
            ):
                async with asyncio.timeout(drain_seconds):
                    await self._queue.cancel(self._consumer_tag)
        self._arrived.set()
        await self._loops.close(PRUNER)
        writer = self._loops.task(WRITER)
        if writer is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), drain_seconds)
        await self._loops.close()
        if self._channel is not None:
            with contextlib.suppress(AMQPError, ChannelInvalidStateError, RuntimeError):
                await self._channel.close()
        own = [c for changes in self._unflushed.values() for c in changes]
        if own:
            try:
                await self.store.apply(own)
            except Exception as exc:
                log.error("recorder: %d queued writes lost at shutdown: %r", len(own), exc)


def _deduplicated(batch: Sequence[_Item]) -> list[Change]:
    """The batch's changes, each event once (its ``message_id``: task, attempt, status)."""
    seen: set[str] = set()
    changes: list[Change] = []
    for item in batch:
        for change in item.changes:
            if change.dedup_key not in seen:
                seen.add(change.dedup_key)
                changes.append(change)
    return changes


def _count(items: Sequence[_Item]) -> int:
    return sum(len(item.changes) for item in items)


def _tag(delivery: AbstractIncomingMessage) -> int:
    return delivery.delivery_tag or 0


def _channel_key(delivery: AbstractIncomingMessage | None) -> int | None:
    """Which channel a delivery came on; ``None`` for the gateway's own writes and for a
    delivery whose channel has closed (aio-pika raises on ``.channel`` then)."""
    if delivery is None:
        return None
    try:
        return id(delivery.channel)
    except ChannelInvalidStateError:
        return None


async def _ack_quietly(delivery: AbstractIncomingMessage, *, multiple: bool) -> None:
    """Ack; a channel that closes meanwhile means the broker redelivers, which is harmless."""
    try:
        await delivery.ack(multiple=multiple)
    except (AMQPError, ChannelInvalidStateError, RuntimeError) as exc:
        log.info("recorder: ack not sent (%r); the broker redelivers those events", exc)


def _older_on(
    delivery: AbstractIncomingMessage | None, channel_key: int, newest: AbstractIncomingMessage
) -> bool:
    return (
        delivery is not None
        and _channel_key(delivery) == channel_key
        and _tag(delivery) < _tag(newest)
    )
