"""The recorder's writer: one transaction in flight at a time, then its acks.

Batching follows the load: every item that arrived while a write was in flight
(up to ``recorder_batch_size`` changes) goes into the next one. Idle, an event
is written at once; under load (more arrived during a write), the next batch
also waits ``LINGER_SECONDS``, so batches grow and the per-event cost falls.
Deliveries are acked only after their batch committed (a crash re-delivers
them; merging is idempotent).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from warren.service.recorder_acks import ack_written
from warren.service.recorder_items import Item, count, deduplicated, take
from warren.service.store import Change, TaskStore
from warren.service.store.db import StoreUnavailable

log = logging.getLogger("warren.service.recorder")
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
# Under load only (more arrived while a batch was written): let the next batch fill this much
# longer. Each transaction costs the store's thread several round trips whatever its size, and
# that thread competes with request handling for the GIL; records lag by this much more.
LINGER_SECONDS = 0.025


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

    def account(self, changes: Sequence[Change], seconds: float) -> None:
        self.events += len(changes)
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(changes))
        self.write_seconds.append(seconds)
        if changes:
            now = datetime.now(UTC)
            self.lag_seconds = max(0.0, (now - min(c.at for c in changes)).total_seconds())
            self.max_lag_seconds = max(self.max_lag_seconds, self.lag_seconds)


class Writer:
    """The queue of items to write, and the loop that writes and acks them."""

    def __init__(self, store: TaskStore, batch_size: int, max_unflushed: int) -> None:
        self.store = store
        self.stats = RecorderStats()
        self.pending: list[Item] = []
        self.unflushed: dict[str, list[Change]] = {}  # the gateway's own writes, by task
        self.closing = False
        self._batch_size = batch_size
        self._arrived = asyncio.Event()
        self._max_unflushed = max_unflushed
        self.room = asyncio.Event()  # set while fewer than ``max_unflushed`` tasks wait
        self.room.set()

    def add(self, item: Item) -> None:
        self.pending.append(item)
        if item.delivery is None:
            for change in item.changes:
                self.unflushed.setdefault(change.task_id, []).append(change)
            if len(self.unflushed) >= self._max_unflushed:
                self.room.clear()
        self._arrived.set()

    def wake(self) -> None:
        """Look at the queue again now (``close`` sets ``closing`` first)."""
        self._arrived.set()

    async def write_forever(self) -> None:
        """Write batch after batch; once ``closing``, finish what is pending, then return."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self.pending:
                batch = take(self.pending, self._batch_size)
                try:
                    await self.write(batch)
                except BaseException:
                    self.pending[:0] = batch  # the restarted writer takes them again
                    raise
                if 0 < count(self.pending) < self._batch_size and not self.closing:
                    await asyncio.sleep(LINGER_SECONDS)
            if self.closing:
                return

    async def write(self, batch: list[Item]) -> None:
        """Apply one batch (retried while the database is unavailable), then ack it.

        A batch the database refuses for its data (or that trips a bug) is
        written change by change, and only the changes that fail are dropped:
        one bad event must not hold up the queue.
        """
        changes = deduplicated(batch)
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
        self.stats.account(changes, time.perf_counter() - started)
        for change in changes:
            self.unflushed.pop(change.task_id, None)
        if len(self.unflushed) < self._max_unflushed:
            self.room.set()
        await ack_written(batch, self.pending)

    async def _write_singly(self, changes: Sequence[Change]) -> None:
        for change in changes:
            try:
                await self.store.apply([change])
            except StoreUnavailable:
                raise  # the database, not this change: the whole batch is retried
            except Exception:
                log.exception("recorder: dropping change %s it cannot store", change.dedup_key)
