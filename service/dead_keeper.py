"""The keeper: each app queue's dead letters, moved from the broker into the store.

Why the store and not the queue: a queue can only be read by taking
messages (``basic.get`` + requeue reorders and counts redeliveries, and can
lose the tail to a crash), and the management plugin may be off. Kept in the
store, a dead letter is read by an indexed query, filtered, paginated and
replayed by id. The keeper writes a batch (one transaction) and only then acks
it, so a crash re-delivers and the upsert by task id keeps one copy.

It runs in each gateway process on a broker connection of its own; the same
connection serves the queues API's passive declares (``warren.service.queues``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from warren.service import topology
from warren.service.background import Background
from warren.service.dead_letters import from_delivery
from warren.service.settings import Settings
from warren.service.store.db import StoreUnavailable
from warren.service.store.dead import DeadLetterStore

log = logging.getLogger(__name__)
BATCH = 200
PRUNE_EVERY_SECONDS = 3600.0
RETRY_SECONDS = 1.0


class DeadLetterKeeper:
    """Consumes ``<ns>.<queue>.dead`` of every app queue into ``DeadLetterStore``."""

    def __init__(self, store: DeadLetterStore, settings: Settings, queues: Iterable[str]) -> None:
        self.store = store
        self.shape = topology.build(settings, queues)
        self._max_bytes = settings.dead_letter_max_bytes
        self._retention = timedelta(days=settings.dead_letter_retention_days)
        self._pending: list[tuple[AbstractIncomingMessage, str]] = []
        self._arrived = asyncio.Event()
        self._loops = Background()
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Consume every dead-letter queue of the app; write and prune in the background."""
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=BATCH * 2)
        names = self.shape.names
        for queue in self.shape.queues_served:
            declared = await topology.declare_queue(channel, self.shape, names.dead_queue(queue))
            await declared.consume(functools.partial(self._on_delivery, queue=queue))
        self.connection, self._channel = connection, channel
        self._loops.start("dead-keeper-writer", self._write_forever)
        self._loops.start("dead-keeper-pruner", self._prune_forever)

    @property
    def healthy(self) -> bool:
        return self._loops.healthy

    async def _on_delivery(self, delivery: AbstractIncomingMessage, *, queue: str) -> None:
        self._pending.append((delivery, queue))
        self._arrived.set()

    async def _write_forever(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._pending:
                batch = self._pending[:BATCH]
                await self._write(batch)
                del self._pending[: len(batch)]

    async def _write(self, batch: list[tuple[AbstractIncomingMessage, str]]) -> None:
        """Keep a batch (retried while the store is down), then ack each delivery."""
        letters = [from_delivery(d, q, self._max_bytes) for d, q in batch]
        while True:
            try:
                await self.store.keep(letters)
                break
            except StoreUnavailable as exc:
                log.warning("dead-letter keeper: store unavailable (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
        for delivery, _ in batch:
            await delivery.ack()

    async def _prune_forever(self) -> None:
        while True:
            pruned = await self.store.prune(datetime.now(UTC) - self._retention)
            if pruned:
                log.info("dead-letter keeper: dropped %d dead letters past retention", pruned)
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    async def close(self) -> None:
        await self._loops.close()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
