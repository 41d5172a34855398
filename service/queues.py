"""Each app queue's state, from the broker over AMQP and from Warren's own records.

The broker's counts come from passive declares (``queue.declare`` with
``passive``: the ready count and consumers, no permission needed, no
management plugin). AMQP does not say how many deliveries are unacked, so
``unacked`` is Warren's own count of tasks running (each holds one unacked
delivery; prefetched ones not yet started are not counted). ``scheduled`` is Warren's
count too: the delay ladder is shared by every queue, so the broker cannot say
whose tasks wait on it, but the records in ``scheduled`` can (the store's
``(status, …)`` index bounds that count to them). Rates are the
records' creations, starts and ends over the last minute. Dead letters are
those kept in the store plus those still in the broker queue waiting for the
keeper.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity

from warren.service.store import TaskStore
from warren.service.store.dead import DeadLetterStore
from warren.service.store.sql import TABLE
from warren.service.topology import Topology, tier_label

RATE_WINDOW = timedelta(seconds=60)


@dataclass
class QueueState:
    """One queue as ``GET /v1/queues`` shows it."""

    name: str
    ready: int | None = None
    unacked: int = 0
    consumers: int | None = None
    retrying: dict[str, int | None] = field(default_factory=dict)
    scheduled: int = 0  # records still ``scheduled``: delayed tasks not due yet
    dead_letters: int = 0
    rates: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ready": self.ready,
            "unacked": self.unacked,
            "consumers": self.consumers,
            "retrying": sum(n or 0 for n in self.retrying.values()),
            "retry_tiers": self.retrying,
            "scheduled": self.scheduled,
            "dead_letters": self.dead_letters,
            "rates": self.rates,
        }


async def broker_depths(
    connection: AbstractRobustConnection, names: list[str]
) -> dict[str, tuple[int, int] | None]:
    """(ready, consumers) of each queue by passive declare; None for a queue that is missing."""
    found: dict[str, tuple[int, int] | None] = {}
    channel = await connection.channel()
    try:
        for name in names:
            try:
                queue = await channel.declare_queue(name, passive=True)
            except ChannelNotFoundEntity:
                found[name] = None  # the broker closed the channel: open another
                await channel.close()
                channel = await connection.channel()
                continue
            result = queue.declaration_result
            found[name] = (result.message_count or 0, result.consumer_count or 0)
    finally:
        await channel.close()
    return found


async def queue_states(
    shape: Topology,
    connection: AbstractRobustConnection | None,
    tasks: TaskStore,
    dead: DeadLetterStore,
) -> list[QueueState]:
    """Every served queue's depths, dead letters and rates (broker counts None if unlinked)."""
    names = shape.names
    wanted = [names.work_queue(q) for q in shape.queues_served]
    wanted += [names.dead_queue(q) for q in shape.queues_served]
    wanted += [names.retry_queue(q, t) for q in shape.queues_served for t in shape.tiers]
    depths_job = broker_depths(connection, wanted) if connection else _nothing()
    depths, held, kept, rates = await asyncio.gather(
        depths_job, _held(tasks), dead.counts(), _rates(tasks)
    )
    states = []
    for q in shape.queues_served:
        work = depths.get(names.work_queue(q))
        waiting = depths.get(names.dead_queue(q))
        state = QueueState(q, ready=work[0] if work else None, consumers=work[1] if work else None)
        state.unacked = held.get((q, "running"), 0)
        state.scheduled = held.get((q, "scheduled"), 0)
        for tier in shape.tiers:
            tier_depth = depths.get(names.retry_queue(q, tier))
            state.retrying[tier_label(tier)] = tier_depth[0] if tier_depth else None
        state.dead_letters = kept.get(q, 0) + (waiting[0] if waiting else 0)
        state.rates = rates.get(q, {"publish": 0.0, "deliver": 0.0, "ack": 0.0})
        states.append(state)
    return states


async def _nothing() -> dict[str, tuple[int, int] | None]:
    return {}


async def _held(tasks: TaskStore) -> dict[tuple[str, str], int]:
    """Tasks running and tasks scheduled, per (queue, status)."""
    rows = await tasks.db.read(
        f"SELECT queue, status, COUNT(*) AS n FROM {TABLE} "
        "WHERE status IN (?, ?) GROUP BY queue, status",
        "running",
        "scheduled",
    )
    return {(row["queue"], row["status"]): int(row["n"]) for row in rows}


async def _rates(tasks: TaskStore) -> dict[str, dict[str, float]]:
    """Tasks per second created (publish), started (deliver) and ended (ack), last minute."""
    since = tasks.dialect.encode_time(datetime.now(UTC) - RATE_WINDOW)
    rows = await tasks.db.read(
        "SELECT queue, "
        "SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END) AS publish, "
        "SUM(CASE WHEN started_at >= ? THEN 1 ELSE 0 END) AS deliver, "
        "SUM(CASE WHEN finished_at >= ? THEN 1 ELSE 0 END) AS ack "
        f"FROM {TABLE} WHERE updated_at >= ? GROUP BY queue",
        since,
        since,
        since,
        since,
    )
    window = RATE_WINDOW.total_seconds()
    return {
        row["queue"]: {
            k: round(int(row[k] or 0) / window, 3) for k in ("publish", "deliver", "ack")
        }
        for row in rows
    }
